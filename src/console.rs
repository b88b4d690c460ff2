//! Writing to standard output and standard error without ever panicking.
//!
//! `println!` and `eprintln!` panic when the write fails, and a write fails as soon as the
//! reader of a pipe has gone (`certroll plan --check 2>&1 | head -12`): the process then
//! ended with a panic message and exit 101. Every message of both binaries goes through
//! [`out`] and [`err`] (or the [`outln!`](crate::outln) and [`errln!`](crate::errln)
//! macros) instead: a write to a stream whose reader has left is dropped, and so is every
//! later write to that stream, without a word (there is nobody left to read it). The
//! command goes on and ends with the exit code of its work — `apply` never stops a run
//! half-way because a terminal or a pipe went away — except where a command has nothing
//! left that anyone could read (see [`nobody_reads_stderr_after_stdout`]).
//!
//! Writers given a `&mut dyn Write` (plans, reports) handle errors themselves; see
//! [`crate::output::unless_reader_left`].

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to standard output failed: later writes are skipped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set once a write to standard error failed: later writes are skipped.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `args` to standard output and flushes it. False when it was not written: the
/// reader has gone (now or before) or the write failed; never panics.
pub fn out(args: fmt::Arguments<'_>) -> bool {
    write_to(&mut std::io::stdout().lock(), &STDOUT_GONE, args)
}

/// Writes `args` to standard error. False when it was not written (see [`out`]).
pub fn err(args: fmt::Arguments<'_>) -> bool {
    write_to(&mut std::io::stderr().lock(), &STDERR_GONE, args)
}

/// Records that standard output's reader has gone (found by a writer of its own, e.g. the
/// plan's buffered writer), so that later writes are skipped.
pub fn stdout_gone() {
    STDOUT_GONE.store(true, Ordering::SeqCst);
}

fn write_to(stream: &mut dyn Write, gone: &AtomicBool, args: fmt::Arguments<'_>) -> bool {
    if gone.load(Ordering::SeqCst) {
        return false;
    }
    let written = stream.write_fmt(args).and_then(|()| stream.flush());
    if written.is_err() {
        gone.store(true, Ordering::SeqCst);
    }
    written.is_ok()
}

/// True when standard output's reader has gone and standard error is the same pipe or
/// file (`2>&1`): nothing the command would say from now on can be read, so a command
/// that only reports (e.g. `plan --check`) may end at once.
pub fn nobody_reads_stderr_after_stdout() -> bool {
    STDOUT_GONE.load(Ordering::SeqCst) && (STDERR_GONE.load(Ordering::SeqCst) || same_stream())
}

/// Whether standard output and standard error are the same open file (device and inode).
fn same_stream() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let id = |fd: std::os::fd::BorrowedFd<'_>| {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        Some((meta.dev(), meta.ino()))
    };
    let (out, err) = (id(std::io::stdout().as_fd()), id(std::io::stderr().as_fd()));
    out.is_some() && out == err
}

/// `println!` that never panics: see [`out`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::console::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics: see [`out`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: see [`err`].
#[macro_export]
macro_rules! errln {
    () => {
        $crate::console::err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics: see [`err`].
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::console::err(format_args!($($arg)*))
    };
}

/// A count and its noun: `1 step`, `5 steps` (nouns that take a plain `s`).
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_to_a_closed_pipe_is_dropped_without_a_panic_and_so_are_later_ones() {
        let gone = AtomicBool::new(false);
        assert!(!write_to(
            &mut Closed,
            &gone,
            format_args!("plan check passed\n")
        ));
        assert!(gone.load(Ordering::SeqCst));
        let mut later = Vec::new();
        assert!(!write_to(&mut later, &gone, format_args!("more\n")));
        assert!(later.is_empty(), "nothing is written after the reader left");
    }

    #[test]
    fn a_write_to_an_open_stream_is_written() {
        let gone = AtomicBool::new(false);
        let mut buf = Vec::new();
        assert!(write_to(&mut buf, &gone, format_args!("a {}\n", 1)));
        assert_eq!(buf, b"a 1\n");
    }
}
