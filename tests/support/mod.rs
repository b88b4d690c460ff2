//! Shared helpers of the integration tests: a fleet of real sshd nodes, and for the
//! zero-downtime tests a topology builder, one `certroll-peer` per node and their counters.
//!
//! Every test file that needs one declares `mod support;` and uses `support::Fleet`;
//! no file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod fleet;
pub mod peers;
mod sshd;
pub mod topology;
pub mod traffic;

pub use fleet::{Fleet, FleetNode, INTERNAL_SUFFIX, REMOTE_ROOT};
