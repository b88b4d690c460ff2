//! What the peers counted: snapshots of every peer's stats, and a sampler that records a
//! timeline while certroll runs, to prove that handshakes went on without a gap.
//!
//! Counters are named like the links they measure: `lb1 → app1` is the client loop of
//! lb1 towards app1 (`targets.app1` in lb1's stats), `app1 (server)` is everything app1
//! accepted as a server.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every peer's stats document at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    /// Node name → its stats document.
    pub nodes: BTreeMap<String, Value>,
}

/// One counter set: a client loop towards one server, or a server's accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub ok: u64,
    pub failed: u64,
    pub unreachable: u64,
}

impl Snapshot {
    /// Reads `stats.json` of every `(node, state_dir)`; a node without one reads as `null`.
    pub fn read(dirs: &[(String, PathBuf)]) -> Snapshot {
        let nodes = dirs
            .iter()
            .map(|(name, dir)| {
                let text = fs::read_to_string(dir.join("stats.json")).unwrap_or_default();
                (
                    name.clone(),
                    serde_json::from_str(&text).unwrap_or(Value::Null),
                )
            })
            .collect();
        Snapshot {
            at: Instant::now(),
            nodes,
        }
    }

    /// Every counter by name (see the module docs).
    pub fn counts(&self) -> BTreeMap<String, Count> {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let mut out = BTreeMap::new();
        for (name, stats) in &self.nodes {
            if let Some(targets) = stats["targets"].as_object() {
                for (server, t) in targets {
                    let count = Count {
                        ok: n(&t["ok"]),
                        failed: n(&t["failed"]),
                        unreachable: n(&t["unreachable"]),
                    };
                    out.insert(format!("{name} → {server}"), count);
                }
            }
            if stats["server"].is_object() {
                let s = &stats["server"];
                let count = Count {
                    ok: n(&s["ok"]),
                    failed: n(&s["failed"]),
                    unreachable: 0,
                };
                out.insert(format!("{name} (server)"), count);
            }
        }
        out
    }

    /// Failed handshakes over every counter.
    pub fn total_failed(&self) -> u64 {
        self.counts().values().map(|c| c.failed).sum()
    }

    /// Every counter with failures, with the peers' last reasons.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, stats) in &self.nodes {
            if let Some(targets) = stats["targets"].as_object() {
                for (server, t) in targets {
                    if t["failed"].as_u64().unwrap_or(0) > 0 {
                        out.push(format!(
                            "{name} → {server}: {} failed, last: {}",
                            t["failed"], t["last_error"]
                        ));
                    }
                }
            }
            let s = &stats["server"];
            if s["failed"].as_u64().unwrap_or(0) > 0 {
                out.push(format!(
                    "{name} (server): {} failed, last: {}",
                    s["failed"], s["last_error"]
                ));
            }
        }
        out
    }

    /// True when every counter of `earlier` grew by at least `n` successful handshakes.
    pub fn grown_by(&self, earlier: &Snapshot, n: u64) -> bool {
        self.stalled_since(earlier, n).is_empty()
    }

    /// Counters that grew by fewer than `n` successful handshakes since `earlier`.
    pub fn stalled_since(&self, earlier: &Snapshot, n: u64) -> Vec<String> {
        let before = earlier.counts();
        let now = self.counts();
        let mut out: Vec<String> = now
            .iter()
            .filter(|(name, c)| c.ok < before.get(*name).map_or(0, |b| b.ok) + n)
            .map(|(name, c)| {
                let b = before.get(name).map_or(0, |b| b.ok);
                format!("{name}: ok {b} → {}", c.ok)
            })
            .collect();
        out.extend(
            before
                .keys()
                .filter(|name| !now.contains_key(*name))
                .map(|name| format!("{name}: gone")),
        );
        out
    }

    /// Counters that saw a connection refused or timed out since `earlier`.
    pub fn new_unreachable_since(&self, earlier: &Snapshot) -> Vec<String> {
        let before = earlier.counts();
        self.counts()
            .into_iter()
            .filter(|(name, c)| c.unreachable > before.get(name).map_or(0, |b| b.unreachable))
            .map(|(name, c)| format!("{name}: {} unreachable", c.unreachable))
            .collect()
    }

    /// One line per counter, for assertion messages.
    pub fn describe(&self) -> String {
        let mut text: String = self
            .counts()
            .iter()
            .map(|(name, c)| {
                format!(
                    "  {name}: ok {} failed {} unreachable {}\n",
                    c.ok, c.failed, c.unreachable
                )
            })
            .collect();
        for (name, stats) in &self.nodes {
            if !stats["load_error"].is_null() {
                text += &format!("  {name}: load error {}\n", stats["load_error"]);
            }
        }
        text
    }
}

/// Reads every peer's `stats.json` periodically in a background thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Snapshot>>,
}

impl Sampler {
    pub fn start(dirs: Vec<(String, PathBuf)>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut samples = vec![Snapshot::read(&dirs)];
            while !flag.load(Ordering::Relaxed) {
                thread::sleep(every);
                samples.push(Snapshot::read(&dirs));
            }
            samples
        });
        Sampler { stop, handle }
    }

    pub fn finish(self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        Timeline {
            samples: self.handle.join().expect("sampler thread"),
        }
    }
}

/// Snapshots in time order.
pub struct Timeline {
    pub samples: Vec<Snapshot>,
}

impl Timeline {
    /// For every counter, the longest time its `ok` did not grow (from the first sample to
    /// the last). The peers publish every ~200 ms, so even a busy link shows steps that long.
    pub fn longest_stalls(&self) -> BTreeMap<String, Duration> {
        let mut last_change: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
        let mut longest: BTreeMap<String, Duration> = BTreeMap::new();
        for sample in &self.samples {
            for (name, c) in sample.counts() {
                let entry = last_change.entry(name.clone()).or_insert((c.ok, sample.at));
                if c.ok != entry.0 {
                    *entry = (c.ok, sample.at);
                }
                let stall = sample.at - entry.1;
                let slot = longest.entry(name).or_default();
                *slot = (*slot).max(stall);
            }
        }
        longest
    }

    /// Panics unless every counter grew at least once every `max`.
    pub fn assert_continuous(&self, max: Duration, context: &str) {
        let stalls = self.longest_stalls();
        let bad: Vec<String> = stalls
            .iter()
            .filter(|(_, d)| **d > max)
            .map(|(name, d)| format!("  {name}: no handshake for {d:?}"))
            .collect();
        assert!(
            bad.is_empty(),
            "{context}: handshakes stopped for longer than {max:?} ({} samples):\n{}",
            self.samples.len(),
            bad.join("\n")
        );
        assert!(!stalls.is_empty(), "{context}: the sampler saw no counters");
    }

    pub fn duration(&self) -> Duration {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) => b.at - a.at,
            _ => Duration::ZERO,
        }
    }
}
