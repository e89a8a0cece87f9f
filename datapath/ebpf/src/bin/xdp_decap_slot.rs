//! `xdp_decap_slot`: `xdp_decap` as a slot program of the chainer's
//! tail-call backend: without frags (a program array takes only programs
//! like its root), its verdict through the chain (a decapsulated packet
//! goes on to the next slot).
#![no_std]
#![no_main]

use aya_ebpf::{macros::xdp, programs::XdpContext};
use dsrlab_ebpf::{faults::Correct, xdp::run};

dsrlab_ebpf::chain_maps!();

#[xdp]
pub fn xdp_decap_slot(ctx: XdpContext) -> u32 {
    CHAIN.finish(&ctx, run::<Correct>(&ctx))
}

dsrlab_ebpf::program_object!();
