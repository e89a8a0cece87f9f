//! DEFECT (harness self-test only): `xdp_decap` with an off-by-one in the
//! inner length checks: an inner header or inner total length one byte
//! longer than what the outer header carries (e.g. an inner IPv4 header of
//! which 19 bytes are present) is decapsulated instead of dropped.
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use dsrlab_ebpf::{faults::InnerLenOffByOne, xdp::run};

#[xdp(frags)]
pub fn defect_xdp_off_by_one(ctx: XdpContext) -> u32 {
    run::<InnerLenOffByOne>(&ctx)
}

dsrlab_ebpf::program_object!();
