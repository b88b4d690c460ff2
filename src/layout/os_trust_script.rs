//! The part of the node-side script that installs a CA's anchors into the operating
//! system's trust store (`os_trust`, docs/layout.md#the-operating-systems-trust-store).
//!
//! Kept apart from [`super::script::SCRIPT`] (one concept per file) and sent in front of
//! it, as shell functions the apply script calls: `os_check` before anything changes (the
//! update command is on the node; the anchors directory belongs to root or to the writing
//! user, no other user can change it, and it is no symbolic link), `os_stage` reads the
//! anchors from standard input into the store, `os_install` puts them in place after the
//! switch (under the store's lock), and `os_update` runs the update command after it, before
//! the reload, reporting [`OS_UPDATE_EXITED`], the step's nonce and its status on both
//! streams, on a line of its own, like the reload's (nothing the command prints can pass
//! for it).
//!
//! A file `.os-trust-pending` in the store is made before the first change to the anchors
//! directory and removed once the update command exited 0, so that a script killed between
//! the two (kill -9, a lost connection) has its update run again by the resumed step even
//! though the files are already in place.
//!
//! Exit code 19: the update command is missing (nothing changed).

/// Marker before the OS update command's exit status (on stdout and on stderr).
pub const OS_UPDATE_EXITED: &str = "certroll: os trust update exited ";

/// Shell functions of the OS trust store, sent before the main script.
pub const OS_TRUST: &str = r#"
# Its functions, hidden from the node's commands with the main script's (node_command).
OS_FUNCTIONS="os_check os_stage os_install mark os_update ostrust"
# os_check: before anything changes, with osdir and osupdate set (osdir `-`: no os_trust).
# Sets osphys, the anchors directory's physical path.
os_check() {
  [ "$osdir" != - ] || return 0
  set -f; set -- $osupdate; set +f
  [ $# -gt 0 ] || fail 19 "the OS trust update command of node $node is empty"
  command -v -- "$1" >/dev/null 2>&1 \
    || fail 19 "the OS trust update command $1 is not installed on node $node (install the distribution's ca-certificates package, or set os_trust_update)"
  case $osdir in /*) ;; *) fail 19 "the OS trust directory $osdir of node $node is not an absolute path" ;; esac
  [ ! -L "$osdir" ] || fail 16 "the OS trust directory $osdir is a symbolic link: certroll never follows one there"
  if [ ! -d "$osdir" ]; then
    out=$(umask 022 && mkdir -p -- "$osdir" 2>&1) || fail 10 "${out:-cannot create $osdir}"
  fi
  safe "$osdir" || fail 16 "the OS trust directory $osdir is not safe: $why, so another user could plant or swap an anchor there"
  osphys=$phys
}

# os_stage: the anchors (osfiles: NAME:SIZE words) from standard input into .tmp-os-TAG.
os_stage() {
  [ "$osdir" != - ] || return 0
  os=.tmp-os-$tag
  rm -rf -- "$os"
  run mkdir -m 0700 -- "$os"
  trap 'rm -rf -- "$t" "$os"' EXIT
  set -f
  for e in $osfiles; do
    n=${e%%:*} z=${e#*:}
    case $n in
      *[!A-Za-z0-9._-]*) fail 10 "bad anchor file name $n" ;;
      certroll-"$ca"-anchor-$h16.crt) ;;
      *) fail 10 "bad anchor file name $n" ;;
    esac
    case $z in ''|*[!0-9]*) fail 10 "bad anchor size $z" ;; esac
    head -c "$z" > "$os/$n" || fail 10 "cannot write $store/$os/$n"
  done
  set +f
}

# os_install: the staged anchors into the anchors directory (each written beside its name,
# mode 0644, then renamed over it: a link planted there is replaced, never followed), the
# certroll files of this CA that are no longer wanted removed; osch set when the update
# command must run (something changed, or an earlier script changed it and was stopped).
os_install() {
  osch=
  [ "$osdir" != - ] || return 0
  [ ! -f .os-trust-pending ] || osch=1
  mark() { [ -n "$osch" ] || { : > .os-trust-pending || fail 10 "cannot write $store/.os-trust-pending"; osch=1; }; }
  for f in "$os"/*; do
    [ -f "$f" ] || continue
    n=${f##*/} dst=$osphys/${f##*/}
    # Kept when it holds the same bytes with mode 0644 (sha256sum: coreutils, no cmp needed).
    if [ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(stat -c %a -- "$dst")" = 644 ] \
        && [ "$(sha256sum < "$f")" = "$(sha256sum < "$dst")" ]; then continue; fi
    mark
    tmp=$osphys/.certroll-tmp-$tag
    rm -f -- "$tmp"
    (umask 022 && cat -- "$f" > "$tmp") || fail 10 "cannot write $tmp"
    run chmod -- 0644 "$tmp"
    run mv -T -f -- "$tmp" "$dst"
  done
  for g in "$osphys"/certroll-"$ca"-anchor-*.crt; do
    { [ -e "$g" ] || [ -L "$g" ]; } || continue
    case ${g##*/} in certroll-"$ca"-anchor-$h16.crt) ;; *) continue ;; esac
    [ -e "$os/${g##*/}" ] || { mark; run rm -f -- "$g"; }
  done
  rm -rf -- "$os"
}

# os_update: the update command, when os_install changed something; reports its status.
os_update() {
  [ -n "$osch" ] || return 0
  node_command "$osupdate"; c=$?
  report_exit "os trust update" "$c"
  [ "$c" != 0 ] || rm -f .os-trust-pending
  return "$c"
}

# ostrust STORE FALLBACK CA NODE OSDIR OSUPDATE OSFILES MARKER: the anchors alone (a resumed
# step whose files were in place already), then the update command if anything changed.
ostrust() {
  enter "$1" "$2" "$3" "$4"
  osdir=$5 osupdate=$6 osfiles=$7 marker=$8
  tag=os-$$-$(date +%s) t=
  claim
  os_check
  os_stage
  IFS= read -r end || end=
  nonce=${end#"$marker "}
  case $end in "$marker "*) ;; *) fail 12 "the file data arrived incomplete" ;; esac
  case $nonce in ''|*[!0-9a-f]*) fail 12 "the file data arrived incomplete" ;; esac
  owned
  os_install
  unlock
  echo "certroll: files in place $nonce"
  os_update || :
}

h16='[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
"#;
