//! The control channel: a UNIX socket `control.sock` in the state directory. A request is
//! one command word on one line; the answer is one JSON line. The socket is found only
//! through the directory given on the command line, so the same peer can be driven from
//! another mount namespace that sees the directory at another path.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::material::Hashes;
use crate::state::{Confirmation, PeerState};
use crate::stats::Stats;

/// File name of the control socket inside the state directory.
pub const SOCKET_NAME: &str = "control.sock";
/// How long a command waits for the peer's answer (a reload parses three files).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the peer waits for a request line from a connected client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// A command sent to a running peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reload,
    Confirm,
    Stats,
    Stop,
}

impl Command {
    fn word(self) -> &'static str {
        match self {
            Command::Reload => "reload",
            Command::Confirm => "confirm",
            Command::Stats => "stats",
            Command::Stop => "stop",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [
            Command::Reload,
            Command::Confirm,
            Command::Stats,
            Command::Stop,
        ]
        .into_iter()
        .find(|c| c.word() == word)
    }
}

/// The peer's answer to any command; fields not relevant to the command are absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<Hashes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

/// Why a command could not get an answer from the peer.
// The I/O error is part of the message (named `cause`, not `source`): the peer prints an
// error with `{e}`, so each level shows once.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("failed to {action} certroll-peer control socket {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("failed to read the answer from certroll-peer control socket {}: {detail}", path.display())]
    BadReply { path: PathBuf, detail: String },
}

/// Path of the control socket for `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Sends `command` to the peer using `state_dir` and waits for its answer.
pub fn request(state_dir: &Path, command: Command) -> Result<Reply, ControlError> {
    let path = socket_path(state_dir);
    let io_err = |action: &'static str| {
        let path = path.clone();
        move |cause| ControlError::Io {
            action,
            path,
            cause,
        }
    };
    let mut sock = UnixStream::connect(&path).map_err(io_err("connect to"))?;
    sock.set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(io_err("configure"))?;
    sock.write_all(format!("{}\n", command.word()).as_bytes())
        .map_err(io_err("write to"))?;
    let mut answer = String::new();
    sock.read_to_string(&mut answer)
        .map_err(io_err("read from"))?;
    serde_json::from_str(answer.trim()).map_err(|e| ControlError::BadReply {
        path: path.clone(),
        detail: e.to_string(),
    })
}

/// Binds the control socket. A socket file left by a dead peer is replaced; a live peer on
/// the same directory is an error.
pub fn bind(state_dir: &Path) -> io::Result<UnixListener> {
    let path = socket_path(state_dir);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another certroll-peer is running with this state directory",
            ));
        }
        std::fs::remove_file(&path)?;
    }
    UnixListener::bind(&path)
}

/// Answers commands until the peer stops.
pub fn serve(state: Arc<PeerState>, listener: UnixListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    while !state.stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(&state, stream) {
                    certroll::errln!(
                        "certroll-peer: node {}: failed to answer on control socket {}: {e}",
                        state.node,
                        socket_path(&state.state_dir).display()
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn answer(state: &PeerState, stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match Command::parse(line.trim()) {
        Some(command) => execute(state, command),
        None => Reply {
            ok: false,
            node: state.node.clone(),
            error: Some(format!("unknown command {:?}", line.trim())),
            ..Reply::default()
        },
    };
    let mut body = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    body.push(b'\n');
    (&stream).write_all(&body)
}

/// Runs one command against the peer's state.
pub fn execute(state: &PeerState, command: Command) -> Reply {
    let mut reply = Reply {
        ok: true,
        node: state.node.clone(),
        ..Reply::default()
    };
    match command {
        Command::Reload => match state.reload() {
            Ok(hashes) => {
                certroll::errln!("certroll-peer: node {}: reloaded files", state.node);
                reply.loaded = Some(hashes);
            }
            Err(e) => {
                certroll::errln!("certroll-peer: {e}; keeping the previous files");
                reply.ok = false;
                reply.error = Some(e.to_string());
                reply.loaded = state.current().map(|m| m.hashes.clone());
            }
        },
        Command::Confirm => {
            let confirmation = state.confirm();
            reply.ok = confirmation.matches;
            reply.error = confirmation.detail.clone();
            reply.confirmation = Some(confirmation);
        }
        Command::Stats => reply.stats = Some(state.snapshot()),
        Command::Stop => state.request_stop(),
    }
    reply
}
