//! The SSH transport (ssh2/libssh2): one session per node, `via` jumps, atomic writes.
//!
//! [`SshTransport`] owns one session per node for the whole run, guarded by a mutex
//! so calls from several threads serialize. When an operation fails with a transient
//! error (connection reset, timeout) the session is dropped and the next call opens a
//! fresh one, so a node that restarts its sshd mid-run is not lost for good.
//! [`FleetConnector`] builds the route to each node (directly, or through the
//! sessions of its `via` chain) and caches one transport per node.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ssh2::Session;

use super::local::LocalTransport;
use super::remote::Conn;
use super::session::{establish, tcp_connect, Peer};
use super::stream;
use super::tunnel::{self, Hop, Tunnel};
use super::{
    ByteStream, Connector, ErrorKind, ExecOutput, HostKeyPolicy, SecretEnv, Sudo, Transport,
    TransportError, WriteOptions,
};
use crate::inventory::{Become, Inventory, NodeId, SshSettings, TransportKind};

/// Longest `via` chain followed; validation forbids cycles, this bounds the damage anyway.
const MAX_HOPS: usize = 16;

type Opener = dyn Fn() -> Result<Conn, TransportError> + Send + Sync;

/// A node reached over SSH.
pub struct SshTransport {
    node: String,
    opener: Box<Opener>,
    conn: Mutex<Option<Conn>>,
}

impl SshTransport {
    /// Connects directly to `settings.host:settings.port`, checking the host key against
    /// `settings.known_hosts` under `policy`.
    pub fn connect(
        node: &str,
        settings: &SshSettings,
        policy: HostKeyPolicy,
    ) -> Result<Self, TransportError> {
        let (name, settings) = (node.to_string(), settings.clone());
        let opener = move || {
            let peer = Peer {
                node: &name,
                settings: &settings,
                policy,
                via: None,
            };
            let stream = tcp_connect(&peer)?;
            Ok(Conn::new(establish(&peer, stream)?, None))
        };
        SshTransport::with_opener(node, Box::new(opener))
    }

    /// Runs `command` on a bare channel of the node's session, with no wrapper: no
    /// deadline, no process group killed, nothing relayed; returns its exit status.
    /// Not for node commands: it exists so that `benches/fleet.rs` (`floor`) can measure
    /// what the wrappers of [`Transport::exec`] and [`Transport::exec_input`] add.
    #[doc(hidden)]
    pub fn exec_bare(&self, command: &str) -> Result<Option<i32>, TransportError> {
        self.with_conn(|c| c.exec_bare(&self.node, command))
    }

    /// Opens the first session now, so that connection errors surface at connect time.
    fn with_opener(node: &str, opener: Box<Opener>) -> Result<Self, TransportError> {
        let first = opener()?;
        Ok(SshTransport {
            node: node.to_string(),
            opener,
            conn: Mutex::new(Some(first)),
        })
    }

    /// Runs `f` on the live session, reconnecting first if the last one broke.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        // A poisoned lock means a panic mid-operation: start over with a fresh session.
        let mut guard = self.conn.lock().unwrap_or_else(|p: PoisonError<_>| {
            let mut g = p.into_inner();
            *g = None;
            g
        });
        let conn = match guard.take() {
            Some(c) => c,
            None => (self.opener)()?,
        };
        let result = f(guard.insert(conn));
        let broken = guard.as_ref().is_some_and(Conn::is_broken);
        if broken || matches!(&result, Err(e) if e.kind == ErrorKind::Transient) {
            *guard = None;
        }
        result
    }
}

