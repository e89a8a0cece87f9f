//! `xdp_decap`: decapsulates IPIP, IPv6-in-IP, 4in6, 6in6 and GUE at XDP
//! (frags supported). Policy and counters: `dsrlab_ebpf::decap`.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use dsrlab_ebpf::{faults::Correct, xdp::run};

#[xdp(frags)]
pub fn xdp_decap(ctx: XdpContext) -> u32 {
    run::<Correct>(&ctx)
}

dsrlab_ebpf::program_object!();
