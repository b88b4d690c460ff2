#!/usr/bin/env bash
# `certroll verify` of a bootstrapped fleet of real sshd nodes on 127.0.0.1.
#
# Usage: scripts/bench-verify.sh [N]     (default 50 nodes, about 3 links per node)
#
# benches/fleet.rs starts the fleet, bootstraps it with `certroll apply --yes`, then
# times `certroll verify` (read every node's bundle, certificate and key over SFTP,
# check every link with a real path validation and an in-memory TLS handshake), best
# of CERTROLL_BENCH_RUNS (default 3). Same requirements and switches as bench-apply.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench --quiet --bench fleet -- verify "${1:-50}" 2>/dev/null
