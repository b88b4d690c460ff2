//! `via` jumps: a node's SSH session carried by a direct-tcpip channel of another node's.
//!
//! libssh2 needs a real file descriptor under each session, and a blocking libssh2
//! session cannot read and write one channel from two threads. So each jump gets its
//! own dedicated session to the via node, switched to non-blocking mode, and a pump
//! thread that copies bytes between that session's direct-tcpip channel and one end
//! of a Unix socket pair; the other end becomes the "TCP stream" of the target's
//! session. Chains (`a` via `b` via `c`) nest: the dedicated session to the via node
//! may itself ride a tunnel, which the outer tunnel keeps alive.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ssh2::{Channel, Session};

use super::session::ssh_error;
use super::{ErrorKind, TransportError};

/// Longest pause of an idle pump; short, because every SFTP round trip waits on it.
const MAX_IDLE_PAUSE: Duration = Duration::from_millis(2);
const BUFFER: usize = 32 * 1024;

/// A running jump. Dropping it stops the pump and closes the via session, then the
/// tunnels that carried that session.
pub(crate) struct Tunnel {
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
    /// The tunnel under the via session, when the via node is itself reached by a jump.
    _upstream: Option<Box<Tunnel>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

/// Where the tunnel leads, for messages.
pub(crate) struct Hop<'a> {
    pub via_node: &'a str,
    pub node: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// Opens a direct-tcpip channel on `via` (a session dedicated to this tunnel) to
/// `hop.host:hop.port` and starts the pump. Returns the tunnel and the socket the
/// target's session must use.
pub(crate) fn open(
    via: Session,
    upstream: Option<Tunnel>,
    hop: &Hop<'_>,
) -> Result<(Tunnel, UnixStream), TransportError> {
    let action = format!(
        "open a tunnel to {}:{} through node {}",
        hop.host, hop.port, hop.via_node
    );
    let channel = via
        .channel_direct_tcpip(hop.host, hop.port, None)
        .map_err(|e| {
            let mut err = ssh_error(hop.node, &action, &e);
            // The via node could not reach the target: usually the target is down.
            if err.kind == ErrorKind::Io {
                err.kind = ErrorKind::Transient;
            }
            err
        })?;
    let io_err =
        |e: io::Error| TransportError::new(hop.node, action.as_str(), ErrorKind::Io, e.to_string());
    let (ours, theirs) = UnixStream::pair().map_err(io_err)?;
    ours.set_nonblocking(true).map_err(io_err)?;
    via.set_blocking(false);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let pump = thread::Builder::new()
        .name(format!("certroll-tunnel-{}", hop.node))
        .spawn(move || Pump::new(via, channel, ours).run(&flag))
        .map_err(io_err)?;
    let tunnel = Tunnel {
        stop,
        pump: Some(pump),
        _upstream: upstream.map(Box::new),
    };
    Ok((tunnel, theirs))
}

/// The copy loop between the channel and the socket, with bounded pending buffers.
struct Pump {
    /// Kept so the session outlives the channel; dropped last.
    _session: Session,
    channel: Channel,
    socket: UnixStream,
    to_channel: Vec<u8>,
    to_socket: Vec<u8>,
    socket_eof: bool,
    channel_eof: bool,
}

enum Step {
    Progress,
    Idle,
    Done,
}

impl Pump {
    fn new(session: Session, channel: Channel, socket: UnixStream) -> Self {
        Pump {
            _session: session,
            channel,
            socket,
            to_channel: Vec::new(),
            to_socket: Vec::new(),
            socket_eof: false,
            channel_eof: false,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut pause = Duration::from_micros(20);
        let mut buf = vec![0u8; BUFFER];
        while !stop.load(Ordering::SeqCst) {
            match self.step(&mut buf) {
                Ok(Step::Progress) => pause = Duration::from_micros(20),
                Ok(Step::Idle) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(MAX_IDLE_PAUSE);
                }
                Ok(Step::Done) | Err(_) => break,
            }
        }
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        let _ = self.channel.close();
    }

    /// One round of non-blocking copies in both directions.
    fn step(&mut self, buf: &mut [u8]) -> io::Result<Step> {
        let mut progress = false;
        if self.to_channel.is_empty() && !self.socket_eof {
            match self.socket.read(buf) {
                Ok(0) => self.socket_eof = true,
                Ok(n) => {
                    self.to_channel.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.to_channel.is_empty() {
            progress |= drain(&mut self.channel, &mut self.to_channel)?;
        }
        if self.to_socket.is_empty() && !self.channel_eof {
            match self.channel.read(buf) {
                Ok(0) => self.channel_eof = self.channel.eof(),
                Ok(n) => {
                    self.to_socket.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.to_socket.is_empty() {
            progress |= drain(&mut self.socket, &mut self.to_socket)?;
        }
        let finished = (self.socket_eof && self.to_channel.is_empty())
            || (self.channel_eof && self.to_socket.is_empty());
        Ok(match (finished, progress) {
            (true, _) => Step::Done,
            (false, true) => Step::Progress,
            (false, false) => Step::Idle,
        })
    }
}

/// Writes as much of `pending` as the writer takes now; true if anything was written.
fn drain<W: Write>(w: &mut W, pending: &mut Vec<u8>) -> io::Result<bool> {
    match w.write(pending) {
        Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
        Ok(n) => {
            pending.drain(..n);
            Ok(true)
        }
        Err(e) if would_block(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
