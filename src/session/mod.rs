//! The run to do, decided below the commands: from the inventory, the CA store, the
//! journal and what the nodes hold, which plan a run carries out (`decide`); what each
//! member holds before a takeover, and where `plan --check` starts (`holdings`), or for a
//! routine run (`facts`); where an interrupted rotation stopped and the plan back
//! (`rollback`); the plan of an earlier run rebuilt from its journal header (`resume`);
//! whether the nodes' keystores, truststores and password files let a run write at all,
//! new or resumed (`store_check`).
//!
//! `plan`, `apply` and `status` call into it and render what it returns; nothing here
//! parses arguments or prints. Data flows one way: inventory → plan → executor →
//! transport, with this module above the planner and the readers, and the commands on
//! top (docs/design.md#modules). It is where the state (journal, CA store) is read to
//! decide a run, so a state backend changes here, not in the commands that render it.

pub mod decide;
mod error;
pub mod facts;
mod generations;
pub mod holdings;
pub mod resume;
pub mod rollback;
pub mod store_check;

pub use error::CommandError;
pub use generations::CaGenerations;
