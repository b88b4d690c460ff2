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

/// Marker printed once every file is in place (before the reload runs), followed by the
/// step's nonce ([`files_in_place`]).
pub const FILES_IN_PLACE: &str = "certroll: files in place";
/// Marker before the store password's text (`password`).
pub const PASSWORD_FOLLOWS: &str = "certroll: password follows";
/// Marker before the step's nonce and the reload command's exit status (on stdout and on
/// stderr, on a line of its own: [`reload_exited`]).
pub const RELOAD_EXITED: &str = "certroll: reload exited ";
/// Marker before the step's nonce and the first confirm attempt's exit status (on stdout
/// and on stderr, on a line of its own).
pub const CONFIRM_EXITED: &str = "certroll: confirm exited ";

/// A fresh nonce for one `apply` script: the markers it prints after the switch carry it,
/// so that no output of the node's commands (which never see it) can pass for one.
pub fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The line the script prints once every file is in place, with `nonce`.
pub fn files_in_place(nonce: &str) -> String {
    format!("{FILES_IN_PLACE} {nonce}")
}

/// The start of the reload's status line with `nonce` (the status follows).
pub fn reload_exited(nonce: &str) -> String {
    format!("{RELOAD_EXITED}{nonce} ")
}

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
/// store password, after the line [`PASSWORD_FOLLOWS`]; exit 18 for a bad password file).
/// `inspect KIND PATH PWFILE` (a store's public material, opened on the node: see
/// [`super::inspect`], which defines it).
pub const SCRIPT: &str = r#"set -u
umask 077
orig=$PWD
# Every function of this script, hidden from the node's commands (node_command).
FUNCTIONS="norefs fail run phase at safe pick enter lock unlock claim owned trusted capture migrate refs want create batch build fill link_paths remove_paths apply report_exit node_command prune cleanup keygen readpw password assemble pubkey ${OS_FUNCTIONS-} ${STORE_FUNCTIONS-}"
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

# safe DIR [REFS]: DIR and every directory above it belong to root or to us, and no other
# user can change them (a sticky directory such as /tmp counts: nobody else can rename or
# remove what is ours in it). One stat, from / down to DIR (and, the first time,
# /proc/self/, whose owner is the user this script runs as: me; with REFS, DIR being a
# store, the files of its current version too, for `refs`). Sets phys (DIR's physical
# path) and su/sa (DIR's owner and mode); on failure, why, bad (the directory at fault)
# and wu/wg: the user and group with the rights of the directory another user controls.
safe() {
  bad= looked=
  # cd -P sets PWD to the physical path; back to where the script was (no subshell).
  here=$PWD
  cd -P -- "$1" 2>/dev/null || { why="cannot enter $1"; wu=65534 wg=65534; phys=; return 1; }
  phys=$PWD
  cd -P -- "$here" || fail 10 "cannot return to $here"
  withrefs=${2:-}
  set -- "$phys"; d=$phys
  while [ -n "$d" ]; do d=${d%/*}; set -- "${d:-/}" "$@"; done
  [ -n "$me" ] || set -- /proc/self/ "$@"
  if [ -n "$withrefs" ]; then
    for f in "$phys"/current/*; do [ -e "$f" ] || [ -L "$f" ] || break; set -- "$@" "$f"; done
  fi
  s=$(stat -c '%u %g %a %n' -- "$@") || { why="cannot read a directory above $phys"; wu=65534 wg=65534; return 1; }
  [ -z "$withrefs" ] || { norefs; looked=1; }
  while IFS=' ' read -r u g a d; do
    if [ -z "$me" ]; then me=$u; continue; fi
    case $d in
      "$phys"/current/*)
        n=${d##*/}; n=${n%.*}
        case $n in bundle|cert|key|proof|keystore|truststore|combined) eval "rm_$n=\$a ro_$n=\$u:\$g" ;; esac
        continue ;;
    esac
    su=$u sa=$a bad=$d
    if [ "$u" != 0 ] && [ "$u" != "$me" ]; then
      why="$d belongs to uid $u"; wu=$u wg=$g; return 1
    fi
    if [ $((0$a & 022)) -ne 0 ] && [ $((0$a & 01000)) -eq 0 ]; then
      why="$d is writable by other users (mode $a)"; wu=65534 wg=65534
      [ $((0$a & 002)) -ne 0 ] || wg=$g
      return 1
    fi
  done <<EOF
