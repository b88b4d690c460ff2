#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine with only Rust installed: installs what the
# build needs (scripts/build-deps.sh) and what the tests need (sshd for the SSH fleet tests,
# openssl as the second certificate validator, a headless JDK (keytool) for the keystore
# interop tests, SoftHSM2 and opensc for PKCS#11 keys, sudo,
# nginx, HAProxy, PostgreSQL 15, curl, psql, MariaDB, Postfix, Apache httpd, Redis, a JDK 17
# and Tomcat 10 for
# the real-software test), checks formatting and clippy lints, then
# cargo test --no-fail-fast (every test binary runs; the failures are listed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build needs (a C compiler, pkg-config, OpenSSL and zlib headers): build-deps.sh.
. scripts/build-deps.sh
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found: install Rust 1.89 or newer (https://rustup.rs), then run $0 again" >&2
  exit 1
fi
need_apt=()
while read -r package; do need_apt+=("$package"); done < <(build_deps_missing)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# CA keys in a PKCS#11 token (tests/ca_key_stores/, src/pki/token_tests.rs): SoftHSM2
# and pkcs11-tool (opensc).
[ -f /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v openssl >/dev/null || need_apt+=(openssl)
# `become = "sudo"` tests (tests/apply_ssh/sudo.rs, hostile_store.rs) use real sudoers rules.
command -v sudo >/dev/null || need_apt+=(sudo)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v unshare >/dev/null || need_apt+=(util-linux)
# The sudo tests write a sudoers rule checked by visudo; the fleet harness finds each node's
# sshd with ss; tests signal processes with kill(1); inventory tests run
# scripts/gen-inventory.py and the demo tests check ports with python3.
command -v visudo >/dev/null || [ -x /usr/sbin/visudo ] || need_apt+=(sudo)
command -v ss >/dev/null || need_apt+=(iproute2)
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || need_apt+=(procps)
command -v python3 >/dev/null || need_apt+=(python3)
# verify --format prometheus is parsed by prometheus_client's exposition parser
# (tests/verify_prometheus.rs), with Debian's python3.
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need_apt+=(python3-prometheus-client)
# The alert rules of docs/operations.md are checked and unit-tested with promtool
# (tests/operations_rules.rs), which comes with Debian's prometheus package.
command -v promtool >/dev/null || need_apt+=(prometheus)
# The real-software test (tests/real_software) runs nginx, HAProxy, PostgreSQL 15, curl
# and psql; it fails loudly when one is missing, never skips.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
command -v psql >/dev/null || need_apt+=(postgresql-client-15)
command -v curl >/dev/null || need_apt+=(curl)
# Its STARTTLS tests (tests/real_software/starttls.rs) start private MariaDB and Postfix
# instances on free ports in a temporary directory (mariadbd, mariadb-install-db and the
# mariadb client come with mariadb-server).
[ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null || need_apt+=(mariadb-server)
[ -x /usr/sbin/postfix ] || need_apt+=(postfix)
# Its recipe test (tests/real_software/apache_mariadb_redis.rs) starts private Apache httpd,
# MariaDB and Redis instances from docs/recipes.md on free ports in a temporary directory,
# never the system services. apache2-bin is Apache's binary and modules (mod_ssl among
# them) without the system service of the apache2 package.
[ -x /usr/sbin/apache2 ] && [ -f /usr/lib/apache2/modules/mod_ssl.so ] || need_apt+=(apache2-bin)
[ -x /usr/bin/redis-server ] && command -v redis-cli >/dev/null || need_apt+=(redis-server)
# Its keystore tests (tests/real_software/keystores.rs) run a private Tomcat 10.1 (its own
# CATALINA_BASE and ports in a temporary directory, never the system service) whose reload
# is the manager webapp's sslReload (tomcat10-admin), a Java client run from source (which
# needs the JDK's compiler, not only a JRE) and keytool, which also reads back every store
# certroll writes (src/stores/interop_tests.rs, tests/apply_ssh/stores.rs).
command -v javac >/dev/null && command -v keytool >/dev/null || need_apt+=(openjdk-17-jdk-headless)
[ -f /usr/share/tomcat10/bin/bootstrap.jar ] || need_apt+=(tomcat10)
[ -d /usr/share/tomcat10-admin/manager ] || need_apt+=(tomcat10-admin)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: the build and the tests need ${need_apt[*]}; run as root or install them first (sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
  echo "installing build and test dependencies: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the SSH fleet tests start sshd in mount namespaces and need root" >&2
  exit 1
fi

# Lints are a gate, not advice: formatting and every clippy warning (including `unwrap`
# outside tests, denied in src/lib.rs and src/main.rs) fail the run before any test does.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

# Every test binary runs even after one fails: a failure early in the list must not hide
# the results of the others.
cargo test --locked --no-fail-fast "$@"
