//! known_hosts checking (plain and hashed entries) and the opt-in first-contact write.
//!
//! certroll never trusts a host key it cannot check, so it reads OpenSSH's
//! `known_hosts` format itself instead of relying on libssh2's partial support:
//! plain host lists (`host`, `[host]:port`, comma lists, `*`/`?` wildcards and `!`
//! negations), hashed entries (`|1|salt|hmac-sha1`), comments, and markers
//! (`@revoked` keys are refused, `@cert-authority` lines are skipped because
//! certificate host keys are not supported). Malformed lines are skipped, as OpenSSH does.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Serializes first-contact appends from the threads of one process.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Size and modification time of a file as parsed (`None`: it did not exist).
type Stamp = Option<(u64, Option<std::time::SystemTime>)>;

/// known_hosts files parsed by [`KnownHosts::load_cached`], with their stamp then.
type Parsed = HashMap<PathBuf, (Stamp, Arc<KnownHosts>)>;
static LOADED: LazyLock<Mutex<Parsed>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The parsed contents of one known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// Comma-separated patterns, possibly negated with `!`.
    Plain(Vec<String>),
    /// `|1|base64(salt)|base64(hmac-sha1(salt, name))`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
    /// 1-based line number, for messages.
    line: usize,
}

/// The result of checking a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// An entry for this host holds exactly this key.
    Match,
    /// No entry names this host.
    Unknown,
    /// Entries name this host, none holds this key. `known` lists them as
    /// `(line, key type, SHA256 fingerprint)`.
    Changed { known: Vec<(usize, String, String)> },
    /// The key is listed `@revoked` (at this line).
    Revoked { line: usize },
}

impl KnownHosts {
    /// Reads a known_hosts file; a missing file is an empty list.
    pub fn load(path: &Path) -> io::Result<KnownHosts> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(KnownHosts::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(e) => Err(e),
        }
    }

    /// [`KnownHosts::load`], parsed once per process while the file stays as it was (same
    /// size, same modification time): a run connects to every node of the fleet, and
    /// parsing a file of one line per node for every connection costs time quadratic in
    /// the nodes (docs/performance.md, "A thousand nodes").
    pub fn load_cached(path: &Path) -> io::Result<Arc<KnownHosts>> {
        let stamp = match std::fs::metadata(path) {
            Ok(m) => Some((m.len(), m.modified().ok())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut cache = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, parsed)) = cache.get(path) {
            if stamp.is_some() && *seen == stamp {
                return Ok(Arc::clone(parsed));
            }
        }
        let parsed = Arc::new(KnownHosts::load(path)?);
        cache.insert(path.to_path_buf(), (stamp, Arc::clone(&parsed)));
        Ok(parsed)
    }

    /// Parses known_hosts text, skipping blank, comment and malformed lines.
    pub fn parse(text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| parse_line(line, i + 1))
            .collect();
        KnownHosts { entries }
    }

    /// Key types (e.g. `ssh-ed25519`) listed for `host:port`, in file order, without
    /// duplicates; revoked and certificate-authority lines do not count.
    pub fn key_types_for(&self, host: &str, port: u16) -> Vec<String> {
        let name = lookup_name(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in self.entries.iter().filter(|e| e.marker == Marker::None) {
            if e.hosts.matches(&name) && !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    /// Checks the key blob (SSH wire format) presented by `host:port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyStatus {
        let name = lookup_name(host, port);
        let mut known = Vec::new();
        for e in self.entries.iter().filter(|e| e.hosts.matches(&name)) {
            match e.marker {
                Marker::Revoked if e.key == key => return HostKeyStatus::Revoked { line: e.line },
                Marker::None if e.key == key => return HostKeyStatus::Match,
                Marker::None => known.push((e.line, e.key_type.clone(), fingerprint(&e.key))),
                Marker::Revoked | Marker::CertAuthority => {}
            }
        }
        if known.is_empty() {
            HostKeyStatus::Unknown
        } else {
            HostKeyStatus::Changed { known }
        }
    }
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Plain(patterns) => {
                let mut positive = false;
                for p in patterns {
                    if let Some(neg) = p.strip_prefix('!') {
                        if wildcard_match(&neg.to_ascii_lowercase(), name) {
                            return false;
                        }
                    } else if wildcard_match(&p.to_ascii_lowercase(), name) {
                        positive = true;
                    }
                }
                positive
            }
        }
    }
}

