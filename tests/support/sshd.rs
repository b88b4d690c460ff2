//! Process plumbing of the sshd test fleet: preflight checks, key generation, free
//! ports, and spawning each sshd in its own mount and PID namespace.
//!
//! sshds are spawned by one process-lifetime thread with a parent-death signal
//! (`setpriv --pdeathsig`, which follows the spawning *thread*), so they die with the
//! test process even when it is killed, whichever test thread started them.

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;

use super::fleet::REMOTE_ROOT;

const SSHD: &str = "/usr/sbin/sshd";

/// Checks the tools and the machine once per process; panics with what to install or fix.
pub fn preflight() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: install openssh-server: apt-get install -y openssh-server"
        );
        for (tool, package) in [
            ("ssh-keygen", "openssh-client"),
            ("unshare", "util-linux"),
            ("setpriv", "util-linux"),
        ] {
            let found = Command::new(tool)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "{tool} not found: install {package}: apt-get install -y {package}"
            );
        }
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the sshd test fleet needs root (mount namespaces, bind mounts, logging in as root)"
        );
        fs::create_dir_all("/run/sshd")
            .expect("create /run/sshd (sshd privilege separation directory)");
        fs::create_dir_all(REMOTE_ROOT)
            .unwrap_or_else(|e| panic!("create mount point {REMOTE_ROOT}: {e}"));
        unlock_root();
    });
}

/// sshd with `UsePAM no` refuses accounts whose password field starts with `!`.
fn unlock_root() {
    let shadow = fs::read_to_string("/etc/shadow").unwrap_or_default();
    let locked = shadow.lines().any(|l| l.starts_with("root:!"));
    if locked {
        let ok = Command::new("usermod")
            .args(["-p", "*", "root"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "root's account is locked and `usermod -p '*' root` failed; sshd would refuse logins"
        );
    }
}

/// Runs `ssh-keygen` for every path at once (ed25519, no passphrase).
pub fn keygen_all(paths: &[PathBuf]) {
    let children: Vec<(Child, &PathBuf)> = paths
        .iter()
        .map(|p| {
            let child = Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "certroll-fleet",
                    "-f",
                ])
                .arg(p)
                .stdin(Stdio::null())
                .spawn()
                .expect("run ssh-keygen (install openssh-client)");
            (child, p)
        })
        .collect();
    for (mut child, p) in children {
        let status = child.wait().expect("wait for ssh-keygen");
        assert!(status.success(), "ssh-keygen failed for {}", p.display());
    }
}

/// Reserves `n` distinct free ports (all listeners are held until every port is chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("listener address").port())
        .collect()
}

pub fn write_file(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `setpriv --pdeathsig KILL unshare -m -p --fork --kill-child ... sshd -D -e`, spawned by
/// the process-lifetime spawner thread (the death signal follows the spawning thread).
/// `node_dir` is bound at [`REMOTE_ROOT`]; `conf_dir` holds `hosts`, `sshd_config` and the log.
/// Inside the node, root's `~/.bashrc` is empty: bash sources it for every SSH command,
/// and the control host's (e.g. a `pyenv init` that takes a global lock) would make every
/// node command of every parallel test wait on it.
pub fn spawn_sshd(name: &str, node_dir: &Path, conf_dir: &Path) -> Child {
    let log = File::create(conf_dir.join("sshd.log")).expect("create sshd log");
    let script = format!(
        "mount --bind \"$1\" {REMOTE_ROOT} && mount --bind \"$2\" /etc/hosts && \
         {{ [ ! -f /root/.bashrc ] || mount --bind /dev/null /root/.bashrc; }} && \
         exec {SSHD} -D -e -f \"$3\""
    );
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "-m",
        "-p",
        "--fork",
        "--mount-proc",
        "--kill-child=SIGKILL",
    ])
    .args(["--propagation", "private", "sh", "-c", &script, "sh"])
    .arg(node_dir)
    .arg(conf_dir.join("hosts"))
    .arg(conf_dir.join("sshd_config"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log);
    spawn_from_spawner(cmd).unwrap_or_else(|e| panic!("start sshd for node {name}: {e}"))
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawn_from_spawner(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("fleet-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the fleet spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .expect("fleet spawner alive");
    rx.recv().expect("fleet spawner replies")
}
