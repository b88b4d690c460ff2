//! One `certroll-peer run` per node of a test fleet, started on the control host and
//! pointed at the node's host-side files.
//!
//! Servers listen on their own 127.0.0.1 port (chosen once, kept across restarts); every
//! client has one `--target` per server it links to, checking the server's DNS name; servers
//! of mutual links demand client certificates. Peers are spawned with a parent-death signal
//! so that they never outlive the test process, and are killed when [`Peers`] is dropped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::sshd::free_ports;
use super::topology::{Topology, PEER_BIN, PEER_DIR, TLS_DIR};
use super::traffic::Snapshot;

/// Pause between two handshakes of one client loop.
pub const INTERVAL_MS: u32 = 20;
/// Generous: the tests share a small machine with builds and other tests.
const WAIT: Duration = Duration::from_secs(60);

/// The running peer of one node.
struct NodePeer {
    name: String,
    /// The node's fleet directory on the host (the node sees it at `REMOTE_ROOT`).
    root: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NodePeer {
    fn state_dir(&self) -> PathBuf {
        self.root.join(PEER_DIR)
    }

    fn log(&self) -> PathBuf {
        self.root.join("peer.log")
    }
}

/// Every node's running peer.
pub struct Peers {
    peers: BTreeMap<String, NodePeer>,
}

impl Peers {
    /// Starts one peer per node of `topo` and waits until each publishes its stats.
    /// Nodes without files yet start empty and count nothing until `reload` loads them.
    pub fn start(fleet: &Fleet, topo: &Topology) -> Peers {
        let names = topo.names();
        let ports: BTreeMap<&str, u16> =
            names.iter().copied().zip(free_ports(names.len())).collect();
        let mut peers = BTreeMap::new();
        for name in names {
            let root = fleet.node(name).dir.clone();
            let tls = root.join(TLS_DIR);
            let mut args: Vec<String> = vec!["run".into(), "--node".into(), name.into()];
            for (flag, file) in [
                ("--state-dir", root.join(PEER_DIR)),
                ("--bundle", tls.join("ca.pem")),
                ("--cert", tls.join("cert.pem")),
                ("--key", tls.join("key.pem")),
            ] {
                args.push(flag.into());
                args.push(file.display().to_string());
            }
            args.push("--interval-ms".into());
            args.push(INTERVAL_MS.to_string());
            if topo.is_server(name) {
                args.push("--listen".into());
                args.push(format!("127.0.0.1:{}", ports[name]));
            }
            if topo.requires_client_cert(name) {
                args.push("--require-client-cert".into());
            }
            for link in topo.servers_of(name) {
                args.push("--target".into());
                args.push(format!(
                    "{server}=127.0.0.1:{port}@{dns}",
                    server = link.server,
                    port = ports[link.server.as_str()],
                    dns = Topology::dns_name(&link.server)
                ));
            }
            let peer = NodePeer {
                name: name.to_string(),
                root,
                args,
                child: None,
            };
            peers.insert(name.to_string(), peer);
        }
        let mut peers = Peers { peers };
        peers.launch();
        peers
    }

