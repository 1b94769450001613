#!/usr/bin/env bash
# test/demo.sh - build and install groma, start a throwaway PostgreSQL 15
# cluster, load the bundled images into a table and run what groma does today:
# header facts, full decode + preprocessing checks, and groma-server's
# preprocessing of one image.  Leaves nothing running.  Run as root (or sudo).
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

./groma-server --decode test/golden/images/extreme_ironing.jpg --out "$WORK/pixels.safetensors"
echo "groma-server wrote the 448x448 model input of extreme_ironing.jpg ($(stat -c %s "$WORK/pixels.safetensors") bytes)"
./groma-server --device-info
