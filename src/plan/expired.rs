//! A rotation away from a CA that has already expired (nobody rotated or extended it in
//! time). Its links fail already, on every verifier that checks the anchor's validity,
//! and the rotation is the way out; the plan says what its gates mean then.
//!
//! Every gate keeps its meaning — a leaf swap waits until the node's verifiers trust the
//! new generation, a prune until its peers present new leaves — but with the old CA
//! expired a gate promises "no worse than before": no link that works now is broken by a
//! step, while links that fail now because of the expired CA start working as their
//! nodes switch. No cross certificate is made: it could not outlive the CA that signs it.

use time::OffsetDateTime;

use super::Plan;
use crate::pki::CaCert;
use crate::verify::report::rfc3339;

/// Whether `current` has expired at `now`.
pub fn is_expired(current: &CaCert, now: OffsetDateTime) -> bool {
    current.not_after <= now
}

/// Adds the note of a rotation from an expired generation to `plan`, if `current` has
/// expired at `now`.
pub fn note(plan: &mut Plan, current: &CaCert, now: OffsetDateTime) {
    if !is_expired(current, now) {
        return;
    }
    plan.notes.insert(
        0,
        format!(
            "the current generation G{g} expired at {at}: links that check it fail already, and \
             each gate now means no worse than before — no step breaks a link that works, and \
             the links that fail because G{g} expired work again once their nodes hold the new \
             generation",
            g = current.generation,
            at = rfc3339(current.not_after)
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::CaSpec;

    #[test]
    fn only_an_expired_generation_gets_the_note() {
        let spec = CaSpec::new("internal", "CN=x");
        let now = OffsetDateTime::now_utc();
        let ca = crate::pki::new_ca(&spec, 1, now).unwrap();
        let inv = crate::inventory::InventoryBuilder::new()
            .link("a", "b")
            .build();
        let mut plan = super::super::bootstrap(&inv, 0, &inv.members(0));
        note(&mut plan, &ca, now);
        assert!(plan.notes.is_empty());
        note(&mut plan, &ca, ca.not_after + time::Duration::days(1));
        assert!(plan.notes[0].contains("G1 expired at"), "{:?}", plan.notes);
        assert!(plan.notes[0].contains("no worse than before"));
    }
}
