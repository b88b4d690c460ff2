//! The inventory: which nodes exist, how to reach them, and which TLS links join them.
//!
//! [`load`] reads and validates a TOML file into an [`Inventory`]; every refusal is an
//! [`InventoryError`] that names the file, the line and column, and the offending name.
//! [`InventoryBuilder`] builds one in code. The schema is documented in `docs/inventory.md`.

mod builder;
mod cas;
mod chunked;
mod file_access;
mod fxhash;
mod key_store;
mod leaf_keys;
mod links;
mod locate;
mod model;
mod nodes;
mod parse;
mod pools;
pub mod raw;
mod san;
mod shared_files;
mod state_location;
mod store_keys;
pub mod subject;
mod tls_target;
mod validate;
pub mod verify_defaults;
pub mod windows;

pub use builder::InventoryBuilder;
pub use model::*;
pub use parse::{load, parse_raw, parse_str, InventoryError};
pub use pools::{Budget, Pool, PoolId, Pools};
pub use state_location::{check_url, redact, StateLocation, UrlSource, DEFAULT_LEASE};
pub use store_keys::{OsTrustSettings, StoreSettings};
pub use verify_defaults::VerifyDefaults;