impl Transport for SshTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        self.with_conn(|c| c.read(&self.node, path, &format!("read {path}")))
    }

    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError> {
        self.with_conn(|c| c.mode(&self.node, path))
    }

    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        self.with_conn(|c| c.write(&self.node, path, data, opts))
    }

    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError> {
        self.with_conn(|c| c.remove(&self.node, path, backup_tag))
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        self.with_conn(|c| c.exec(&self.node, command, timeout))
    }

    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.with_conn(|c| c.exec_input(&self.node, command, input, timeout))
    }

    fn exec_staged(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
        stages: &[super::Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        self.with_conn(|c| c.exec_staged(&self.node, command, Some(input), timeout, stages, false))
    }

    /// A session of its own per stream: the run's session stays free for file operations
    /// and commands while the stream is in use.
    fn open_stream(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn ByteStream>, TransportError> {
        let (session, tunnel) = (self.opener)()?.into_parts();
        stream::connect_through(&self.node, session, tunnel, host, port, timeout)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<super::DirEntry>>, TransportError> {
        self.with_conn(|c| c.list(&self.node, path))
    }
}

/// Opens and caches one transport per node.
pub struct FleetConnector {
    inv: Arc<Inventory>,
    policy: HostKeyPolicy,
    /// Variables local nodes' commands never inherit (SSH forwards no variable at all).
    secrets: SecretEnv,
    slots: Vec<Mutex<Option<Arc<dyn Transport>>>>,
}

impl FleetConnector {
    pub fn new(inv: Inventory, policy: HostKeyPolicy, secrets: SecretEnv) -> Self {
        let slots = inv.nodes.iter().map(|_| Mutex::new(None)).collect();
        FleetConnector {
            inv: Arc::new(inv),
            policy,
            secrets,
            slots,
        }
    }

    /// Where local nodes resolve relative paths and run commands: the inventory's directory.
    fn workdir(&self) -> PathBuf {
        match self.inv.source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn open(&self, id: NodeId) -> Result<Arc<dyn Transport>, TransportError> {
        let node = &self.inv.nodes[id];
        let plain = self.open_plain(id)?;
        Ok(match node.become_with {
            Become::Login => plain,
            Become::Sudo => Arc::new(Sudo::check(plain)?),
        })
    }

    fn open_plain(&self, id: NodeId) -> Result<Arc<dyn Transport>, TransportError> {
        let node = &self.inv.nodes[id];
        match &node.transport {
            TransportKind::Local => Ok(Arc::new(
                LocalTransport::new(&node.name, &self.workdir()).hiding(self.secrets.clone()),
            )),
            TransportKind::Ssh(_) => {
                let (inv, policy) = (Arc::clone(&self.inv), self.policy);
                let opener = move || {
                    let (session, tunnel) = open_route(&inv, id, policy, 0)?;
                    Ok(Conn::new(session, tunnel))
                };
                Ok(Arc::new(SshTransport::with_opener(
                    &node.name,
                    Box::new(opener),
                )?))
            }
        }
    }
}

impl Connector for FleetConnector {
    fn connect(&self, node: NodeId) -> Result<Arc<dyn Transport>, TransportError> {
        let Some(slot) = self.slots.get(node) else {
            let msg = format!("the inventory has {} nodes", self.inv.nodes.len());
            return Err(TransportError::new(
                &format!("#{node}"),
                "connect",
                ErrorKind::Io,
                msg,
            ));
        };
        // Only this node's slot is held while connecting: other nodes connect in parallel.
        let mut guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = guard.as_ref() {
            return Ok(Arc::clone(t));
        }
        let transport = self.open(node)?;
        #[cfg(debug_assertions)]
        let transport = super::trace::wrap(transport);
        *guard = Some(Arc::clone(&transport));
        Ok(transport)
    }
}

/// Opens a fresh authenticated session to node `id`: directly, or through a dedicated
/// session to its `via` node (recursively), returning the tunnel that must outlive it.
fn open_route(
    inv: &Inventory,
    id: NodeId,
    policy: HostKeyPolicy,
    depth: usize,
) -> Result<(Session, Option<Tunnel>), TransportError> {
    let node = &inv.nodes[id];
    let TransportKind::Ssh(settings) = &node.transport else {
        let msg = "the node is local and has no SSH session";
        return Err(TransportError::new(
            &node.name,
            "connect over SSH",
            ErrorKind::Io,
            msg,
        ));
    };
    if depth > MAX_HOPS {
        let msg = format!("its via chain is longer than {MAX_HOPS} hops");
        return Err(TransportError::new(
            &node.name,
            "connect over SSH",
            ErrorKind::Io,
            msg,
        ));
    }
    // A local via node is this machine: connect directly.
    match node.via.filter(|&v| !inv.nodes[v].is_local()) {
        None => {
            let peer = Peer {
                node: &node.name,
                settings,
                policy,
                via: None,
            };
            let stream = tcp_connect(&peer)?;
            Ok((establish(&peer, stream)?, None))
        }
        Some(v) => {
            let via_name = inv.nodes[v].name.as_str();
            // Name the node being reached, not only the jump host that failed.
            let (via_session, upstream) = open_route(inv, v, policy, depth + 1).map_err(|e| {
                TransportError::new(
                    &node.name,
                    format!("connect through via node {via_name}"),
                    e.kind,
                    e.to_string(),
                )
            })?;
            let hop = Hop {
                via_node: via_name,
                node: &node.name,
                host: &settings.host,
                port: settings.port,
            };
            let (tunnel, socket) = tunnel::open(via_session, upstream, &hop)?;
            let peer = Peer {
                node: &node.name,
                settings,
                policy,
                via: Some(via_name),
            };
            Ok((establish(&peer, socket)?, Some(tunnel)))
        }
    }
}

/// Kept where it was first published: every remote command's arguments are quoted so.
pub use crate::shell::shell_quote;
