//! The shell script that carries out a file-set change on a node, and its output.
//!
//! One remote command per step: the script is constant text, every parameter is a
//! separately quoted argument, and file contents arrive on standard input (never in a
//! command line, which other users can read in the process list). It needs a POSIX `sh`,
//! GNU coreutils (`mv -T`, `head -c`, `sync FILE`, `stat -c`, `chown --reference`) and
//! util-linux (`flock`; `setpriv` to read a file another user controls), as on any Linux.
//!
//! The node is not trusted (docs/layout.md, "Threat model"): the store is entered only
//! after every directory above it was found to belong to root or to the writing user with
//! no other user able to change it, is never a symbolic link, belongs to the writing user
//! and names the node it serves; a file another user could have planted is read with that
//! user's rights, never copied with ours; every file is created with mode 0600 and only
//! then given its final mode and owner; and a script whose run was superseded (a later
//! script claimed the store: kill -9 and resume) can no longer switch or remove anything.
//!
//! Exit codes: 10 the files could not be written (nothing served changed), 11 an owner or
//! group could not be given (nothing served changed), 12 the data arrived incomplete,
//! 14 a required program (`openssl`, `flock`, `setpriv`) is missing, 15 a key openssl
//! cannot read (`pubkey`), 16 the store is not safe to use (nothing changed), 17 a later
//! script took the store over (this one changed nothing more), 18 a store password file that
//! is missing, a directory, readable by every user or empty, 19 the OS trust update command
//! is missing (nothing changed), 99 stopped on purpose at a phase (tests only).
//!
//! `keygen` makes a leaf key on the node (`key_source = "node"`) in a pending directory
//! `.key-<tag>` of the store (0700) and prints a request for it; `apply`'s action `n`
//! then puts that key into the new version, under the same owner and mode rules as a
//! written key, and removes the pending directory. `prune` removes pending directories a
//! crash left behind. `pubkey` prints the public key of a key file, so that a key made on
//! the node is checked there and never read back; `inspect` (in [`super::inspect`]) does
//! the same for a keystore or combined PEM made there.
//!
//! The script is sent in parts, one concept each, as one command: the store's safety
//! checks ([`super::safety_script`]), keys and passwords ([`super::keys_script`]), the OS
//! trust store ([`super::os_trust_script`]) or the stores' inspection
//! ([`super::inspect`]), then this file's [`SCRIPT`], which defines the rest and runs the
//! command; [`super::script_io`] makes that command and reads what it prints.

