//! certroll: rotate the certificate authority of a TLS fleet without one failed handshake.
//!
//! Data flows one way: [`inventory`] → [`plan`] → [`executor`] → [`layout`] → [`transport`].
//! [`layout`] keeps a node's key and certificate together on disk (one switched symlink).
//! [`pki`] makes the certificates, [`tls`] proves links with real handshakes,
//! [`simulate`] proves plans, [`verify`] proves fleets, [`output`] renders results;
//! [`confirm`] proves with a live handshake that a node's software took its files.
#![forbid(unsafe_code)]
// `unwrap` is for tests; elsewhere a failure is a typed error, and a fallback that cannot
// happen says in a comment why not.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bundles;
pub mod chains;
pub mod collect;
pub mod commands;
pub mod confirm;
pub mod console;
pub mod duration;
pub mod error;
pub mod executor;
pub mod exit;
pub mod extension;
pub mod interrupt;
pub mod inventory;
pub mod journal;
pub mod layout;
pub mod materials;
pub mod output;
pub mod pki;
pub mod plan;
pub mod repair;
pub mod secrets;
pub mod session;
pub mod shell;
pub mod simulate;
pub mod state;
pub mod stores;
pub mod tls;
pub mod transport;
pub mod verify;
