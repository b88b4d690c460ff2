//! `certroll-peer`: a small TLS server and client that uses a node's real trust bundle,
//! certificate and key, reloads them only when told to (like nginx or envoy), and counts every
//! handshake. A fleet of these shows, and lets tests prove, that a CA rollover done by certroll
//! never fails a handshake. See `docs/peer.md`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod control;
mod handshake;
mod material;
mod run;
mod state;
mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use control::{Command, ControlError, Reply};
use handshake::Target;
use material::FilePaths;

/// Success: the command did what it says.
const EXIT_OK: u8 = 0;
/// The peer answered no: a reload was refused, the files on disk are not the ones served,
/// or the peer failed to run.
const EXIT_REFUSED: u8 = 1;
/// No peer answered on the control socket (`EX_TEMPFAIL`).
const EXIT_NO_PEER: u8 = 75;

#[derive(Parser)]
#[command(
    name = "certroll-peer",
    version,
    about = "A TLS endpoint that counts handshakes and reloads its files on demand"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the peer until `stop`.
    Run(RunArgs),
    /// Make the running peer load its files again; exit 1 if they are refused.
    Reload(DirArgs),
    /// Exit 0 iff the running peer serves exactly the files now on disk.
    Confirm(DirArgs),
    /// Show the handshake counters and the loaded file hashes.
    Stats {
        #[command(flatten)]
        dir: DirArgs,
        /// Print the stats document as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running peer after writing its final stats.
    Stop(DirArgs),
}

#[derive(Args)]
struct DirArgs {
    /// Directory holding the peer's control socket and stats.json.
    #[arg(long)]
    state_dir: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Trust bundle (PEM): the anchors this peer verifies others with.
    #[arg(long)]
    bundle: PathBuf,
    /// Certificate chain (PEM), leaf first.
    #[arg(long)]
    cert: PathBuf,
    /// Private key (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long)]
    key: PathBuf,
    /// Serve TLS on this address (port 0 picks a free port, shown in the stats).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// As a server, demand and verify a client certificate.
    #[arg(long)]
    require_client_cert: bool,
    /// Handshake continuously with NAME=HOST:PORT@SERVER_NAME (repeatable).
    #[arg(long = "target")]
    targets: Vec<Target>,
    /// Pause between two handshakes of one target, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Node name used in messages and stats (default: the state directory's name).
    #[arg(long)]
    node: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(match cli.command {
        Cmd::Run(args) => cmd_run(args),
        Cmd::Reload(dir) => cmd_reload(&dir.state_dir),
        Cmd::Confirm(dir) => cmd_confirm(&dir.state_dir),
        Cmd::Stats { dir, json } => cmd_stats(&dir.state_dir, json),
        Cmd::Stop(dir) => cmd_stop(&dir.state_dir),
    })
}

fn default_node(state_dir: &Path) -> String {
    state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".to_string())
}

fn cmd_run(args: RunArgs) -> u8 {
    let node = args
        .node
        .unwrap_or_else(|| default_node(&args.dir.state_dir));
    let opts = run::RunOptions {
        node,
        state_dir: args.dir.state_dir,
        paths: FilePaths {
            bundle: args.bundle,
            cert: args.cert,
            key: args.key,
        },
        listen: args.listen,
        require_client_cert: args.require_client_cert,
        targets: args.targets,
        interval: Duration::from_millis(args.interval_ms),
    };
    match run::run(opts) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            certroll::errln!("certroll-peer: {e}");
            EXIT_REFUSED
        }
    }
}

/// Sends a command; on a transport failure prints the error and yields the exit code.
fn ask(state_dir: &Path, command: Command) -> Result<Reply, u8> {
    control::request(state_dir, command).map_err(|e: ControlError| {
        certroll::errln!("certroll-peer: {e}");
        EXIT_NO_PEER
    })
}

fn print_hashes(h: &material::Hashes) {
    certroll::outln!("bundle sha256 {}", h.bundle_sha256);
    certroll::outln!("cert   sha256 {}", h.cert_sha256);
    certroll::outln!("key    sha256 {}", h.key_sha256);
}

fn cmd_reload(state_dir: &Path) -> u8 {
    let reply = match ask(state_dir, Command::Reload) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    if reply.ok {
        certroll::outln!("node {} reloaded its files", reply.node);
        if let Some(h) = &reply.loaded {
            print_hashes(h);
        }
        EXIT_OK
    } else {
        let error = reply.error.as_deref().unwrap_or("no reason given");
        let still = if reply.loaded.is_some() {
            "keeps serving its previous files"
        } else {
            "still serves nothing"
        };
        certroll::errln!(
            "certroll-peer: reload refused: {error}; node {} {still}",
            reply.node
        );
        EXIT_REFUSED
    }
}

fn cmd_confirm(state_dir: &Path) -> u8 {
    let reply = match ask(state_dir, Command::Confirm) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    if reply.ok {
        certroll::outln!("node {} serves the files on disk", reply.node);
        if let Some(h) = reply.confirmation.as_ref().and_then(|c| c.loaded.as_ref()) {
            print_hashes(h);
        }
        EXIT_OK
    } else {
        let error = reply.error.as_deref().unwrap_or("no reason given");
        certroll::errln!("certroll-peer: not confirmed: {error}");
        EXIT_REFUSED
    }
}

fn cmd_stats(state_dir: &Path, json: bool) -> u8 {
    let stats = match control::request(state_dir, Command::Stats) {
        Ok(Reply {
            stats: Some(stats), ..
        }) => stats,
        Ok(_) => {
            certroll::errln!(
                "certroll-peer: the peer at {} sent no stats",
                state_dir.display()
            );
            return EXIT_REFUSED;
        }
        Err(e) => match read_stats_file(state_dir) {
            Some(stats) => {
                certroll::errln!("certroll-peer: {e}; showing the last stats written");
                stats
            }
            None => {
                certroll::errln!("certroll-peer: {e}");
                return EXIT_NO_PEER;
            }
        },
    };
    if json {
        match serde_json::to_string_pretty(&stats) {
            Ok(text) => {
                certroll::outln!("{text}");
            }
            Err(e) => {
                certroll::errln!(
                    "certroll-peer: failed to render stats of node {}: {e}",
                    stats.node
                );
                return EXIT_REFUSED;
            }
        }
    } else {
        certroll::out!("{}", stats::render(&stats));
    }
    EXIT_OK
}

fn read_stats_file(state_dir: &Path) -> Option<stats::Stats> {
    let text = std::fs::read_to_string(state_dir.join(run::STATS_NAME)).ok()?;
    serde_json::from_str(&text).ok()
}

fn cmd_stop(state_dir: &Path) -> u8 {
    let reply = match ask(state_dir, Command::Stop) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    let socket = control::socket_path(state_dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        if Instant::now() > deadline {
            certroll::errln!(
                "certroll-peer: node {} did not finish stopping within 10 s (socket {} still present)",
                reply.node,
                socket.display()
            );
            return EXIT_REFUSED;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    certroll::outln!("node {} stopped", reply.node);
    EXIT_OK
}