/// Every command starts with the same four words, `STORE FALLBACK CA NODE`: the preferred
/// store, the directory for stores when the preferred one's directory is not safe (`-`:
/// none), the CA and the node the store belongs to.
///
/// `apply STORE FALLBACK CA NODE TAG RUN OWNER GROUP ROOT STOP RELOAD CONFIRM MARKER CLEAN
/// OSDIR OSUPDATE OSFILES` then,
/// per file, 6 words: `NAME PATH ACTION SIZE XMODE DMODE` (ACTION w, k, r or n; `-` for
/// unset; for n, SIZE is the pending directory `.key-<tag>` whose `key.pem` becomes the
/// file; p or P (modern or legacy profile), a keystore made on the node from the new
/// `cert.pem` and `key.pem`, SIZE the store password file; c, a combined PEM made there
/// from them; PATH `-`: a file of the set with no link). Standard input holds the data of
/// the `w` files in order, then the line `MARKER NONCE` (NONCE: lowercase hex).
/// Relative paths are taken from the directory the script starts in. CLEAN `-`, or how
/// many earlier runs' backups to keep while removing every other old version after the
/// switch. STOP `0`, a phase `N` to exit at, or `pN:FILE` to wait at phase N until FILE
/// exists (tests). RELOAD and CONFIRM (empty: none) are the node's commands, run after
/// the switch, each as `sh -c` would run it from the directory the script starts in: the
/// reload, then (if it exited 0) the first attempt of the confirm; after each, the script
/// prints a newline and then `RELOAD_EXITED`/`CONFIRM_EXITED`, NONCE and its status on a
/// line of its own, on both streams, so that what each printed can be told apart and no
/// output of theirs can pass for a status (they never see NONCE). OSDIR (`-`: none),
/// OSUPDATE and OSFILES (`NAME:SIZE` words, their data on standard input after the
/// files') install a CA's anchors in the operating system's trust store after the switch
/// and run its update command before the reload, reported the same way with
/// [`super::os_trust_script::OS_UPDATE_EXITED`] (see [`super::os_trust_script`]); `ostrust
/// STORE FALLBACK CA NODE OSDIR OSUPDATE OSFILES MARKER` does that alone (its data also
/// ends with `MARKER NONCE`). `cleanup STORE FALLBACK CA NODE KEEP PATH...`.
/// `keygen STORE FALLBACK CA NODE TAG ALG NONCE STOP` (ALG `ecdsa-p256`, `ecdsa-p384`,
/// `ed25519`, `rsa-BITS`; NONCE the request's CN). `pubkey PATH`. `password PATH` (the
/// store password, after the line [`super::script_io::PASSWORD_FOLLOWS`]; exit 18 for a bad password file).
/// `inspect KIND PATH PWFILE` (a store's public material, opened on the node: see
/// [`super::inspect`], which defines it).
pub const SCRIPT: &str = r#"set -u
umask 077
orig=$PWD
# Every function of this script, hidden from the node's commands (node_command).
FUNCTIONS="norefs fail run phase at capture migrate refs want create batch build fill link_paths remove_paths apply report_exit node_command prune cleanup ${SAFETY_FUNCTIONS-} ${KEY_FUNCTIONS-} ${OS_FUNCTIONS-} ${STORE_FUNCTIONS-}"
me=
# The files of a set that hold a private key (also in the `case` patterns below).
secret='key.pem keystore.p12 combined.pem'
norefs() {
  for n in bundle cert key proof keystore truststore combined; do eval "rm_$n= ro_$n="; done
}
fail() { c=$1; shift; printf 'certroll: %s\n' "$*" >&2; exit "$c"; }
run() { out=$("$@" 2>&1) || fail 10 "${out:-$1 failed}"; }
phase() {
  [ "$stop" != "$1" ] || exit 99
  case $stop in
    "p$1:"*) f=${stop#*:}; : > "$f.reached"; i=0
      while [ ! -e "$f" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done ;;
  esac
}
# at NAME PATH: p = the path made absolute, l = what its symlink holds.
at() {
  case $2 in /*) p=$2 ;; *) p=$orig/$2 ;; esac
  if [ "${p%/*}" = "${store%/*}" ]; then l=${store##*/}/current/$1; else l=$store/current/$1; fi
}

# capture NAME: the node's file $p as $t/NAME, exactly: a regular file reached only through
# directories only root or we control is hard-linked (copied across file systems); one that
# another user could have planted is read with that user's rights, never with ours.
capture() {
  if trusted "$p"; then
    if ! ln -- "$q" "$t/$1" 2>/dev/null; then
      run cp -p -- "$q" "$t/$1"
      if [ "$root" != 1 ]; then
        a=$(stat -c %u:%g -- "$q") b=$(stat -c %u:%g -- "$t/$1")
        [ "$a" = "$b" ] || { rm -rf -- "$t"; fail 11 "cannot keep owner and group $a of $p: running as $b"; }
      fi
    fi
    return 0
  fi
  if [ "$me" = 0 ]; then
    command -v setpriv >/dev/null 2>&1 || fail 14 "setpriv not found (util-linux): certroll needs it to read $p, which another user controls"
    timeout 20 setpriv --reuid="$wu" --regid="$wg" --clear-groups -- head -c 1048577 -- "$p" > "$t/$1" 2>/dev/null \
      || fail 16 "cannot read $p with the rights of uid $wu ($why): certroll reads what another user could have planted only as that user"
  else
    timeout 20 head -c 1048577 -- "$p" > "$t/$1" 2>/dev/null || fail 10 "cannot read $p"
  fi
  [ "$(stat -c %s -- "$t/$1")" -le 1048576 ] || fail 16 "$p is larger than 1 MiB"
  a=$(stat -L -c '%a %u:%g' -- "$p") || fail 10 "cannot read $p"
  m=${a% *}
  case $1 in key.pem|keystore.p12|combined.pem) [ $((0$m & 07)) -eq 0 ] || m=600 ;; esac
  run chmod -- "$m" "$t/$1"
  [ "$root" != 1 ] || run chown -- "${a#* }" "$t/$1"
}