    /// Stops every peer gracefully and starts it again with the same arguments: the new
    /// processes load the files on disk and start counting from zero.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        for peer in self.peers.values_mut() {
            let _ = fs::remove_file(peer.state_dir().join("stats.json"));
            let log = fs::File::create(peer.log()).expect("create peer log");
            let child = Command::new("setpriv")
                .args(["--pdeathsig", "KILL", "--", PEER_BIN])
                .args(&peer.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start certroll-peer for {}: {e}", peer.name));
            peer.child = Some(child);
        }
        let deadline = Instant::now() + WAIT;
        for peer in self.peers.values_mut() {
            let pid = peer.child.as_ref().expect("just spawned").id();
            let stats = peer.state_dir().join("stats.json");
            loop {
                let text = fs::read_to_string(&stats).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if v["pid"].as_u64() == Some(u64::from(pid)) {
                    break;
                }
                if let Ok(Some(status)) = peer.child.as_mut().expect("spawned").try_wait() {
                    panic!(
                        "certroll-peer of {} exited with {status}; log:\n{}",
                        peer.name,
                        fs::read_to_string(peer.log()).unwrap_or_default()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "certroll-peer of {} published no stats within {WAIT:?}",
                    peer.name
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The port a server's peer listens on (127.0.0.1), `None` for a pure client.
    pub fn listen_port(&self, node: &str) -> Option<u16> {
        let args = &self.peer(node).args;
        let at = args.iter().position(|a| a == "--listen")?;
        args.get(at + 1)?.rsplit(':').next()?.parse().ok()
    }

    /// `(node, state directory on the host)` of every peer.
    pub fn state_dirs(&self) -> Vec<(String, PathBuf)> {
        self.peers
            .values()
            .map(|p| (p.name.clone(), p.state_dir()))
            .collect()
    }

    /// The counters of every peer as last published in `stats.json` (at most ~200 ms old).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::read(&self.state_dirs())
    }

    /// The counters of every peer right now, asked over each peer's control socket.
    pub fn live_snapshot(&self) -> Snapshot {
        let mut nodes = BTreeMap::new();
        for (name, dir) in self.state_dirs() {
            let out = peer_cli(&["stats", "--json"], &dir);
            assert!(
                out.status.success(),
                "certroll-peer stats for {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v = serde_json::from_slice(&out.stdout).expect("stats --json is JSON");
            nodes.insert(name, v);
        }
        Snapshot {
            at: Instant::now(),
            nodes,
        }
    }

    /// Runs `certroll-peer reload` for `node` on the host; returns the command's output.
    pub fn reload(&self, node: &str) -> Output {
        peer_cli(&["reload"], &self.peer(node).state_dir())
    }

    /// Polls the published stats until `pred` holds; panics with `what` and the last ones.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + WAIT;
        loop {
            let snap = self.snapshot();
            if pred(&snap) {
                return snap;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last counters:\n{}\npeer logs:\n{}",
                snap.describe(),
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every counter grew by at least `n` handshakes past `since`.
    pub fn wait_for_growth(&self, since: &Snapshot, n: u64, what: &str) -> Snapshot {
        self.wait_until(what, |s| s.grown_by(since, n))
    }

    /// Stops every peer gracefully; returns the final counters they wrote on stop.
    /// Stopping is not part of what a test measures: a client whose server stops first
    /// counts the reset of its handshake in flight, so assert on a snapshot taken before.
    pub fn stop(&mut self) -> Snapshot {
        for peer in self.peers.values_mut() {
            let Some(mut child) = peer.child.take() else {
                continue;
            };
            let out = peer_cli(&["stop"], &peer.state_dir());
            assert!(
                out.status.success(),
                "certroll-peer stop for {} failed: {}",
                peer.name,
                String::from_utf8_lossy(&out.stderr)
            );
            let status = child.wait().expect("wait for certroll-peer");
            assert!(
                status.success(),
                "certroll-peer of {} exited with {status}",
                peer.name
            );
        }
        let last = self.snapshot();
        for (name, v) in &last.nodes {
            assert_eq!(v["running"], false, "final stats of {name}: {v:#}");
        }
        last
    }

    /// Every peer's stderr, for failure messages.
    pub fn logs(&self) -> String {
        self.peers
            .values()
            .map(|p| {
                let log = fs::read_to_string(p.log()).unwrap_or_default();
                format!("--- {} ---\n{log}", p.name)
            })
            .collect()
    }

    fn peer(&self, node: &str) -> &NodePeer {
        self.peers
            .get(node)
            .unwrap_or_else(|| panic!("no peer for node {node}"))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for peer in self.peers.values_mut() {
            if let Some(mut child) = peer.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn peer_cli(args: &[&str], state_dir: &Path) -> Output {
    Command::new(PEER_BIN)
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .expect("run certroll-peer")
}
