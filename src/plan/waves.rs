//! Waves: the earliest parallel layer of each step.
//!
//! A step with no prerequisite is in wave 0; any other step is one wave after the latest
//! of its prerequisites. Steps are topologically sorted by id, so one pass suffices.

use super::Step;

/// Fills `wave` on every step. Requires every `after` id to be smaller than the step's id.
pub(crate) fn assign(steps: &mut [Step]) {
    for i in 0..steps.len() {
        let wave = steps[i]
            .after
            .iter()
            .map(|&a| {
                debug_assert!(a < i, "step {i} depends on later step {a}");
                steps[a].wave + 1
            })
            .max()
            .unwrap_or(0);
        steps[i].wave = wave;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;

    fn step(id: usize, after: Vec<usize>) -> Step {
        Step {
            id,
            node: id,
            actions: vec![Action::TrustAdd],
            after,
            wave: 99,
        }
    }

    #[test]
    fn waves_are_longest_path_depth() {
        let mut steps = vec![
            step(0, vec![]),
            step(1, vec![0]),
            step(2, vec![]),
            step(3, vec![1, 2]),
        ];
        assign(&mut steps);
        let waves: Vec<usize> = steps.iter().map(|s| s.wave).collect();
        assert_eq!(waves, vec![0, 1, 0, 2]);
    }
}
