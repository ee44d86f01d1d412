#!/usr/bin/env bash
# The whole comparison: builds release, starts each server pinned to core 1 (taskset -c 1), runs
# parley-load pinned to core 0 against it, and prints the results side by side with the targets
# of docs/BENCHMARKS.md. Every figure comes from this one run; targets are ratios within it.
#
#   scripts/bench.sh                       everything (about 6 minutes)
#   scripts/bench.sh --quick               shorter runs, for a rough look
#   SERVERS="parley mio" SCENARIOS="fanout rate" scripts/bench.sh
#   LOAD_ARGS=--client-ids scripts/bench.sh   extra parley-load options for every run (here: an
#                                          `id` on every send, as real clients do)
#   RT_LATENCY=1 scripts/bench.sh          the `rate` and `logins` runs at SCHED_FIFO priority
#                                          (chrt -f 10), so other tenants of a shared machine cannot
#                                          add scheduling delay to the latency figures (both use
#                                          little CPU)
#
# Results: one JSON object per run in $OUT/results.jsonl (default target/bench/<time>/), server
# logs beside it (and parley's /metrics at the end of each of its runs), and the summary table on
# stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-"parley mio mio-raw bun node"}
SCENARIOS=${SCENARIOS:-"fanout rate idle sync logins"}
DURATION=${DURATION:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
HELD_CONNS=${HELD_CONNS:-15000}
SYNC_EVENTS=${SYNC_EVENTS:-100000}
if [[ "${1:-}" == "--quick" ]]; then
    DURATION=3 IDLE_CONNS=2000 HELD_CONNS=0 SYNC_EVENTS=20000
fi
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

# 15,000 connections need as many descriptors in the server and in the load generator.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# NO_BUILD=1 uses the binaries already built; PARLEY_BIN picks another parley binary.
if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release --bin parley --bin parley-load --example mio_relay
fi
PARLEY_BIN=${PARLEY_BIN:-target/release/parley}
if [[ " $SERVERS " == *" bun "* || " $SERVERS " == *" node "* ]]; then
    if [[ ! -x bench/relays/node_modules/.bin/bun || ! -d bench/relays/node_modules/ws ]]; then
        (cd bench/relays && npm install --no-audit --no-fund) ||
            echo "bench: npm install failed; the Bun and Node relays will be skipped" >&2
    fi
fi
LOAD=target/release/parley-load

SERVER_PID=""
SERVER_ADDR=""
DATA_DIR=""
# A command prefix for the server and the load generator (set per scenario).
PRIO=(env)

# Starts server $1 on core 1 and waits (bounded) for its "listening on ADDR" line.
start_server() {
    local name=$1 log="$OUT/$1-$2.log"
    DATA_DIR=$(mktemp -d)
    case $name in
        parley) PARLEY_AUTH_RATE=0 PARLEY_MAX_CONNECTIONS_PER_IP=0 PARLEY_LOG=warn "${PRIO[@]}" taskset -c 1 "$PARLEY_BIN" --listen 127.0.0.1:0 --data-dir "$DATA_DIR" 2>"$log" & ;;
        mio) "${PRIO[@]}" taskset -c 1 target/release/examples/mio_relay --listen 127.0.0.1:0 2>"$log" & ;;
        mio-raw) "${PRIO[@]}" taskset -c 1 target/release/examples/mio_relay --listen 127.0.0.1:0 --raw 2>"$log" & ;;
        bun) "${PRIO[@]}" taskset -c 1 bench/relays/node_modules/.bin/bun bench/relays/bun_relay.js 127.0.0.1:0 2>"$log" & ;;
        node) "${PRIO[@]}" taskset -c 1 node bench/relays/node_relay.js 127.0.0.1:0 2>"$log" & ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 300); do
        SERVER_ADDR=$(grep -o 'listening on [0-9.:]*' "$log" | awk '{print $3}' || true)
        [[ -n "$SERVER_ADDR" ]] && return 0
        sleep 0.1
    done
    echo "bench: $name did not start; see $log" >&2
    return 1
}

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
    [[ -n "$DATA_DIR" ]] && rm -rf "$DATA_DIR"
    DATA_DIR=""
}
trap stop_server EXIT

# run SERVER SCENARIO ARGS...: a fresh server, one load-generator run, its JSON appended.
run() {
    local server=$1 scenario=$2
    shift 2
    local target=relay
    [[ $server == parley ]] && target=parley
    if ! start_server "$server" "$scenario"; then
        stop_server
        return 0
    fi
    echo "bench: $server $scenario $*" >&2
    if ! "${PRIO[@]}" taskset -c 0 "$LOAD" "$scenario" --url "http://$SERVER_ADDR" --target "$target" \
        --server-pid "$SERVER_PID" --label "$server" --json ${LOAD_ARGS:-} "$@" >>"$RESULTS"; then
        echo "bench: $server $scenario did not finish cleanly (see above)" >&2
    fi
    # parley's tick and flush histograms, to tell a stall of the server from one elsewhere.
    if [[ $server == parley ]] && command -v curl >/dev/null; then
        curl -s --max-time 5 "http://$SERVER_ADDR/metrics" >"$OUT/$server-$scenario.metrics" || true
    fi
    stop_server
}

