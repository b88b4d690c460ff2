#!/usr/bin/env bash
# The example fleet, live (examples/local-live): every node runs a certroll-peer, a real TLS
# endpoint that serves and dials its peers continuously with the node's own files and loads
# them only on reload. certroll bootstraps the fleet, then rotates the CA while the
# handshakes go on; the counters at the end show whether any handshake failed.
# Runs on this machine only (127.0.0.1), no SSH. Ports: CERTROLL_DEMO_PORT (default 18440)
# and the five after it; the demo stops at once, naming the port, if one is taken.
# CERTROLL_BIN_DIR=DIR uses the binaries in DIR instead of building them.
# Bold headings only on a terminal, and never with NO_COLOR set (https://no-color.org).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }

base=${CERTROLL_DEMO_PORT:-18440}
case "$base" in
  ''|*[!0-9]*) echo "error: CERTROLL_DEMO_PORT must be a port number, not '$base'" >&2; exit 64 ;;
esac
if [ "$base" -lt 1024 ] || [ "$base" -gt 65530 ]; then
  echo "error: CERTROLL_DEMO_PORT=$base: choose a port from 1024 to 65530 (the demo uses it and the five after it)" >&2
  exit 64
fi
if ! command -v python3 >/dev/null; then
  echo "error: the demo checks its ports with python3, which is not installed" >&2
  echo "  hint: install it (Debian/Ubuntu: sudo apt-get install -y python3), then run $0 again" >&2
  exit 1
fi
# Every port must be free before anything starts: a peer that cannot listen would
# otherwise leave the demo waiting, with the cause only in its log.
for p in $(seq "$base" $((base + 5))); do
  if ! why=$(python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the peers do
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print(e.strerror); sys.exit(1)' "$p"); then
    echo "error: port $p on 127.0.0.1 is taken ($why), so the demo cannot start its TLS peers" >&2
    echo "  hint: choose other ports, e.g. CERTROLL_DEMO_PORT=$((base + 100)) $0 (the demo uses that port and the five after it)" >&2
    exit 1
  fi
done

if [ -n "${CERTROLL_BIN_DIR:-}" ]; then
  bin="$(cd "$CERTROLL_BIN_DIR" && pwd)"
  echo "using the binaries in $bin"
else
  . scripts/build-deps.sh
  ensure_build_deps
  echo "Building certroll and certroll-peer (release; the first build compiles every dependency and takes a few minutes)..."
  cargo build --release --locked --bin certroll --bin certroll-peer
  bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)"
fi
export PATH="$bin:$PATH"
cd examples/local-live
rm -rf nodes .certroll

declare -A port=([app1]=$((base)) [app2]=$((base + 1)) [app3]=$((base + 2))
                 [db1]=$((base + 3)) [db2]=$((base + 4)) [cache]=$((base + 5)))
target() { echo "--target $1=127.0.0.1:${port[$1]}@$1.example.test"; }
declare -A args=(
  [lb1]="$(target app1) $(target app2) $(target app3)"
  [lb2]="$(target app1) $(target app2) $(target app3)"
  [app1]="--listen 127.0.0.1:${port[app1]} $(target db1) $(target db2) $(target cache)"
  [app2]="--listen 127.0.0.1:${port[app2]} $(target db1) $(target db2) $(target cache)"
  [app3]="--listen 127.0.0.1:${port[app3]} $(target db1) $(target db2) $(target cache)"
  [db1]="--listen 127.0.0.1:${port[db1]} --require-client-cert"
  [db2]="--listen 127.0.0.1:${port[db2]} --require-client-cert"
  [cache]="--listen 127.0.0.1:${port[cache]}"
)
nodes=(lb1 lb2 app1 app2 app3 db1 db2 cache)

stop_peers() {
  for n in "${nodes[@]}"; do certroll-peer stop --state-dir "nodes/$n/peer" >/dev/null 2>&1 || true; done
}
trap stop_peers EXIT

say "Starting one certroll-peer per node (they wait for their files)"
for n in "${nodes[@]}"; do
  mkdir -p "nodes/$n/peer"
  # shellcheck disable=SC2086 # the arguments are word lists on purpose
  certroll-peer run --state-dir "nodes/$n/peer" --node "$n" --interval-ms 20 \
    --bundle "nodes/$n/tls/ca.pem" --cert "nodes/$n/tls/cert.pem" --key "nodes/$n/tls/key.pem" \
    ${args[$n]} >"nodes/$n/peer.log" 2>&1 &
done
for n in "${nodes[@]}"; do
  for _ in $(seq 200); do [ -S "nodes/$n/peer/control.sock" ] && break; sleep 0.05; done
  if [ ! -S "nodes/$n/peer/control.sock" ]; then
    echo "error: the certroll-peer of node $n did not start within 10 s; its log (nodes/$n/peer.log):" >&2
    sed 's/^/  /' "nodes/$n/peer.log" >&2
    exit 1
  fi
done

say "\$ certroll apply --yes          # bootstrap: CA G1, bundles and leaves; each peer reloads"
certroll apply --yes
sleep 1

counters() {
  python3 - "${nodes[@]}" <<'PY'
import json, sys
ok = failed = 0
rows = []
for n in sys.argv[1:]:
    s = json.load(open(f"nodes/{n}/peer/stats.json"))
    for name, t in (s.get("targets") or {}).items():
        ok += t["ok"]; failed += t["failed"]
        rows.append((f"{n} → {name}", t["ok"], t["failed"], t.get("last_error") or ""))
    srv = s.get("server")
    if srv:
        failed += srv["failed"]
        if srv["failed"]:
            rows.append((f"{n} (server)", srv["ok"], srv["failed"], srv.get("last_error") or ""))
for r in rows:
    print(f"  {r[0]:<16} {r[1]:>7} ok  {r[2]:>4} failed  {r[3]}")
print(f"\n  {ok} handshakes completed, {failed} failed")
sys.exit(1 if failed else 0)
PY
}

say "Traffic before the rotation"
counters

say "\$ certroll plan --rotate --check"
certroll plan --rotate --check

say "\$ certroll apply --rotate --yes  # G1 → G2 while every peer keeps handshaking"
certroll apply --rotate --yes
sleep 1

say "\$ certroll verify"
certroll verify

say "Handshakes during the whole run (client side, per link)"
if counters; then
  say "Zero failed handshakes: the CA was rotated without interrupting one link."
else
  say "Some handshakes failed (see the reasons above)."
  exit 1
fi
