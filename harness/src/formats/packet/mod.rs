//! Packets: one way to build, parse and dissect them.
//!
//! - [`checksum`]: the Internet checksum summed in parts;
//! - [`spec`]: the declarative recipe a fixture author writes
//!   ([`PacketSpec`]) and building bytes from it;
//! - [`repr`]: owned representations of each header, emitted and parsed
//!   through pnet_packet's wire views;
//! - [`dissect`](mod@dissect): bytes → representations, never failing, and
//!   the diff. A dissection line and a diff line are made from the same
//!   [`repr::Field`]s, so what a snapshot shows is what an oracle compared.

pub mod checksum;
pub mod dissect;
pub mod repr;
pub mod spec;

pub use dissect::{
    ChecksumStatus, DissectOptions, DissectedLayer, Dissection, LayerRepr, decapsulated, diff,
    diff_with, dissect, dissect_with,
};
pub use spec::{BuildError, Built, BuiltLayer, DEFAULT_GUE_PORT, LayerSpec, Mutation, PacketSpec};
