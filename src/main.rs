//! The `certroll` binary: parse arguments, call the library, map the result to an exit code.
//!
//! Exit codes (README): 0 done, 1 failure, 2 plan has work (`--detailed-exitcode`),
//! 64 usage, 66 no inventory, 69 state backend unreachable, 73 `init` would replace a file,
//! 75 incomplete (resume later),
//! 77 refused in this state, 78 bad inventory; `verify` uses 0–3.
//! `apply` and `verify` stop gracefully on SIGINT (exit 130) and SIGTERM (exit 75):
//! see [`certroll::interrupt`].
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cli_docs;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use certroll::commands::apply::ApplyArgs;
use certroll::commands::ca::ImportArgs;
use certroll::commands::status::StatusArgs;
use certroll::commands::verify::VerifyArgs;
use certroll::commands::{self, plan::PlanArgs, CommandError};
use certroll::error::causes;
use certroll::exit;
use certroll::output::{escape, Format, Style};
use certroll::plan::{ChainMode, Strategy};
use certroll::session::decide::Intent;

/// Rotate the certificate authority of a TLS fleet without one failed handshake.
#[derive(Debug, Parser)]
#[command(
    name = "certroll",
    version,
    long_version = env!("CERTROLL_LONG_VERSION"),
    about,
    propagate_version = true
)]
struct Cli {
    /// Inventory file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "certroll.toml",
        env = "CERTROLL_INVENTORY"
    )]
    inventory: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented starter inventory to DIR/certroll.toml, and nothing else.
    ///
    /// Two nodes on this machine to try plan, apply and verify with at once, and an SSH node,
    /// commented out, to copy from. An existing inventory is never replaced (exit 73).
    Init(InitCmd),
    /// Print the update plan without touching any node (a dry run).
    Plan(PlanCmd),
    /// Carry out the plan on the fleet (or resume the unfinished run).
    Apply(ApplyCmd),
    /// Show where the current or last run stands.
    Status(StatusCmd),
    /// Read every node's real files and prove every link (exit 0 OK, 1 warning, 2 critical, 3 unknown).
    Verify(VerifyCmd),
    /// Manage the CA store: import a CA that certroll did not create (a fleet's existing CA),
    /// extend the current CA certificate with its own key.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Show who holds the lock of the fleet's state (exit 0 free, 75 held), or end a lease.
    Lock(LockCmd),
    /// Move the fleet's state between the local state_dir and its PostgreSQL backend.
    #[command(subcommand)]
    State(StateCmd),
    /// Print the completion script of a shell (see the README for where it goes).
    Completions(CompletionsCmd),
    /// Print the man page certroll(1), or with --dir write one page per command.
    Man(ManCmd),
}

#[derive(Debug, Args)]
struct LockCmd {
    #[command(subcommand)]
    action: Option<LockSub>,
}

