//! The command line of `certroll`: every subcommand, flag and value as clap parses them,
//! and the small conversions from clap's value enums to the library's types. `main.rs`
//! dispatches the parsed [`Cli`] to the library's commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use certroll::output::Format;
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
pub(crate) struct Cli {
    /// Inventory file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "certroll.toml",
        env = "CERTROLL_INVENTORY"
    )]
    pub(crate) inventory: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct LockCmd {
    #[command(subcommand)]
    pub(crate) action: Option<LockSub>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LockSub {
    /// End the current lease (PostgreSQL backend) and bump its epoch: its run stops at its
    /// next write, and `certroll apply` resumes it.
    Break {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StateCmd {
    /// Copy the local state_dir (journal, CA store) into the empty PostgreSQL backend.
    Push,
    /// Copy the PostgreSQL backend's state into the empty local state_dir.
    Pull,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsCmd {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: crate::cli_docs::CompletionShell,
}

#[derive(Debug, Args)]
pub(crate) struct ManCmd {
    /// Write certroll.1 and certroll-COMMAND.1 pages into this existing directory instead.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InitCmd {
    /// The directory to write certroll.toml into (created when missing).
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCmd {
    /// Record an existing CA as the current generation of [ca.NAME] (or, with --next, stage
    /// the next one); see docs/takeover.md.
    Import(ImportCmd),
    /// Re-issue the current CA certificate with the same key, subject and key identifiers
    /// and a new validity (the CA's `validity`); `certroll apply` then installs it in every
    /// bundle. See docs/operations.md#an-expiring-ca.
    Extend(ExtendCmd),
}

#[derive(Debug, Args)]
pub(crate) struct ExtendCmd {
    /// The [ca.NAME] of the inventory.
    pub(crate) name: String,
    /// Nodes read at once (to check the leaves' authority key identifiers).
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) parallel: u16,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    pub(crate) accept_new_host_keys: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportCmd {
    /// The [ca.NAME] of the inventory.
    pub(crate) name: String,
    /// The issuing CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: PathBuf,
    /// Its private key (PKCS#8 PEM); without it the generation is public-only and certroll
    /// can only rotate away from it.
    #[arg(long, value_name = "FILE", conflicts_with = "pkcs11_key_label")]
    pub(crate) key: Option<PathBuf>,
    /// Instead of --key: the label of the CA's key already in its PKCS#11 token
    /// (key_store = "pkcs11"); its public key must match --cert.
    #[arg(long, value_name = "LABEL")]
    pub(crate) pkcs11_key_label: Option<String>,
    /// The root nodes trust, when the issuing CA is an intermediate.
    #[arg(long, value_name = "FILE")]
    pub(crate) anchor: Option<PathBuf>,
    /// Stage the next generation (brought by the operator) for `apply --rotate`.
    #[arg(long)]
    pub(crate) next: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyCmd {
    /// Verify only this CA (default: every CA of the inventory).
    #[arg(long, value_name = "NAME")]
    pub(crate) ca: Option<String>,
    /// Output format (prometheus: the text exposition format, see docs/operations.md).
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: VerifyFormat,
    /// Warn about certificates expiring within this (default: [verify] warn_within, else
    /// the CA's renew_before), e.g. 30d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) warn_within: Option<Duration>,
    /// Certificates expiring within this are CRITICAL, exit 2 (default: [verify]
    /// critical_within, else 7d); never longer than the warning window.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) critical_within: Option<Duration>,
    /// Also write the metrics to DIR/certroll.prom, atomically, for node_exporter's
    /// textfile collector (the directory must exist).
    #[arg(long, value_name = "DIR")]
    pub(crate) textfile_dir: Option<PathBuf>,
    /// Also run each client's `probe` command against its servers.
    #[arg(long)]
    pub(crate) live: bool,
    /// Time limit of one live probe.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub(crate) probe_timeout: Duration,
    /// Nodes read at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) parallel: u16,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    pub(crate) accept_new_host_keys: bool,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    certroll::duration::parse(s).map_err(|e| e.to_string())
}

/// `--format` of `verify`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum VerifyFormat {
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
pub(crate) enum EventFormat {
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
pub(crate) struct ApplyCmd {
    #[command(flatten)]
    pub(crate) rollover: Rollover,
    /// Most steps in flight at once.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) parallel: u16,
    /// Do not ask for confirmation (needed without a terminal, e.g. from cron).
    #[arg(short, long)]
    pub(crate) yes: bool,
    /// Progress as text (bars on a terminal, log lines otherwise) or NDJSON events on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: EventFormat,
    /// Add the host keys of hosts never seen before to known_hosts (never a changed key).
    #[arg(long)]
    pub(crate) accept_new_host_keys: bool,
    /// The inventory changed during an unfinished run: recompute its plan, keep confirmed steps.
    #[arg(long)]
    pub(crate) replan: bool,
    /// When a pool's restart windows are all closed, stop the run there (resumable) instead
    /// of waiting for the next window.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusCmd {
    /// The CA to report on (required when the inventory defines several).
    #[arg(long, value_name = "NAME")]
    pub(crate) ca: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: EventFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StrategyArg {
    Phased,
    Ordered,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ChainArg {
    Plain,
    CrossSigned,
}

/// `--format` of `plan`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PlanFormatArg {
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
pub(crate) struct Rollover {
    /// Roll the CA over to a new generation.
    #[arg(long)]
    pub(crate) rotate: bool,
    /// Return the fleet from an interrupted rotation to the old generation.
    #[arg(long, conflicts_with_all = ["rotate", "strategy", "chain"])]
    pub(crate) rollback: bool,
    /// The CA to work on (required when the inventory defines several).
    #[arg(long, value_name = "NAME")]
    pub(crate) ca: Option<String>,
    /// How a rotation visits nodes.
    #[arg(long, value_enum)]
    pub(crate) strategy: Option<StrategyArg>,
    /// What chain nodes present after their leaf swap.
    #[arg(long, value_enum)]
    pub(crate) chain: Option<ChainArg>,
    /// Bootstrap even when members hold another CA's files: overwrites them in one wave and
    /// BREAKS their links while it runs (use `certroll ca import` + `apply --rotate` instead).
    #[arg(long, conflicts_with_all = ["rotate", "rollback"])]
    pub(crate) force_bootstrap: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanCmd {
    #[command(flatten)]
    pub(crate) rollover: Rollover,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: PlanFormatArg,
    /// Prove the plan: simulate it in many orders with real TLS handshakes on every link.
    #[arg(long)]
    pub(crate) check: bool,
    /// Random orders tried by --check (besides the adversarial ones).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub(crate) orders: usize,
    /// Exit 2 when the plan has work to do, 0 when it is empty.
    #[arg(long)]
    pub(crate) detailed_exitcode: bool,
}

impl Rollover {
    /// What the operator asked for, with `parallel` steps (or node reads) at once.
    pub(crate) fn intent(&self, parallel: usize) -> Intent {
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