migrate() {
  t=v-$tag-legacy
  run mkdir -m 0755 -- "$t"
  while [ $# -ge 6 ]; do
    if [ "$2" != - ]; then at "$1" "$2"; [ ! -e "$p" ] || capture "$1"; fi
    shift 6
  done
  phase 2
  run ln -s -- "v-$tag-legacy" ".next-$tag"
  run mv -T -f -- ".next-$tag" current
  phase 3
}

# refs: the mode and owner of each file of the current version (rm_NAME, ro_NAME for
# NAME.pem, NAME.p12, ...), from one stat, unless `enter` already read them with the store.
refs() {
  [ -z "$looked" ] || return 0
  norefs
  set -- current/*
  [ -e "$1" ] || [ -L "$1" ] || return 0
  out=$(stat -c '%a %u:%g %n' -- "$@") || fail 10 "cannot read $store/current"
  while read -r a o n; do
    n=${n#current/}; n=${n%.*}
    case $n in bundle|cert|key|proof|keystore|truststore|combined) eval "rm_$n=\$a ro_$n=\$o" ;; esac
  done <<EOF
$out
EOF
}

# want NAME XMODE DMODE FRESH: m, the new file's mode (XMODE; else that of the file it
# replaces, r, where a key never keeps bits for other users; else DMODE); for a FRESH file,
# the replaced file's owner is queued as an ARG=FILE entry of `chowns`.
want() {
  eval "r=\$rm_${1%.*} o=\$ro_${1%.*}"
  if [ "$2" != - ]; then m=$2
  elif [ -n "$r" ]; then
    m=$r; [ "$3" != 600 ] || [ $((0$m & 07)) -eq 0 ] || m=600
  else m=$3; fi
  if [ -n "$4" ] && [ -z "$owner$group" ] && [ -n "$o" ] && [ "$o" != "$me:$me" ]; then
    chowns="$chowns $o=$t/$1"
  fi
}

# create NAME: a written file is created with its final mode m from its first byte (a
# umask that leaves exactly m; a mode with bits a new file cannot get is set after).
create() {
  x=$((0777 & ~0$m))
  umask "$((x >> 6 & 7))$((x >> 3 & 7))$((x & 7))"
  [ $((0$m & 07111)) -eq 0 ] || chmods="$chmods $m=$t/$1"
}

# batch PROGRAM ENTRIES: `PROGRAM ARG FILE...` once per distinct ARG of ARG=FILE entries.
batch() {
  prog=$1 todo=$2
  set -f
  while [ -n "$todo" ]; do
    set -- $todo; x=${1%%=*} files= todo=
    for e in "$@"; do
      case $e in "$x="*) files="$files ${e#*=}" ;; *) todo="$todo $e" ;; esac
    done
    if [ "$prog" = chmod ] || [ "$root" = 1 ]; then run "$prog" -- "$x" $files
    else "$prog" -- "$x" $files 2>/dev/null || :; fi
  done
  set +f
}

build() {
  t=v-$tag chmods= chowns= gone= same= other= slow=
  trap 'rm -rf -- "$t"' EXIT
  refs
  # The new version is a copy of the current one, in one cp that follows nothing (a link in
  # it stays a link, refused below), modes and owners kept. A file the step writes is
  # written into its copy only when the copy has exactly the new file's mode and belongs to
  # the writing user; otherwise the copy goes and the file is created afresh, with its
  # final mode from its first byte; removed files go. When a key's copy would give others
  # more than its new mode does (a key every user could read), nothing is copied but the
  # kept files, each with its new mode.
  while [ $# -ge 6 ]; do
    eval "r=\$rm_${1%.*}"
    if [ -n "$r" ]; then
      case $3 in k|w|n|p|P|c) want "$1" "$5" "$6" "" ;; esac
      [ "$6" != 600 ] || [ $((0$r & ~0$m & 077)) -eq 0 ] || slow=1
      case $3 in
        k)
          if [ $((0$m)) -eq $((0$r)) ]; then same="$same current/$1"
          else other="$other current/$1"; chmods="$chmods $m=$t/$1"; fi ;;
        w|n|p|P|c)
          if [ $((0$m)) -ne $((0$r)) ] || [ "$o" != "$me:$me" ]; then gone="$gone $t/$1"; fi ;;
        r) gone="$gone $t/$1" ;;
      esac
    fi
    shift 6
  done
  if [ -z "$slow" ]; then
    run cp -PR --preserve=mode,ownership,timestamps -- current/ "$t"
    [ -z "$gone" ] || run rm -rf -- $gone
  else
    run mkdir -m 0755 -- "$t"
    [ -z "$same" ] || run cp -P --preserve=mode,ownership,timestamps -- $same "$t/"
    [ -z "$other" ] || run cp -P --preserve=ownership,timestamps -- $other "$t/"
  fi
  for f in $same $other; do
    f=$t/${f#current/}
    [ -f "$f" ] && [ ! -L "$f" ] || fail 16 "$store/current/${f#"$t"/} is not a regular file"
  done
}

fill() {
  written=
  while [ $# -ge 6 ]; do
    case $3 in
      w|n|p|P|c)
        written="$written $t/$1"
        if [ -L "$t/$1" ] || [ ! -f "$t/$1" ]; then
          rm -rf -- "$t/$1" 2>/dev/null; want "$1" "$5" "$6" fresh; create "$1"
        fi ;;
    esac
    if [ "$3" = w ]; then
      head -c "$4" > "$t/$1" || fail 10 "cannot write $store/$t/$1"
    elif [ "$3" = n ]; then
      # The key made on the node takes the place of the written data: same file, same
      # owner and mode rules; its pending directory goes.
      case $4 in .key-*[!A-Za-z0-9._-]*|.key-) fail 10 "bad pending key directory $4" ;; .key-*) ;; *) fail 10 "bad pending key directory $4" ;; esac
      [ -f "$4/key.pem" ] && [ ! -L "$4/key.pem" ] || fail 10 "the key made on the node is missing: $store/$4/key.pem"
      cat -- "$4/key.pem" > "$t/$1" || fail 10 "cannot write $store/$t/$1"
      run rm -rf -- "$4"
    elif [ "$3" = c ]; then
      # A combined PEM made on the node: the new chain, then the key there (made there,
      # or carried over from the current version).
      cat -- "$t/cert.pem" "$t/key.pem" > "$t/$1" || fail 10 "cannot write $store/$t/$1"
    elif [ "$3" = p ] || [ "$3" = P ]; then
      assemble "$1" "$3" "$4"
    fi
    umask 077
    shift 6
  done
  os_stage
  # The data ends with a marker line: a cut connection cannot pass for a short file. The
  # line also carries this step's nonce, which the status lines below carry: the node's
  # commands never see it (stdin, not the command line; unset for them), so nothing they
  # print can pass for a status line.
  IFS= read -r end || end=
  nonce=${end#"$marker "}
  case $end in "$marker "*) ;; *) fail 12 "the file data arrived incomplete" ;; esac
  case $nonce in ''|*[!0-9a-f]*) fail 12 "the file data arrived incomplete" ;; esac
  batch chmod "$chmods"
  if [ -n "$owner$group" ]; then
    who=$owner${group:+:$group}
    out=$(chown -- "$who" "$t"/* 2>&1) || fail 11 "cannot give the files owner $who (running as $(id -un)): $out"
  else
    batch chown "$chowns"
    set -- "$t"/*
    if [ "$root" != 1 ] && [ -e "$1" ]; then
      out=$(stat -c '%u:%g %n' -- "$@") || fail 10 "cannot read $store/$t"
      while read -r b n; do
        n=${n#"$t"/}
        eval "a=\$ro_${n%.*}"
        [ -z "$a" ] || [ "$a" = "$b" ] || fail 11 "cannot keep owner and group $a of $store/current/$n: running as $b"
      done <<EOF
$out
EOF
    fi
  fi
  [ -z "$written" ] || run sync -- $written
}

link_paths() {
  n=0
  while [ $# -ge 6 ]; do
    [ "$2" != - ] || { shift 6; continue; }
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
    [ "$2" != - ] || { shift 6; continue; }
    at "$1" "$2"
    if [ ! -e "v-$tag/$1" ]; then
      if [ "$3" = r ] && { [ -e "$p" ] || [ -L "$p" ]; }; then run rm -f -- "$p"
      elif [ -L "$p" ] && [ "$(readlink -- "$p")" = "$l" ]; then run rm -f -- "$p"; fi
    fi
    shift 6
  done
}

apply() {
  enter "$1" "$2" "$3" "$4"
  tag=$5 rid=$6 owner=$7 group=$8 root=$9 stop=${10} reload=${11} confirm=${12} marker=${13} clean=${14}
  osdir=${15} osupdate=${16} osfiles=${17}
  shift 17
  claim
  os_check
  phase 1
  if [ ! -d current ]; then
    owned
    migrate "$@"
    unlock
    looked=
  fi
  if [ ! -L "before-$rid" ]; then
    # A hard link to the `current` link itself: what it points at now, one process.
    ln -- current "before-$rid" 2>/dev/null || run ln -s -- "$(readlink -- current)" "before-$rid"
  fi
  phase 4
  build "$@"
  fill "$@"
  phase 5
  # From here to the end of the clean-up, only while this script still owns the store.
  owned
  link_paths "$@"
  phase 7
  run ln -s -- "v-$tag" ".next-$tag"
  run mv -T -f -- ".next-$tag" current
  trap - EXIT
  phase 8
  remove_paths "$@"
  # Before the clean-up, which removes every .tmp-* (the staged anchors among them).
  os_install
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
  unlock
  echo "certroll: files in place $nonce"
  c=0
  os_update || return 0
  if [ -n "$reload" ]; then
    node_command "$reload"; c=$?
    report_exit reload "$c"
  fi
  if [ "$c" = 0 ] && [ -n "$confirm" ]; then
    node_command "$confirm"; c=$?
    report_exit confirm "$c"
  fi
}

# report_exit WHAT CODE: after a node's command, on both streams, a newline (its output may
# lack a final one) and the line `certroll: WHAT exited NONCE CODE` of its own.
report_exit() {
  printf '\ncertroll: %s exited %s %s\n' "$1" "$nonce" "$2"
  printf '\ncertroll: %s exited %s %s\n' "$1" "$nonce" "$2" >&2
}

# node_command COMMAND: one of the node's commands, as `sh -c` runs it (no positional
# parameters, unset variables allowed), from the directory the script started in; it
# never sees the step's nonce (unset in its subshell, never exported, not on stdin), nor
# the script's functions (a command named `run`, `at` or `lock` is the node's own).
node_command() {
  (cmd=$1; unset nonce end; unset -f $FUNCTIONS; unset FUNCTIONS; set +u; set --; cd -- "$orig" || cd /; umask 022; eval "$cmd") </dev/null
}

# prune KEEP PATH...: in the store, keep current and the KEEP most recent runs' backups;
# remove every other version, leftovers, and old `<file>.<run>.bak` files beside PATHs;
# a kept version's key keeps no bits for other users; a store left in a directory another
# user controls (`legacy`) goes, with the old keys in it.
prune() {
  keep=$1; shift
  for q in "$@"; do
    [ "$q" != - ] || continue
    at x "$q"
    for b in "$p".[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*.bak \
             "${p%/*}"/.certroll-link-*; do
      if [ -e "$b" ] || [ -L "$b" ]; then run rm -f -- "$b"; fi
    done
  done
  if [ -n "$legacy" ] && { [ -e "$legacy" ] || [ -L "$legacy" ]; }; then run rm -rf -- "$legacy"; fi
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
    case $keepers in
      *" $d "*)
        for k in $secret; do
          if [ -f "$d/$k" ] && [ ! -L "$d/$k" ] && [ -n "$(find "$d/$k" -perm /007)" ]; then
            run chmod -- 600 "$d/$k"
          fi
        done
        continue ;;
    esac
    case $d in *[!A-Za-z0-9._-]*) run rm -rf -- "$d" ;; *) gone="$gone $d" ;; esac
  done
  [ -z "$gone" ] || run rm -rf -- $gone
}

cleanup() {
  enter "$1" "$2" "$3" "$4"
  tag=clean-$$-$(date +%s) keep=$5
  shift 5
  claim
  owned
  prune "$keep" "$@"
  unlock
  echo "certroll: cleaned"
}

cmd=$1; shift
case $cmd in
  apply) apply "$@" ;;
  cleanup) cleanup "$@" ;;
  keygen) keygen "$@" ;;
  pubkey) pubkey "$@" ;;
  password) password "$@" ;;
  inspect) inspect "$@" ;;
  ostrust) ostrust "$@" ;;
  *) fail 13 "unknown command $cmd" ;;
esac
"#;

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
