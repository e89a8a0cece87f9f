//! Reports: what humans and CI read about a run. They depend on results
//! only.

pub mod snapshot;
pub mod table;