#[derive(Debug, Subcommand)]
enum LockSub {
    /// End the current lease (PostgreSQL backend) and bump its epoch: its run stops at its
    /// next write, and `certroll apply` resumes it.
    Break {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StateCmd {
    /// Copy the local state_dir (journal, CA store) into the empty PostgreSQL backend.
    Push,
    /// Copy the PostgreSQL backend's state into the empty local state_dir.
    Pull,
}

#[derive(Debug, Args)]
struct CompletionsCmd {
    /// The shell.
    #[arg(value_enum)]
    shell: cli_docs::CompletionShell,
}

#[derive(Debug, Args)]
struct ManCmd {
    /// Write certroll.1 and certroll-COMMAND.1 pages into this existing directory instead.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct InitCmd {
    /// The directory to write certroll.toml into (created when missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Record an existing CA as the current generation of [ca.NAME] (or, with --next, stage
    /// the next one); see docs/takeover.md.
    Import(ImportCmd),
    /// Re-issue the current CA certificate with the same key, subject and key identifiers
    /// and a new validity (the CA's `validity`); `certroll apply` then installs it in every
    /// bundle. See docs/operations.md#an-expiring-ca.
    Extend(ExtendCmd),
}

#[derive(Debug, Args)]
struct ExtendCmd {
    /// The [ca.NAME] of the inventory.
    name: String,
    /// Nodes read at once (to check the leaves' authority key identifiers).
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    accept_new_host_keys: bool,
}

#[derive(Debug, Args)]
struct ImportCmd {
    /// The [ca.NAME] of the inventory.
    name: String,
    /// The issuing CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Its private key (PKCS#8 PEM); without it the generation is public-only and certroll
    /// can only rotate away from it.
    #[arg(long, value_name = "FILE", conflicts_with = "pkcs11_key_label")]
    key: Option<PathBuf>,
    /// Instead of --key: the label of the CA's key already in its PKCS#11 token
    /// (key_store = "pkcs11"); its public key must match --cert.
    #[arg(long, value_name = "LABEL")]
    pkcs11_key_label: Option<String>,
    /// The root nodes trust, when the issuing CA is an intermediate.
    #[arg(long, value_name = "FILE")]
    anchor: Option<PathBuf>,
    /// Stage the next generation (brought by the operator) for `apply --rotate`.
    #[arg(long)]
    next: bool,
}

#[derive(Debug, Args)]
struct VerifyCmd {
    /// Verify only this CA (default: every CA of the inventory).
    #[arg(long, value_name = "NAME")]
    ca: Option<String>,
    /// Output format (prometheus: the text exposition format, see docs/operations.md).
    #[arg(long, value_enum, default_value = "text")]
    format: VerifyFormat,
    /// Warn about certificates expiring within this (default: [verify] warn_within, else
    /// the CA's renew_before), e.g. 30d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    warn_within: Option<Duration>,
    /// Certificates expiring within this are CRITICAL, exit 2 (default: [verify]
    /// critical_within, else 7d); never longer than the warning window.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    critical_within: Option<Duration>,
    /// Also write the metrics to DIR/certroll.prom, atomically, for node_exporter's
    /// textfile collector (the directory must exist).
    #[arg(long, value_name = "DIR")]
    textfile_dir: Option<PathBuf>,
    /// Also run each client's `probe` command against its servers.
    #[arg(long)]
    live: bool,
    /// Time limit of one live probe.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    probe_timeout: Duration,
    /// Nodes read at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    accept_new_host_keys: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    certroll::duration::parse(s).map_err(|e| e.to_string())
}

/// `--format` of `verify`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum VerifyFormat {
    Text,
    Json,
    Prometheus,
}

impl From<VerifyFormat> for Format {
    fn from(f: VerifyFormat) -> Format {
        match f {
            VerifyFormat::Text => Format::Text,
            VerifyFormat::Json => Format::Json,
            VerifyFormat::Prometheus => Format::Prometheus,
        }
    }
}

/// `--format` of `apply` and `status`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventFormat {
    Text,
    Json,
}

impl From<EventFormat> for Format {
    fn from(f: EventFormat) -> Format {
        match f {
            EventFormat::Text => Format::Text,
            EventFormat::Json => Format::Json,
        }
    }
}

