#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time on stable Rust (no sanitizer) and fails on a
# crash. New inputs found go to a temporary directory; the committed seeds in fuzz/corpus/ are
# only read. A crash leaves its input in fuzz/artifacts/TARGET/ (turn it into a regression test).
#
#   bash scripts/fuzz.sh          # 30 s per target
#   bash scripts/fuzz.sh 20       # 20 s per target
#   bash scripts/fuzz.sh 60 rpc_dispatch
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(http_parse connection_bytes rpc_dispatch)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fuzz build -s none
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    echo "fuzz: $target for ${seconds} s"
    if ! cargo fuzz run -s none "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 60 "$work/$target.log"
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs" "$work/$target.log" || true
done
echo "fuzz: no crash in ${targets[*]}"
