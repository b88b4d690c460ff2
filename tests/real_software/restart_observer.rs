//! An outside observer of a pool of backends: how many are down at once, measured without
//! asking certroll or HAProxy.
//!
//! A thread connects to every backend's port in turn, every [`PERIOD`], and counts a
//! refused (or timed-out) connection as that backend being down. It records each
//! backend's down windows (from the first refused probe to the next accepted one) and the
//! most backends refused in one round of probes. A round of three local connects takes
//! well under a millisecond, so backends down in the same round were down at once; a
//! restart with a stop, a wait for the exit and a start is down for tens of milliseconds at
//! least, longer than a period. Bounded in time and rounds; stops when asked or dropped.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Time between two rounds of probes.
const PERIOD: Duration = Duration::from_millis(20);
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
const MAX_RUN: Duration = Duration::from_secs(600);
const MAX_ROUNDS: u64 = 100_000;

/// What the observer saw so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub rounds: u64,
    /// The most backends down in one round.
    pub max_down: usize,
    /// Per backend (in the order given), its down windows: (from, to) since the start,
    /// `to` being the last refused probe.
    pub windows: Vec<Vec<(Duration, Duration)>>,
}

impl Seen {
    /// How many times each backend went down.
    pub fn downs(&self) -> Vec<usize> {
        self.windows.iter().map(Vec::len).collect()
    }
}

pub struct Observer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Starts probing 127.0.0.1 at each of `ports`.
    pub fn start(ports: &[u16]) -> Observer {
        let addrs: Vec<SocketAddr> = ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen {
            windows: vec![Vec::new(); addrs.len()],
            ..Seen::default()
        }));
        let (flag, shared) = (stop.clone(), seen.clone());
        let thread = thread::Builder::new()
            .name("observer".into())
            .spawn(move || {
                let start = Instant::now();
                let mut down_since: Vec<Option<Duration>> = vec![None; addrs.len()];
                for _ in 0..MAX_ROUNDS {
                    if flag.load(Ordering::SeqCst) || start.elapsed() > MAX_RUN {
                        break;
                    }
                    let now = start.elapsed();
                    let up: Vec<bool> = addrs
                        .iter()
                        .map(|a| TcpStream::connect_timeout(a, PROBE_TIMEOUT).is_ok())
                        .collect();
                    let mut seen = shared.lock().unwrap_or_else(|p| p.into_inner());
                    seen.rounds += 1;
                    seen.max_down = seen.max_down.max(up.iter().filter(|u| !**u).count());
                    for (i, is_up) in up.iter().enumerate() {
                        match (is_up, down_since[i]) {
                            (false, None) => {
                                down_since[i] = Some(now);
                                seen.windows[i].push((now, now));
                            }
                            (false, Some(_)) => {
                                if let Some(w) = seen.windows[i].last_mut() {
                                    w.1 = now;
                                }
                            }
                            (true, Some(_)) => down_since[i] = None,
                            (true, None) => {}
                        }
                    }
                    drop(seen);
                    thread::sleep(PERIOD);
                }
            })
            .expect("start the observer thread");
        Observer {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// What it saw so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops probing and returns what it saw.
    pub fn stop(mut self) -> Seen {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.halt();
    }
}

#[test]
fn the_observer_sees_a_closed_port_as_down_and_an_open_one_as_up() {
    let open = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ports = [
        open.local_addr().expect("port").port(),
        closed.local_addr().expect("port").port(),
    ];
    drop(closed);
    let observer = Observer::start(&ports);
    let end = Instant::now() + Duration::from_secs(10);
    while observer.seen().rounds < 5 {
        assert!(Instant::now() < end, "the observer made no rounds");
        thread::sleep(PERIOD);
    }
    let seen = observer.stop();
    assert_eq!(seen.max_down, 1, "{seen:?}");
    assert_eq!(seen.downs(), vec![0, 1], "{seen:?}");
}
