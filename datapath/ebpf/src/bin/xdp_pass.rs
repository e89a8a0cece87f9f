//! `xdp_pass`: returns XDP_PASS and does nothing else.
//!
//! The benchmark's floor: the cost of a test-run call with a program that
//! does no work.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

dsrlab_ebpf::program_object!();
