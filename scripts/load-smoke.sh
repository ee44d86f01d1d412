#!/usr/bin/env bash
# CI's proof that the load generator works (benchmarks are not timed tests): builds parley,
# parley-load and the benches, starts parley on 127.0.0.1:0 with a temporary data dir, runs a
# short fanout, sync and idle against it, and fails unless each exits 0, the fanout reports
# deliveries and the sync replays every event once, in seq order. No figure is compared with
# anything.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bin parley --bin parley-load
cargo build --benches
BIN=target/debug

DATA_DIR=$(mktemp -d)
LOG="$DATA_DIR/parley.log"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT

# A load test logs in many users from one address: switch off the per-address limits.
PARLEY_AUTH_RATE=0 PARLEY_MAX_CONNECTIONS_PER_IP=0 \
    "$BIN/parley" --listen 127.0.0.1:0 --data-dir "$DATA_DIR/data" 2>"$LOG" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 300); do
    ADDR=$(grep -o 'listening on [0-9.:]*' "$LOG" | awk '{print $3}' || true)
    [[ -n "$ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "load-smoke: parley did not start" >&2; cat "$LOG" >&2; exit 1; }

load() {
    "$BIN/parley-load" "$@" --url "http://$ADDR" --server-pid "$SERVER_PID" --json
}

fanout=$(load fanout --clients 20 --group 5 --window 2 --warmup 1 --duration 3)
echo "$fanout"
python3 - "$fanout" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
assert result["deliveries_per_s"] > 0, "fanout delivered nothing"
assert result["acks_per_s"] > 0, "fanout got no acks"
assert result["delivery_p50_us"] > 0, "no latency measured"
PY
# More events than a page (1,000) holds, so the replay pages by seq.
sync=$(load sync --events 2500)
echo "$sync"
python3 - "$sync" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
assert result["replayed"] >= 2500, "sync replayed fewer events than were stored"
assert result["pages"] >= 3, "sync did not page"
assert result["repeated_or_out_of_order"] == 0, "sync replayed a seq twice or out of order"
PY
load idle --conns 200 --users 2 --hold 1
echo "load-smoke: parley-load ran fanout, sync and idle against a real parley"
