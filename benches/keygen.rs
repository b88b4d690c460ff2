//! Key generation on the control host, per algorithm: what one leaf of a
//! `key_source = "control"` node costs before anything is sent.
//!
//! ```sh
//! cargo bench --bench keygen            # CERTROLL_BENCH_RUNS keys per algorithm (default 10)
//! ```
//!
//! RSA prime search takes a random time, so the median and the slowest of the runs are
//! printed as well as the fastest. Results are in docs/performance.md.

use std::time::{Duration, Instant};

use certroll::inventory::KeyAlgorithm;
use certroll::pki::keys::generate;

fn main() {
    let runs: usize = std::env::var("CERTROLL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!("key generation on the control host, {runs} keys per algorithm");
    for alg in KeyAlgorithm::ALL {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let key = generate(alg).expect("generate a key");
                let took = start.elapsed();
                drop(key);
                took
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<11} fastest {:>9.2} ms  median {:>9.2} ms  slowest {:>9.2} ms",
            alg.as_str(),
            ms(times[0]),
            ms(times[runs / 2]),
            ms(times[runs - 1])
        );
    }
}
