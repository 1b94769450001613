#!/usr/bin/env bash
# test/bench/batch_parity.sh - a report (not a test): do answers decoded in
# a batch equal the same answers decoded alone, with the weights and device
# given?  Sends 24 generating requests (the bundled images, two prompts, 8
# to 64 new tokens) at once to groma-server --serve --max-batch 16, then one
# at a time to a --max-batch 1 server, and prints how many answers' greedy
# ids differ and, for each that does, the first position where they part.
# On f32 weights they must all agree (the unit and TAP tests check that);
# with bf16 weights on a GPU, the GEMMs of a batch may round differently
# from those of one row, and this says how often that changes an answer.
#
#   bash test/bench/batch_parity.sh                           (tiny model, CPU)
#   DEVICE=cuda WEIGHTS=bf16 bash test/bench/batch_parity.sh
#   DEVICE=cuda WEIGHTS=bf16 RANDOM_CONFIG=real bash test/bench/batch_parity.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL_DIR=${MODEL_DIR:-test/golden/tiny-groma}
DEVICE=${DEVICE:-cpu}
SERVER=${GROMA_SERVER:-./groma-server}
EXTRA=()
[ -n "${WEIGHTS:-}" ] && EXTRA+=(--weights "$WEIGHTS")
[ -n "${RANDOM_CONFIG:-}" ] && EXTRA+=(--random-weights --config "$RANDOM_CONFIG")
KV_MB=${KV_CACHE_MB:-4096}
. test/bench/serve_lib.sh

# Starts the server with --max-batch $1.
start_server() {
    serve_start --model "$MODEL_DIR" --device "$DEVICE" --max-batch "$1" --kv-cache-mb "$KV_MB" --max-queue 256 \
        --log-level warning "${EXTRA[@]}"
}

# Sends the 24 requests (all at once when $1 is "together", else one after another); writes one line of
# comma-separated ids per request to $2.
send_requests() {
    perl -I test/t -MGromaProto -MIO::Select -e '
        my ($sock, $mode, $out, @images) = @ARGV;
        my @img = map { local $/; open(my $f, "<:raw", $_) or die "$_: $!"; scalar <$f> } @images;
        my @prompts = ("[grounding]Please briefly summarize the content of this image.", "What is in this image?");
        my @reqs;
        for my $i (0 .. $#img) { for my $p (@prompts) { push @reqs, [$i, $p, $_] for (8, 24, 40, 64) } }
        my @ids;
        my $ask = sub { my ($k) = @_; my $c = proto_connect($sock) or die "connect: $!";
                        print $c generate_frame(1 + $k, $img[$reqs[$k][0]], $reqs[$k][1], $reqs[$k][2]); $c };
        my $take = sub { my ($k, $c) = @_; my $r = read_reply($c, 900) // die "connection closed";
                         die "request $k failed: $r->{message}" if $r->{code} != 0;
                         $ids[$k] = join(",", @{ parse_generate($r)->{ids} }); close $c };
        if ($mode eq "together") {
            my @c = map { $ask->($_) } 0 .. $#reqs;
            $take->($_, $c[$_]) for 0 .. $#reqs;
        } else {
            $take->($_, $ask->($_)) for 0 .. $#reqs;
        }
        open(my $f, ">", $out) or die; print $f "$_\n" for @ids;
    ' "$WORK/s.sock" "$1" "$2" test/golden/images/*.jpg
}

echo "# batch_parity: ${RANDOM_CONFIG:+random weights of $RANDOM_CONFIG, tokenizer of }$MODEL_DIR on $DEVICE," \
    "weights ${WEIGHTS:-default}: 24 answers at --max-batch 16 (sent at once) against --max-batch 1"
start_server 16
send_requests together "$WORK/batched.txt"
serve_stop
start_server 1
send_requests alone "$WORK/alone.txt"
serve_stop
paste -d'|' "$WORK/batched.txt" "$WORK/alone.txt" | awk -F'|' '
    { n++; if ($1 == $2) next; differ++
      split($1, a, ","); nb = split($2, b, ","); k = 1; while (k <= nb && a[k] == b[k]) k++
      printf "# answer %d: batched and alone part at new token %d (of %d)\n", NR, k, nb }
    END { printf "batch_parity: %d of %d answers differ\n", differ, n }'
