//! Shared helpers of the integration tests: a fleet of real sshd nodes (`fleet`), an
//! inventory builder for it (`inventory`), a driver of the certroll binary (`cli`), the kit
//! of the `certroll verify` tests (a bootstrapped fleet and its faults, the JSON report),
//! and for the zero-downtime tests a topology builder, one `certroll-peer` per node and
//! their counters (`topology`, `peers`, `traffic`), and unprivileged accounts and sudoers
//! rules for the login-as-yourself tests (`users`).
//!
//! Every test file that needs one declares `mod support;` and uses `support::Fleet`;
//! no file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod fleet;
pub mod inventory;
pub mod pairs;
pub mod peers;
pub mod run;
mod sshd;
pub mod topology;
pub mod traffic;
pub mod users;
pub mod verify_kit;
pub mod verify_report;

pub use fleet::{Fleet, FleetNode, INTERNAL_SUFFIX, REMOTE_ROOT};
