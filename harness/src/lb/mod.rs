//! The userspace side of the XDP load balancer `xdp_lb`, written from the
//! contract in `dsrlab_abi::lb` independently of the BPF program:
//!
//! - [`maglev`]: weighted Maglev rings;
//! - [`control`]: the control plane over a loaded `xdp_lb` (VIPs, reals,
//!   weights, rings, counters);
//! - [`model`]: the reference model, the expected verdict, bytes, counters
//!   and connection-table update of a frame, given the maps' contents.

pub mod control;
pub mod maglev;
pub mod model;

pub use control::{Lb, LbError, LbSettings, Proto, Vip, VipSpec};
pub use model::{Expected, ModelState};
