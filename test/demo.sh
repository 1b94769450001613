#!/usr/bin/env bash
# test/demo.sh - build and install groma, start a throwaway PostgreSQL 15
# cluster with groma preloaded and the bundled tiny model as its
# groma.model_path, load the bundled images into a table (a CHECK constraint
# decodes each one as the model will, in groma-server) and print their header
# facts, ask the model about every image through SQL (groma_regions,
# groma_caption, groma_ground, groma_describe, groma_draw) and show
# groma_status(); then run the same model with groma-server on the command
# line: the regions it selects, a grounded caption, and a phrase to ground.
# The tiny model has random weights, so its answers are gibberish; the
# pipeline is the real one.  Leaves nothing running.  Run as root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
PGBIN=$("$PG_CONFIG" --bindir)
WORK=$(mktemp -d /tmp/groma-demo.XXXXXX)
chmod 755 "$WORK"
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap 'as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
# the cluster's owner reads the model: give it a copy it can reach
cp -r test/golden/tiny-groma "$WORK/model"
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
as_owner "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = 54329
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'groma'
groma.model_path = '$WORK/model'
groma.device = 'cpu'
CONF
as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start >/dev/null
export PGHOST=$WORK PGPORT=54329 PGUSER=postgres
"$PGBIN/psql" -X -q -d postgres -c "CREATE EXTENSION groma"
# the launcher starts groma-server, which loads the model in the background
for _ in $(seq 1 150); do
    [ "$("$PGBIN/psql" -XAtq -d postgres -c "SELECT state FROM groma_status() WHERE server = 0")" = ready ] && break
    sleep 0.2
done

{
    echo "CREATE TABLE photos (id serial PRIMARY KEY, name text, img bytea CHECK (groma_image_validate(img)));"
    for f in test/golden/images/*.jpg; do
        echo "INSERT INTO photos (name, img) VALUES ('$(basename "$f")', decode('$(base64 -w0 "$f")', 'base64'));"
    done
    echo "SELECT p.id, p.name, i.* FROM photos p, groma_image_info(p.img) i ORDER BY p.id;"
    echo "SET groma.max_new_tokens = 16;"
    echo "\\echo '-- the tiny model has random weights: its boxes are real model output, its text is gibberish by design'"
    echo "\\echo '-- groma_regions: the top 3 regions of each image (pixels, clipped to the image) and their embedding width'"
    echo "SELECT p.name, r.idx, r.area, round(r.score::numeric, 3) AS score, cardinality(r.embedding) AS embedding"
    echo "  FROM photos p, groma_regions(p.img, 3) r ORDER BY p.id, r.idx;"
    echo "\\echo '-- groma_caption: a grounded caption (text plus phrase-to-box groundings)'"
    echo "SELECT p.name, c.text, c.groundings FROM photos p, groma_caption(p.img) c ORDER BY p.id;"
    echo "\\echo '-- groma_ground and groma_describe'"
    echo "SELECT name, groma_ground(img, 'the man') AS boxes, groma_describe(img, box '((10,10),(120,90))') AS description"
    echo "  FROM photos ORDER BY id;"
    echo "SELECT server, state, pid, device, served, failed, load_progress FROM groma_status();"
} | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres

# groma_draw: the top 5 regions of the first image drawn with their rank as label, saved as a JPEG to look at
DRAWN=${GROMA_DEMO_DRAWN:-/tmp/groma-demo-regions.jpg}
"$PGBIN/psql" -XAtq -d postgres -c "SELECT encode(groma_draw(img, groma_proposals(img, 5),
    ARRAY(SELECT '#' || g FROM generate_series(1, 5) g)), 'base64') FROM photos WHERE id = 1" | base64 -d >"$DRAWN"
echo "-- groma_draw wrote $DRAWN: $(./groma-server --info "$DRAWN")"

./groma-server --device-info
for f in test/golden/images/*.jpg; do
    echo "== $(basename "$f"): regions"
    ./groma-server --model test/golden/tiny-groma --regions "$f" | perl -MJSON::PP -0 -ne '
        my $r = decode_json($_);
        printf "%d regions kept on a %dx%d image:\n", scalar @{$r->{regions}}, $r->{width}, $r->{height};
        printf "  #%-2d [%7.1f, %7.1f, %7.1f, %7.1f] score %.3f\n", $_->{index}, @{$_->{box}}, $_->{score}
            for @{$r->{regions}};'
    echo "== $(basename "$f"): grounded caption"
    ./groma-server --model test/golden/tiny-groma --image "$f" --task caption --max-new-tokens 16 |
        grep -E '"(text|regions|stopped)"'
    echo "== $(basename "$f"): ground \"the man\""
    ./groma-server --model test/golden/tiny-groma --image "$f" --task ground --phrase "the man" --max-new-tokens 16 |
        grep -E '"(text|regions)"'
done
