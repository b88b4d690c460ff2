# What building certroll needs besides Rust, sourced by demo.sh, demo-live.sh and test.sh.
#
# The binaries link the system's OpenSSL and zlib (through the ssh2 crate: openssl-sys and
# libssh2-sys) and compile C code (libssh2, ring), so a fresh Debian or Ubuntu with only
# Rust installed also needs a C compiler and the C library's headers, pkg-config, and the
# OpenSSL and zlib development files. The system's OpenSSL is used rather than a vendored
# copy: it gets the distribution's security updates, and vendoring would still need a C
# compiler, perl and make and would add minutes to the first build.
#
# build_deps_missing   prints the Debian packages of what is missing, one per line
# ensure_build_deps    installs them with apt-get when run as root; otherwise stops,
#                      naming the packages and the command that installs them

build_deps_missing() {
  command -v cc >/dev/null || echo gcc
  [ -e /usr/include/stdio.h ] || echo libc6-dev
  command -v pkg-config >/dev/null || echo pkg-config
  pkg-config --exists openssl 2>/dev/null || echo libssl-dev
  pkg-config --exists zlib 2>/dev/null || echo zlib1g-dev
}

ensure_build_deps() {
  if ! command -v cargo >/dev/null; then
    echo "error: cargo not found: install Rust 1.89 or newer (https://rustup.rs), then run $0 again" >&2
    exit 1
  fi
  local missing
  missing=$(build_deps_missing | tr '\n' ' ')
  missing=${missing% }
  [ -n "$missing" ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: building certroll needs a C compiler, pkg-config and the OpenSSL and zlib development files; missing: $missing" >&2
    echo "  hint: install them (Debian/Ubuntu: sudo apt-get install -y $missing), then run $0 again" >&2
    exit 1
  fi
  echo "installing what the build needs: $missing"
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}
