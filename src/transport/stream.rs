//! Byte streams to a TCP address as the node itself reaches it: what certroll's own TLS
//! confirm talks through.
//!
//! A local node connects directly. An SSH node gets a direct-tcpip channel: a fresh
//! session on the node's route (directly or through its `via` chain) carried by the same
//! pump as `via` jumps ([`super::tunnel`]), so the address is resolved and connected *by
//! the node* — `127.0.0.1:5432` means the node's own loopback. The stream owns its tunnel:
//! dropping the stream closes the channel and the session.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ssh2::Session;

use super::session::io_message;
use super::tunnel::{self, Hop, Tunnel};
use super::{ErrorKind, TransportError};

/// A connected byte stream with read and write timeouts set.
pub trait ByteStream: Read + Write + Send {
    /// Sets the timeout of every following read and write (at least 1 ms): a caller with
    /// one deadline for a whole exchange gives each read only the time left, in short
    /// slices so that it can notice a signal in between.
    fn set_io_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl ByteStream for TcpStream {
    fn set_io_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        set_timeouts(self, timeout)
    }
}

/// `connect to host:port` wording shared by both transports.
pub(crate) fn connect_action(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("connect to [{host}]:{port}")
    } else {
        format!("connect to {host}:{port}")
    }
}

/// Connects from this machine (local nodes). Refused or timed out is transient: the
/// server may be restarting.
pub(crate) fn connect_local(
    node: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Box<dyn ByteStream>, TransportError> {
    let action = connect_action(host, port);
    let err = |kind, msg: String| TransportError::new(node, action.as_str(), kind, msg);
    let addrs = (host, port).to_socket_addrs().map_err(|e| {
        err(
            ErrorKind::Transient,
            format!("cannot resolve host: {}", io_message(&e)),
        )
    })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                set_timeouts(&stream, timeout).map_err(|e| err(ErrorKind::Io, io_message(&e)))?;
                let _ = stream.set_nodelay(true);
                return Ok(Box::new(stream));
            }
            Err(e) => last = Some(e),
        }
    }
    let message = last
        .map(|e| io_message(&e))
        .unwrap_or_else(|| "host has no address".to_string());
    Err(err(ErrorKind::Transient, message))
}

fn set_timeouts(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
}

/// A direct-tcpip channel of a dedicated session, as a socket; the tunnel (pump, session,
/// and the tunnels under the session) lives as long as the stream.
struct Tunneled {
    // Field order is drop order: the socket closes first, then the pump stops.
    socket: UnixStream,
    _tunnel: Tunnel,
}

impl Drop for Tunneled {
    /// Closes our direction and waits (briefly, bounded) for the pump to forward what was
    /// written and end: without this the last bytes written (a TLS client's final
    /// flight) could be dropped with the channel. [`DRAIN_TIMEOUT`] bounds the whole
    /// wait, not each read: a server that keeps sending a byte now and then cannot hold
    /// it longer. A signal ends it at once.
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut buf = [0u8; 4096];
        for _ in 0..256 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || crate::interrupt::requested().is_some() {
                break;
            }
            let slice = left.clamp(Duration::from_millis(1), DRAIN_SLICE);
            if self.socket.set_read_timeout(Some(slice)).is_err() {
                break;
            }
            match self.socket.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
}

/// How long dropping a tunneled stream waits, in all, for the pump to forward the last
/// bytes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest single read of that wait, so that a signal is noticed.
const DRAIN_SLICE: Duration = Duration::from_millis(200);

impl ByteStream for Tunneled {
    fn set_io_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let t = timeout.max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(t))?;
        self.socket.set_write_timeout(Some(t))
    }
}

impl Read for Tunneled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf)
    }
}

impl Write for Tunneled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// Opens a direct-tcpip channel to `host:port` on `session`, a session to `node` opened
/// for this stream alone (with `upstream`, the tunnel that carries it, if any).
pub(crate) fn connect_through(
    node: &str,
    session: Session,
    upstream: Option<Tunnel>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Box<dyn ByteStream>, TransportError> {
    session.set_timeout(timeout.as_millis().clamp(1, u128::from(u32::MAX)) as u32);
    let hop = Hop {
        via_node: node,
        node,
        host,
        port,
    };
    let (tunnel, socket) = tunnel::open(session, upstream, &hop).map_err(|mut e| {
        // "open a tunnel through node X" reads oddly for the node's own address.
        e.action = format!("{} from the node", connect_action(host, port));
        e
    })?;
    let io_err = |e: io::Error| {
        TransportError::new(
            node,
            connect_action(host, port),
            ErrorKind::Io,
            io_message(&e),
        )
    };
    let t = timeout.max(Duration::from_millis(1));
    socket.set_read_timeout(Some(t)).map_err(io_err)?;
    socket.set_write_timeout(Some(t)).map_err(io_err)?;
    Ok(Box::new(Tunneled {
        socket,
        _tunnel: tunnel,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn local_streams_reach_a_listener_and_refusals_are_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut s = connect_local("db1", "127.0.0.1", port, Duration::from_secs(5)).unwrap();
        s.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping");
        server.join().unwrap();
        drop(s);
        // Nothing listens on the port any more.
        let e = connect_local("db1", "127.0.0.1", port, Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(e.is_transient(), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "failed to connect to 127.0.0.1:{port} on node db1"
            )),
            "{e}"
        );
    }
}
