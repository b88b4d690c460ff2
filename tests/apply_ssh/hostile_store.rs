//! A service user that owns its certificate directory, against a routine `apply` through
//! `become = "sudo"` over real sshd: it plants a store of its own whose current version
//! links to a root-only file, and breaks the certificate so that a repair runs. certroll's
//! store lives where that user cannot reach (docs/layout.md, "Threat model"), the repair
//! writes there, and the root-only file is copied nowhere.

use std::fs;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::support::cli::Control;
use crate::support::inventory::{FleetInventory, CERT};
use crate::support::users::{self, ensure_user, OPERATOR, SERVICE};
use crate::{assert_verify_ok, on_node};

const TLS_DIR: &str = "/srv/certroll-node/tls";

/// The store certroll keeps, as root, for a certificate directory another user controls.
struct FallbackStore(PathBuf);
impl Drop for FallbackStore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every file under `dir` (links not followed) whose content holds `needle`.
fn holding(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            holding(&p, needle, out);
        } else if m.is_file()
            && fs::read(&p).is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
        {
            out.push(p);
        }
    }
}

#[test]
fn a_service_user_owning_the_certificate_directory_cannot_read_a_root_only_file_through_apply() {
    let (svc_uid, svc_gid) = ensure_user(SERVICE);
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    let node_dir = fleet.node("app1").dir.clone();
    fs::set_permissions(&node_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let tls = on_node(&fleet, "app1", TLS_DIR);
    fs::create_dir_all(&tls).unwrap();
    lchown(&tls, Some(svc_uid), Some(svc_gid)).unwrap();
    let hash = hex::encode(Sha256::digest(TLS_DIR.as_bytes()));
    let fallback = FallbackStore(
        Path::new("/var/lib/certroll/stores").join(format!("internal-{}", &hash[..16])),
    );
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .login_user("app1", OPERATOR)
        .node_key("app1", "become", "sudo")
        .node_key("app1", "owner", SERVICE);
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    assert!(
        fallback.0.join("current").is_symlink(),
        "the store is not in the directory {SERVICE} owns"
    );
    assert!(!tls.join(".certroll-internal").exists());
    assert_eq!(fs::metadata(&fallback.0).unwrap().uid(), 0);

    // The service user plants its own store, a version linking to a root-only file, and
    // points the certificate into it (broken, so that the next routine run repairs it).
    let secret = node_dir.join("secret");
    fs::write(&secret, "ROOT-ONLY-SECRET-4f2a").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let evil = tls.join(".certroll-internal");
    fs::create_dir_all(evil.join("v-evil")).unwrap();
    symlink("/srv/certroll-node/secret", evil.join("v-evil/loot")).unwrap();
    symlink("/srv/certroll-node/secret", evil.join("v-evil/key.pem")).unwrap();
    fs::write(evil.join("v-evil/cert.pem"), "BROKEN").unwrap();
    symlink("v-evil", evil.join("current")).unwrap();
    let cert = on_node(&fleet, "app1", CERT);
    fs::remove_file(&cert).unwrap();
    symlink(".certroll-internal/current/cert.pem", &cert).unwrap();
    for p in [
        evil.join("v-evil/loot"),
        evil.join("v-evil/key.pem"),
        evil.join("v-evil/cert.pem"),
        evil.join("v-evil"),
        evil.join("current"),
        evil.clone(),
        cert.clone(),
    ] {
        lchown(&p, Some(svc_uid), Some(svc_gid)).unwrap();
    }

    let run = ctl.apply_ok(&[]);
    let mut copies = Vec::new();
    holding(&node_dir, b"ROOT-ONLY-SECRET-4f2a", &mut copies);
    holding(&fallback.0, b"ROOT-ONLY-SECRET-4f2a", &mut copies);
    copies.retain(|p| p != &secret);
    assert!(
        copies.is_empty(),
        "the secret was copied to {copies:?}\n{run}"
    );
    let target = fs::read_link(&cert).unwrap();
    assert!(
        target.starts_with(&fallback.0),
        "the repaired certificate points into certroll's store, not {}\n{run}",
        target.display()
    );
    assert_verify_ok(&ctl);
}
