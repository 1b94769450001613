#!/usr/bin/env bash
# test/demo.sh - build and install groma, start a throwaway PostgreSQL 15
# cluster, load the bundled images into a table (a CHECK constraint decodes
# each one as the model will) and print their header facts; then run the
# bundled tiny Groma model on every image with groma-server: the regions it
# selects, a grounded caption, and a phrase to ground.  The tiny model has
# random weights, so its answers are gibberish; the pipeline is the real one.
# Leaves nothing running.  Run as root (or sudo).
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
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
as_owner "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = 54329
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'groma'
CONF
as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start >/dev/null
export PGHOST=$WORK PGPORT=54329 PGUSER=postgres

{
    echo "CREATE EXTENSION groma;"
    echo "CREATE TABLE photos (id serial PRIMARY KEY, name text, img bytea CHECK (groma_image_validate(img)));"
    for f in test/golden/images/*.jpg; do
        echo "INSERT INTO photos (name, img) VALUES ('$(basename "$f")', decode('$(base64 -w0 "$f")', 'base64'));"
    done
    echo "SELECT p.id, p.name, i.* FROM photos p, groma_image_info(p.img) i ORDER BY p.id;"
} | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres

./groma-server --device-info
for f in test/golden/images/*.jpg; do
    echo "== $(basename "$f"): regions"
    ./groma-server --model test/golden/tiny-groma --regions "$f" | head -4
    echo "== $(basename "$f"): grounded caption"
    ./groma-server --model test/golden/tiny-groma --image "$f" --task caption --max-new-tokens 16 |
        grep -E '"(text|regions|stopped)"'
    echo "== $(basename "$f"): ground \"the man\""
    ./groma-server --model test/golden/tiny-groma --image "$f" --task ground --phrase "the man" --max-new-tokens 16 |
        grep -E '"(text|regions)"'
done
