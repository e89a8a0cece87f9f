//! `xdp_lb`: the XDP L4 load balancer. VIPs to reals by Maglev ring and a
//! per-CPU connection table, IPIP / 6in6 / 4in6 (GUE optional) to the
//! gateway with XDP_TX, ICMP echo and too-big answered, ICMP errors routed
//! to the flow's real. Contract: `dsrlab_abi::lb`; implementation and its
//! readings of the contract: the `lb` module (`src/lb/`).
//!
//! Loaded without frags support: the whole frame must be linear.
#![no_std]
#![no_main]

#[path = "../lb/mod.rs"]
mod lb;

/// The shipped program: no faults.
type LbFaults = dsrlab_ebpf::faults::Correct;

use aya_ebpf::{macros::xdp, programs::XdpContext};

#[xdp]
pub fn xdp_lb(ctx: XdpContext) -> u32 {
    lb::run(&ctx)
}

dsrlab_ebpf::program_object!();
