//! Continuous traffic through the real software while certroll rotates, and a reader of
//! key pairs on disk.
//!
//! - curl → HAProxy → nginx: one new `curl` process (a new connection, the client's cert
//!   and key read again) per request;
//! - psql → PostgreSQL: one new `psql` process per query (libpq reads its pair per
//!   connection);
//! - the pair reader loads every node's certificate and key, one after the other as the
//!   clients do, in a tight loop, and counts pairs that do not belong together. It reads
//!   the certificate again after the key: when that changed, the read straddled a switch
//!   (a client-side race no writer can prevent, docs/layout.md) and is not counted; when
//!   it did not, the disk itself held the mismatched pair — what a writer that replaces
//!   the two files one after the other produces.
//!
//! Every loop is bounded in count and time and stops when asked.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::PublicKeyData;

/// Longest any traffic loop runs, whatever happens.
const MAX_RUN: Duration = Duration::from_secs(600);
const MAX_REQUESTS: u64 = 200_000;
const MAX_PAIR_READS: u64 = 50_000_000;

/// Counters of one loop.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// Pair reads that straddled a switch (the certificate changed while the key was
    /// read): the reader's own race, which no writer can prevent; read again.
    pub straddled: u64,
    /// The first failures, with what the client printed.
    pub failures: Vec<String>,
}

impl Tally {
    /// Counts a failure, keeping the first ones' text.
    pub fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.failures.len() < 10 {
            self.failures.push(what);
        }
    }
}

/// A running loop: its stop flag, its thread, its counters.
pub struct Loop {
    name: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    thread: Option<JoinHandle<()>>,
}

impl Loop {
    fn spawn(name: &str, mut once: impl FnMut(&mut Tally) + Send + 'static) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (flag, counts) = (stop.clone(), tally.clone());
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let end = Instant::now() + MAX_RUN;
                let mut local = Tally::default();
                for _ in 0..MAX_REQUESTS {
                    if flag.load(Ordering::SeqCst) || Instant::now() > end {
                        break;
                    }
                    once(&mut local);
                    *counts.lock().unwrap_or_else(|p| p.into_inner()) = local.clone();
                }
            })
            .expect("start a traffic thread");
        Loop {
            name: name.to_string(),
            stop,
            tally,
            thread: Some(thread),
        }
    }

    /// The counters so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the loop and returns its final counters.
    pub fn stop(mut self) -> (String, Tally) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.name.clone(), self.tally())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How curl says that the key it loaded does not belong to the certificate it loaded just
/// before (exit 58): it opened the certificate before a switch and the key after it.
const CURL_STRADDLE: &str = "unable to set private key file";

/// Runs a client command once; ok when it exits 0 and prints `expect`. A curl that loaded
/// its certificate and key across a switch (exit 58, [`CURL_STRADDLE`]) is counted as
/// straddled, not failed: the client's own race between two opens, which the pair reader
/// proves was never a mismatched pair on disk (the test asserts both).
fn request(tally: &mut Tally, client: &str, program: &str, args: &[String], expect: &str) {
    let out = Command::new(program)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == expect => {
            tally.ok += 1
        }
        Ok(o) if straddled(client, o.status.code(), &String::from_utf8_lossy(&o.stderr)) => {
            tally.straddled += 1
        }
        Ok(o) => tally.fail(format!(
            "{client} exited {:?}: stdout {:?} stderr {:?}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => tally.fail(format!("cannot run {program}: {e}")),
    }
}

/// How `redis-cli --tls` says the same (exit 1).
const REDIS_CLI_STRADDLE: &str = "Could not negotiate a TLS connection: Invalid private key";

/// Whether a client's failure is its own load of a pair across a switch.
fn straddled(client: &str, code: Option<i32>, stderr: &str) -> bool {
    match client {
        "curl" => code == Some(58) && stderr.contains(CURL_STRADDLE),
        "redis-cli" => code == Some(1) && stderr.contains(REDIS_CLI_STRADDLE),
        _ => false,
    }
}

/// `curl` through HAProxy, a new process and connection per request, expecting nginx's "ok".
pub fn curl_loop(args: Vec<String>) -> Loop {
    Loop::spawn("curl", move |t| request(t, "curl", "curl", &args, "ok"))
}

/// `psql -tAc 'select 1'`, a new process and connection per query.
pub fn psql_loop(args: Vec<String>) -> Loop {
    Loop::spawn("psql", move |t| request(t, "psql", "psql", &args, "1"))
}

/// `client`, run as `program args...` once per request (a new process and connection),
/// expecting `expect` on its standard output.
pub fn command_loop(client: &str, program: &str, args: Vec<String>, expect: &str) -> Loop {
    let (client, program, expect) = (client.to_string(), program.to_string(), expect.to_string());
    Loop::spawn(&client.clone(), move |t| {
        request(t, &client, &program, &args, &expect)
    })
}

/// Loads `(cert, key)` pairs in turn and counts those whose key is not the
/// certificate's; a file that cannot be read or parsed counts as a failure too.
pub fn pair_reader(pairs: Vec<(String, PathBuf, PathBuf)>) -> Loop {
    let mut reads = 0u64;
    Loop::spawn("pairs", move |t| {
        for (node, cert, key) in &pairs {
            reads += 1;
            if reads > MAX_PAIR_READS {
                return;
            }
            match pair_matches(cert, key) {
                Ok(None) => t.straddled += 1,
                Ok(Some(true)) => t.ok += 1,
                Ok(Some(false)) => t.fail(format!(
                    "node {node}: key {} does not belong to certificate {}",
                    key.display(),
                    cert.display()
                )),
                Err(e) => t.fail(format!("node {node}: {e}")),
            }
        }
    })
}

/// Reads the certificate, then the key (as curl and libpq do), then the certificate
/// again, and compares the key's public half with the certificate's. `None` when the
/// certificate changed during the read.
fn pair_matches(cert: &PathBuf, key: &PathBuf) -> Result<Option<bool>, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("read {}: {e}", cert.display()))?;
    let key_pem =
        std::fs::read_to_string(key).map_err(|e| format!("read {}: {e}", key.display()))?;
    let again = std::fs::read(cert).map_err(|e| format!("read {}: {e}", cert.display()))?;
    if again != cert_pem {
        return Ok(None);
    }
    let block = pem::parse(&cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
    let (_, x509) = x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(Some(
        pair.der_bytes() == &*x509.public_key().subject_public_key.data,
    ))
}

#[test]
fn curl_loading_its_pair_across_a_switch_is_counted_as_straddled_not_as_failed() {
    let said = "curl: (58) unable to set private key file: '/etc/tls/curl1.key' type PEM";
    assert!(straddled("curl", Some(58), said));
    // Anything else stays a failure: another curl error, or psql.
    assert!(!straddled("curl", Some(35), said));
    assert!(!straddled(
        "curl",
        Some(58),
        "curl: (58) could not load PEM client certificate"
    ));
    assert!(!straddled("psql", Some(58), said));
    let redis = "Could not negotiate a TLS connection: Invalid private key";
    assert!(straddled("redis-cli", Some(1), redis));
    assert!(!straddled(
        "redis-cli",
        Some(1),
        "Could not connect to Redis at 127.0.0.1:6379: Connection refused"
    ));
}