fn parse_line(line: &str, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    // A line whose declared type disagrees with its blob is corrupt: skip it.
    if key_type_of_blob(&key)? != key_type {
        return None;
    }
    Some(Entry {
        marker,
        hosts,
        key_type,
        key,
        line: number,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let salt = STANDARD.decode(salt).ok()?;
        let hash = STANDARD.decode(hash).ok()?;
        return Some(Hosts::Hashed { salt, hash });
    }
    if field.starts_with('|') {
        return None;
    }
    Some(Hosts::Plain(
        field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
    ))
}

/// OpenSSH's glob: `*` any run, `?` any one character.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The name known_hosts files use for a host: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` + unpadded base64 of its SHA-256.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The key type named inside an SSH wire-format key blob (its first string).
pub fn key_type_of_blob(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let name = key.get(4..4 + len)?;
    std::str::from_utf8(name).ok().map(String::from)
}

/// The libssh2 host-key method preference list for key types found in known_hosts.
/// An `ssh-rsa` key may be offered with any of the RSA signature algorithms.
pub fn hostkey_methods(types: &[String]) -> Vec<String> {
    let mut methods: Vec<String> = Vec::new();
    for t in types {
        let expanded: Vec<&str> = match t.as_str() {
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => vec![other],
        };
        for m in expanded {
            if !methods.iter().any(|x| x == m) {
                methods.push(m.to_string());
            }
        }
    }
    methods
}

/// Appends `host:port key` to a known_hosts file, creating it (0600) and its directory
/// if needed. Adds nothing when an entry for this host already holds this key.
pub fn append(path: &Path, host: &str, port: u16, key: &[u8]) -> io::Result<()> {
    let key_type = key_type_of_blob(key)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed host key"))?;
    // A poisoned lock only means another append panicked; the file is still consistent.
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let current = KnownHosts::load(path)?;
    if current.check(host, port, key) == HostKeyStatus::Match {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let needs_newline = match std::fs::read(path) {
        Ok(bytes) => bytes.last().is_some_and(|&b| b != b'\n'),
        Err(_) => false,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let line = format!(
        "{}{} {} {}\n",
        if needs_newline { "\n" } else { "" },
        lookup_name(host, port),
        key_type,
        STANDARD.encode(key)
    );
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_parsed_once_per_run_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let k1 = blob("ssh-ed25519", b"one");
        std::fs::write(&path, format!("{}\n", line("[h]:2022", &k1))).unwrap();
        let a = KnownHosts::load_cached(&path).unwrap();
        let b = KnownHosts::load_cached(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "an unchanged file is not parsed again");
        assert_eq!(b.check("h", 2022, &k1), HostKeyStatus::Match);
        // A first contact appends: the next connection sees the new entry.
        let k2 = blob("ssh-ed25519", b"two");
        append(&path, "g", 2022, &k2).unwrap();
        let c = KnownHosts::load_cached(&path).unwrap();
        assert_eq!(c.check("g", 2022, &k2), HostKeyStatus::Match);
        assert_eq!(c.check("h", 2022, &k1), HostKeyStatus::Match);
    }

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(&(body.len() as u32).to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    fn line(hosts: &str, key: &[u8]) -> String {
        format!(
            "{hosts} {} {}",
            key_type_of_blob(key).unwrap(),
            STANDARD.encode(key)
        )
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash))
    }

    #[test]
    fn plain_port_and_comma_lists_match() {
        let k1 = blob("ssh-ed25519", b"one");
        let k2 = blob("ecdsa-sha2-nistp256", b"two");
        let text = format!(
            "# comment\n\n{}\n{}\n",
            line("web,[10.0.0.1]:2222", &k1),
            line("db.example", &k2)
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("10.0.0.1", 2222, &k1), HostKeyStatus::Match);
        assert_eq!(kh.check("WEB", 22, &k1), HostKeyStatus::Match);
        assert_eq!(kh.check("db.example", 22, &k2), HostKeyStatus::Match);
        assert_eq!(kh.check("10.0.0.1", 22, &k1), HostKeyStatus::Unknown);
        assert_eq!(kh.check("db.example", 2200, &k2), HostKeyStatus::Unknown);
        assert_eq!(
            kh.key_types_for("10.0.0.1", 2222),
            vec!["ssh-ed25519".to_string()]
        );
    }

    #[test]
    fn changed_key_is_reported_with_the_known_fingerprint() {
        let old = blob("ssh-ed25519", b"old");
        let new = blob("ssh-ed25519", b"new");
        let kh = KnownHosts::parse(&format!("\n{}\n", line("[h]:2022", &old)));
        match kh.check("h", 2022, &new) {
            HostKeyStatus::Changed { known } => {
                assert_eq!(
                    known,
                    vec![(2, "ssh-ed25519".to_string(), fingerprint(&old))]
                );
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn hashed_entries_match_only_their_host() {
        let k = blob("ssh-ed25519", b"k");
        let text = line(&hashed("[127.0.0.1]:4022", b"0123456789abcdefghij"), &k);
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("127.0.0.1", 4022, &k), HostKeyStatus::Match);
        assert_eq!(kh.check("127.0.0.1", 4023, &k), HostKeyStatus::Unknown);
        assert_eq!(
            kh.key_types_for("127.0.0.1", 4022),
            vec!["ssh-ed25519".to_string()]
        );
    }

    #[test]
    fn markers_wildcards_and_negations() {
        let good = blob("ssh-ed25519", b"good");
        let bad = blob("ssh-ed25519", b"bad");
        let ca = blob("ssh-ed25519", b"ca");
        let text = [
            line("*.example,!secret.example", &good),
            format!("@revoked {}", line("*", &bad)),
            format!("@cert-authority {}", line("*.example", &ca)),
            "@unknown-marker host ssh-ed25519 AAAA".to_string(),
            "broken line".to_string(),
            "host ssh-ed25519 not-base64!!".to_string(),
        ]
        .join("\n");
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("a.example", 22, &good), HostKeyStatus::Match);
        assert_eq!(
            kh.check("secret.example", 22, &good),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            kh.check("a.example", 22, &bad),
            HostKeyStatus::Revoked { line: 2 }
        );
        // A CA line never vouches for a plain key.
        assert!(matches!(
            kh.check("a.example", 22, &ca),
            HostKeyStatus::Changed { .. }
        ));
        assert_eq!(
            kh.key_types_for("a.example", 22),
            vec!["ssh-ed25519".to_string()]
        );
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("a?c", "abcd"));
    }

    #[test]
    fn fingerprint_matches_openssh_format() {
        // `ssh-keygen -lf` prints SHA256:jcPTXrafJcj+MepaRyWw1YAe2vVpEWH7IMGP3mdcnmY for this key.
        let key = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIMJW9zxQR9P/sW1ms+i4ZffmKeqIxetKePoOO4ltLyiX")
            .unwrap();
        assert_eq!(
            fingerprint(&key),
            "SHA256:jcPTXrafJcj+MepaRyWw1YAe2vVpEWH7IMGP3mdcnmY"
        );
        assert_eq!(key_type_of_blob(&key).as_deref(), Some("ssh-ed25519"));
    }

    #[test]
    fn append_creates_0600_and_does_not_duplicate() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let k = blob("ssh-ed25519", b"k");
        append(&path, "10.1.1.1", 2222, &k).unwrap();
        append(&path, "10.1.1.1", 2222, &k).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("[10.1.1.1]:2222 ssh-ed25519 "));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            KnownHosts::load(&path).unwrap().check("10.1.1.1", 2222, &k),
            HostKeyStatus::Match
        );
        assert_eq!(
            hostkey_methods(&["ssh-rsa".into(), "ssh-ed25519".into()]).len(),
            4
        );
    }
}
