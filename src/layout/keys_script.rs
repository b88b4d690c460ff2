//! The part of the node-side script that handles private keys and store passwords on the
//! node: `keygen` makes a leaf key there (`key_source = "node"`) and prints its request,
//! `readpw`/`password` read a store password file through the same untrusted-read rule as
//! any node file (never on a command line), `assemble` makes a keystore there from the new
//! version's certificate and key, and `pubkey` prints the public key of a key file, so that
//! a key made on the node is checked there and never read back.
//!
//! Kept apart from [`super::script::SCRIPT`] (one concept per file) and sent in front of
//! it, as shell functions the other parts call.

/// The key and password functions, sent before the main script.
pub const KEYS: &str = r#"
# Its functions, hidden from the node's commands with the main script's (node_command).
KEY_FUNCTIONS="keygen readpw password assemble pubkey"
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
"#;
