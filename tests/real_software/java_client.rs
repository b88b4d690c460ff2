//! The Java client's traffic: `java Client.java` (tests/real_software/java/Client.java,
//! run from source by the JDK) with the command of docs/recipes.md, as a service user.
//!
//! One JVM runs the whole time; for every request it loads the keystore and truststore
//! from disk again and opens a new TLS connection, so every switch certroll makes is seen
//! by the next request, as curl sees it in `traffic.rs`. It prints one line per request;
//! a reader thread counts them into a [`Tally`]. The client stops when its standard input
//! closes (or after its own bound of requests and seconds); [`JavaClient::stop`] closes it
//! and kills the process by its id if it does not end in time.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::traffic::Tally;

/// The client's own bounds (it never runs longer, whatever the test does).
const MAX_SECONDS: &str = "600";
const MAX_REQUESTS: &str = "100000";
/// How long the client may take to end after its input closed.
const STOP: Duration = Duration::from_secs(20);

/// What the client reported so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub tally: Tally,
    /// The issuers of the served leaves, each time it changed, in order.
    pub issuers: Vec<String>,
}

/// A running client.
pub struct JavaClient {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// The recipe's command, with `Client.java` at `source`, and its bounds; the program
/// (`java`) first.
pub fn command(recipe_command: &str, source: &Path) -> Vec<String> {
    let mut words: Vec<String> = recipe_command
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("java"),
        "{recipe_command}"
    );
    assert_eq!(
        words.get(1).map(String::as_str),
        Some("Client.java"),
        "{recipe_command}"
    );
    words[1] = source.display().to_string();
    // JVM options go before the source file.
    words.splice(
        1..1,
        ["-Xmx128m".to_string(), "-XX:+UseSerialGC".to_string()],
    );
    words.extend(["--seconds", MAX_SECONDS, "--max", MAX_REQUESTS].map(String::from));
    words
}

/// Copies the client's source to `dir/Client.java` (readable by every user) and returns
/// its path.
pub fn install_source(dir: &Path) -> std::path::PathBuf {
    let from = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/real_software/java/Client.java"
    );
    let to = dir.join("Client.java");
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    to
}

impl JavaClient {
    /// Starts `command` (from [`command`]) with only `user`'s rights.
    pub fn start(command: &[String], user: &str) -> JavaClient {
        let mut child = Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .args(command)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Java client");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let counts = seen.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut s = counts.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(issuer) = line.strip_prefix("ok ") {
                    s.tally.ok += 1;
                    if s.issuers.last().map(String::as_str) != Some(issuer) {
                        s.issuers.push(issuer.to_string());
                    }
                } else {
                    s.tally.fail(line);
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        JavaClient {
            stdin: child.stdin.take(),
            child,
            seen,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// The counts so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most `limit`) until `n` more requests succeeded than `since`, and until
    /// the served leaf's issuer is `issuer` when given; panics with the counts otherwise,
    /// and at once when the client ended.
    pub fn wait_for(&mut self, since: u64, n: u64, issuer: Option<&str>, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            let s = self.seen();
            let issued = issuer.is_none_or(|i| s.issuers.last().is_some_and(|l| l.contains(i)));
            if s.tally.ok >= since + n && issued {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the Java client ended ({status}): {s:?}");
            }
            assert!(
                Instant::now() < end,
                "within {limit:?}: wanted {n} more successful requests than {since}{}; the client saw {s:?}",
                issuer.map(|i| format!(" served by {i}")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Closes the client's input, waits for it to end (killing it after [`STOP`]) and
    /// returns what it saw and printed on stderr.
    pub fn stop(mut self) -> (Seen, String) {
        drop(self.stdin.take());
        let end = Instant::now() + STOP;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (self.seen(), stderr)
    }
}

impl Drop for JavaClient {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
