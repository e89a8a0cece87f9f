//! Scenario files: the format ([`model`]), reading and checking them
//! ([`load`]), generated traffic ([`generate`]) and new-file scaffolding
//! ([`scaffold`]). Nothing here touches the kernel; `crate::runner` runs
//! what [`load`] returns.

pub mod generate;
pub mod load;
pub mod model;
pub mod scaffold;
