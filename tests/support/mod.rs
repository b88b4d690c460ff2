//! Shared helpers of the integration tests: a fleet of real sshd nodes (`fleet`), an
//! inventory builder for it (`inventory`), a driver of the certroll binary (`cli`), and the
//! kit of the `certroll verify` tests (a bootstrapped fleet and its faults, the JSON report).
//!
//! Every test file that needs one declares `mod support;` and uses `support::Fleet`;
//! no file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod fleet;
pub mod inventory;
mod sshd;
pub mod verify_kit;
pub mod verify_report;

pub use fleet::{Fleet, FleetNode, INTERNAL_SUFFIX, REMOTE_ROOT};
