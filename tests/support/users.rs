//! Real unprivileged accounts for the sshd fleet: an operator who logs in as himself (with or
//! without a sudoers rule) and a service account that owns files (like `postgres`).
//!
//! Accounts live in the machine's /etc/passwd, shared by every node of a fleet (only mounts
//! and PIDs are per node). Creating them is idempotent and serialized: tests run in
//! parallel and `useradd` locks /etc/passwd. sshd (with `UsePAM no`) refuses a locked
//! account, so the password field is set to `*` (no password, not locked). The fleet's
//! `authorized_keys` is read by sshd *as the user*: [`allow_login`] opens the path to it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use super::fleet::Fleet;

/// The operator account the sudo tests log in as.
pub const OPERATOR: &str = "certroll-op";
/// An operator whose sudo rule asks for a password.
pub const OPERATOR_PW: &str = "certroll-oppw";
/// A service account that owns files (like `postgres`).
pub const SERVICE: &str = "certroll-svc";

static USERS: Mutex<()> = Mutex::new(());

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), text)
}

/// Creates `name` (home directory, `/bin/sh`, unlocked, no password) unless it exists;
/// returns its uid and gid.
pub fn ensure_user(name: &str) -> (u32, u32) {
    let _guard = USERS.lock().unwrap_or_else(|p| p.into_inner());
    if !run(Command::new("id").arg("-u").arg(name)).0 {
        let mut last = String::new();
        let created = (0..20).any(|_| {
            let (ok, err) = run(Command::new("useradd").args(["-m", "-s", "/bin/sh", name]));
            last = err;
            // Another process may hold /etc/passwd's lock, or may have created the user.
            ok || run(Command::new("id").arg("-u").arg(name)).0 || {
                thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(created, "useradd {name} failed: {last}");
    }
    let (ok, err) = run(Command::new("usermod").args(["-p", "*", name]));
    assert!(ok, "usermod -p '*' {name}: {err}");
    (id(name, "-u"), id(name, "-g"))
}

fn id(name: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, name])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {name} gave no number"))
}

/// A sudoers.d rule for `user`: everything as root, without password when `nopasswd`.
pub fn sudoers(user: &str, nopasswd: bool) {
    let path = format!("/etc/sudoers.d/certroll-test-{user}");
    let tag = if nopasswd { "NOPASSWD: " } else { "" };
    let text = format!("{user} ALL=(root) {tag}ALL\n");
    let _guard = USERS.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = format!("{path}.tmp");
    fs::write(&tmp, &text).unwrap_or_else(|e| panic!("write {tmp}: {e}"));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o440)).expect("chmod sudoers");
    let (ok, err) = run(Command::new("visudo").args(["-c", "-f", &tmp]));
    assert!(ok, "visudo refused {tmp}: {err}");
    fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {tmp}: {e}"));
}

/// Lets unprivileged users log in with the fleet's client key: sshd reads the fleet's
/// `authorized_keys` as the user, so its directories must be traversable (the private
/// identity stays 0600, root's).
pub fn allow_login(fleet: &Fleet) {
    let client = fleet.identity().parent().expect("identity has a directory");
    for dir in [fleet.dir(), client] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    }
    let keys = client.join("authorized_keys");
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o644)).expect("chmod authorized_keys");
}

/// A fleet of `names` that [`OPERATOR`] logs in to and becomes root on with a NOPASSWD
/// sudoers rule, root's shell start-up kept quiet: how every `become = "sudo"` test starts.
pub fn sudo_fleet(names: &[&str]) -> Fleet {
    ensure_user(OPERATOR);
    sudoers(OPERATOR, true);
    let fleet = Fleet::start(names);
    quiet_root_shells(&fleet);
    allow_login(&fleet);
    fleet
}

/// `chown -R user: path` (user's primary group).
pub fn chown(path: &Path, user: &str) {
    let (ok, err) = run(Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path));
    assert!(ok, "chown {user} {}: {err}", path.display());
}

/// `(uid, gid)` of a file (following symlinks).
pub fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// Hides root's `~/.bashrc` inside every node's own mount namespace (an empty file is
/// bind-mounted over it; the host's file is untouched). sshd runs each command through the
/// login shell, which reads it; a heavy one (pyenv's rehash waits up to 60 s for a lock
/// that every test's shells share) would make a step's time depend on unrelated tests.
pub fn quiet_root_shells(fleet: &Fleet) {
    let bashrc = Path::new("/root/.bashrc");
    if !bashrc.exists() {
        return;
    }
    let empty = fleet.dir().join("empty-bashrc");
    fs::write(&empty, "").expect("write an empty bashrc");
    for name in fleet.names() {
        let port = fleet.node(&name).port;
        let out = Command::new("ss")
            .args(["-Hltnp", &format!("sport = :{port}")])
            .output()
            .expect("run ss (iproute2)");
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("no process listens on port {port}: {text}"))
            .to_string();
        let (ok, err) = run(Command::new("nsenter")
            .args(["-t", &pid, "-m", "mount", "--bind"])
            .arg(&empty)
            .arg(bashrc));
        assert!(ok, "hide /root/.bashrc on node {name}: {err}");
    }
}