#[derive(Debug, Args)]
struct ApplyCmd {
    #[command(flatten)]
    rollover: Rollover,
    /// Most steps in flight at once.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Do not ask for confirmation (needed without a terminal, e.g. from cron).
    #[arg(short, long)]
    yes: bool,
    /// Progress as text (bars on a terminal, log lines otherwise) or NDJSON events on stdout.
    #[arg(long, value_enum, default_value = "text")]
    format: EventFormat,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    accept_new_host_keys: bool,
    /// The inventory changed during an unfinished run: recompute its plan, keep confirmed steps.
    #[arg(long)]
    replan: bool,
    /// When a pool's restart windows are all closed, stop the run there (resumable) instead
    /// of waiting for the next window.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Debug, Args)]
struct StatusCmd {
    /// The CA to report on (required when the inventory defines several).
    #[arg(long, value_name = "NAME")]
    ca: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: EventFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StrategyArg {
    Phased,
    Ordered,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChainArg {
    Plain,
    CrossSigned,
}

/// `--format` of `plan`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlanFormatArg {
    Text,
    Json,
    Dot,
}

impl From<PlanFormatArg> for Format {
    fn from(f: PlanFormatArg) -> Format {
        match f {
            PlanFormatArg::Text => Format::Text,
            PlanFormatArg::Json => Format::Json,
            PlanFormatArg::Dot => Format::Dot,
        }
    }
}

/// Options shared by `plan` and `apply`.
#[derive(Debug, Args)]
struct Rollover {
    /// Roll the CA over to a new generation.
    #[arg(long)]
    rotate: bool,
    /// Return the fleet from an interrupted rotation to the old generation.
    #[arg(long, conflicts_with_all = ["rotate", "strategy", "chain"])]
    rollback: bool,
    /// The CA to work on (required when the inventory defines several).
    #[arg(long, value_name = "NAME")]
    ca: Option<String>,
    /// How a rotation visits nodes.
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// What chain nodes present after their leaf swap.
    #[arg(long, value_enum)]
    chain: Option<ChainArg>,
    /// Bootstrap even when members hold another CA's files: overwrites them in one wave and
    /// BREAKS their links while it runs (use `certroll ca import` + `apply --rotate` instead).
    #[arg(long, conflicts_with_all = ["rotate", "rollback"])]
    force_bootstrap: bool,
}

#[derive(Debug, Args)]
struct PlanCmd {
    #[command(flatten)]
    rollover: Rollover,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormatArg,
    /// Prove the plan: simulate it in many orders with real TLS handshakes on every link.
    #[arg(long)]
    check: bool,
    /// Random orders tried by --check (besides the adversarial ones).
    #[arg(long, default_value_t = 64, value_name = "N")]
    orders: usize,
    /// Exit 2 when the plan has work to do, 0 when it is empty.
    #[arg(long)]
    detailed_exitcode: bool,
}

impl Rollover {
    /// What the operator asked for, with `parallel` steps (or node reads) at once.
    fn intent(&self, parallel: usize) -> Intent {
        Intent {
            rotate: self.rotate,
            rollback: self.rollback,
            strategy: self.strategy.map(|s| match s {
                StrategyArg::Phased => Strategy::Phased,
                StrategyArg::Ordered => Strategy::Ordered,
            }),
            chain: self.chain.map(|c| match c {
                ChainArg::Plain => ChainMode::Plain,
                ChainArg::CrossSigned => ChainMode::CrossSigned,
            }),
            parallel,
            force_bootstrap: self.force_bootstrap,
        }
    }
}

fn run(cli: Cli) -> Result<i32, CommandError> {
    match cli.command {
        Command::Plan(cmd) => commands::plan::run(&PlanArgs {
            inventory: cli.inventory,
            ca: cmd.rollover.ca.clone(),
            intent: cmd.rollover.intent(32),
            format: cmd.format.into(),
            check: cmd.check,
            orders: cmd.orders,
            detailed_exitcode: cmd.detailed_exitcode,
        }),
        Command::Apply(cmd) => commands::apply::run(&ApplyArgs {
            inventory: cli.inventory,
            ca: cmd.rollover.ca.clone(),
            intent: cmd.rollover.intent(usize::from(cmd.parallel)),
            yes: cmd.yes,
            format: cmd.format.into(),
            accept_new_host_keys: cmd.accept_new_host_keys,
            replan: cmd.replan,
            no_wait: cmd.no_wait,
        }),
        Command::Verify(cmd) => commands::verify::run(&VerifyArgs {
            inventory: cli.inventory,
            ca: cmd.ca,
            format: cmd.format.into(),
            warn_within: cmd.warn_within,
            critical_within: cmd.critical_within,
            textfile_dir: cmd.textfile_dir,
            live: cmd.live,
            probe_timeout: cmd.probe_timeout,
            parallel: usize::from(cmd.parallel),
            accept_new_host_keys: cmd.accept_new_host_keys,
        }),
        Command::Ca(CaCmd::Import(cmd)) => commands::ca::import(&ImportArgs {
            inventory: cli.inventory,
            ca: cmd.name,
            cert: cmd.cert,
            key: cmd.key,
            pkcs11_key_label: cmd.pkcs11_key_label,
            anchor: cmd.anchor,
            next: cmd.next,
        }),
        Command::Lock(cmd) => commands::state::lock(
            &cli.inventory,
            match cmd.action {
                None => commands::state::LockAction::Show,
                Some(LockSub::Break { yes }) => commands::state::LockAction::Break { yes },
            },
        ),
        Command::State(StateCmd::Push) => {
            commands::state::transfer(&cli.inventory, commands::state::Transfer::Push)
        }
        Command::State(StateCmd::Pull) => {
            commands::state::transfer(&cli.inventory, commands::state::Transfer::Pull)
        }
        Command::Ca(CaCmd::Extend(cmd)) => {
            commands::ca_extend::extend(&commands::ca_extend::ExtendArgs {
                inventory: cli.inventory,
                ca: cmd.name,
                parallel: usize::from(cmd.parallel),
                accept_new_host_keys: cmd.accept_new_host_keys,
            })
        }
        Command::Completions(cmd) => {
            let mut out = Vec::new();
            cli_docs::completions(&mut Cli::command(), cmd.shell, &mut out);
            print_bytes(&out)
        }
        Command::Man(ManCmd { dir: Some(dir) }) => {
            cli_docs::man_pages(Cli::command(), &dir).map_err(|e| {
                CommandError::CantCreate(format!(
                    "failed to write the man pages into {}: {e}",
                    dir.display()
                ))
            })?;
            Ok(exit::OK)
        }
        Command::Man(ManCmd { dir: None }) => {
            let mut out = Vec::new();
            cli_docs::man(Cli::command(), &mut out).map_err(|e| {
                CommandError::Other(anyhow::anyhow!("failed to render the man page: {e}"))
            })?;
            print_bytes(&out)
        }
        Command::Init(cmd) => commands::init::run(&commands::init::InitArgs { dir: cmd.dir }),
        Command::Status(cmd) => commands::status::run(&StatusArgs {
            inventory: cli.inventory,
            ca: cmd.ca,
            format: cmd.format.into(),
        }),
    }
}

/// Writes generated text to standard output (a reader that left early is no error).
fn print_bytes(bytes: &[u8]) -> Result<i32, CommandError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    certroll::output::unless_reader_left(out.write_all(bytes).and_then(|()| out.flush())).map_err(
        |e| CommandError::Other(anyhow::anyhow!("failed to write to standard output: {e}")),
    )?;
    Ok(exit::OK)
}

/// Prints an error once: its own level, then each cause on its line (see
/// [`certroll::error`]). Errors carry what nodes said (a reload's stderr, a certificate's
/// subject), so every level is escaped for the terminal; certroll's own messages hold no
/// control character, only their newlines are kept.
fn report(err: &CommandError) {
    let style = Style::stderr();
    let text = escape::block(&err.to_string()).into_owned();
    certroll::errln!("{} {text}", style.red(&style.bold("error:")));
    for cause in std::error::Error::source(err).into_iter().flat_map(causes) {
        certroll::errln!("  caused by: {}", escape::block(&cause.to_string()));
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Only the commands that run node commands need the graceful stop; the others keep
    // the default (die at once), which is safe for them.
    if matches!(cli.command, Command::Apply(_) | Command::Verify(_)) {
        if let Err(e) = certroll::interrupt::install() {
            certroll::errln!("warning: cannot handle SIGINT/SIGTERM gracefully: {e}");
        }
    }
    let mut code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            err.exit_code()
        }
    };
    if let Some(signal) = certroll::interrupt::requested() {
        certroll::errln!(
            "stopped by {}: no step started after it and the commands it cut short were killed; \
             `certroll apply` resumes the run",
            signal.name()
        );
        code = signal.exit_code();
    }
    std::process::exit(code);
}
