//! The health gate of a pool member (docs/apply.md#pools): after its reload and its first
//! confirm, the member's confirm must keep passing for the pool's `min_healthy_time` before
//! the step counts as done, so that its pool's next member waits for it. A failed check
//! starts the clock again; a member that is not healthy for that long within its
//! `confirm_timeout` fails the step, which stops its pool.

use std::time::{Duration, Instant};

use super::{Event, EventSink, StepError, StepErrorKind, StepWork};
use crate::inventory::Inventory;
use crate::plan::restarts::step_disrupts;
use crate::plan::Step;

/// Longest pause between two health checks.
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest pause between two health checks.
const MIN_INTERVAL: Duration = Duration::from_millis(20);

/// After `step`'s reload and confirm: holds it until its node has stayed healthy for its
/// pool's `min_healthy_time`, if it has one, announcing the wait.
pub(super) fn gate(
    inv: &Inventory,
    work: &dyn StepWork,
    events: &dyn EventSink,
    step: &Step,
    node: &str,
) -> Result<(), StepError> {
    let (Some(healthy), Some(pool)) = (required(inv, step), inv.pools.pool_of(step.node)) else {
        return Ok(());
    };
    events.event(&Event::HealthGate {
        step: step.id,
        node: node.to_string(),
        actions: step.actions.clone(),
        pool: inv.pools.pools[pool].name.clone(),
        healthy_ms: healthy.as_millis() as u64,
    });
    let timeout = inv.nodes[step.node].confirm_timeout;
    hold(work, step, node, healthy, timeout)
}

/// How long `step` must stay healthy after its confirm, if it has a health gate.
pub(super) fn required(inv: &Inventory, step: &Step) -> Option<Duration> {
    let pool = inv.pools.pool_of(step.node)?;
    let t = inv.pools.pools[pool].min_healthy_time;
    (t > Duration::ZERO && step_disrupts(inv, step)).then_some(t)
}

/// Checks `step`'s node with [`StepWork::healthy`] until it has passed continuously for
/// `healthy`, or fails once `timeout` has gone by without that.
pub(super) fn hold(
    work: &dyn StepWork,
    step: &Step,
    node: &str,
    healthy: Duration,
    timeout: Duration,
) -> Result<(), StepError> {
    let t0 = Instant::now();
    let deadline = t0 + timeout.max(healthy);
    let interval = (healthy / 4).clamp(MIN_INTERVAL, MAX_INTERVAL);
    let mut since = t0;
    let mut checks = 0u32;
    let mut last_failure: Option<String> = None;
    loop {
        let now = Instant::now();
        if now.duration_since(since) >= healthy && checks > 0 && last_failure.is_none() {
            return Ok(());
        }
        if now >= deadline {
            let last = last_failure
                .map(|m| format!("; last check: {m}"))
                .unwrap_or_default();
            return Err(StepError::confirm_failed(format!(
                "node {node} did not stay healthy for {} within {} after its reload{last}",
                crate::duration::format(healthy),
                crate::duration::format(timeout)
            )));
        }
        if let Some(signal) = crate::interrupt::requested() {
            return Err(StepError::new(
                StepErrorKind::StopRun,
                format!(
                    "interrupted by {} while node {node} was proving it stays healthy",
                    signal.name()
                ),
            ));
        }
        let until_healthy = (since + healthy).saturating_duration_since(now);
        let pause = interval
            .min(until_healthy.max(MIN_INTERVAL))
            .min(deadline - now);
        std::thread::sleep(pause);
        checks += 1;
        match work.healthy(step) {
            Ok(()) => {
                if last_failure.take().is_some() {
                    since = Instant::now();
                }
            }
            Err(e) if e.kind == StepErrorKind::StopRun => return Err(e),
            Err(e) => {
                last_failure = Some(e.message);
                since = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{FileHash, Prepared};
    use std::sync::Mutex;

    /// A node whose health checks answer from a script, then pass.
    struct Flaky(Mutex<Vec<bool>>);

    impl StepWork for Flaky {
        fn prepare(&self, _: &Step) -> Result<Prepared, StepError> {
            Ok(Prepared::default())
        }
        fn apply(&self, _: &Step, _: &Prepared) -> Result<(), StepError> {
            Ok(())
        }
        fn files_match(&self, _: &Step, _: &[FileHash]) -> Result<bool, StepError> {
            Ok(true)
        }
        fn reconfirm(&self, _: &Step) -> Result<(), StepError> {
            Ok(())
        }
        fn healthy(&self, _: &Step) -> Result<(), StepError> {
            let mut script = self.0.lock().unwrap();
            match script.is_empty() {
                true => Ok(()),
                false if script.remove(0) => Ok(()),
                false => Err(StepError::confirm_failed(
                    "connection refused by 127.0.0.1:8443",
                )),
            }
        }
    }

    fn step() -> Step {
        Step {
            id: 0,
            node: 0,
            actions: vec![crate::plan::Action::LeafSwap],
            after: vec![],
            wave: 0,
        }
    }

    /// [`hold`] on node web1 whose checks answer `script`, then pass: healthy for
    /// `healthy_ms` within `timeout_ms`. The result and how long it took.
    fn hold_scripted(
        script: Vec<bool>,
        healthy_ms: u64,
        timeout_ms: u64,
    ) -> (Result<(), StepError>, Duration) {
        let t0 = Instant::now();
        let work = Flaky(Mutex::new(script));
        let result = hold(
            &work,
            &step(),
            "web1",
            Duration::from_millis(healthy_ms),
            Duration::from_millis(timeout_ms),
        );
        (result, t0.elapsed())
    }

    #[test]
    fn a_healthy_node_passes_after_the_healthy_time() {
        let (result, took) = hold_scripted(vec![], 200, 5000);
        result.unwrap();
        assert!(took >= Duration::from_millis(200));
        assert!(took < Duration::from_secs(2));
    }

    #[test]
    fn a_failed_check_starts_the_clock_again() {
        // Checks come every 50 ms: pass, fail, then pass for good.
        let (result, took) = hold_scripted(vec![true, false], 200, 5000);
        result.unwrap();
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn a_node_that_never_stays_healthy_fails_with_its_last_answer() {
        let err = hold_scripted(vec![false; 1000], 100, 300).0.unwrap_err();
        assert_eq!(err.kind, StepErrorKind::ConfirmFailed);
        assert!(
            err.message.contains("node web1 did not stay healthy"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("connection refused by 127.0.0.1:8443"),
            "{}",
            err.message
        );
    }
}
