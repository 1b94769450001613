#!/usr/bin/env bash
# test/run.sh - build everything and run every test against a throwaway
# PostgreSQL 15 cluster.  Ends with the line "N passed, N failed, N skipped".
#
#   test/run.sh                  everything (both builds, unit, GPU or emulated GPU, TAP, pg_regress, fuzz)
#   GROMA_FUZZ_SECONDS=10 ...    shorter fuzzing (default 60)
#   GROMA_CUDA=0 test/run.sh     skip the CUDA build (the CPU-only build is always checked)
#
# Needs root (or sudo) for `make install` into pg_config's directories; the
# cluster itself runs as the postgres user when started by root.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export GROMA_SOURCE_DIR=$ROOT
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
PGBIN=$("$PG_CONFIG" --bindir)
FUZZ_SECONDS=${GROMA_FUZZ_SECONDS:-60}
JOBS=$(nproc 2>/dev/null || echo 2)

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
WORK=$(mktemp -d /tmp/groma-test.XXXXXX)
chmod 755 "$WORK"
PGDATA_DIR=$WORK/data
LOG=$WORK/logs
mkdir -p "$LOG"

pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); echo "not ok - $1"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "skip - $1"; }
# Starts a section, saying how long the run has taken so far (the log shows where CI time goes).
section() { echo; echo "=== $1 (at ${SECONDS} s)"; }

# Runs a command as the cluster's owner (postgres when we are root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# Runs a command with enough rights to install into pg_config's directories.
as_installer() {
    if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then "$@"; else sudo "$@"; fi
}

cleanup() {
    if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
        as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Adds the counts from a runner's closing "N passed, N failed[, N skipped]" line.
count_summary() {
    local name=$1 file=$2 rc=$3 line p f s
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$file" | tail -1)
    if [ -z "$line" ]; then fail "$name (no summary line, exit $rc)"; return; fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + ${s:-0}))
    [ "$f" = 0 ] || FAILED_NAMES+=("$name")
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then fail "$name (exit $rc)"; fi
}

# ---------------------------------------------------------------- builds
section "CPU-only build (GROMA_CUDA=0)"
make clean >/dev/null 2>&1
if make -j"$JOBS" GROMA_CUDA=0 PG_CONFIG="$PG_CONFIG" >"$LOG/build-cpu.log" 2>&1; then
    pass "CPU-only build compiles and links"
    if nm groma-server groma-convert groma.so 2>/dev/null | grep -qE ' (cuda[A-Z]|cublas[A-Z]|__cuda)'; then
        fail "CPU-only build has no CUDA symbols"
    else
        pass "CPU-only build has no CUDA symbols"
    fi
else
    tail -30 "$LOG/build-cpu.log"; fail "CPU-only build compiles and links"
fi

section "default build"
make clean >/dev/null 2>&1
if make -j"$JOBS" PG_CONFIG="$PG_CONFIG" >"$LOG/build.log" 2>&1 && make gpu-tests PG_CONFIG="$PG_CONFIG" >>"$LOG/build.log" 2>&1; then
    if grep -q 'nvcc' "$LOG/build.log"; then
        pass "CUDA build compiles kernels/*.cu and links cuBLAS + CUDA runtime"
        if nm -C groma-server | grep -q 'cudaGetDeviceCount\|cudart' && ldd groma-server | grep -q cublas; then
            pass "CUDA build carries CUDA runtime and cuBLAS"
        else
            fail "CUDA build carries CUDA runtime and cuBLAS"
        fi
    else
        skip "CUDA build: nvcc not found or GROMA_CUDA=0 (CPU-only build used)"
    fi
    if grep -qiE 'warning:' "$LOG/build.log"; then
        grep -iE 'warning:' "$LOG/build.log" | head; fail "build has no compiler warnings"
    else
        pass "build has no compiler warnings"
    fi
else
    tail -30 "$LOG/build.log"; fail "default build"; echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"; exit 1
fi

section "install"
if as_installer make install PG_CONFIG="$PG_CONFIG" >"$LOG/install.log" 2>&1; then
    pass "make install"
else
    tail -20 "$LOG/install.log"; fail "make install"
fi

# ---------------------------------------------------------------- unit tests
section "C unit tests (ASan + UBSan)"
if make unit-tests >"$LOG/unit-build.log" 2>&1; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        build/unit/groma-unit-tests >"$LOG/unit.log" 2>&1
    rc=$?
    cat "$LOG/unit.log"
    count_summary "C unit tests" "$LOG/unit.log" $rc
