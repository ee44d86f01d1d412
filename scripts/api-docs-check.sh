#!/usr/bin/env bash
# Checks the API documents: docs/openapi.yaml and docs/asyncapi.yaml must be valid OpenAPI 3.1 and
# AsyncAPI 3.0, and a real parley (127.0.0.1:0, temporary data dir) must answer what openapi.yaml
# says, under schemathesis (a bounded number of generated requests per operation). Fails on any
# invalid document, server error, undocumented status or schema violation.
#
# Installs what it needs, once: schemathesis and openapi-spec-validator (pip), @asyncapi/parser
# (npm, into $PARLEY_TOOLS_DIR, default ~/.cache/parley-tools). Knobs: API_DOCS_EXAMPLES (examples
# per operation, default 100), API_DOCS_SEED (default 1; change it to explore new inputs),
# PARLEY_BIN (a prebuilt server binary instead of `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

schemathesis_version=4.32.5
spec_validator_version=0.9.0
asyncapi_parser_version=3.6.6
tools_dir=${PARLEY_TOOLS_DIR:-$HOME/.cache/parley-tools}
examples=${API_DOCS_EXAMPLES:-100}
seed=${API_DOCS_SEED:-1}

# Debian's own python3 refuses system-wide pip installs (PEP 668); this machine's pip is the
# project's tool installer, so say it is meant.
export PIP_BREAK_SYSTEM_PACKAGES=1

step() { printf '\n== %s\n' "$*"; }

pip_has() { # pip_has PACKAGE VERSION
    [ "$(python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]
}

step "tools"
pip_has schemathesis "$schemathesis_version" ||
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
pip_has openapi-spec-validator "$spec_validator_version" ||
    python3 -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==$spec_validator_version"
parser_dir=$tools_dir/asyncapi-parser-$asyncapi_parser_version
if [ ! -f "$parser_dir/node_modules/@asyncapi/parser/package.json" ]; then
    mkdir -p "$parser_dir"
    npm install --prefix "$parser_dir" --no-audit --no-fund --loglevel=error \
        "@asyncapi/parser@$asyncapi_parser_version" >/dev/null
fi
echo "schemathesis $schemathesis_version, openapi-spec-validator $spec_validator_version, @asyncapi/parser $asyncapi_parser_version"

step "docs/openapi.yaml is valid OpenAPI 3.1"
python3 -m openapi_spec_validator docs/openapi.yaml

step "docs/asyncapi.yaml is valid AsyncAPI 3.0"
# The parser is what `asyncapi validate` (the CLI) runs: the AsyncAPI JSON Schema, $ref
# resolution and the spec's own rules. Severity 0 is an error, 1 a warning; both fail here.
(cd "$parser_dir" && node --input-type=module - "$repo/docs/asyncapi.yaml") <<'EOF'
import { Parser, fromFile } from '@asyncapi/parser';
const path = process.argv[2];
const { document, diagnostics } = await fromFile(new Parser(), path).parse();
let bad = 0;
for (const d of diagnostics) {
  // `asyncapi-latest-version` only says a newer minor (3.1) exists: we document 3.0 on purpose.
  if (d.code === 'asyncapi-latest-version') continue;
  const where = d.path.join('.');
  console.log(`${d.severity <= 1 ? 'ERROR' : 'note'} ${d.code} at ${where}: ${d.message}`);
  if (d.severity <= 1) bad += 1;
}
if (!document || bad > 0) {
  console.log(`${path}: ${bad} problem(s)`);
  process.exit(1);
}
console.log(`${path}: OK (AsyncAPI ${document.version()}, ${document.allMessages().length} messages, ${document.allOperations().length} operations)`);
EOF

if [ -z "${PARLEY_BIN:-}" ]; then
    step "build parley"
    cargo build --quiet --bin parley
fi
bin=${PARLEY_BIN:-target/debug/parley}
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The per-address login budget off: schemathesis logs in far more than 60 times a minute, and
# the 429 it would get instead leaves the login logic untested.
PARLEY_AUTH_RATE=0 "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/server.log" &
server_pid=$!
addr=
for _ in $(seq 300); do # up to 30 s for the "listening on" line
    addr=$(sed -n 's/^parley: listening on //p' "$work/server.log")
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "parley exited"; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/server.log"; echo "parley did not say where it listens"; exit 1; }
base=http://$addr
echo "parley at $base"

# One real account, so authenticated operations get past the token check.
token=$(python3 - "$base" <<'EOF'
import json, sys, urllib.request
base = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)
post("/users", {"username": "schemathesis", "email": "schemathesis@example.com", "password": "pw"})
print(post("/login", {"username": "schemathesis", "password": "pw"})["token"])
EOF
)

cat >"$work/schemathesis.toml" <<'EOF'
[auth.openapi.bearer]
bearer = "${PARLEY_TOKEN}"

# Unknown user ids are a documented 400 (PROTOCOL.md): the schema can say "a UUID", not "a UUID
# of an existing user", so random valid-looking ids are rightly refused.
[[operations]]
include-operation-id = ["createGroup", "joinGroup", "leaveGroup"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
EOF
cat >"$work/parley_hooks.py" <<'EOF'
import schemathesis

# Waiting for the server to accept whole-number floats as `build` (JSON and JSON Schema count
# 102.0 as the integer 102; parley's serde i64 refuses it): see the ops request of issue #5.
@schemathesis.hook("filter_body").apply_to(path="/sessions")
def build_written_as_integer(ctx, body):
    return not (isinstance(body, dict) and isinstance(body.get("build"), float))
EOF

step "schemathesis: $examples examples per operation, seed $seed"
# Run from the temporary directory: schemathesis writes its files (.hypothesis) in the cwd.
status=0
(
    cd "$work"
    PARLEY_TOKEN=$token PYTHONPATH=$work SCHEMATHESIS_HOOKS=parley_hooks \
        python3 -m schemathesis.cli --config-file schemathesis.toml run "$repo/docs/openapi.yaml" --url "$base" \
        --checks all --max-examples "$examples" --seed "$seed" --workers 1 \
        --generation-database none --request-timeout 30 --no-color
) || status=$?

if grep -q 'panicked' "$work/server.log"; then
    echo "parley panicked:"
    cat "$work/server.log"
    status=1
fi
kill -0 "$server_pid" 2>/dev/null || { echo "parley died during the run"; cat "$work/server.log"; status=1; }
if [ "$status" -ne 0 ]; then
    echo "api-docs-check: FAILED"
    exit "$status"
fi
echo "api-docs-check: OK"
