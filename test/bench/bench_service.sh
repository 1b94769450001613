#!/usr/bin/env bash
# test/bench/bench_service.sh - figures for groma as a PostgreSQL service
# (not a test): the round trip of groma_ping() through SQL next to SELECT 1
# (p50/p99 over the same number of calls), captions per second of the
# bundled tiny model (groma_caption, 64 new tokens, on the CPU) at 1, 8, 32
# and 64 sessions (bench_batch.sh's closed loop, through SQL), and captions
# per second for a 12-row table three ways in one
# run: a row-by-row UPDATE, the set-based procedure groma_caption_table, and
# the same caption requests sent straight to groma-server's socket (no SQL);
# and images per second finding the regions of 24 rows, row by row and by
# one groma_regions_many(bytea[]) call.  Starts a throwaway cluster with groma preloaded; needs groma
# installed (make install).  Run as root or as the cluster's owner.
#
#   bash test/bench/bench_service.sh [SECONDS_PER_RUN]     (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
PGBIN=$("$PG_CONFIG" --bindir)
WORK=$(mktemp -d /tmp/groma-bench.XXXXXX)
chmod 755 "$WORK"
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap 'as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/model"
cp -r test/golden/tiny-groma/. "$WORK/model/"
cp test/golden/images/extreme_ironing.jpg "$WORK/img.jpg"
cp test/golden/images/*.jpg test/t/GromaProto.pm "$WORK/"
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
PORT=54391
as_owner "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
max_connections = 100
shared_preload_libraries = 'groma'
groma.model_path = '$WORK/model'
groma.device = 'cpu'
groma.max_queue = 256
groma.max_new_tokens = 16
fsync = off
CONF
as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start >/dev/null
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql -XAtq -c "CREATE EXTENSION groma"
psql -XAtq -c "CREATE TABLE img AS SELECT pg_read_binary_file('$WORK/img.jpg') AS b"
# the three bundled images, as bench_batch.sh cycles through them
psql -XAtq -c "CREATE TABLE imgs AS SELECT row_number() OVER (ORDER BY f) AS id, pg_read_binary_file('$WORK/' || f) AS b
               FROM unnest(ARRAY['extreme_ironing.jpg', 'synthetic_333x251.jpg', 'waterview.jpg']) f"
for _ in $(seq 1 100); do
    [ "$(psql -XAtq -c "SELECT state FROM groma_status() WHERE server = 0")" = ready ] && break
    sleep 0.2
done

# Runs pgbench on a one-line script with N clients and logs per-transaction latencies; prints "tps p50_ms p99_ms".
run() {
    local sql=$1 clients=$2 limit=$3 dir
    dir=$(mktemp -d "$WORK/run.XXXX")
    chmod 777 "$dir"
    echo "$sql" >"$dir/script.sql"
    (cd "$dir" && as_owner "$PGBIN/pgbench" -n -c "$clients" -j "$(( clients < 4 ? clients : 4 ))" $limit \
        -f "$dir/script.sql" -l --log-prefix="$dir/lat" >"$dir/out" 2>&1)
    local tps
    tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$dir/out")
    cat "$dir"/lat* | awk '{print $3 / 1000.0}' | sort -n | awk -v tps="$tps" '
        { v[NR] = $1 }
        END { p50 = v[int(NR * 0.50) + (NR * 0.50 > int(NR * 0.50))]; p99 = v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))];
              printf "%s %.3f %.3f %d\n", tps, p50, p99, NR }'
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) CPUs, tiny model on the CPU, ${SECS}s per run"
read -r tps p50 p99 n <<<"$(run 'SELECT 1;' 1 "-t 5000")"
printf '{"figure": "select_1_round_trip", "calls": %d, "p50_ms": %s, "p99_ms": %s}\n' "$n" "$p50" "$p99"
read -r tps p50 p99 n <<<"$(run 'SELECT groma_ping();' 1 "-t 5000")"
printf '{"figure": "groma_ping_round_trip", "calls": %d, "p50_ms": %s, "p99_ms": %s}\n' "$n" "$p50" "$p99"
# the closed loop of test/bench/bench_batch.sh, through SQL: each session captions (64 new tokens) again and again
for c in 1 8 32 64; do
    read -r tps p50 p99 n <<<"$(run "\\set i random(1, 3)
SET groma.max_new_tokens = 64;
SELECT groma_caption(b) FROM imgs WHERE id = :i;" "$c" "-T $SECS")"
    printf '{"figure": "groma_caption_per_s", "sessions": %d, "captions_per_s": %s, "p50_ms": %s, "p99_ms": %s, "captions": %d}\n' \
        "$c" "$tps" "$p50" "$p99" "$n"
done

# captions/s over a 12-row table: row by row, set-based, and groma-server directly
psql -XAtq -c "CREATE TABLE photos (id serial PRIMARY KEY, img bytea, caption groma_answer)"
for f in "$WORK"/extreme_ironing.jpg "$WORK"/waterview.jpg "$WORK"/synthetic_333x251.jpg; do
    psql -XAtq -c "INSERT INTO photos (img) SELECT pg_read_binary_file('$f') FROM generate_series(1, 4)"
done
ms_of() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
row_ms=$(ms_of psql -XAtq -c "UPDATE photos SET caption = groma_caption(img)")
psql -XAtq -c "UPDATE photos SET caption = NULL"
set_ms=$(PGOPTIONS="-c client_min_messages=warning" ms_of psql -XAtq -c "CALL groma_caption_table('photos', 'img', 'caption', 12)")
done_rows=$(psql -XAtq -c "SELECT count(*) FROM photos WHERE caption IS NOT NULL")
direct_ms=$(cd "$WORK/data" && as_owner perl -I"$WORK" -MGromaProto -MTime::HiRes=time -e '
    my @imgs = map { local $/; open(my $f, "<:raw", $_) or die; my $b = <$f>; ($b) x 4 } @ARGV;
    my $c = proto_connect("groma/server-0.sock") or die "connect: $!";
    my $t0 = time;
    for my $i (0 .. $#imgs) {
        # GENERATE, task 0 (caption), no phrase, 16 new tokens: what groma_caption sends
        print $c frame(5, $i + 1, blob($imgs[$i]) . pack("Q<V", 50_000_000, 0) . pack("l<", 0) . blob("") . pack("l<", 16));
        my $r = read_reply($c, 120) or die "no reply";
        die "error: $r->{message}" if $r->{code} != 0;
    }
    printf "%d\n", 1000 * (time - $t0);' "$WORK"/extreme_ironing.jpg "$WORK"/waterview.jpg "$WORK"/synthetic_333x251.jpg)
for pair in "row_by_row_update:$row_ms" "groma_caption_table:$set_ms" "groma_server_direct:$direct_ms"; do
    printf '{"figure": "captions_per_s", "path": "%s", "rows": 12, "ms": %s, "captions_per_s": %s}\n' \
        "${pair%%:*}" "${pair#*:}" "$(awk -v ms="${pair#*:}" 'BEGIN { printf "%.3f", 12000 / ms }')"
done
[ "$done_rows" = 12 ] || echo "# warning: groma_caption_table captioned $done_rows of 12 rows"

# images/s finding regions of 24 rows: one groma_regions(img) per row, and one groma_regions_many(bytea[]) call
# (groma.bulk_in_flight 8: groma-server runs their vision stages in batches of up to 8)
psql -XAtq -c "INSERT INTO photos (img) SELECT img FROM photos"
psql -XAtq -c "CREATE TABLE regions (photo_id int, idx int, area box, score real, embedding real[])"
one_ms=$(ms_of psql -XAtq -c "INSERT INTO regions SELECT p.id, g.* FROM photos p, groma_regions(p.img) g")
one_rows=$(psql -XAtq -c "SELECT count(*) FROM regions")
psql -XAtq -c "TRUNCATE regions"
arr_ms=$(PGOPTIONS="-c groma.bulk_in_flight=8" ms_of psql -XAtq -c "INSERT INTO regions
    SELECT b.ids[g.ord], g.idx, g.area, g.score, g.embedding
    FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(img ORDER BY id) AS imgs FROM photos) b, groma_regions_many(b.imgs) g")
arr_rows=$(psql -XAtq -c "SELECT count(*) FROM regions")
for pair in "row_by_row:$one_ms" "array_bulk_in_flight_8:$arr_ms"; do
    printf '{"figure": "regions_images_per_s", "path": "%s", "images": 24, "ms": %s, "images_per_s": %s}\n' \
        "${pair%%:*}" "${pair#*:}" "$(awk -v ms="${pair#*:}" 'BEGIN { printf "%.3f", 24000 / ms }')"
done
[ "$one_rows" = "$arr_rows" ] || echo "# warning: $one_rows regions row by row, $arr_rows by the array call"
