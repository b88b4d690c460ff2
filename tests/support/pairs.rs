//! A reader that loads key/certificate pairs the way curl and libpq do on every connection
//! (open the certificate, then the key), as fast as it can, and counts the pairs that do
//! not belong together *on disk*.
//!
//! Reading two files one after the other can straddle a switch that happens between the
//! two opens; no writer can prevent that, and it says nothing about the disk. So each load
//! reads the certificate, the key, then the certificate again: when both certificate reads
//! agree, that certificate and the key were on disk together at the instant the key was
//! read, and a mismatch is a real one. Loads whose certificate changed underneath are
//! counted as `straddled` and not judged.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a reader saw.
#[derive(Debug, Default, Clone)]
pub struct PairStats {
    /// Loads that read both files.
    pub loads: u64,
    /// Loads whose certificate and key were on disk together and do not match.
    pub mismatches: u64,
    /// Loads whose certificate changed between the two reads (not judged).
    pub straddled: u64,
    /// Loads where a file was missing or unreadable.
    pub unreadable: u64,
    /// Distinct certificates seen (a rotation shows at least two).
    pub distinct_certs: usize,
    /// The first mismatch, for the failure message.
    pub first_mismatch: Option<String>,
}

/// A running reader; [`PairReader::stop`] returns its counts.
pub struct PairReader {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<PairStats>,
}

impl PairReader {
    /// Starts one thread that loads every `(cert, key)` pair in turn until stopped
    /// (and for at most `limit`).
    pub fn start(pairs: Vec<(PathBuf, PathBuf)>, limit: Duration) -> PairReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || read_loop(&pairs, &flag, Instant::now() + limit));
        PairReader { stop, handle }
    }

    pub fn stop(self) -> PairStats {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("pair reader thread")
    }
}

fn read_loop(pairs: &[(PathBuf, PathBuf)], stop: &AtomicBool, deadline: Instant) -> PairStats {
    let mut stats = PairStats::default();
    let mut judged: HashMap<(Vec<u8>, Vec<u8>), bool> = HashMap::new();
    let mut certs: HashSet<Vec<u8>> = HashSet::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        for (cert, key) in pairs {
            let (Ok(c1), Ok(k), Ok(c2)) = (fs::read(cert), fs::read(key), fs::read(cert)) else {
                stats.unreadable += 1;
                continue;
            };
            stats.loads += 1;
            if c1 != c2 {
                stats.straddled += 1;
                continue;
            }
            certs.insert(c1.clone());
            let ok = *judged
                .entry((c1, k))
                .or_insert_with_key(|(c, k)| belong_together(c, k));
            if !ok {
                stats.mismatches += 1;
                stats
                    .first_mismatch
                    .get_or_insert_with(|| format!("{} with {}", cert.display(), key.display()));
            }
        }
    }
    stats.distinct_certs = certs.len();
    stats
}

/// Whether the first certificate of `cert_pem` carries the public key of `key_pem`.
pub fn belong_together(cert_pem: &[u8], key_pem: &[u8]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let Ok(key) = std::str::from_utf8(key_pem)
        .map_err(|_| ())
        .and_then(|k| rcgen::KeyPair::from_pem(k).map_err(|_| ()))
    else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}
