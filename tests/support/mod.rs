//! Shared helpers of the integration tests: a fleet of real sshd nodes (`fleet`), an
//! inventory builder for it (`inventory`), a driver of the certroll binary (`cli`), a
//! fleet of local-transport nodes written from settings and driven the same way, also for
//! the day-to-day operation tests (`local`), the kit of the `certroll verify` tests (a
//! bootstrapped fleet and its faults, the JSON report), for the zero-downtime tests a
//! topology builder, one `certroll-peer` per node and their counters (`topology`, `peers`,
//! `traffic`), for the `certroll-peer` tests its CLI and a bare TLS client (`peer_cli`),
//! honest and hostile TLS servers for the built-in TLS confirm and `verify --live`
//! (`hostile_tls`) and the protocols they speak before TLS (`starttls_server`), the
//! certificate fixtures (`pki`) and SoftHSM2 tokens (`softhsm`), unprivileged accounts and
//! sudoers rules (`users`), a key/certificate pair reader (`pairs`) and the planners'
//! property-test generators (`props`).
//!
//! The one layout of the tests: a unit test sits in `mod tests` at the end of the file it
//! tests, or, when that would make the file too long, in a sibling `NAME_tests.rs` loaded
//! with `#[path]`. An integration test is `tests/NAME.rs`, or `tests/NAME/main.rs` with
//! its modules beside it. Every helper shared by integration tests is here: a test file
//! declares `mod support;` (`#[path = "../support/mod.rs"]` from a directory) and uses
//! `support::...`; no file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod fleet;
pub mod hostile_tls;
pub mod inventory;
pub mod local;
pub mod pairs;
pub mod peer_cli;
pub mod peers;
pub mod pki;
pub mod postgres;
pub mod props;
pub mod run;
pub mod softhsm;
mod sshd;
pub mod starttls_server;
pub mod topology;
pub mod traffic;
pub mod users;
pub mod verify_kit;
pub mod verify_report;

pub use fleet::{Fleet, FleetNode, INTERNAL_SUFFIX, REMOTE_ROOT};
