//! Opening a node's keystore or combined PEM on the node itself, for `verify`, when its key
//! was made there (`key_source = "node"`): the private key must never cross the transport,
//! so the file script's `inspect` command opens the store on the node and prints only its
//! public material, the certificates in order (leaf first) and the public key of the
//! private key it holds (`openssl pkey -pubout`). `verify` then checks that material as it
//! checks a store it opened itself ([`crate::stores::StoreContents::public_key`]).
//!
//! The store's password comes from the node's `store_password_file`, read by the script's
//! `readpw` with the same rules as everywhere else, and reaches `openssl pkcs12` through a
//! file in a 0700 directory, never a command line; the decrypted store stays in a shell
//! variable of that one script and is never written to a file. A FIFO or a device in the
//! store's place is not opened (it would hold openssl forever), a store larger than 1 MiB
//! neither, and every openssl run has a deadline. A store that a wrong password, a
//! corrupt file or a bad password file keeps shut comes back as a state naming why, which
//! `verify` reports as a finding naming the file: it never stops `verify`.
//!
//! Kept apart from [`super::script::SCRIPT`] (one concept per file) and sent in front of
//! it with the other pieces, like [`super::os_trust_script`].

use super::{command, failure, WRITE_TIMEOUT};
use crate::inventory::Node;
use crate::materials::FileKind;
use crate::stores::StoreContents;
use crate::transport::Transport;

/// The line before the store's public material.
pub const STORE_FOLLOWS: &str = "certroll: store follows";
/// The start of the line that says why the store does not open.
pub const UNOPENED: &str = "certroll: unopened ";

