//! DEFECT (harness self-test only): `xdp_lb` that selects reals but never
//! writes the connection table: every packet of a flow is a ring selection
//! and nothing is remembered, so flows move when the ring changes.
#![no_std]
#![no_main]

#[path = "../lb/mod.rs"]
mod lb;

type LbFaults = dsrlab_ebpf::faults::LruNoUpdate;

use aya_ebpf::{macros::xdp, programs::XdpContext};

#[xdp]
pub fn defect_xdp_lb_lru_no_update(ctx: XdpContext) -> u32 {
    lb::run(&ctx)
}

dsrlab_ebpf::program_object!();
