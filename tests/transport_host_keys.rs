//! Host-key and authentication checks of the SSH transport against real sshd nodes:
//! unknown keys are refused with a usable hint, `accept_new` records only unknown
//! keys, changed keys are never accepted, hashed known_hosts entries match, and a
//! foreign client key is an authentication error.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use certroll::inventory::SshSettings;
use certroll::transport::ssh::SshTransport;
use certroll::transport::{ErrorKind, HostKeyPolicy, Transport};
use support::Fleet;

const STRICT: HostKeyPolicy = HostKeyPolicy { accept_new: false };
const SECS: Duration = Duration::from_secs(20);

fn host_mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("stat on host")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn unknown_host_key_is_refused_with_fingerprint_and_hint() {
    let fleet = Fleet::start(&["app1"]);
    let empty = fleet.dir().join("empty_known_hosts");
    let settings = SshSettings {
        known_hosts: empty.clone(),
        ..fleet.settings("app1")
    };
    let err = SshTransport::connect("app1", &settings, STRICT)
        .err()
        .expect("unknown host must be refused");
    assert_eq!(err.kind, ErrorKind::HostKeyUnknown);
    let text = err.to_string();
    let port = fleet.node("app1").port;
    for needle in [
        format!("[127.0.0.1]:{port}"),
        fleet.host_fingerprint("app1"),
        "ssh-keyscan".into(),
        "node app1".into(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in: {text}");
    }
    assert!(!empty.exists(), "a refused key must not be written");
}

#[test]
fn accept_new_adds_the_key_then_connects_strictly() {
    let fleet = Fleet::start(&["app1"]);
    let fresh = fleet.dir().join("sub/known_hosts");
    let settings = SshSettings {
        known_hosts: fresh.clone(),
        ..fleet.settings("app1")
    };
    let t = SshTransport::connect("app1", &settings, HostKeyPolicy { accept_new: true }).unwrap();
    assert!(t.exec("true", SECS).unwrap().success());
    let text = fs::read_to_string(&fresh).unwrap();
    assert_eq!(
        text,
        format!(
            "[127.0.0.1]:{} {}\n",
            fleet.node("app1").port,
            fleet.host_public_key("app1")
        )
    );
    assert_eq!(host_mode(&fresh), 0o600);
    SshTransport::connect("app1", &settings, STRICT).expect("the accepted key is now known");
}

#[test]
fn changed_host_key_is_never_accepted() {
    let fleet = Fleet::start(&["app1"]);
    let old = fleet.host_fingerprint("app1");
    fleet.change_host_key("app1");
    let new = fleet.host_fingerprint("app1");
    assert_ne!(old, new);
    let before = fs::read(fleet.known_hosts()).unwrap();
    for policy in [STRICT, HostKeyPolicy { accept_new: true }] {
        let err = SshTransport::connect("app1", &fleet.settings("app1"), policy)
            .err()
            .expect("changed key refused");
        assert_eq!(err.kind, ErrorKind::HostKeyChanged);
        let text = err.to_string();
        assert!(text.contains(&old) && text.contains(&new), "{text}");
    }
    assert_eq!(
        fs::read(fleet.known_hosts()).unwrap(),
        before,
        "known_hosts must not change"
    );
}

#[test]
fn hashed_known_hosts_entries_are_accepted() {
    let fleet = Fleet::start(&["app1"]);
    let hashed = fleet.dir().join("hashed_known_hosts");
    fs::copy(fleet.known_hosts(), &hashed).unwrap();
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .expect("run ssh-keygen -H");
    assert!(status.status.success(), "ssh-keygen -H failed");
    let text = fs::read_to_string(&hashed).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "not hashed: {text}"
    );
    let settings = SshSettings {
        known_hosts: hashed,
        ..fleet.settings("app1")
    };
    let t = SshTransport::connect("app1", &settings, STRICT).expect("hashed entry must match");
    assert!(t.exec("true", SECS).unwrap().success());
}

#[test]
fn wrong_key_is_an_auth_error() {
    let fleet = Fleet::start(&["app1"]);
    let other = fleet.dir().join("other_id");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let settings = SshSettings {
        identity_file: Some(other),
        ..fleet.settings("app1")
    };
    let err = SshTransport::connect("app1", &settings, STRICT)
        .err()
        .expect("foreign key refused");
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("other_id"), "{err}");
}
