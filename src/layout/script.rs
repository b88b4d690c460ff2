//! The shell script that carries out a file-set change on a node, and its output.
//!
//! One remote command per step: the script is constant text, every parameter is a
//! separately quoted argument, and file contents arrive on standard input (never in a
//! command line, which other users can read in the process list). It needs a POSIX `sh`
//! and GNU coreutils (`mv -T`, `head -c`, `sync FILE`, `chown --reference`), as on any Linux.
//!
//! Exit codes: 10 the files could not be written (nothing served changed), 11 an owner or
//! group could not be given (nothing served changed), 12 the data arrived incomplete,
//! 14 `openssl` is missing (`keygen`, `pubkey`), 15 a key openssl cannot read (`pubkey`),
//! 99 stopped on purpose at a phase (tests only).
//!
//! `keygen` makes a leaf key on the node (`key_source = "node"`) in a pending directory
//! `.key-<tag>` of the store (0700) and prints a request for it; `apply`'s action `n`
//! then puts that key into the new version, under the same owner and mode rules as a
//! written key, and removes the pending directory. `prune` removes pending directories a
//! crash left behind. `pubkey` prints the public key of a key file, so that a key made on
//! the node is checked there and never read back.

/// Marker printed once every file is in place (before the reload runs).
pub const FILES_IN_PLACE: &str = "certroll: files in place";
/// Marker before the reload command's exit status.
pub const RELOAD_EXITED: &str = "certroll: reload exited ";

/// `apply STORE TAG RUN OWNER GROUP ROOT STOP RELOAD MARKER CLEAN` then, per file, 6 words:
/// `NAME PATH ACTION SIZE XMODE DMODE` (ACTION w, k, r or n; `-` for unset; for n, SIZE is
/// the pending directory `.key-<tag>` whose `key.pem` becomes the file). Standard input
/// holds the data of the `w` files in order, then the MARKER line. Relative paths are
/// taken from the directory the script starts in. CLEAN `-`, or how many earlier runs'
/// backups to keep while removing every other old version after the switch.
/// `cleanup STORE KEEP PATH...`. `keygen STORE TAG ALG NONCE STOP` (ALG `ecdsa-p256`,
/// `ecdsa-p384`, `ed25519`, `rsa-BITS`; NONCE the request's CN). `pubkey PATH`.
pub const SCRIPT: &str = r#"set -u
umask 077
orig=$PWD
fail() { c=$1; shift; printf 'certroll: %s\n' "$*" >&2; exit "$c"; }
run() { out=$("$@" 2>&1) || fail 10 "${out:-$1 failed}"; }
phase() { [ "$stop" != "$1" ] || exit 99; }
# at NAME PATH: p = the path made absolute, l = what its symlink holds.
at() {
  case $2 in /*) p=$2 ;; *) p=$orig/$2 ;; esac
  if [ "${p%/*}" = "${store%/*}" ]; then l=${store##*/}/current/$1; else l=$store/current/$1; fi
}

