#!/usr/bin/env bash
# The main job on the embedded example fleet (examples/local: eight nodes on this machine,
# transport = "local", no SSH): bootstrap, plan and prove a rotation, rotate, verify.
# Starts from a clean example state each time (examples/local/nodes and .certroll).
#
# CERTROLL_BIN_DIR=DIR uses the certroll binary in DIR instead of building it.
# Bold headings only on a terminal, and never with NO_COLOR set (https://no-color.org).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }

if [ -n "${CERTROLL_BIN_DIR:-}" ]; then
  certroll="$CERTROLL_BIN_DIR/certroll"
  echo "using $certroll"
else
  . scripts/build-deps.sh
  ensure_build_deps
  echo "Building certroll (release; the first build compiles every dependency and takes a few minutes)..."
  cargo build --release --locked --bin certroll
  certroll="${CARGO_TARGET_DIR:-target}/release/certroll"
fi
inv=examples/local/certroll.toml
rm -rf examples/local/nodes examples/local/.certroll

step() { say "\$ certroll $*"; }

step plan;                      "$certroll" -i "$inv" plan
step apply --yes;               "$certroll" -i "$inv" apply --yes
step verify;                    "$certroll" -i "$inv" verify
step plan --rotate --check;     "$certroll" -i "$inv" plan --rotate --check
step apply --rotate --yes;      "$certroll" -i "$inv" apply --rotate --yes
step status;                    "$certroll" -i "$inv" status
step verify;                    "$certroll" -i "$inv" verify