$s
EOF
  bad=
}

# pick PATH: PATH may be the store: it (when it is a directory) and every directory above
# it pass `safe`. Sets store (physical) and pdir (the physical directory above it); seen
# when PATH itself was looked at. Fails when a directory above it is not safe; refuses a
# store that is there but not certroll's alone.
pick() {
  seen=
  if [ -d "$1" ] && [ ! -L "$1" ]; then
    if safe "$1" refs; then
      store=$phys seen=1 pdir=${phys%/*}; pdir=${pdir:-/}
      return 0
    fi
    pdir=${phys%/*}; pdir=${pdir:-/}
    [ "$bad" = "$phys" ] || return 1
    fail 16 "the store $phys is not certroll's alone: $why"
  fi
  q=${1%/*}
  safe "${q:-/}" || { pdir=$phys; return 1; }
  pdir=$phys store=${phys%/}/${1##*/}
}

# enter STORE FALLBACK CA NODE: cd into the node's store, making it if need be, only when
# it is certroll's alone. A store whose directory another user controls moves to
# FALLBACK/CA-<hash of that directory> (root only); `legacy` is then the old place.
enter() {
  store=$1 fb=$2 ca=$3 node=$4 legacy=
  case $store in /*) ;; *) store=$orig/$store ;; esac
  parent=${store%/*}; parent=${parent:-/}
  if [ ! -d "$parent" ]; then
    out=$(umask 022 && mkdir -p -- "$parent" 2>&1) || fail 10 "${out:-cannot create $parent}"
  fi
  if ! pick "$store"; then
    [ "$fb" != - ] && [ "$me" = 0 ] \
      || fail 16 "the store $store is not safe: $why, so another user could swap it; set store_dir to a directory only $(id -un) and root can change"
    first=$why legacy=$store
    h=$(printf '%s' "$pdir" | sha256sum) || fail 10 "cannot hash $pdir"
    h=$(printf '%.16s' "$h")
    [ -d "$fb" ] || { out=$(umask 022 && mkdir -p -- "$fb" 2>&1) || fail 10 "${out:-cannot create $fb}"; }
    pick "$fb/$ca-$h" \
      || fail 16 "cannot keep the store of $legacy safe: $first, and the store directory $fb is not safe either: $why"
  fi
  [ ! -L "$store" ] || fail 16 "the store $store is a symbolic link: certroll never follows one there (someone else made it; remove it)"
  if [ ! -e "$store" ]; then
    out=$(umask 022 && mkdir -- "$store" 2>&1) || fail 10 "${out:-cannot create $store}"
    su=$me sa=755 seen=1
  fi
  cd -P -- "$store" 2>/dev/null || fail 10 "cannot enter $store"
  [ "$PWD" = "$store" ] || fail 16 "the store $store moved while certroll entered it"
  if [ -z "$seen" ]; then
    s=$(stat -c '%u %a' .) || fail 10 "cannot read $store"
    su=${s% *} sa=${s#* }
  fi
  [ "$su" = "$me" ] || fail 16 "the store $store belongs to uid $su, not to uid $me that writes it"
  [ $((0$sa & 022)) -eq 0 ] || fail 16 "the store $store is writable by other users (mode $sa)"
  if [ -f .node ] && [ ! -L .node ]; then
    n=; read -r n < .node || :
    [ "$n" = "$node" ] || fail 16 "the store $store belongs to node $n, not to $node: two nodes share these files (a symbolic link between their directories?); if the node was renamed, write its new name into $store/.node"
  else
    rm -f .node; printf '%s\n' "$node" > .node || fail 10 "cannot write $store/.node"
  fi
}

# The store's lock (flock on .lock, held only around changes, never during a command) and
# its owner: the last script to claim the store. A script that finds another owner was
# superseded (its certroll was killed and the run resumed) and changes nothing more.
lock() {
  command -v flock >/dev/null 2>&1 || fail 14 "flock not found (util-linux): certroll needs it on the node"
  exec 9>>.lock || fail 10 "cannot open $store/.lock"
  flock -w 60 9 || fail 17 "another certroll script held $store for 60 s"
}
unlock() { exec 9>&-; }
# A claim needs no lock: a script that reads the owner while it is written reads another
# tag, and it was superseded indeed.
claim() {
  printf '%s\n' "$tag" > .owner || fail 10 "cannot write $store/.owner"
}
owned() {
  lock
  o=; read -r o < .owner 2>/dev/null || :
  [ "$o" = "$tag" ] || {
    unlock
    fail 17 "a later certroll script took over $store (its run was resumed after this one was stopped): this one changes nothing more"
  }
}

# trusted PATH: PATH leads to a regular file (q) through directories only root or we
# control, link by link, so that nobody else could have planted it.
trusted() {
  q=$1 i=0
  while :; do
    safe "${q%/*}/" || return 1
    [ -L "$q" ] || break
    i=$((i + 1)); [ $i -le 8 ] || { why="too many links at $1"; return 1; }
    r=$(readlink -- "$q") || return 1
    case $r in /*) q=$r ;; *) q=${q%/*}/$r ;; esac
  done
  [ -f "$q" ]
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

# keygen STORE FALLBACK CA NODE TAG ALG NONCE STOP: a fresh key in .key-TAG, its request
# on stdout.
keygen() {
  command -v openssl >/dev/null 2>&1 || fail 14 "openssl not found"
  enter "$1" "$2" "$3" "$4"
  tag=$5 alg=$6 nonce=$7 stop=$8
  claim
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

# readpw PATH: out, the store password in PATH. Read through directories only root or we
# control, else with the rights of the user who controls them (as `capture` reads);
# refused unless a regular file no other user may read, 1 to 4096 bytes.
readpw() {
  case $1 in /*) p=$1 ;; *) p=$orig/$1 ;; esac
  [ ! -d "$p" ] || fail 18 "the store password file $p is a directory"
  [ -e "$p" ] || fail 18 "the store password file $p does not exist"
  a=$(stat -L -c '%a' -- "$p") || fail 18 "cannot read the store password file $p"
  [ -f "$p" ] || fail 18 "the store password file $p is not a regular file"
  [ $((0$a & 04)) -eq 0 ] || fail 18 "the store password file $p is readable by every user (mode $a): make it 0600 or 0640"
  if trusted "$p"; then
    out=$(timeout 20 head -c 4097 -- "$q" && echo x) || fail 18 "cannot read the store password file $p"
  elif [ "$me" = 0 ]; then
    command -v setpriv >/dev/null 2>&1 || fail 14 "setpriv not found (util-linux): certroll needs it to read $p, which another user controls"
    out=$(timeout 20 setpriv --reuid="$wu" --regid="$wg" --clear-groups -- head -c 4097 -- "$p" && echo x) \
      || fail 18 "cannot read the store password file $p with the rights of uid $wu ($why): certroll reads what another user could have planted only as that user"
  else
    out=$(timeout 20 head -c 4097 -- "$p" && echo x) || fail 18 "cannot read the store password file $p"
  fi
  out=${out%x}
  [ ${#out} -le 4096 ] || fail 18 "the store password file $p is larger than 4 KiB"
  out=${out%"
"}
  [ -n "$out" ] || fail 18 "the store password file $p is empty"
}

# password PATH: the store password in PATH (readpw), after a marker line.
password() {
  readpw "$1"
  echo "certroll: password follows"
  printf '%s' "$out"
}

# assemble NAME p|P PWFILE: the keystore NAME of the new version made here from its
# cert.pem and key.pem (key_source = "node": the key never leaves the node; or the key
# carried over from the current version, at a cross-signed prune), with the
# password of PWFILE (readpw) in a file of a 0700 directory, never in a command line;
# P: the legacy profile (3DES, SHA-1 MAC), p: OpenSSL's default (AES-256, SHA-256).
assemble() {
  command -v openssl >/dev/null 2>&1 || fail 14 "openssl not found: certroll needs it on the node to make the keystore $store/$t/$1 there"
  [ -f "$t/cert.pem" ] && [ -f "$t/key.pem" ] || fail 10 "cannot make $store/$t/$1: the new version has no cert.pem and key.pem"
  readpw "$3"
  pd=.key-asm-$tag
  rm -rf -- "$pd"
  (umask 077 && mkdir -- "$pd" && printf '%s\n' "$out" > "$pd/pass") || fail 10 "cannot write $store/$pd/pass"
  out=
  name=$1
  case $2 in P) set -- -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 ;; *) set -- ;; esac
  run openssl pkcs12 -export -in "$t/cert.pem" -inkey "$t/key.pem" -name certroll -passout "file:$pd/pass" "$@" -out "$t/$name"
  rm -rf -- "$pd"
}

# pubkey PATH: the public key of the key at PATH (PEM), or `absent`.
pubkey() {
  case $1 in /*) p=$1 ;; *) p=$orig/$1 ;; esac
  if [ ! -e "$p" ]; then echo absent; return 0; fi
  # A FIFO or a device would hold openssl forever: only a regular file is read.
  [ -f "$p" ] || fail 15 "the key $p is not a regular file"
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
  password) password "$@" ;;
  inspect) inspect "$@" ;;
  ostrust) ostrust "$@" ;;
  *) fail 13 "unknown command $cmd" ;;
esac
"#;

/// What the apply script reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reported {
    /// Every file was in place (the switch happened).
    pub in_place: bool,
    /// The OS trust store's update command, when it ran to its end (its marker found).
    pub os_update: Option<crate::transport::ExecOutput>,
    /// The reload's exit status, when it ran to its end.
    pub reload_status: Option<i32>,
    /// The reload's own output (the script's markers removed).
    pub reload_stdout: String,
    pub reload_stderr: String,
    /// The first confirm attempt's exit status, when it ran to its end.
    pub confirm_status: Option<i32>,
    pub confirm_stdout: String,
    pub confirm_stderr: String,
}

/// One stream split at the status lines: the reload's part (when `reload` ran) and its
/// status, then the confirm's part and its status.
struct Split {
    reload: (Option<i32>, String),
    confirm: (Option<i32>, String),
}

/// The last status line `\n<prefix><status>` in `text` (the script prints a newline before
/// it: the line is its own whatever the command printed last): the text before it, the
/// status, and the text after its line.
fn cut<'t>(text: &'t str, prefix: &str) -> Option<(&'t str, i32, &'t str)> {
    let needle = format!("\n{prefix}");
    let mut end = text.len();
    while let Some(at) = text[..end].rfind(&needle) {
        let rest = &text[at + needle.len()..];
        let (code, after) = rest.split_once('\n').unwrap_or((rest, ""));
        if let Ok(code) = code.parse() {
            return Some((&text[..at], code, after));
        }
        end = at;
    }
    None
}

fn lines(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n")
}

fn split(text: &str, reload: bool, nonce: &str) -> Split {
    let (reload, rest) = if !reload {
        ((None, String::new()), text)
    } else if let Some((before, code, after)) = cut(text, &reload_exited(nonce)) {
        ((Some(code), lines(before)), after)
    } else {
        // The reload did not run to its end: all that followed the switch is its own.
        ((None, lines(text)), "")
    };
    let confirm = match cut(rest, &format!("{CONFIRM_EXITED}{nonce} ")) {
        Some((before, code, _)) => (Some(code), lines(before)),
        None => (None, lines(rest)),
    };
    Split { reload, confirm }
}

/// The OS trust update's part of a stream: its status and what it printed before its
/// status line (the one with the step's nonce, after the newline the script prints
/// first), and the text after that line; `None` and all of `text` when it did not run.
fn take_os_update<'t>(text: &'t str, nonce: &str) -> (Option<(i32, String)>, &'t str) {
    let prefix = format!("{}{nonce} ", super::OS_UPDATE_EXITED);
    match cut(text, &prefix) {
        Some((before, code, after)) => (Some((code, lines(before))), after),
        None => (None, text),
    }
}

/// Reads the markers with `nonce` out of the script's two streams; `reload` tells whether a
/// reload command was given. Only a marker with the step's nonce counts, on a line of its
/// own, the last one of its kind: what the node's commands print (they never see the
/// nonce) is theirs, whatever it says.
pub fn parse(stdout: &str, stderr: &str, reload: bool, nonce: &str) -> Reported {
    let marker = files_in_place(nonce);
    let mut at = None;
    let mut offset = 0;
    for line in stdout.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end_matches('\n') == marker {
            at = Some(offset);
        }
    }
    let Some(at) = at else {
        return Reported::default();
    };
    let (os_out, rest_out) = take_os_update(&stdout[at..], nonce);
    let (os_err, rest_err) = take_os_update(stderr, nonce);
    let os_update = os_out.map(|(status, stdout)| crate::transport::ExecOutput {
        status: Some(status),
        stdout,
        stderr: os_err.map(|(_, e)| e).unwrap_or_default(),
    });
    // Without the update's status line on stdout, stderr is the reload's and the
    // confirm's alone.
    let rest_err = if os_update.is_some() {
        rest_err
    } else {
        stderr
    };
    let (out, err) = (
        split(rest_out, reload, nonce),
        split(rest_err, reload, nonce),
    );
    Reported {
        in_place: true,
        os_update,
        reload_status: out.reload.0,
        reload_stdout: out.reload.1,
        reload_stderr: err.reload.1,
        confirm_status: out.confirm.0,
        confirm_stdout: out.confirm.1,
        confirm_stderr: err.confirm.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function the script defines is hidden from the node's commands: a reload
    /// that calls the node's own `run` or `at` must not get the script's.
    #[test]
    fn every_function_of_the_script_is_hidden_from_node_commands() {
        let os = super::super::os_trust_script::OS_TRUST;
        let inspect = super::super::inspect::INSPECT;
        let listed_in = |text: &'static str, var: &str| -> Vec<&'static str> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{var}=\"")))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or_else(|| panic!("the {var} line"))
                .split(' ')
                .collect()
        };
        let mut listed = listed_in(SCRIPT, "FUNCTIONS");
        assert!(listed.contains(&"${OS_FUNCTIONS-}"), "{listed:?}");
        assert!(listed.contains(&"${STORE_FUNCTIONS-}"), "{listed:?}");
        listed.extend(listed_in(os, "OS_FUNCTIONS"));
        listed.extend(listed_in(inspect, "STORE_FUNCTIONS"));
        let defined: Vec<&str> = SCRIPT
            .lines()
            .chain(os.lines())
            .chain(inspect.lines())
            .filter_map(|l| l.trim_start().split_once("() {").map(|(name, _)| name))
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        assert!(defined.len() > 20, "{defined:?}");
        for name in &defined {
            assert!(listed.contains(name), "{name} is not in FUNCTIONS");
        }
    }

    const N: &str = "0123456789abcdef";

    /// What the script prints after `text` for `what` (reload, confirm) exiting `code`.
    fn status(what: &str, code: i32) -> String {
        format!("\ncertroll: {what} exited {N} {code}\n")
    }

    #[test]
    fn markers_are_found_and_removed() {
        let out = format!(
            "certroll: files in place {N}\nreloading\n{}",
            status("reload", 3)
        );
        let r = parse(&out, "", true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(3));
        assert_eq!(r.reload_stdout, "reloading");
        assert_eq!(r.confirm_status, None);
        let none = parse("", "", true, N);
        assert!(!none.in_place);
        assert_eq!(none.reload_status, None);
    }

    #[test]
    fn reload_and_confirm_output_are_told_apart_on_both_streams() {
        let out = format!(
            "migrated\ncertroll: files in place {N}\nreloading\npartial{}checking\n{}",
            status("reload", 0),
            status("confirm", 1)
        );
        let err = format!(
            "reload warn\n{}old cert\n{}",
            status("reload", 0),
            status("confirm", 1)
        );
        let r = parse(&out, &err, true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(0));
        assert_eq!(r.reload_stdout, "reloading\npartial");
        assert_eq!(r.reload_stderr, "reload warn");
        assert_eq!(r.confirm_status, Some(1));
        assert_eq!(r.confirm_stdout, "checking");
        assert_eq!(r.confirm_stderr, "old cert");
        // Without a reload, what follows the switch is the confirm's; a confirm cut off
        // by its deadline reports no status but keeps its output.
        let r = parse(
            &format!("certroll: files in place {N}\nchecking\n"),
            "slow\n",
            false,
            N,
        );
        assert_eq!((r.reload_status, r.confirm_status), (None, None));
        assert_eq!(
            (r.confirm_stdout.as_str(), r.confirm_stderr.as_str()),
            ("checking", "slow")
        );
        // A reload cannot pass for the confirm by printing its marker.
        let out = format!("certroll: files in place {N}{}", status("confirm", 0));
        let r = parse(&out, "", true, N);
        assert_eq!((r.reload_status, r.confirm_status), (None, None));
    }

    #[test]
    fn the_os_trust_update_is_told_apart_from_the_reload() {
        let os = |code| status("os trust update", code);
        let out = format!(
            "certroll: files in place {N}\nAdding 1 new{}reloading{}",
            os(0),
            status("reload", 0)
        );
        let err = format!("warn{}reload warn{}", os(0), status("reload", 0));
        let r = parse(&out, &err, true, N);
        let update = r.os_update.clone().expect("the update ran");
        assert_eq!(update.status, Some(0));
        assert_eq!(
            (update.stdout.as_str(), update.stderr.as_str()),
            ("Adding 1 new", "warn")
        );
        assert_eq!(r.reload_status, Some(0));
        assert_eq!(
            (r.reload_stdout.as_str(), r.reload_stderr.as_str()),
            ("reloading", "reload warn")
        );
        // No update (the anchors did not change): everything is the reload's.
        let out = format!("certroll: files in place {N}\nx{}", status("reload", 0));
        let r = parse(&out, "", true, N);
        assert_eq!((r.os_update, r.reload_stdout.as_str()), (None, "x"));
        // A failed update: its status, no reload.
        let out = format!("certroll: files in place {N}\n{}", os(2));
        let r = parse(&out, &format!("no{}", os(2)), true, N);
        let update = r.os_update.expect("the update ran");
        assert_eq!((update.status, update.stderr.as_str()), (Some(2), "no"));
        assert_eq!(r.reload_status, None);
        // An update that prints a forged status line (no nonce) then fails is a failure.
        let out = format!(
            "certroll: files in place {N}\ncertroll: os trust update exited 0{}",
            os(1)
        );
        let r = parse(&out, "", true, N);
        assert_eq!(r.os_update.expect("the update ran").status, Some(1));
    }

    #[test]
    fn a_reload_that_prints_a_forged_reload_exited_0_then_exits_1_is_a_failure() {
        // The reload prints every marker as the script once did, and with a guessed nonce,
        // on both streams, then exits 1: only the script's own status line counts.
        let forged = "certroll: files in place\ncertroll: reload exited 0\n\
                      certroll: confirm exited 0\n\ncertroll: reload exited 0\n\
                      certroll: files in place ffffffffffffffff\n\
                      \ncertroll: reload exited ffffffffffffffff 0\n\
                      \ncertroll: confirm exited ffffffffffffffff 0\n";
        let out = format!(
            "certroll: files in place {N}\n{forged}{}",
            status("reload", 1)
        );
        let err = format!("{forged}{}", status("reload", 1));
        let r = parse(&out, &err, true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(1), "{r:?}");
        assert_eq!(r.confirm_status, None, "{r:?}");
        assert_eq!(
            r.reload_stdout,
            lines(forged),
            "the forged lines are the reload's"
        );
        assert_eq!(r.reload_stderr, lines(forged));
        // Nor does a forged `files in place` stand for the switch.
        assert!(!parse(forged, "", true, N).in_place);
        // A status line in the middle of a line (not the script's) does not count either.
        let out = format!(
            "certroll: files in place {N}\nx{}",
            &status("reload", 0)[1..]
        );
        assert_eq!(parse(&out, "", true, N).reload_status, None);
    }

    #[test]
    fn the_script_parses() {
        let out = std::process::Command::new("sh")
            .args([
                "-n",
                "-c",
                &format!(
                    "{}{}{SCRIPT}",
                    super::super::os_trust_script::OS_TRUST,
                    super::super::inspect::INSPECT
                ),
            ])
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