else
    tail -20 "$LOG/unit-build.log"; fail "C unit tests build"
fi

# Runs every test_* program in folder $1 on the bundled images, counting its summary under the label prefix $2.
run_test_programs() {
    local t rc
    for t in $(find "$1" -maxdepth 1 -name 'test_*' -type f -executable | sort); do
        "$t" test/golden/images/*.jpg test/fixtures/variant_*.jpg >"$LOG/programs.log" 2>&1
        rc=$?
        cat "$LOG/programs.log"
        count_summary "$2$(basename "$t")" "$LOG/programs.log" $rc
    done
}

section "GPU parity tests"
if ls build/gpu/test_* >/dev/null 2>&1 && [ -n "$(find build/gpu -maxdepth 1 -name 'test_*' -type f -executable)" ]; then
    run_test_programs build/gpu ""
else
    echo "# SKIP GPU parity tests: this build has no CUDA (nvcc absent or GROMA_CUDA=0)"
    skip "GPU parity tests (no CUDA build)"
fi

section "GPU tests on the CUDA emulator (kernels/*.cu run on the CPU; not a GPU)"
if [ "$(uname -m)" != x86_64 ]; then
    echo "# SKIP the CUDA emulator: its fibers switch x86-64 registers, this machine is $(uname -m)"
    skip "GPU tests on the CUDA emulator (not x86-64)"
elif make -j"$JOBS" emu >"$LOG/emu-build.log" 2>&1; then
    pass "make emu builds kernels/*.cu against the emulated CUDA runtime and cuBLAS"
    run_test_programs build/emu "emulated "
else
    tail -30 "$LOG/emu-build.log"; fail "make emu"
fi

# ---------------------------------------------------------------- TAP
section "TAP tests (prove)"
for t in test/t/*.t; do
    if prove -v "$t" >"$LOG/tap.log" 2>&1; then :; fi
    cat "$LOG/tap.log"
    p=$(grep -cE '^ok [0-9]+' "$LOG/tap.log")
    f=$(grep -cE '^not ok [0-9]+' "$LOG/tap.log")
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
    if ! grep -q '^Result: PASS' "$LOG/tap.log"; then fail "$t (prove did not pass)"; fi
done

# ---------------------------------------------------------------- pgvector
# test/pg/009 indexes region embeddings with pgvector, which Debian 12 does
# not package: build and install it from the source tarballs in
# $GROMA_THIRD_PARTY (default ../shared/third_party beside the checkout, as
# the CI clone has it) unless that version is installed already.  Without
# the tarball the test skips its pgvector part and says why.
THIRD_PARTY=${GROMA_THIRD_PARTY:-$ROOT/../shared/third_party}
section "pgvector for test/pg/009 (from $THIRD_PARTY)"
PGVECTOR_VERSION=0.8.6
PGVECTOR_TAR=$THIRD_PARTY/pgvector-$PGVECTOR_VERSION.tar.gz
if [ -f "$("$PG_CONFIG" --sharedir)/extension/vector--$PGVECTOR_VERSION.sql" ] &&
    [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
    echo "# pgvector $PGVECTOR_VERSION is installed already"
elif [ ! -f "$PGVECTOR_TAR" ]; then
    echo "# SKIP building pgvector: $PGVECTOR_TAR not found (test/pg/009 skips its pgvector part)"
elif tar xzf "$PGVECTOR_TAR" -C "$WORK" &&
    make -C "$WORK/pgvector-$PGVECTOR_VERSION" PG_CONFIG="$PG_CONFIG" >"$LOG/pgvector.log" 2>&1 &&
    as_installer make -C "$WORK/pgvector-$PGVECTOR_VERSION" PG_CONFIG="$PG_CONFIG" install >>"$LOG/pgvector.log" 2>&1; then
    pass "pgvector $PGVECTOR_VERSION builds and installs from $THIRD_PARTY"
else
    tail -20 "$LOG/pgvector.log" 2>/dev/null; fail "pgvector $PGVECTOR_VERSION builds and installs from $THIRD_PARTY"
fi

# ---------------------------------------------------------------- Citus
# test/pg/012 runs groma on a Citus cluster, which Debian 12 does not package:
# build and install Citus from $GROMA_THIRD_PARTY (with its one-line patch
# for Debian's PostgreSQL 15 headers) unless that version is installed
# already.  Without the tarball the test skips and says why.
section "Citus for test/pg/012 (from $THIRD_PARTY)"
CITUS_VERSION=13.2.2
CITUS_TAR=$THIRD_PARTY/citus-$CITUS_VERSION.tar.gz
CITUS_PATCH=$THIRD_PARTY/citus-$CITUS_VERSION-pg15.20.patch
if ls "$("$PG_CONFIG" --sharedir)/extension/citus--"*"--${CITUS_VERSION%.*}-1.sql" >/dev/null 2>&1 &&
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
    echo "# Citus $CITUS_VERSION is installed already"
elif [ ! -f "$CITUS_TAR" ]; then
    echo "# SKIP building Citus: $CITUS_TAR not found (test/pg/012 skips)"
else
    start=$SECONDS
    if tar xzf "$CITUS_TAR" -C "$WORK" && patch -s -d "$WORK/citus-$CITUS_VERSION" -p1 <"$CITUS_PATCH" &&
        (cd "$WORK/citus-$CITUS_VERSION" && ./configure --without-libcurl PG_CONFIG="$PG_CONFIG" &&
            make -j"$JOBS") >"$LOG/citus.log" 2>&1 &&
        as_installer make -C "$WORK/citus-$CITUS_VERSION" install >>"$LOG/citus.log" 2>&1; then
        pass "Citus $CITUS_VERSION builds and installs from $THIRD_PARTY ($((SECONDS - start)) s)"
    else
        tail -30 "$LOG/citus.log" 2>/dev/null; fail "Citus $CITUS_VERSION builds and installs from $THIRD_PARTY"
    fi
fi

# ---------------------------------------------------------------- TAP inside PostgreSQL
# test/pg/*.t start their own clusters (PostgreSQL::Test::Cluster) with groma
# preloaded and the tiny model.  initdb refuses root, so they run as postgres
# over a copy of what they read (the tree itself may not be readable to it).
section "TAP tests of the service inside PostgreSQL (test/pg)"
PGTREE=$WORK/pgtree
mkdir -p "$PGTREE/test/golden" "$PGTREE/run"
cp -r test/pg "$PGTREE/test/"
cp -r test/golden/tiny-groma test/golden/images "$PGTREE/test/golden/"
mkdir -p "$PGTREE/docs" && cp README.md "$PGTREE/" && cp -r docs/images "$PGTREE/docs/"
[ "$(id -u)" = 0 ] && chown -R postgres "$PGTREE"
PERL_PG=$("$PG_CONFIG" --pgxs | sed 's|/src/makefiles/pgxs.mk$|/src/test/perl|')
for t in "$PGTREE"/test/pg/*.t; do
    (cd "$PGTREE/run" && as_owner env PATH="$PGBIN:$PATH" GROMA_SOURCE_DIR="$PGTREE" \
        prove -v -I "$PERL_PG" "$t") >"$LOG/tap-pg.log" 2>&1
    cat "$LOG/tap-pg.log"
    p=$(grep -cE '^ok [0-9]+' "$LOG/tap-pg.log")
    f=$(grep -cE '^not ok [0-9]+' "$LOG/tap-pg.log")
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
    if ! grep -q '^Result: PASS' "$LOG/tap-pg.log"; then
        fail "test/pg/$(basename "$t") (prove did not pass)"
        for d in "$PGTREE"/run/tmp_check/log/*; do [ -f "$d" ] && { echo "--- $d"; tail -40 "$d"; }; done
    fi
done

# ---------------------------------------------------------------- cluster
section "PostgreSQL cluster"
PORT=""
for p in $(seq 54330 54400); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "$WORK/.s.PGSQL.$p" ]; then PORT=$p; break; fi
done
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
start_cluster() {
    as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG/postgres.log" -w -t 60 start >/dev/null
}
if as_owner "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --no-sync >"$LOG/initdb.log" 2>&1; then
    cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'groma'
fsync = off
CONF
    if start_cluster; then
        pass "cluster starts with shared_preload_libraries = 'groma' on port $PORT"
    else
        cat "$LOG/postgres.log"; fail "cluster starts with shared_preload_libraries = 'groma'"
    fi
else
    cat "$LOG/initdb.log"; fail "initdb"
fi
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres

if "$PGBIN/psql" -XAtq -d postgres -c "SHOW groma.max_image_pixels" 2>"$LOG/preload.err" | grep -qx 50000000; then
    pass "preloaded library defines groma.max_image_pixels before CREATE EXTENSION"
else
    cat "$LOG/preload.err"; fail "preloaded library defines groma.max_image_pixels"
fi

section "pg_regress (make installcheck)"
# sql/model_functions.sql points the cluster at a copy of the tiny model the
# server can read, and compares with the installed groma-server's command line
cp -r test/golden/tiny-groma "$WORK/regress-model"
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK/regress-model"
GROMA_REGRESS_MODEL=$WORK/regress-model GROMA_SERVER=$PGBIN/groma-server \
    make installcheck PG_CONFIG="$PG_CONFIG" >"$LOG/regress.log" 2>&1
rc=$?
cat "$LOG/regress.log"
p=$(grep -cE '^(test|     ) .* \.\.\. ok' "$LOG/regress.log")
f=$(grep -cE '\.\.\. FAILED' "$LOG/regress.log")
PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
[ -f regression.diffs ] && [ "$f" != 0 ] && head -100 regression.diffs
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then fail "pg_regress (exit $rc)"; fi
[ "$f" = 0 ] || FAILED_NAMES+=("pg_regress")

section "CREATE EXTENSION on a server without shared_preload_libraries"
as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -w -m fast stop >/dev/null
sed -i "s/^shared_preload_libraries = 'groma'$/shared_preload_libraries = ''/" "$PGDATA_DIR/postgresql.conf"
if start_cluster && "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -d postgres >"$LOG/plain.log" 2>&1 <<SQL
CREATE DATABASE groma_plain;
\c groma_plain
CREATE EXTENSION groma;
SELECT width FROM groma_image_info(decode('$(base64 -w0 test/golden/images/synthetic_333x251.jpg)', 'base64'));
SHOW groma.max_image_pixels;
SQL
then
    if [ "$(tr '\n' ' ' <"$LOG/plain.log")" = "333 50000000 " ]; then
        pass "CREATE EXTENSION works on a plain server"
    else
        cat "$LOG/plain.log"; fail "CREATE EXTENSION works on a plain server"
    fi
else
    cat "$LOG/plain.log" "$LOG/postgres.log"; fail "CREATE EXTENSION works on a plain server"
fi
if [ ! -s "$LOG/postgres.log" ]; then
    fail "no backend crashed during the tests (no server log)"
elif grep -qE 'server process .* was terminated by signal|PANIC' "$LOG/postgres.log"; then
    grep -E 'terminated by signal|PANIC' "$LOG/postgres.log"; fail "no backend crashed during the tests"
else
    pass "no backend crashed during the tests"
fi
as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -w -m fast stop >/dev/null

# ---------------------------------------------------------------- fuzzing
# Every test/fuzz/fuzz_NAME.c runs for FUZZ_SECONDS, seeded with the files
# that the globs in test/fuzz/fuzz_NAME.seeds name.
section "libFuzzer targets, ${FUZZ_SECONDS}s each"
if command -v clang >/dev/null && make fuzz >"$LOG/fuzz-build.log" 2>&1; then
    for src in test/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        mkdir -p "$WORK/corpus-$name"
        if [ -f "test/fuzz/$name.seeds" ]; then
            while read -r pattern; do
                [ -n "$pattern" ] && [ "${pattern#\#}" = "$pattern" ] && cp $pattern "$WORK/corpus-$name/" 2>/dev/null
            done <"test/fuzz/$name.seeds"
        fi
        if "build/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 "$WORK/corpus-$name" >"$LOG/$name.log" 2>&1; then
            grep -E 'stat::number_of_executed_units|Done' "$LOG/$name.log"
            pass "$name ran ${FUZZ_SECONDS}s without a crash"
        else
            tail -60 "$LOG/$name.log"; fail "$name ran ${FUZZ_SECONDS}s without a crash"
        fi
    done
else
    tail -20 "$LOG/fuzz-build.log" 2>/dev/null; fail "fuzz targets build (needs clang + libclang-rt-14-dev)"
fi

echo
echo "elapsed: ${SECONDS}s"
[ "$FAILED" = 0 ] || echo "failed: ${FAILED_NAMES[*]}"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
