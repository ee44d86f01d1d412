# Sourced by the scripts that check a real parley. start_parley runs "$bin" on 127.0.0.1:0 with
# its data in "$work/data" and its stderr in "$work/server.log", waits (up to 30 s) for its
# "listening on" line and sets server_pid and addr; it exits the script if parley dies or never
# says where it listens. Environment for the server goes before the call
# (`PARLEY_AUTH_RATE=0 start_parley`). stop_parley, for the caller's EXIT trap, stops it;
# parley_survived checks it after the run.

server_pid=
addr=

start_parley() {
    "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/server.log" &
    server_pid=$!
    addr=
    for _ in $(seq 300); do # up to 30 s for the "listening on" line
        addr=$(sed -n 's/^parley: listening on //p' "$work/server.log")
        [ -n "$addr" ] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "parley exited"; exit 1; }
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$work/server.log"; echo "parley did not say where it listens"; exit 1; }
}

stop_parley() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; { wait "$server_pid"; } 2>/dev/null || true; fi
}

# After the run: returns 1, showing the server's log, if parley panicked or is no longer running.
parley_survived() {
    local failed=0
    if grep -q 'panicked' "$work/server.log"; then
        echo "parley panicked:"
        cat "$work/server.log"
        failed=1
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "parley died during the run"; cat "$work/server.log"; failed=1; }
    return "$failed"
}
