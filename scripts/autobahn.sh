#!/usr/bin/env bash
# RFC 6455 conformance: the Autobahn TestSuite cases (sections 1-7 and 10, run by kosoku) against
# `parley --echo-endpoint`, whose /_echo uses the server's own connection code (the loop,
# tungstenite context and limits). Fails on any FAILED case or any difference from the committed
# tests/autobahn/expected.json (behaviour, close behaviour and close code of every case).
#
#   bash scripts/autobahn.sh            # check
#   bash scripts/autobahn.sh --update   # rewrite tests/autobahn/expected.json from this run
set -euo pipefail
cd "$(dirname "$0")/.."

expected=tests/autobahn/expected.json
update=0
[[ "${1:-}" == "--update" ]] && update=1

# kosoku: the Autobahn cases on Python 3 (the original autobahntestsuite needs Python 2.7).
if ! command -v kosoku >/dev/null 2>&1; then
    python3 -m pip install --quiet kosoku
fi

cargo build --quiet --bin parley
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

target/debug/parley --listen 127.0.0.1:0 --data-dir "$work/data" --echo-endpoint 2>"$work/stderr" &
server_pid=$!
addr=""
for _ in $(seq 200); do
    addr=$(sed -n 's/^parley: listening on //p' "$work/stderr")
    [[ -n "$addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/stderr"; exit 1; }
    sleep 0.1
done
[[ -n "$addr" ]] || { echo "autobahn: parley did not start"; cat "$work/stderr"; exit 1; }

cases=()
for section in 1 2 3 4 5 6 7 10; do
    cases+=(-i "$section.*")
done
# kosoku exits 1 when a case fails; the comparison below says which.
kosoku_status=0
kosoku "${cases[@]}" -o "$work/report" "ws://$addr/_echo" >"$work/kosoku.log" 2>&1 || kosoku_status=$?
tail -n 2 "$work/kosoku.log"

python3 - "$work/report/index.json" "$expected" "$update" <<'PY'
import json
import sys

report_path, expected_path, update = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(report_path) as f:
    (results,) = json.load(f).values()  # one agent: the server under test


def case_key(case):
    return [int(part) for part in case.split(".")]


actual = {
    case: {
        "behavior": r["behavior"],
        "behaviorClose": r["behaviorClose"],
        "remoteCloseCode": r.get("remoteCloseCode"),
    }
    for case, r in sorted(results.items(), key=lambda item: case_key(item[0]))
}
failed = [c for c, r in actual.items() if "FAILED" in (r["behavior"], r["behaviorClose"])]
if update:
    with open(expected_path, "w") as f:
        json.dump(actual, f, indent=1)
        f.write("\n")
    print(f"autobahn: wrote {len(actual)} cases to {expected_path}")
with open(expected_path) as f:
    expected = json.load(f)
differences = [
    f"  {case}: expected {expected.get(case)}, got {actual.get(case)}"
    for case in sorted(set(expected) | set(actual), key=case_key)
    if expected.get(case) != actual.get(case)
]
print(f"autobahn: {len(actual)} cases, {len(failed)} FAILED, {len(differences)} different from {expected_path}")
for case in failed:
    print(f"  FAILED {case}: {actual[case]}")
for line in differences:
    print(line)
sys.exit(1 if failed or differences else 0)
PY
if [[ "$kosoku_status" -ne 0 ]]; then
    echo "autobahn: kosoku exited $kosoku_status"
    cat "$work/kosoku.log"
    exit 1
fi
