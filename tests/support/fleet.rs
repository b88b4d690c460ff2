//! A fleet of real OpenSSH servers on 127.0.0.1 for integration tests.
//!
//! `Fleet::start(&["lb1", "app1"])` starts one `sshd` per node, each on its own free
//! port with its own ed25519 host key, all accepting one shared client key. Each sshd
//! runs in its own mount and PID namespace (with its own /proc) where the node's host
//! directory is bind-mounted at [`REMOTE_ROOT`], so every node sees *its own* files at the same
//! remote path, like real machines with identical layouts. Inside every node's
//! namespace `/etc/hosts` also resolves `<node>.fleet.certroll-test` to 127.0.0.1; the
//! control host cannot resolve those names, which lets tests prove that a `via`
//! connection really went through the jump node.
//!
//! Requirements: root (namespaces and bind mounts), `/usr/sbin/sshd`
//! (`apt-get install -y openssh-server`), `unshare` and `setpriv` (util-linux).
//! Tests log in as root with `PermitRootLogin prohibit-password`. sshd refuses a
//! locked account (`!` in /etc/shadow) under `UsePAM no`, so a locked root password
//! field is replaced with `*` (no password, not locked) before the first start.
//!
//! sshds are spawned by one long-lived thread with a parent-death signal, so they
//! die with the test process even if it is killed; dropping the fleet kills them too.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use certroll::inventory::SshSettings;
use sha2::Digest;

use super::sshd::{free_ports, keygen_all, preflight, spawn_sshd, write_file};

/// Where every node sees its own directory.
pub const REMOTE_ROOT: &str = "/srv/certroll-node";
/// Suffix of node names that only resolve inside the fleet's namespaces.
pub const INTERNAL_SUFFIX: &str = ".fleet.certroll-test";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times [`Fleet::start_on`] moves nodes whose port was taken to fresh ports.
pub const PORT_RETRIES: usize = 5;

/// One node of a running fleet.
#[derive(Debug, Clone)]
pub struct FleetNode {
    pub name: String,
    /// sshd's port on 127.0.0.1.
    pub port: u16,
    /// The host directory the node sees at [`REMOTE_ROOT`].
    pub dir: PathBuf,
    /// Always [`REMOTE_ROOT`].
    pub remote_root: &'static str,
}

struct NodeState {
    node: FleetNode,
    /// Host key, sshd_config, hosts file and log of this node's sshd.
    conf_dir: PathBuf,
    child: Mutex<Option<Child>>,
}

/// Running sshds; dropping the fleet stops them all.
pub struct Fleet {
    dir: tempfile::TempDir,
    identity: PathBuf,
    known_hosts: PathBuf,
    nodes: BTreeMap<String, NodeState>,
}

impl Fleet {
    /// Starts one sshd per name, in parallel, and waits until every one listens.
    pub fn start(names: &[&str]) -> Fleet {
        Fleet::start_on(names, free_ports(names.len()))
    }

