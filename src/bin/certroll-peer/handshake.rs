//! The two TLS roles of a peer, over real TCP sockets. The server completes each handshake,
//! writes one line and closes; each client target loop handshakes again and again and reads
//! that line, so a refusal the server sends after the client's last flight (TLS 1.3 client
//! authentication) is counted as a failure too. Every attempt is counted with its reason.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::ServerName;

use crate::state::PeerState;
use crate::stats::Outcome;

/// How long a TCP connect may take before the target counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stalled handshake may block a read or a write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// What the server writes after a successful handshake.
pub const GREETING: &[u8] = b"certroll-peer ok\n";
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(5);

/// A target from `--target NAME=HOST:PORT@SERVER_NAME`.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: String,
    pub server_name: ServerName<'static>,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let shape = "expected NAME=HOST:PORT@SERVER_NAME";
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("target {s:?}: {shape}"))?;
        let (address, server_name) = rest
            .rsplit_once('@')
            .ok_or_else(|| format!("target {s:?}: {shape}"))?;
        if name.is_empty() || address.is_empty() || !address.contains(':') {
            return Err(format!("target {s:?}: {shape}"));
        }
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("target {s:?}: invalid server name {server_name:?}: {e}"))?;
        Ok(Target {
            name: name.to_string(),
            address: address.to_string(),
            server_name,
        })
    }
}

/// How long to wait before binding the port again when it is taken.
const REBIND_PAUSE: Duration = Duration::from_millis(200);

/// Accepts connections until the peer stops; each one is served on its own thread.
///
/// A peer with no files loaded does not listen, like a server that has not started: its
/// port is closed (bound once at start to reserve it and report errors early) and clients
/// are refused, which they count as unreachable. Accepting and dropping their connections
/// instead resets them mid-handshake (`Connection reset by peer`), which clients rightly
/// count as failed handshakes: that made a fleet's bootstrap look like an outage.
pub fn serve(state: Arc<PeerState>, listener: TcpListener) -> io::Result<()> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let mut listening = state.current().map(|_| listener);
    while !state.stopping() {
        let Some(listener) = &listening else {
            if state.current().is_none() {
                thread::sleep(POLL);
                continue;
            }
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => listening = Some(l),
                Err(e) => {
                    certroll::errln!(
                        "certroll-peer: node {}: failed to listen on {addr}: {e}",
                        state.node
                    );
                    thread::sleep(REBIND_PAUSE);
                }
            }
            continue;
        };
        match listener.accept() {
            Ok((stream, _)) => {
                let state = state.clone();
                thread::spawn(move || serve_one(&state, stream));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                certroll::errln!(
                    "certroll-peer: node {}: failed to accept a connection: {e}",
                    state.node
                );
                thread::sleep(POLL);
            }
        }
    }
    Ok(())
}

/// One server-side connection (files are loaded: see [`serve`]). A connection closed before sending a byte (a port probe)
/// is not a handshake and is not counted either.
fn serve_one(state: &PeerState, mut sock: TcpStream) {
    let Some(material) = state.current() else {
        return;
    };
    if !sends_something(&sock) {
        return;
    }
    let outcome = match ServerConnection::new(material.server.clone()) {
        Ok(mut conn) => match server_exchange(&mut conn, &mut sock) {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    state.record_server(outcome);
}

/// Waits for the first byte of the connection without consuming it.
fn sends_something(sock: &TcpStream) -> bool {
    let ready =
        sock.set_nonblocking(false).is_ok() && sock.set_read_timeout(Some(IO_TIMEOUT)).is_ok();
    // A timeout or error here is left to the handshake to report, so it counts as a failure.
    !ready || !matches!(sock.peek(&mut [0u8; 1]), Ok(0))
}

fn server_exchange(conn: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    conn.writer().write_all(GREETING)?;
    conn.send_close_notify();
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    sock.flush()
}

/// Handshakes with `target` every `interval` until the peer stops. While no files are
/// loaded nothing is attempted and nothing is counted.
pub fn run_target(state: Arc<PeerState>, target: Target, interval: Duration) {
    while !state.stopping() {
        if let Some(material) = state.current() {
            let outcome = attempt(&material.client, &target);
            state.record_target(&target.name, outcome);
        }
        thread::sleep(interval);
    }
}

/// One full client handshake: connect, handshake, read the server's line.
pub fn attempt(config: &Arc<rustls::ClientConfig>, target: &Target) -> Outcome {
    let mut sock = match connect(&target.address) {
        Ok(sock) => sock,
        Err(reason) => return Outcome::Unreachable(reason),
    };
    let mut conn = match ClientConnection::new(config.clone(), target.server_name.clone()) {
        Ok(conn) => conn,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match client_exchange(&mut conn, &mut sock) {
        Ok(()) => Outcome::Ok,
        Err(reason) => Outcome::Failed(reason),
    }
}

fn connect(address: &str) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(sock) => return Ok(sock),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

fn client_exchange(conn: &mut ClientConnection, sock: &mut TcpStream) -> Result<(), String> {
    let io_err = |e: io::Error| e.to_string();
    sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
    sock.set_write_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
    while conn.is_handshaking() {
        conn.complete_io(sock).map_err(io_err)?;
    }
    let mut received = Vec::new();
    let mut tls = rustls::Stream::new(conn, sock);
    let mut buf = [0u8; 256];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
        if received.len() > GREETING.len() {
            break;
        }
    }
    if received == GREETING {
        Ok(())
    } else {
        Err(format!(
            "server closed the connection after the handshake without its greeting (got {} bytes)",
            received.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_name_address_and_server_name() {
        let t: Target = "app1=10.0.0.21:8443@app1.internal".parse().unwrap();
        assert_eq!(t.name, "app1");
        assert_eq!(t.address, "10.0.0.21:8443");
        assert_eq!(t.server_name.to_str(), "app1.internal");
        let v6: Target = "lb=[::1]:443@localhost".parse().unwrap();
        assert_eq!(v6.address, "[::1]:443");
    }

    #[test]
    fn malformed_targets_are_refused_with_the_expected_shape() {
        for bad in ["app1", "=h:1@n", "app1=host@name", "app1=h:1", "app1=h:1@"] {
            let err = bad.parse::<Target>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
