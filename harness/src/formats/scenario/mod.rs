//! Scenario files: the format ([`model`]), reading and checking them
//! ([`load`]), generated traffic ([`generate`]), new-file scaffolding
//! ([`scaffold`]) and the JSON Schema editors use ([`schema`]). Nothing here
//! touches the kernel; `crate::runner` runs what [`load`] returns.

pub mod generate;
pub mod load;
pub mod model;
pub mod scaffold;
pub mod schema;
pub mod traffic;
