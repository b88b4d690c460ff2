#!/usr/bin/env bash
# The floor under a rotation over SSH: what it would cost if every step were one bare
# remote command, on the fleet of real sshd nodes that scripts/bench-apply.sh uses.
#
# Usage: scripts/bench-floor.sh [N...]     (default: 20 200)
#
# For each N, benches/fleet.rs (`floor`) starts N sshd nodes on 127.0.0.1 and, with
# certroll's SSH transport and 16 at a time (apply's default --parallel), measures:
#   connecting to every node (what every certroll command pays; compare with verify)
#   3 waves of one `true` per node: on a bare channel, in the direct wrapper of
#   certroll's own scripts, in the relaying wrapper of node commands (a rotation step's)
# with wall time (best of CERTROLL_BENCH_RUNS, default 3), the nodes' CPU and certroll's
# per command, and (one pass under strace) processes and programs per command on the node.
# Prints the load average before and after: run it on a quiet machine.
#
# Same requirements and switches as bench-apply.sh (root, openssh-server, strace).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -gt 0 ] || set -- 20 200
for n in "$@"; do
    echo
    echo "== floor, $n nodes"
    cargo bench --quiet --bench fleet -- floor "$n" 2>/dev/null
done