migrate() {
  t=v-$tag-legacy
  run mkdir -m 0755 -- "$t"
  while [ $# -ge 6 ]; do
    at "$1" "$2"
    if [ -e "$p" ]; then
      if ! ln -L -- "$p" "$t/$1" 2>/dev/null; then
        run cp -pL -- "$p" "$t/$1"
        if [ "$root" != 1 ]; then
          a=$(stat -L -c %u:%g -- "$p") b=$(stat -c %u:%g -- "$t/$1")
          [ "$a" = "$b" ] || { rm -rf -- "$t"; fail 11 "cannot keep owner and group $a of $p: running as $b"; }
        fi
      fi
    fi
    shift 6
  done
  phase 2
  run ln -s -- "v-$tag-legacy" ".next-$tag"
  run mv -T -f -- ".next-$tag" current
  phase 3
}

build() {
  t=v-$tag
  trap 'rm -rf -- "$t"' EXIT
  # The new version starts as a copy of the current one (owner, group, mode kept); the
  # files the step writes are then overwritten in place, or started afresh when the
  # inventory sets their mode, and removed files dropped.
  run cp -pRL -- current "$t"
  written= drop=
  while [ $# -ge 6 ]; do
    case $3 in
      w|n) written="$written $t/$1"; [ "$5" = - ] || drop="$drop $t/$1" ;;
      r) drop="$drop $t/$1" ;;
    esac
    shift 6
  done
  [ -z "$drop" ] || run rm -f -- $drop
  if [ "$root" != 1 ]; then
    for r in current/*; do
      [ -e "$r" ] || continue
      a=$(stat -c %u:%g -- "$r") b=$(stat -c %u:%g -- "$t/${r#current/}")
      [ "$a" = "$b" ] || fail 11 "cannot keep owner and group $a of $store/$r: running as $b"
    done
  fi
}

fill() {
  while [ $# -ge 6 ]; do
    if [ "$3" = w ] || [ "$3" = n ]; then
      fresh=; [ -e "$t/$1" ] || fresh=1
      if [ "$3" = w ]; then
        head -c "$4" > "$t/$1" || fail 10 "cannot write $store/$t/$1"
      else
        # The key made on the node takes the place of the written data: same file, same
        # owner and mode rules; its pending directory goes.
        case $4 in .key-*[!A-Za-z0-9._-]*|.key-) fail 10 "bad pending key directory $4" ;; .key-*) ;; *) fail 10 "bad pending key directory $4" ;; esac
        [ -f "$4/key.pem" ] || fail 10 "the key made on the node is missing: $store/$4/key.pem"
        cat -- "$4/key.pem" > "$t/$1" || fail 10 "cannot write $store/$t/$1"
        run rm -rf -- "$4"
      fi
      if [ "$5" != - ]; then
        run chmod -- "$5" "$t/$1"
        if [ -z "$owner$group" ] && [ -e "current/$1" ]; then
          run chown --reference="current/$1" -- "$t/$1"
        fi
      elif [ -n "$fresh" ] && [ "$6" != 600 ]; then run chmod -- "$6" "$t/$1"
      # A replaced key keeps its mode, unless every user may read it: then 0600.
      elif [ -z "$fresh" ] && [ "$6" = 600 ] && [ -n "$(find "$t/$1" -perm /007)" ]; then
        run chmod -- go-rwx "$t/$1"
      fi
    elif [ "$3" = k ] && [ "$5" != - ] && [ -e "$t/$1" ]; then
      run chmod -- "$5" "$t/$1"
    fi
    shift 6
  done
  # The data ends with a marker line: a cut connection cannot pass for a short file.
  IFS= read -r end || end=
  [ "$end" = "$marker" ] || fail 12 "the file data arrived incomplete"
  if [ -n "$owner$group" ]; then
    who=$owner${group:+:$group}
    out=$(chown -- "$who" "$t"/* 2>&1) || fail 11 "cannot give the files owner $who (running as $(id -un)): $out"
  fi
  [ -z "$written" ] || run sync -- $written
  trap - EXIT
}

link_paths() {
  n=0
  while [ $# -ge 6 ]; do
    at "$1" "$2"
    if [ -e "v-$tag/$1" ] && ! { [ -L "$p" ] && [ "$p" -ef "current/$1" ]; } \
        && [ "$(readlink -- "$p")" != "$l" ]; then
      d=${p%/*}; d=${d:-/}
      if [ ! -d "$d" ]; then
        out=$(umask 022 && mkdir -p -- "$d" 2>&1) || fail 10 "${out:-cannot create $d}"
      fi
      run ln -s -- "$l" "$d/.certroll-link-$tag"
      run mv -T -f -- "$d/.certroll-link-$tag" "$p"
      n=$((n + 1)); [ "$n" -ne 1 ] || phase 6
    fi
    shift 6
  done
}

remove_paths() {
  while [ $# -ge 6 ]; do
    at "$1" "$2"
    if [ ! -e "v-$tag/$1" ]; then
      if [ "$3" = r ] && { [ -e "$p" ] || [ -L "$p" ]; }; then run rm -f -- "$p"
      elif [ -L "$p" ] && [ "$(readlink -- "$p")" = "$l" ]; then run rm -f -- "$p"; fi
    fi
    shift 6
  done
}

apply() {
  store=$1 tag=$2 rid=$3 owner=$4 group=$5 root=$6 stop=$7 reload=$8 marker=$9 clean=${10}
  shift 10
  case $store in /*) ;; *) store=$orig/$store ;; esac
  if [ ! -d "$store" ]; then
    out=$(umask 022 && mkdir -p -- "$store" 2>&1) || fail 10 "${out:-cannot create $store}"
  fi
  cd -- "$store" || fail 10 "cannot enter $store"
  phase 1
  [ -d current ] || migrate "$@"
  if [ ! -L "before-$rid" ]; then
    # A hard link to the `current` link itself: what it points at now, one process.
    ln -- current "before-$rid" 2>/dev/null || run ln -s -- "$(readlink -- current)" "before-$rid"
  fi
  phase 4
  build "$@"
  fill "$@"
  phase 5
  link_paths "$@"
  phase 7
  run ln -s -- "v-$tag" ".next-$tag"
  run mv -T -f -- ".next-$tag" current
  phase 8
  remove_paths "$@"
  if [ "$clean" != - ]; then
    paths=
    while [ $# -ge 6 ]; do paths="$paths$2
"; shift 6; done
    set -f; old_ifs=$IFS; IFS='
'
    set -- $paths
    IFS=$old_ifs; set +f
    prune "$clean" "$@"
  fi
  echo "certroll: files in place"
  if [ -n "$reload" ]; then
    (set --; cd -- "$orig" || cd /; umask 022; eval "$reload") </dev/null
    echo "certroll: reload exited $?"
  fi
}

# prune KEEP PATH...: in the store, keep current and the KEEP most recent runs' backups;
# remove every other version, leftovers, and old `<file>.<run>.bak` files beside PATHs.
prune() {
  keep=$1; shift
  for q in "$@"; do
    at x "$q"
    for b in "$p".[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*.bak \
             "${p%/*}"/.certroll-link-*; do
      if [ -e "$b" ] || [ -L "$b" ]; then run rm -f -- "$b"; fi
    done
  done
  [ -L current ] || return 0
  keepers=" $(readlink -- current) "
  n=0
  for b in before-*; do [ -L "$b" ] && n=$((n + 1)); done
  i=0 gone=
  for b in before-*; do
    [ -L "$b" ] || continue
    i=$((i + 1))
    if [ $((n - i)) -lt "$keep" ]; then keepers="$keepers$(readlink -- "$b") "
    else gone="$gone $b"; fi
  done
  for d in v-* .tmp-* .next-* .key-*; do
    { [ -e "$d" ] || [ -L "$d" ]; } || continue
    case $keepers in *" $d "*) continue ;; esac
    case $d in *[!A-Za-z0-9._-]*) run rm -rf -- "$d" ;; *) gone="$gone $d" ;; esac
  done
  [ -z "$gone" ] || run rm -rf -- $gone
}

cleanup() {
  store=$1 keep=$2; shift 2
  case $store in /*) ;; *) store=$orig/$store ;; esac
  if [ -d "$store" ] && cd -- "$store"; then prune "$keep" "$@"; fi
  echo "certroll: cleaned"
}

# keygen STORE TAG ALG NONCE STOP: a fresh key in .key-TAG, its request on stdout.
keygen() {
  store=$1 tag=$2 alg=$3 nonce=$4 stop=$5
  command -v openssl >/dev/null 2>&1 || fail 14 "openssl not found"
  case $store in /*) ;; *) store=$orig/$store ;; esac
  if [ ! -d "$store" ]; then
    out=$(umask 022 && mkdir -p -- "$store" 2>&1) || fail 10 "${out:-cannot create $store}"
  fi
  cd -- "$store" || fail 10 "cannot enter $store"
  d=.key-$tag
  run mkdir -m 0700 -- "$d"
  case $alg in
    ecdsa-p256) set -- -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve ;;
    ecdsa-p384) set -- -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve ;;
    ed25519) set -- -algorithm ED25519 ;;
    rsa-[0-9]*) set -- -algorithm RSA -pkeyopt "rsa_keygen_bits:${alg#rsa-}" ;;
    *) fail 13 "unknown key algorithm $alg" ;;
  esac
  phase 1
  run openssl genpkey "$@" -out "$d/key.pem"
  phase 2
  # A minimal configuration: the distribution's openssl.cnf adds nothing to the request.
  printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = %s\n' "$nonce" > "$d/req.cnf" \
    || fail 10 "cannot write $store/$d/req.cnf"
  case $alg in ed25519) md= ;; *) md=-sha256 ;; esac
  run openssl req -new -config "$d/req.cnf" -key "$d/key.pem" $md -out "$d/req.pem"
  rm -f -- "$d/req.cnf"
  phase 3
  cat -- "$d/req.pem" && rm -f -- "$d/req.pem"
}

# pubkey PATH: the public key of the key at PATH (PEM), or `absent`.
pubkey() {
  case $1 in /*) p=$1 ;; *) p=$orig/$1 ;; esac
  if [ ! -e "$p" ]; then echo absent; return 0; fi
  command -v openssl >/dev/null 2>&1 || fail 14 "openssl not found"
  out=$(openssl pkey -in "$p" -pubout 2>&1) || fail 15 "openssl cannot read the key $p"
  printf '%s\n' "$out"
}

cmd=$1; shift
case $cmd in
  apply) apply "$@" ;;
  cleanup) cleanup "$@" ;;
  keygen) keygen "$@" ;;
  pubkey) pubkey "$@" ;;
  *) fail 13 "unknown command $cmd" ;;
esac
"#;

/// What the apply script reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// Every file was in place (the switch happened).
    pub in_place: bool,
    /// The reload's exit status, when it ran to its end.
    pub reload_status: Option<i32>,
    /// The reload's own output (the script's markers removed).
    pub reload_stdout: String,
}

/// Reads the markers out of the script's standard output.
pub fn parse(stdout: &str) -> Reported {
    let mut in_place = false;
    let mut reload_status = None;
    let mut rest = Vec::new();
    for line in stdout.lines() {
        if line == FILES_IN_PLACE {
            in_place = true;
        } else if let Some(code) = line.strip_prefix(RELOAD_EXITED) {
            reload_status = code.trim().parse().ok();
        } else if in_place {
            rest.push(line);
        }
    }
    Reported {
        in_place,
        reload_status,
        reload_stdout: rest.join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_and_removed() {
        let r = parse("certroll: files in place\nreloading\ncertroll: reload exited 3\n");
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(3));
        assert_eq!(r.reload_stdout, "reloading");
        let none = parse("");
        assert!(!none.in_place);
        assert_eq!(none.reload_status, None);
    }

    #[test]
    fn the_script_parses() {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
