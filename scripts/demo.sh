#!/usr/bin/env bash
# The main job on the embedded example fleet (examples/local: eight nodes on this machine,
# transport = "local", no SSH): bootstrap, plan and prove a rotation, rotate, verify.
# Starts from a clean example state each time (examples/local/nodes and .certroll).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet --bin certroll
certroll="${CARGO_TARGET_DIR:-target}/release/certroll"
inv=examples/local/certroll.toml
rm -rf examples/local/nodes examples/local/.certroll

step() { printf '\n\033[1m$ certroll %s\033[0m\n' "$*"; }

step plan;                      "$certroll" -i "$inv" plan
step apply --yes;               "$certroll" -i "$inv" apply --yes
step verify;                    "$certroll" -i "$inv" verify
step plan --rotate --check;     "$certroll" -i "$inv" plan --rotate --check
step apply --rotate --yes;      "$certroll" -i "$inv" apply --rotate --yes
step status;                    "$certroll" -i "$inv" status
step verify;                    "$certroll" -i "$inv" verify
