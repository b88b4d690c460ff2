#!/usr/bin/env bash
# `certroll plan` on a large synthetic fleet: phase timings and peak memory.
#
# Usage: scripts/bench-plan.sh [NODES [LINKS]]     (default 100000 300000)
#
# For the expanded form (one [[links]] table per link) and the compact form (one table
# per client with a server list) it runs, on a release build:
#   1. benches/plan.rs: the TOML parse alone, validation, plan::rotate, JSON and text
#      rendering, each timed on its own (best of CERTROLL_BENCH_RUNS, default 3);
#   2. the whole command `certroll plan --rotate --ca internal --format json|text`
#      under /usr/bin/time -v: wall time, CPU time and peak RSS.
# Results are explained in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=${1:-100000}
links=${2:-300000}
work=${CERTROLL_BENCH_DIR:-/tmp/certroll-bench-plan}
mkdir -p "$work"

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (/usr/bin/time) for peak RSS figures" >&2
    apt-get install -y time >/dev/null
fi

cargo build --release --quiet --bin certroll
certroll=${CARGO_TARGET_DIR:-target}/release/certroll

# `plan --rotate` needs a CA to rotate (like `apply --rotate`): give the synthetic fleet's
# store a generation 1, made with openssl, as a bootstrap would (no node is touched).
seed_ca() {
    local ca="$1/.certroll/ca/internal"
    [ -s "$ca/current" ] && return
    mkdir -p "$ca/g1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=Bench CA G1" -keyout "$ca/g1/ca.key" -out "$ca/g1/ca.pem" 2>/dev/null
    chmod 600 "$ca/g1/ca.key"
    echo 1 > "$ca/current"
}
seed_ca "$work"

for form in expanded compact; do
    inv="$work/fleet-$nodes-$links-$form.toml"
    if [ ! -s "$inv" ]; then
        flag=""
        [ "$form" = compact ] && flag="--compact"
        scripts/gen-inventory.py "$nodes" "$links" "$inv" $flag
    fi
    echo
    echo "== $form form: $inv"
    CERTROLL_BENCH_INVENTORY="$inv" cargo bench --quiet --bench plan 2>/dev/null
    for format in json text; do
        /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" \
            "$certroll" -i "$inv" plan --rotate --ca internal --format "$format" >/dev/null
        awk -v f="$format" '{ printf "certroll plan --rotate --format %-4s  %6.2f s wall  %6.2f s cpu  peak RSS %4d MB\n", f, $1, $2 + $3, $4 / 1024 }' "$work/time.txt"
    done
done
