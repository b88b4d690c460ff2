//! Graceful interruption: what SIGINT and SIGTERM do to a running certroll.
//!
//! A signal never kills certroll mid-step. [`install`] starts a thread that records the
//! first signal here; from then on the executor starts no new step, every node command
//! still running has its whole process group killed (the transports poll
//! [`requested`] while they wait), the interrupted steps are journaled as failed, the
//! run is journaled as interrupted, and the binary exits with [`Signal::exit_code`]:
//! 130 after SIGINT (the shell convention), 75 after SIGTERM (incomplete, run again to
//! resume). Outside an executor run (verify, a confirmation prompt) the signal thread
//! waits for the node commands in flight to be killed, then exits with that code.
//! A second signal exits at once.
//!
//! The state is process-wide on purpose: a signal is process-wide. Nothing here is
//! set by the library itself; only the binary installs the handler.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The signal received first, as its number; 0 while none was.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Executor runs in progress: while one is, the run itself ends the process.
static RUNS: AtomicUsize = AtomicUsize::new(0);
/// Node commands in flight: they kill their process groups when a signal arrives.
static COMMANDS: AtomicUsize = AtomicUsize::new(0);

/// How long, outside a run, the signal thread lets in-flight commands kill their groups.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A signal that asks certroll to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Int => 2,
            Signal::Term => 15,
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        match n {
            2 => Some(Signal::Int),
            15 => Some(Signal::Term),
            _ => None,
        }
    }

    /// `SIGINT` or `SIGTERM`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// The exit status of a run stopped by this signal (README, exit codes).
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Int => crate::exit::INTERRUPTED,
            Signal::Term => crate::exit::INCOMPLETE,
        }
    }
}

/// The signal that asked certroll to stop, if one did.
pub fn requested() -> Option<Signal> {
    Signal::from_number(SIGNAL.load(Ordering::SeqCst))
}

/// Records `signal` as if it had been received (the first one wins). Returns whether it
/// was the first.
pub fn request(signal: Signal) -> bool {
    SIGNAL
        .compare_exchange(0, signal.number(), Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Held while an executor run is in progress: a signal then stops the run gracefully
/// and the run's caller exits.
#[must_use = "the run counts as in progress only while the guard lives"]
pub struct RunGuard(());

impl RunGuard {
    pub fn new() -> Self {
        RUNS.fetch_add(1, Ordering::SeqCst);
        RunGuard(())
    }
}

impl Default for RunGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        RUNS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held while a node command runs; the command kills its process group on a signal.
#[must_use = "the command counts as in flight only while the guard lives"]
pub struct CommandGuard(());

impl CommandGuard {
    pub fn new() -> Self {
        COMMANDS.fetch_add(1, Ordering::SeqCst);
        CommandGuard(())
    }
}

impl Default for CommandGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CommandGuard {
    fn drop(&mut self) {
        COMMANDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Installs the SIGINT/SIGTERM handling described in the module header.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("certroll-signals".into())
        .spawn(move || {
            for number in signals.forever() {
                let Some(signal) = Signal::from_number(number) else {
                    continue;
                };
                on_signal(signal);
            }
        })?;
    Ok(())
}

fn on_signal(signal: Signal) {
    if !request(signal) {
        // The second signal: the operator does not want to wait.
        let first = requested().unwrap_or(signal);
        crate::errln!("{}: exiting now", signal.name());
        std::process::exit(first.exit_code());
    }
    if RUNS.load(Ordering::SeqCst) > 0 {
        crate::errln!(
            "{}: stopping: no new step starts, commands still running on nodes are killed; \
             run `certroll apply` again to resume",
            signal.name()
        );
        return;
    }
    // No run to end gracefully: give in-flight commands the time to kill their groups.
    let deadline = Instant::now() + KILL_WAIT;
    while COMMANDS.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if RUNS.load(Ordering::SeqCst) == 0 {
        std::process::exit(signal.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_convention() {
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 75);
        for s in [Signal::Int, Signal::Term] {
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
        assert_eq!(Signal::from_number(0), None);
    }
}