/// The shell function of `inspect`, sent before the main script.
pub const INSPECT: &str = r#"
# Its functions, hidden from the node's commands with the main script's (node_command).
STORE_FUNCTIONS="inspect shut pubcerts"
# shut WHY: the store does not open, for WHY (a state, not a failure of the script).
shut() { printf 'certroll: unopened %s\n' "$*"; exit 0; }
# pubcerts KIND LEAF: the certificates of $dec, those of the leaf (LEAF 1) or the others
# (LEAF 0), in order: in a PKCS#12 dump the leaf is the one whose bag has the key's
# localKeyID, in a combined PEM the first.
pubcerts() {
  printf '%s\n' "$dec" | awk -v kind="$1" -v want="$2" '
    { sub(/\r$/, "") }
    /^Bag Attributes/ { id = 0 }
    /^ *localKeyID:/ { id = 1 }
    /^-----BEGIN CERTIFICATE-----$/ { on = 1; buf = "" }
    on { buf = buf $0 "\n" }
    /^-----END CERTIFICATE-----$/ {
      on = 0; n++
      leaf = (kind == "pem") ? (n == 1) : id
      if (leaf == want) printf "%s", buf
      id = 0
    }'
}
# inspect KIND PATH PWFILE: the public material of the store at PATH, opened here (its key
# never leaves the node): `absent`; or `certroll: unopened WHY`; or `certroll: store
# follows`, its certificates (PEM, leaf first) and the public key of its private key.
# KIND pkcs12 (a keystore, opened with the password of PWFILE, read by readpw) or pem (a
# combined PEM, PWFILE -). The decrypted store is kept in a shell variable only.
inspect() {
  command -v openssl >/dev/null 2>&1 || fail 14 "openssl not found"
  case $2 in /*) f=$2 ;; *) f=$orig/$2 ;; esac
  [ -e "$f" ] || { echo absent; return 0; }
  # A FIFO or a device would hold openssl forever: only a regular file is read.
  [ -f "$f" ] || shut "it is not a regular file"
  z=$(stat -L -c '%s' -- "$f") || shut "cannot read its size"
  [ "$z" -le 1048576 ] || shut "it is larger than 1 MiB, too large for a store"
  case $1 in
    pem)
      dec=$(timeout 20 head -c 1048576 -- "$f") || shut "cannot read it"
      ;;
    pkcs12)
      [ "$3" != - ] || shut "it has no store_password_file to open it with"
      readpw "$3"
      pd=$(mktemp -d) || fail 10 "cannot make a temporary directory to open $f"
      trap 'rm -rf -- "$pd"' EXIT
      (umask 077 && printf '%s\n' "$out" > "$pd/pass") || fail 10 "cannot write $pd/pass"
      out=
      # OpenSSL 3 opens RC2 and other legacy algorithms only with -legacy (which older
      # versions lack): tried without first, then with it.
      if ! dec=$(timeout 20 openssl pkcs12 -in "$f" -nodes -passin "file:$pd/pass" 2>"$pd/err"); then
        if grep -qi 'mac verify' "$pd/err"; then
          rm -rf -- "$pd"
          shut "the password does not open it (wrong password, or the file was changed)"
        fi
        dec=$(timeout 20 openssl pkcs12 -legacy -in "$f" -nodes -passin "file:$pd/pass" 2>/dev/null) || {
          why=$(grep -v '^ *$' "$pd/err" | head -n 1 | cut -c 1-200)
          rm -rf -- "$pd"
          shut "it is not a PKCS#12 file openssl can open (${why:-openssl failed})"
        }
      fi
      rm -rf -- "$pd"
      ;;
    *) fail 13 "unknown store kind $1" ;;
  esac
  echo "certroll: store follows"
  pubcerts "$1" 1
  pubcerts "$1" 0
  k=$(printf '%s\n' "$dec" | sed -n '/^-----BEGIN [A-Z ]*PRIVATE[ ]KEY-----/,/^-----END [A-Z ]*PRIVATE[ ]KEY-----/p')
  dec=
  if [ -n "$k" ]; then
    pub=$(printf '%s\n' "$k" | timeout 20 openssl pkey -pubout 2>/dev/null) && printf '%s\n' "$pub"
  fi
  k=
}
"#;

/// Opens the keystore (`kind` [`FileKind::Keystore`]) or combined PEM at `path` on `node`
/// (see the module's text), the keystore with the password in `password_file` there.
/// `None`: there is no such file; `Err`: why it does not open (never the password).
pub fn inspect_store(
    t: &dyn Transport,
    node: &Node,
    kind: FileKind,
    path: &str,
    password_file: Option<&str>,
) -> Option<Result<StoreContents, String>> {
    let form = if kind == FileKind::CombinedPem {
        "pem"
    } else {
        "pkcs12"
    };
    let args = [
        "inspect".to_string(),
        form.to_string(),
        path.to_string(),
        password_file.unwrap_or("-").to_string(),
    ];
    let out = match t.exec_input(&command(&args), &[], WRITE_TIMEOUT) {
        Ok(out) => out,
        Err(e) => return Some(Err(e.to_string())),
    };
    if !out.success() {
        let action = format!("open the {} {path}", kind.label());
        return Some(Err(failure(node, action, &out).to_string()));
    }
    parse(&out.stdout)
}

/// What the script's output says (see [`inspect_store`]).
fn parse(stdout: &str) -> Option<Result<StoreContents, String>> {
    if stdout.trim() == "absent" {
        return None;
    }
    if let Some(why) = stdout.lines().find_map(|l| l.strip_prefix(UNOPENED)) {
        return Some(Err(why.to_string()));
    }
    let Some((_, material)) = stdout.split_once(&format!("{STORE_FOLLOWS}\n")) else {
        return Some(Err("the file script printed nothing about it".into()));
    };
    let blocks = match pem::parse_many(material) {
        Ok(blocks) => blocks,
        Err(e) => return Some(Err(format!("the node printed no usable PEM ({e})"))),
    };
    let mut contents = StoreContents::default();
    for b in blocks {
        match b.tag() {
            "CERTIFICATE" => contents.chain.push(b.into_contents()),
            "PUBLIC KEY" if contents.public_key.is_none() => {
                contents.public_key = Some(b.into_contents());
            }
            _ => {}
        }
    }
    Some(Ok(contents))
}