for scenario in $SCENARIOS; do
    PRIO=(env)
    # logins too: parley's hash workers lower themselves to SCHED_IDLE, from FIFO as well.
    if [[ ($scenario == rate || $scenario == logins) && -n "${RT_LATENCY:-}" ]]; then
        PRIO=(chrt -f 10)
    fi
    for server in $SERVERS; do
        # The JSON-less floor only matters for the cost breakdown of fanout.
        if [[ $server == mio-raw && $scenario != fanout ]]; then continue; fi
        case $scenario in
            fanout) run "$server" fanout --clients 200 --group 10 --window 4 --warmup 3 --duration "$DURATION" ;;
            rate) run "$server" rate --clients 200 --group 10 --rate 2000 --duration "$DURATION" ;;
            idle)
                run "$server" idle --conns "$IDLE_CONNS" --users 100 --hold 5
                if [[ $server == parley && "$HELD_CONNS" -gt 0 ]]; then
                    run "$server" idle --conns "$HELD_CONNS" --users 100 --hold 10
                fi
                ;;
            sync)
                if [[ $server == parley ]]; then run parley sync --events "$SYNC_EVENTS"; fi
                ;;
            logins)
                if [[ $server == parley ]]; then
                    run parley logins --clients 200 --group 10 --rate 2000 --logins 20 --duration "$DURATION"
                fi
                ;;
        esac
    done
done

python3 - "$RESULTS" <<'PY'
# The summary: each scenario's figures per server, then every target as a ratio within this run.
import json, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def find(scenario, label, **where):
    for r in runs:
        if r["scenario"] == scenario and r.get("label") == label and all(r.get(k) == v for k, v in where.items()):
            return r
    return None

columns = {
    "fanout": ["deliveries_per_s", "acks_per_s", "delivery_p50_us", "delivery_p99_us", "delivery_p999_us",
               "ack_p99_us", "server_cpu_s", "deliveries_per_server_cpu_s", "errors", "closed"],
    "rate": ["sends_per_s", "deliveries_per_s", "delivery_p50_us", "delivery_p90_us", "delivery_p99_us",
             "delivery_p999_us", "ack_p99_us", "server_cpu_s", "errors", "closed"],
    "idle": ["conns", "held", "server_rss_before_kib", "server_rss_after_kib", "server_rss_per_conn_bytes", "closed"],
    "sync": ["events_stored", "replayed", "pages", "replay_s", "events_per_s"],
    "logins": ["logins_per_s", "login_p50_us", "quiet_p50_us", "quiet_p99_us", "storm_p50_us", "storm_p99_us",
               "p99_increase_us", "errors", "closed"],
}
def shown(value):
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

for scenario, keys in columns.items():
    rows = [r for r in runs if r["scenario"] == scenario]
    if not rows:
        continue
    print(f"\n## {scenario}\n")
    print("| server | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for r in rows:
        print(f"| {r.get('label')} | " + " | ".join(shown(r.get(k, "")) for k in keys) + " |")

print("\n## targets (ratios within this run)\n")
print("| target | measured | reference | verdict |")
print("|---|---|---|---|")
def verdict(ok):
    return "met" if ok else "MISSED"
def line(name, measured, reference, ok):
    print(f"| {name} | {measured} | {reference} | {verdict(ok)} |")

p, m, b = (find("fanout", s) for s in ("parley", "mio", "bun"))
if p and "deliveries_per_server_cpu_s" in p:
    pv = p["deliveries_per_server_cpu_s"]
    if b and "deliveries_per_server_cpu_s" in b:
        bv = b["deliveries_per_server_cpu_s"]
        line("deliveries/server-CPU-s >= Bun relay", f"{pv:.0f}", f"{bv:.0f} ({pv / bv:.2f}x)", pv >= bv)
    if m and "deliveries_per_server_cpu_s" in m:
        mv = m["deliveries_per_server_cpu_s"]
        line("deliveries/server-CPU-s >= 0.5 x mio floor", f"{pv:.0f}", f"{mv:.0f} ({pv / mv:.2f}x)", pv >= 0.5 * mv)
if p:
    floor = f"mio floor {m['ack_p99_us']} us in the same loop" if m else "2000 us"
    line("durable ack p99 <= 2 ms under fanout (closed loop: queueing, see docs)", f"{p['ack_p99_us']} us", floor, p["ack_p99_us"] <= 2000)
p, m = find("rate", "parley"), find("rate", "mio")
if p and m:
    r50, r99 = p["delivery_p50_us"] / m["delivery_p50_us"], p["delivery_p99_us"] / m["delivery_p99_us"]
    line("latency p50 at 2,000/s <= 1.2 x mio floor", f"{p['delivery_p50_us']} us", f"{m['delivery_p50_us']} us ({r50:.2f}x)", r50 <= 1.2)
    line("latency p99 at 2,000/s <= 1.5 x mio floor", f"{p['delivery_p99_us']} us", f"{m['delivery_p99_us']} us ({r99:.2f}x)", r99 <= 1.5)
if p and m:
    line("durable ack p99 <= 2 ms at 2,000 sends/s (open loop)", f"{p['ack_p99_us']} us", f"mio floor {m['ack_p99_us']} us", p["ack_p99_us"] <= 2000)
idle = [r for r in runs if r["scenario"] == "idle" and r.get("label") == "parley"]
if idle:
    small = min(idle, key=lambda r: r["conns"])
    if "server_rss_per_conn_bytes" in small:
        v = small["server_rss_per_conn_bytes"]
        line(f"RSS per idle connection <= 6 KiB ({small['conns']} conns)", f"{v / 1024:.2f} KiB", "6 KiB", v <= 6 * 1024)
    big = max(idle, key=lambda r: r["conns"])
    line(f"{big['conns']} concurrent connections held", f"{big['held']}", f"{big['conns']}", big["held"] == big["conns"])
s = find("sync", "parley")
if s:
    line("sync replay >= 200,000 events/s", f"{s['events_per_s']:.0f}", "200000", s["events_per_s"] >= 200000)
l = find("logins", "parley")
if l:
    line("login storm raises p99 by <= 50 us", f"{l['p99_increase_us']} us", "50 us", l["p99_increase_us"] <= 50)
PY
echo "bench: raw results in $RESULTS" >&2
