//! The part of the node-side script that keeps the store safe to use on a node that is not
//! trusted (docs/layout.md, "Threat model"): `safe` checks that a directory and every one
//! above it belong to root or to the writing user with no other user able to change them,
//! `pick` and `enter` find the node's store under that rule (or move it to the fallback
//! store directory), make sure it is no symbolic link, belongs to the writing user and
//! names the node it serves, `lock`/`unlock`, `claim` and `owned` keep a superseded script
//! (kill -9 and resume) from changing anything more, and `trusted` tells whether a path
//! leads to a regular file nobody else could have planted.
//!
//! Kept apart from [`super::script::SCRIPT`] (one concept per file) and sent in front of
//! it, as shell functions the other parts call.

/// The store's safety functions, sent before the main script.
pub const SAFETY: &str = r#"
# Its functions, hidden from the node's commands with the main script's (node_command).
SAFETY_FUNCTIONS="safe pick enter lock unlock claim owned trusted"
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
"#;
