//! `certroll-peer run`: start the TLS server, the client loops, the control socket and the
//! stats writer, then wait for a `stop` command. Files that fail to load at start do not
//! stop the peer: it serves and counts nothing until a reload succeeds.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::control;
use crate::handshake::{self, Target};
use crate::material::FilePaths;
use crate::state::PeerState;
use crate::stats;

/// Name of the stats file inside the state directory.
pub const STATS_NAME: &str = "stats.json";
/// How often `stats.json` is rewritten.
const STATS_PERIOD: Duration = Duration::from_millis(200);

/// Everything `run` needs, from the command line.
pub struct RunOptions {
    pub node: String,
    pub state_dir: PathBuf,
    pub paths: FilePaths,
    pub listen: Option<SocketAddr>,
    pub require_client_cert: bool,
    pub targets: Vec<Target>,
    pub interval: Duration,
}

/// Why the peer could not start or stop cleanly.
// The I/O error is part of the message (named `cause`, not `source`): the peer prints an
// error with `{e}`, so each level shows once.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to create state directory {} on node {node}: {cause}", path.display())]
    StateDir {
        path: PathBuf,
        node: String,
        cause: std::io::Error,
    },
    #[error("failed to listen on {addr} on node {node}: {cause}")]
    Listen {
        addr: SocketAddr,
        node: String,
        cause: std::io::Error,
    },
    #[error("failed to open control socket {} on node {node}: {cause}", path.display())]
    Control {
        path: PathBuf,
        node: String,
        cause: std::io::Error,
    },
    #[error("failed to write stats {} on node {node}: {cause}", path.display())]
    Stats {
        path: PathBuf,
        node: String,
        cause: std::io::Error,
    },
    #[error("a {role} thread of node {node} panicked")]
    Thread { role: &'static str, node: String },
}

/// Runs the peer until it is told to stop.
pub fn run(opts: RunOptions) -> Result<(), RunError> {
    let node = opts.node.clone();
    fs::create_dir_all(&opts.state_dir).map_err(|cause| RunError::StateDir {
        path: opts.state_dir.clone(),
        node: node.clone(),
        cause,
    })?;
    let state = Arc::new(PeerState::new(
        node.clone(),
        opts.state_dir.clone(),
        opts.paths.clone(),
        opts.require_client_cert,
    ));
    // The control socket first: a second peer on the same directory stops here.
    let ctl_path = control::socket_path(&opts.state_dir);
    let ctl = control::bind(&opts.state_dir).map_err(|cause| RunError::Control {
        path: ctl_path.clone(),
        node: node.clone(),
        cause,
    })?;
    let started = start_workers(&state, opts);
    let workers = match started {
        Ok(workers) => workers,
        Err(e) => {
            let _ = fs::remove_file(&ctl_path);
            return Err(e);
        }
    };
    let st = state.clone();
    let control_thread = thread::spawn(move || {
        let result = control::serve(st.clone(), ctl);
        log_io(&st, "serve the control socket", result)
    });
    certroll::errln!(
        "certroll-peer: node {node}: running, control socket {}",
        ctl_path.display()
    );
    let stats_path = state.state_dir.join(STATS_NAME);
    stats_loop(&state, &stats_path);
    let result = join_workers(&state, workers);
    let _ = control_thread.join();
    state.mark_stopped();
    let final_write = write_stats(&state, &stats_path);
    // The socket goes last: its disappearance tells `stop` that the final stats are written.
    let _ = fs::remove_file(&ctl_path);
    result.and(final_write)
}

type Workers = Vec<(&'static str, JoinHandle<()>)>;

/// Loads the files, binds the TLS port, writes the first stats and starts the server and
/// client threads.
fn start_workers(state: &Arc<PeerState>, opts: RunOptions) -> Result<Workers, RunError> {
    if let Err(e) = state.reload() {
        certroll::errln!("certroll-peer: {e}; serving nothing until a reload succeeds");
    }
    let tcp = match opts.listen {
        Some(addr) => Some(bind_tcp(state, addr)?),
        None => None,
    };
    for target in &opts.targets {
        state.register_target(&target.name, &target.address, &target.server_name.to_str());
    }
    write_stats(state, &state.state_dir.join(STATS_NAME))?;

    let mut workers: Workers = Vec::new();
    if let Some(listener) = tcp {
        let st = state.clone();
        let serve = move || {
            let result = handshake::serve(st.clone(), listener);
            log_io(&st, "serve TLS", result)
        };
        workers.push(("server", thread::spawn(serve)));
    }
    for target in opts.targets {
        let st = state.clone();
        let interval = opts.interval;
        let client = move || handshake::run_target(st, target, interval);
        workers.push(("client", thread::spawn(client)));
    }
    Ok(workers)
}

/// Tells every thread to stop and waits for it; a panicked thread is an error.
fn join_workers(state: &PeerState, workers: Workers) -> Result<(), RunError> {
    state.request_stop();
    let mut result = Ok(());
    for (role, handle) in workers {
        if handle.join().is_err() && result.is_ok() {
            result = Err(RunError::Thread {
                role,
                node: state.node.clone(),
            });
        }
    }
    result
}

fn bind_tcp(state: &PeerState, addr: SocketAddr) -> Result<TcpListener, RunError> {
    let listen_err = |cause| RunError::Listen {
        addr,
        node: state.node.clone(),
        cause,
    };
    let listener = bind_retrying(addr).map_err(listen_err)?;
    let bound = listener.local_addr().map_err(listen_err)?;
    state.register_server(bound.to_string());
    certroll::errln!("certroll-peer: node {}: listening on {bound}", state.node);
    Ok(listener)
}

/// How long a port in use is retried before `run` gives up: a port can be held for a
/// moment by a connection's local end (the peer releases its port while it has no files,
/// see `handshake::serve`).
const BIND_PATIENCE: Duration = Duration::from_secs(5);

/// Binds `addr`, retrying while it is in use, up to [`BIND_PATIENCE`].
fn bind_retrying(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = std::time::Instant::now() + BIND_PATIENCE;
    loop {
        match TcpListener::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn log_io(state: &PeerState, action: &str, result: std::io::Result<()>) {
    if let Err(e) = result {
        certroll::errln!(
            "certroll-peer: node {}: failed to {action}: {e}",
            state.node
        );
        state.request_stop();
    }
}

/// Rewrites the stats file every period until the peer is told to stop. A failed write is
/// reported and retried on the next period; the handshakes go on regardless.
fn stats_loop(state: &PeerState, path: &Path) {
    while !state.stopping() {
        thread::sleep(STATS_PERIOD);
        if let Err(e) = write_stats(state, path) {
            certroll::errln!("certroll-peer: {e}");
        }
    }
}

fn write_stats(state: &PeerState, path: &Path) -> Result<(), RunError> {
    stats::write_atomic(path, &state.snapshot()).map_err(|cause| RunError::Stats {
        path: path.to_path_buf(),
        node: state.node.clone(),
        cause,
    })
}
