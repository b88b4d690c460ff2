//! The scheduler's side of pools (docs/apply.md#pools): which ready step may start under
//! its pool's budget, what a stopped pool blocks, and what the gate hears of each step's end.
//! Kept apart from the scheduler's core so that a fleet without pools reads as before.

use super::{node_name, Scheduler, State};
use crate::executor::pool_gate::Held;
use crate::executor::Event;
use crate::plan::StepId;

impl Scheduler<'_, '_> {
    /// The first ready step that may start now (its pool allows it); a step its pool holds
    /// is reported once, with the members it waits for.
    pub(super) fn next_ready(&mut self) -> Option<StepId> {
        let Some(gate) = &self.gate else {
            return self.ready.pop_first();
        };
        let mut pick = None;
        for &id in &self.ready {
            match gate.check(id) {
                Ok(()) => {
                    pick = Some(id);
                    break;
                }
                Err(Held::Busy { pool, down, budget }) => {
                    if self.told_waiting.insert(id) {
                        let s = &self.ctx.plan.steps[id];
                        self.ctx.events.event(&Event::PoolWait {
                            step: id,
                            node: node_name(self.ctx.inv, s),
                            actions: s.actions.clone(),
                            pool,
                            down,
                            budget,
                        });
                    }
                }
                Err(Held::Closed { pool, opens }) => {
                    if self.told_closed.insert((pool.clone(), opens)) {
                        self.ctx.events.event(&Event::PoolClosed {
                            pool,
                            until: opens
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            wait: !self.no_wait,
                        });
                    }
                }
                Err(Held::Stopped { .. }) => {}
            }
        }
        let id = pick?;
        self.ready.remove(&id);
        Some(id)
    }

    /// Once nothing runs: when the next restart window opens, if ready steps wait only for
    /// one (and the run may wait for it).
    pub(super) fn window_wait(&self) -> Option<time::OffsetDateTime> {
        let gate = self.gate.as_ref()?;
        self.ready
            .iter()
            .filter_map(|&id| match gate.check(id) {
                Err(Held::Closed { opens, .. }) => Some(opens),
                _ => None,
            })
            .min()
    }

    /// Sleeps until `until` (or SIGINT/SIGTERM), a second at a time.
    pub(super) fn sleep_until(&mut self, until: time::OffsetDateTime) {
        loop {
            if crate::interrupt::requested().is_some() {
                self.interrupted = true;
                return;
            }
            let left = until - time::OffsetDateTime::now_utc();
            if left <= time::Duration::ZERO {
                return;
            }
            let step = std::time::Duration::try_from(left).unwrap_or_default();
            std::thread::sleep(step.min(std::time::Duration::from_secs(1)));
        }
    }

    /// Once nothing runs: the ready steps of a stopped pool will not start in this run,
    /// nor will anything that waits for them.
    pub(super) fn block_held_by_pools(&mut self) {
        let Some(gate) = &self.gate else {
            return;
        };
        let held: Vec<(StepId, StepId)> = self
            .ready
            .iter()
            .filter_map(|&id| match gate.check(id) {
                Err(Held::Stopped { failure, .. }) => Some((id, failure.step)),
                _ => None,
            })
            .collect();
        for (id, waiting_on) in held {
            self.ready.remove(&id);
            self.block(id, waiting_on);
        }
    }

    /// Marks pending step `id` blocked by `waiting_on`, and everything that waits for it.
    pub(super) fn block(&mut self, id: StepId, waiting_on: StepId) {
        let mut stack = vec![id];
        while let Some(d) = stack.pop() {
            if self.state[d] != State::Pending {
                continue;
            }
            self.state[d] = State::Blocked;
            self.ready.remove(&d);
            let s = &self.ctx.plan.steps[d];
            let (node, actions) = (node_name(self.ctx.inv, s), s.actions.clone());
            self.ctx.events.event(&Event::StepBlocked {
                step: d,
                node,
                actions,
                waiting_on,
            });
            stack.extend(self.dependents[d].iter().copied());
        }
    }

    /// Tells the pool gate how step `id` ended; a failed member stops its pool.
    pub(super) fn pool_report(&mut self, id: StepId, failure: Option<&str>) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        gate.finish(id, failure.map(str::to_string));
        if let (Some(p), Some(error)) = (gate.pool_of(id), failure) {
            let s = &self.ctx.plan.steps[id];
            self.ctx.events.event(&Event::PoolStopped {
                pool: self.ctx.inv.pools.pools[p].name.clone(),
                node: node_name(self.ctx.inv, s),
                step: id,
                error: error.to_string(),
            });
        }
    }
}