    /// [`Fleet::start`] on the given ports. A port found taken when its sshd binds it
    /// (another process took it between its reservation and the bind: with hundreds of
    /// nodes, the ephemeral port of some outgoing connection often does) is replaced by
    /// a fresh one and that node started again, up to [`PORT_RETRIES`] times.
    pub fn start_on(names: &[&str], ports: Vec<u16>) -> Fleet {
        preflight();
        let dir = tempfile::Builder::new()
            .prefix("certroll-fleet-")
            .tempdir()
            .expect("create fleet temp dir");
        let client = dir.path().join("client");
        fs::create_dir_all(&client).expect("create client dir");
        let identity = client.join("id_ed25519");
        keygen_all(std::slice::from_ref(&identity));
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).expect("chmod identity");
        fs::copy(
            client.join("id_ed25519.pub"),
            client.join("authorized_keys"),
        )
        .expect("write authorized_keys");
        let mut nodes = BTreeMap::new();
        for (name, port) in names.iter().zip(ports) {
            let node_dir = dir.path().join("nodes").join(name);
            let conf_dir = dir.path().join("sshd").join(name);
            fs::create_dir_all(&node_dir).expect("create node dir");
            fs::create_dir_all(&conf_dir).expect("create sshd dir");
            let node = FleetNode {
                name: name.to_string(),
                port,
                dir: node_dir,
                remote_root: REMOTE_ROOT,
            };
            nodes.insert(
                name.to_string(),
                NodeState {
                    node,
                    conf_dir,
                    child: Mutex::new(None),
                },
            );
        }
        let keys: Vec<PathBuf> = nodes
            .values()
            .map(|n| n.conf_dir.join("ssh_host_ed25519_key"))
            .collect();
        keygen_all(&keys);
        let known_hosts = client.join("known_hosts");
        let mut fleet = Fleet {
            dir,
            identity,
            known_hosts,
            nodes,
        };
        fleet.write_hosts_files();
        fleet.refresh_known_hosts();
        let mut todo: Vec<String> = fleet.nodes.keys().cloned().collect();
        for attempt in 0..=PORT_RETRIES {
            let names: Vec<&str> = todo.iter().map(String::as_str).collect();
            let busy = fleet.launch_some(&names, attempt < PORT_RETRIES);
            if busy.is_empty() {
                break;
            }
            for (name, port) in busy.iter().zip(free_ports(busy.len())) {
                if let Some(st) = fleet.nodes.get_mut(name) {
                    st.node.port = port;
                }
            }
            fleet.refresh_known_hosts();
            todo = busy;
        }
        fleet
    }

    /// The node called `name`; panics if the fleet has none.
    pub fn node(&self, name: &str) -> &FleetNode {
        &self.state(name).node
    }

    /// Node names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The fleet's temporary directory (deleted on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// known_hosts listing every node as `[127.0.0.1]:PORT` and `[<node>.fleet.certroll-test]:PORT`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The client private key (0600) every node accepts.
    pub fn identity(&self) -> &Path {
        &self.identity
    }

    /// The login user: root (the harness requires running as root).
    pub fn user(&self) -> String {
        "root".to_string()
    }

    /// The name under which `name` resolves only inside the fleet (never on the control host).
    pub fn internal_host(&self, name: &str) -> String {
        format!("{name}{INTERNAL_SUFFIX}")
    }

    /// SSH settings reaching `name` directly on 127.0.0.1.
    pub fn settings(&self, name: &str) -> SshSettings {
        SshSettings {
            host: "127.0.0.1".to_string(),
            port: self.node(name).port,
            user: self.user(),
            identity_file: Some(self.identity.clone()),
            known_hosts: self.known_hosts.clone(),
        }
    }

    /// `[defaults]` with the fleet's `ssh = { user, identity_file, known_hosts }`.
    pub fn inventory_header(&self) -> String {
        format!("[defaults]\n{}\n", self.defaults_ssh_line())
    }

    /// The `ssh = {...}` line for a `[defaults]` table written by the caller.
    pub fn defaults_ssh_line(&self) -> String {
        format!(
            "ssh = {{ user = {:?}, identity_file = {:?}, known_hosts = {:?} }}",
            self.user(),
            self.identity.display().to_string(),
            self.known_hosts.display().to_string()
        )
    }

    /// The `ssh = { host, port }` line of `[nodes.<name>]`.
    pub fn node_ssh_line(&self, name: &str) -> String {
        format!(
            "ssh = {{ host = \"127.0.0.1\", port = {} }}",
            self.node(name).port
        )
    }

    /// `[nodes.<name>]` with its `ssh` line, for every node, in name order.
    pub fn inventory_nodes(&self) -> String {
        self.nodes
            .keys()
            .map(|n| format!("[nodes.{n}]\n{}\n\n", self.node_ssh_line(n)))
            .collect()
    }

    /// `REMOTE_ROOT/<rel>`: a path as every node sees it.
    pub fn remote_path(&self, rel: &str) -> String {
        format!("{REMOTE_ROOT}/{}", rel.trim_start_matches('/'))
    }

    /// The host path of `remote_path` (under [`REMOTE_ROOT`]) on node `name`.
    pub fn host_path(&self, name: &str, remote_path: &str) -> PathBuf {
        let rel = remote_path
            .strip_prefix(REMOTE_ROOT)
            .unwrap_or_else(|| panic!("{remote_path} is not under {REMOTE_ROOT}"));
        self.node(name).dir.join(rel.trim_start_matches('/'))
    }

    /// The node's public host key line (`ssh-ed25519 AAAA...`).
    pub fn host_public_key(&self, name: &str) -> String {
        let path = self.state(name).conf_dir.join("ssh_host_ed25519_key.pub");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The node's host key fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn host_fingerprint(&self, name: &str) -> String {
        let line = self.host_public_key(name);
        let b64 = line
            .split_whitespace()
            .nth(1)
            .expect("public key line has a key field");
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("host key is base64");
        let digest = sha2::Sha256::digest(&blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    /// Rewrites known_hosts from the nodes' current host keys.
    pub fn refresh_known_hosts(&self) {
        let mut text = String::new();
        for (name, st) in &self.nodes {
            let p = st.node.port;
            text += &format!(
                "[127.0.0.1]:{p},[{}]:{p} {}\n",
                self.internal_host(name),
                self.host_public_key(name)
            );
        }
        write_file(&self.known_hosts, &text, 0o600);
    }

    /// Stops a node's sshd and every session it serves; returns once the port refuses.
    pub fn stop(&self, name: &str) {
        let st = self.state(name);
        if let Some(mut child) = st.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", st.node.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "sshd of node {name} still accepts after stop"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a stopped node again on the same port with the same host key.
    pub fn start_node(&self, name: &str) {
        self.launch(&[name]);
    }

    /// Gives a node a new host key (known_hosts keeps the old one) and restarts it.
    pub fn change_host_key(&self, name: &str) {
        self.stop(name);
        let key = self.state(name).conf_dir.join("ssh_host_ed25519_key");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        keygen_all(&[key]);
        self.start_node(name);
    }

    /// The sshd log of a node (stderr of `sshd -e`).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.state(name).conf_dir.join("sshd.log")).unwrap_or_default()
    }

    fn state(&self, name: &str) -> &NodeState {
        self.nodes
            .get(name)
            .unwrap_or_else(|| panic!("the fleet has no node {name}"))
    }

    fn write_hosts_files(&self) {
        let names: Vec<String> = self.nodes.keys().map(|n| self.internal_host(n)).collect();
        let text = format!(
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {}\n",
            names.join(" ")
        );
        for st in self.nodes.values() {
            write_file(&st.conf_dir.join("hosts"), &text, 0o644);
        }
    }

    /// Spawns the sshds of `names` and waits until each logs that it listens.
    fn launch(&self, names: &[&str]) {
        self.launch_some(names, false);
    }

    /// [`Fleet::launch`]; with `allow_busy`, a node whose sshd found its port taken is
    /// returned instead of failing the fleet.
    fn launch_some(&self, names: &[&str], allow_busy: bool) -> Vec<String> {
        for name in names {
            let st = self.state(name);
            write_file(
                &st.conf_dir.join("sshd_config"),
                &self.sshd_config(st),
                0o644,
            );
            let child = spawn_sshd(name, &st.node.dir, &st.conf_dir);
            *st.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        }
        // Hundreds of sshds on two busy cores take their time.
        let wait = READY_TIMEOUT.max(Duration::from_millis(100) * names.len() as u32);
        let deadline = Instant::now() + wait;
        let mut pending: Vec<&str> = names.to_vec();
        let mut busy = Vec::new();
        while !pending.is_empty() {
            pending.retain(|name| match self.is_ready(name, allow_busy) {
                Some(ready) => !ready,
                None => {
                    busy.push(name.to_string());
                    false
                }
            });
            if !pending.is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "sshd of nodes {pending:?} did not start in {wait:?}"
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
        busy
    }

    /// True once the node's sshd logged that it listens; panics if it exited, or (with
    /// `allow_busy`) `None` if it exited because its port was taken.
    fn is_ready(&self, name: &str, allow_busy: bool) -> Option<bool> {
        let st = self.state(name);
        let log = self.log(name);
        let mut guard = st.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(child) = guard.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                if allow_busy && log.contains("Address already in use") {
                    *guard = None;
                    return None;
                }
                panic!(
                    "sshd of node {name} (port {}) exited with {status}; its log:\n{log}",
                    st.node.port
                );
            }
        }
        Some(log.contains(&format!(
            "Server listening on 127.0.0.1 port {}",
            st.node.port
        )))
    }

    fn sshd_config(&self, st: &NodeState) -> String {
        let c = &st.conf_dir;
        let authorized = self.identity.with_file_name("authorized_keys");
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {key}\nPidFile none\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nAuthorizedKeysFile {auth}\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 200:30:400\n\
             MaxSessions 200\nSubsystem sftp internal-sftp\nAllowTcpForwarding yes\nUseDNS no\n\
             LogLevel VERBOSE\n",
            port = st.node.port,
            key = c.join("ssh_host_ed25519_key").display(),
            auth = authorized.display(),
        )
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for st in self.nodes.values() {
            if let Some(mut child) = st.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
