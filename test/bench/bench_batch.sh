#!/usr/bin/env bash
# test/bench/bench_batch.sh - figures for batching across sessions (not a
# test): captions per second of groma-server --serve under a closed loop of
# N = 1, 8, 32 and 64 concurrent clients (each sends a caption request with
# 64 new tokens, waits for the answer, sends the next), with --max-batch 1
# (one answer at a time: no batching) and --max-batch 64, in one run.  Talks
# to the socket directly (no PostgreSQL).  Model: the bundled tiny model on
# the CPU, or MODEL_DIR (and DEVICE) from the environment; RANDOM_CONFIG=real
# (or a config.json) serves that configuration with random weights instead
# (the tiny model's folder then gives only the tokenizer), as on a GPU
# machine without the checkpoint.
#
#   bash test/bench/bench_batch.sh [SECONDS_PER_RUN]     (default 10)
#   DEVICE=cuda RANDOM_CONFIG=real bash test/bench/bench_batch.sh 5
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
MODEL_DIR=${MODEL_DIR:-test/golden/tiny-groma}
DEVICE=${DEVICE:-cpu}
SERVER=${GROMA_SERVER:-./groma-server}
RANDOM_ARGS=()
[ -n "${RANDOM_CONFIG:-}" ] && RANDOM_ARGS=(--random-weights --config "$RANDOM_CONFIG")
KV_MB=${KV_CACHE_MB:-4096}
. test/bench/serve_lib.sh

# Runs the closed loop with N clients for SECS seconds; prints "captions/s mean_ms".
closed_loop() {
    perl -I test/t -MGromaProto -MIO::Select -MTime::HiRes=time -e '
        my ($sock, $n, $secs, @images) = @ARGV;
        my @img = map { local $/; open(my $f, "<:raw", $_) or die "$_: $!"; scalar <$f> } @images;
        my $prompt = "[grounding]Please briefly summarize the content of this image.";
        my $sel = IO::Select->new;
        my (%sent_at, %conn_of, $done, $lat, $id);
        my $t_end = time + $secs;
        for my $k (1 .. $n) {
            my $c = proto_connect($sock) or die "connect: $!";
            $sel->add($c);
            $id++;
            print $c generate_frame($id, $img[$id % @img], $prompt, 64);
            $sent_at{$c} = time;
        }
        my $t0 = time;
        while ($sel->count) {
            for my $c ($sel->can_read(1)) {
                my $r = read_reply($c, 600) // die "connection closed";
                die "request failed: $r->{message}" if $r->{code} != 0;
                $done++;
                $lat += time - $sent_at{$c};
                if (time < $t_end) {
                    $id++;
                    print $c generate_frame($id, $img[$id % @img], $prompt, 64);
                    $sent_at{$c} = time;
                } else {
                    $sel->remove($c);
                    close $c;
                }
            }
        }
        printf "%.2f %.0f\n", $done / (time - $t0), 1000 * $lat / $done;
    ' "$WORK/s.sock" "$1" "$SECS" test/golden/images/*.jpg
}

echo "# groma-server --serve, ${RANDOM_CONFIG:+random weights of $RANDOM_CONFIG, tokenizer of }$MODEL_DIR on $DEVICE," \
    "caption requests of 64 new tokens, closed loop of ${SECS} s, --kv-cache-mb $KV_MB"
echo "# max_batch clients captions/s mean_latency_ms"
for batch in 1 64; do
    serve_start --model "$MODEL_DIR" --device "$DEVICE" --max-batch "$batch" --kv-cache-mb "$KV_MB" --max-queue 256 \
        --log-level warning "${RANDOM_ARGS[@]}"
    for n in 1 8 32 64; do
        echo "$batch $n $(closed_loop "$n")"
    done
    serve_stop
done
