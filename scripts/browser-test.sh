#!/usr/bin/env bash
# The browser test: two users chat through the page served at GET / (web/index.html), in
# headless Chromium driven by playwright-core, against the real server on 127.0.0.1:0.
# Installs what it needs when missing (Debian's chromium, playwright-core in tests/browser),
# builds parley, and writes docs/screenshot.png. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    apt-get update
    # Another apt-get may hold the dpkg lock on a shared machine: wait for it rather than fail.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium
fi

if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
fi

cargo build

workdir=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

"${CARGO_TARGET_DIR:-target}/debug/parley" --listen 127.0.0.1:0 --data-dir "$workdir/data" 2>"$workdir/stderr" &
server_pid=$!

# The server says where it listens on stderr; wait for that line (or for the server to die).
addr=
for _ in $(seq 300); do
    addr=$(sed -n 's/^parley: listening on \([0-9.:]*\)$/\1/p' "$workdir/stderr")
    [ -n "$addr" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "browser-test: the server exited before listening:" >&2
        cat "$workdir/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "browser-test: no 'parley: listening on' line within 30 s:" >&2
    cat "$workdir/stderr" >&2
    exit 1
fi

if ! node tests/browser/chat.test.mjs "http://$addr" docs/screenshot.png; then
    echo "browser-test: server stderr:" >&2
    cat "$workdir/stderr" >&2
    exit 1
fi
