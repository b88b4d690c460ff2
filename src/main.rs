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

mod cli;
mod cli_docs;

use cli::{CaCmd, Cli, Command, LockSub, ManCmd, StateCmd};

use clap::{CommandFactory, Parser};

use certroll::commands::apply::ApplyArgs;
use certroll::commands::ca::ImportArgs;
use certroll::commands::status::StatusArgs;
use certroll::commands::verify::VerifyArgs;
use certroll::commands::{self, plan::PlanArgs, CommandError};
use certroll::error::causes;
use certroll::exit;
use certroll::output::{escape, Style};

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
