#!/usr/bin/env bash
# `certroll apply` against real sshd nodes on 127.0.0.1: bootstrap, then a phased rotation.
#
# Usage: scripts/bench-apply.sh [N...]     (default: 20 50)
#
# For each N, benches/fleet.rs starts N sshd nodes (the integration tests' fleet harness:
# one sshd per node in its own mount namespace, the node's directory bind-mounted at
# /srv/certroll-node), writes a three-tier inventory (lb -> app one-way TLS, app -> db
# mutual TLS, about 3 links per node, reload/confirm are `touch`/`test -e`) and times
#   certroll apply --yes            (bootstrap: CA, every leaf and bundle)
#   certroll apply --rotate --yes   (phased rotation: trust-add, leaf-swap, trust-prune)
#   certroll verify
# as whole processes, best of CERTROLL_BENCH_RUNS (default 3).
#
# Needs root and openssh-server (like the SSH tests). By default root's ~/.bashrc is
# hidden inside the nodes' namespaces (see docs/performance.md); set
# CERTROLL_BENCH_KEEP_BASHRC=1 to measure with the login shell as it is.
# CERTROLL_BENCH_SHOW=1 prints certroll's own output.
# CERTROLL_BENCH_KEY_SOURCE=node makes every leaf key on its node (`key_source`), and
# CERTROLL_BENCH_KEY_ALGORITHM=rsa-4096 (or any `key_algorithm`) sets the leaves' algorithm.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -gt 0 ] || set -- 20 50
for n in "$@"; do
    echo
    echo "== apply, $n nodes"
    cargo bench --quiet --bench fleet -- apply "$n" 2>/dev/null
done
