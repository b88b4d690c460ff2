//! Shared helpers of the integration tests: a fleet of real sshd nodes.
//!
//! Every test file that needs one declares `mod support;` and uses `support::Fleet`;
//! no file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod fleet;
mod sshd;

pub use fleet::{Fleet, FleetNode, INTERNAL_SUFFIX, REMOTE_ROOT};
