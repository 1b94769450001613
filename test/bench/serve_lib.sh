# test/bench/serve_lib.sh - sourced by the benchmark scripts that talk to
# groma-server --serve directly: a work folder, one server on its socket,
# and the cleanup.  The caller sets SERVER (the binary) before sourcing.
WORK=$(mktemp -d /tmp/groma-bench.XXXXXX)
chmod 700 "$WORK"
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

# Starts "$SERVER" --serve on $WORK/s.sock with the given arguments and waits until its model is ready.
serve_start() {
    "$SERVER" --serve --socket "$WORK/s.sock" "$@" 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 1500); do
        perl -I test/t -MGromaProto -e 'my $c = proto_connect($ARGV[0]) or exit 1; print $c status_frame(1);
            my $r = read_reply($c, 5) or exit 1; exit(parse_status($r)->{state} == 2 ? 0 : 1)' "$WORK/s.sock" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
        sleep 0.2
    done
    echo "groma-server did not become ready"; cat "$WORK/server.log"; exit 1
}

# Stops the server serve_start started (SIGTERM) and waits for it.
serve_stop() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}
