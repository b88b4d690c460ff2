//! One deadline for a whole TLS handshake, and an end at the first SIGINT or SIGTERM.
//!
//! A read timeout alone bounds each read, not the handshake: a server that sends one byte
//! every few seconds keeps every read under its timeout and can hold a confirm (or
//! `verify --live`) for as many reads as the handshake takes. [`Bounded`] wraps the
//! stream of one handshake: every read and write gets only the time left before the
//! deadline, in slices of at most [`SLICE`], and between two slices it looks at
//! [`crate::interrupt::requested`], so that a signal ends the handshake at once instead
//! of when the server next speaks. [`ObserveError`] says how an observation ended short
//! of its end: an I/O or protocol error, the deadline, or a signal.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::interrupt::{self, Signal};
use crate::transport::ByteStream;

/// The longest wait of one read or write before the deadline and the signal are looked
/// at again.
pub const SLICE: Duration = Duration::from_millis(200);

/// Why a bounded stream stopped passing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The handshake's deadline passed.
    Deadline,
    /// SIGINT or SIGTERM asked certroll to stop.
    Signal(Signal),
}

/// A stream whose reads and writes all end by one deadline (see the module header).
pub struct Bounded<'a> {
    inner: &'a mut dyn ByteStream,
    deadline: Instant,
    cut: Option<Cut>,
    /// Bytes read from the server, for messages ("the server sent 3 bytes in 5s").
    received: u64,
}

impl<'a> Bounded<'a> {
    pub fn new(inner: &'a mut dyn ByteStream, deadline: Instant) -> Self {
        Bounded {
            inner,
            deadline,
            cut: None,
            received: 0,
        }
    }

    /// Why the stream stopped, if the deadline or a signal stopped it.
    pub fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Moves the deadline earlier, to `until` (never later); returns the deadline it
    /// replaces, for [`Bounded::restore`].
    pub fn narrow(&mut self, until: Instant) -> Instant {
        let was = self.deadline;
        self.deadline = was.min(until);
        was
    }

    /// Puts back the deadline [`Bounded::narrow`] replaced. A cut by the narrowed
    /// deadline is forgotten unless that deadline has passed too.
    pub fn restore(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if self.cut == Some(Cut::Deadline) && Instant::now() < deadline {
            self.cut = None;
        }
    }

    /// Gives the next read or write the time left (at most [`SLICE`]), or records why
    /// there is none.
    fn next_slice(&mut self) -> io::Result<()> {
        if let Some(signal) = interrupt::requested() {
            return Err(self.stop(Cut::Signal(signal)));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.stop(Cut::Deadline));
        }
        self.inner.set_io_timeout(left.min(SLICE))
    }

    fn stop(&mut self, cut: Cut) -> io::Error {
        self.cut = Some(cut);
        let why = match cut {
            Cut::Deadline => "the handshake's deadline passed".to_string(),
            Cut::Signal(s) => format!("interrupted by {}", s.name()),
        };
        // TimedOut, not Interrupted: callers such as `write_all` retry Interrupted.
        io::Error::new(io::ErrorKind::TimedOut, why)
    }

    /// Runs `op` slice after slice until it does something, fails for good, or the
    /// deadline or a signal stops it. Bounded in time by the deadline.
    fn bounded<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn ByteStream) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            self.next_slice()?;
            match op(&mut *self.inner) {
                Err(e) if slice_ended(&e) => continue,
                other => return other,
            }
        }
    }
}

/// A read or write that only ran out of its slice (or was interrupted by a signal that
/// certroll handles itself): try again with the next slice.
fn slice_ended(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.bounded(|s| s.read(buf))?;
        self.received += n as u64;
        Ok(n)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bounded(|s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.bounded(|s| s.flush())
    }
}

/// Why no observation could be made.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Protocol(String),
    /// The deadline passed first; `received` bytes had come from the server by then.
    #[error(
        "the TLS handshake did not finish by its deadline (the server had sent {received} byte(s))"
    )]
    Deadline { received: u64 },
    #[error("the TLS handshake was interrupted by {}", .0.name())]
    Interrupted(Signal),
}

/// An I/O error of `action` as an observation's error.
pub(crate) fn io_error(action: &str, e: &io::Error) -> ObserveError {
    let what = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => e.to_string(),
    };
    ObserveError::Io(format!("failed to {action}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// A server that sends one byte every `every`, `count` times (bounded), then closes.
    fn drip(every: Duration, count: usize) -> (u16, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..count {
                if s.write_all(&[0x16]).is_err() {
                    return;
                }
                thread::sleep(every);
            }
        });
        (port, t)
    }

    #[test]
    fn a_dripping_server_cannot_hold_reads_past_the_deadline() {
        let (port, server) = drip(Duration::from_millis(300), 20);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let start = Instant::now();
        let mut bounded = Bounded::new(&mut stream, start + Duration::from_secs(1));
        let mut buf = [0u8; 1];
        let mut got = 0;
        let err = loop {
            match bounded.read(&mut buf) {
                Ok(0) => panic!("the server closed before the deadline"),
                Ok(_) => got += 1,
                Err(e) => break e,
            }
            assert!(got < 20, "more bytes than the server sends");
        };
        let took = start.elapsed();
        assert_eq!(bounded.cut(), Some(Cut::Deadline), "{err}");
        assert!(got >= 1 && bounded.received() == got, "{got}");
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(stream);
        server.join().unwrap();
    }
}
