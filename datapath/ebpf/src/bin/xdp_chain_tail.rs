//! `xdp_chain_tail`: the XDP chainer's root, tail-call backend (the
//! "rootlet"): jumps to the first populated slot of `CHAIN_PROGS`; each
//! slot program goes on to the next (`dsrlab_ebpf::chain::Chain::finish`). An
//! empty chain passes the packet.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

dsrlab_ebpf::chain_maps!();

#[xdp]
pub fn xdp_chain_tail(ctx: XdpContext) -> u32 {
    CHAIN.walk_from(&ctx, 0);
    xdp_action::XDP_PASS
}

dsrlab_ebpf::program_object!();
