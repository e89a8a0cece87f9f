//! DEFECT (harness self-test only): `xdp_decap` that, when a header it needs
//! is not in the linear part, passes the packet and counts `PassNotTunnel`
//! instead of reading it with `bpf_xdp_load_bytes` (or counting
//! `PassNonLinear` when the outer headers cannot be removed).
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use dsrlab_ebpf::{faults::GivesUpNonLinear, xdp::run};

#[xdp(frags)]
pub fn defect_xdp_gives_up_nonlinear(ctx: XdpContext) -> u32 {
    run::<GivesUpNonLinear>(&ctx)
}

dsrlab_ebpf::program_object!();
