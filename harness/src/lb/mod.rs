//! The userspace side of the XDP load balancer `xdp_lb`, written from the
//! contract in `dsrlab_abi::lb` independently of the BPF program:
//!
//! - [`maglev`]: weighted Maglev rings;
//! - [`control`]: the control plane over a loaded `xdp_lb` (VIPs, reals,
//!   weights, rings, counters);
//! - [`addrs`]: the VIP address table the control plane keeps in front of
//!   the VIP map;
//! - [`encap`]: what encapsulation adds, and where the MTU draws the line;
//! - [`model`]: the reference model, the expected verdict, bytes, counters
//!   and connection-table update of a frame, given the maps' contents;
//! - [`eviction`]: what the model accepts once the kernel's connection
//!   table is full and evicts entries it cannot name;
//! - [`fuzz`]: random worlds and traffic (well-formed and malformed)
//!   through the BPF program and the model, compared byte for byte;
//! - [`instance`]: a pinned, long-lived `xdp_lb` driven by `dsrlab lb …`;
//! - [`maps`]: the control plane's writes applied to the maps of either.

pub mod addrs;
pub mod control;
pub mod encap;
pub mod eviction;
pub mod fuzz;
pub mod instance;
pub mod maglev;
pub mod maps;
pub mod model;

pub use control::{Lb, LbError, LbSettings, Proto, Vip, VipSpec};
pub use model::{Expected, ModelState};
