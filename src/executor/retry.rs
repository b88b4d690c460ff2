//! Retry with exponential backoff for transient step failures (a dropped SSH connection,
//! a node rebooting): a few tries, the delay doubling up to a cap.

use std::time::Duration;

use super::StepError;

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the second try.
    pub initial_delay: Duration,
    /// The delay doubles after each try up to this cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, waiting 0.2 s, 0.4 s, 0.8 s, 1.6 s between them (capped at 3 s).
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retry at all.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The delay after failed try number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails for a reason other than a transient one, or runs
    /// out of tries. `on_retry(attempt, error, delay)` is told before each wait.
    pub fn run<T>(
        &self,
        mut op: impl FnMut() -> Result<T, StepError>,
        mut on_retry: impl FnMut(u32, &StepError, Duration),
    ) -> Result<T, StepError> {
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                // After SIGINT/SIGTERM a failure is final: the run is stopping.
                Err(e)
                    if e.is_transient()
                        && attempt < self.attempts.max(1)
                        && crate::interrupt::requested().is_none() =>
                {
                    let delay = self.delay(attempt);
                    on_retry(attempt, &e, delay);
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn default_backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let ms: Vec<u128> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![200, 400, 800, 1600, 3000, 3000]);
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let mut calls = 0;
        let mut retries = Vec::new();
        let r = fast(5).run(
            || {
                calls += 1;
                if calls < 3 {
                    Err(StepError::transient("connection reset"))
                } else {
                    Ok(calls)
                }
            },
            |a, e, _| retries.push((a, e.message.clone())),
        );
        assert_eq!(r, Ok(3));
        assert_eq!(
            retries,
            vec![
                (1, "connection reset".to_string()),
                (2, "connection reset".to_string())
            ]
        );
    }

    #[test]
    fn gives_up_after_the_last_try() {
        let mut calls = 0;
        let r: Result<(), _> = fast(3).run(
            || {
                calls += 1;
                Err(StepError::transient("down"))
            },
            |_, _, _| {},
        );
        assert!(r.is_err());
        assert_eq!(calls, 3);
    }

    #[test]
    fn permanent_and_confirm_errors_are_not_retried() {
        for e in [
            StepError::permanent("denied"),
            StepError::confirm_failed("timeout"),
        ] {
            let mut calls = 0;
            let r: Result<(), _> = fast(5).run(
                || {
                    calls += 1;
                    Err(e.clone())
                },
                |_, _, _| panic!("must not retry"),
            );
            assert_eq!(r, Err(e));
            assert_eq!(calls, 1);
        }
    }
}
