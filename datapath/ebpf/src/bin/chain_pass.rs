//! `chain_pass`: the trivial slot program, XDP_PASS through the chain's
//! finish — what the chainer's benchmark populates slots with.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

dsrlab_ebpf::chain_maps!();

#[xdp]
pub fn chain_pass(ctx: XdpContext) -> u32 {
    CHAIN.finish(&ctx, xdp_action::XDP_PASS)
}

dsrlab_ebpf::program_object!();
