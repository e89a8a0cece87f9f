//! `xdp_lb_slot`: `xdp_lb` as a slot program of the chainer's tail-call
//! backend (the same load balancer; its verdict goes through the chain:
//! XDP_TX for a VIP ends the chain, XDP_PASS for other traffic goes on).
#![no_std]
#![no_main]

#[path = "../lb/mod.rs"]
mod lb;

/// The shipped program: no faults.
type LbFaults = dsrlab_ebpf::faults::Correct;

use aya_ebpf::{macros::xdp, programs::XdpContext};

dsrlab_ebpf::chain_maps!();

#[xdp]
pub fn xdp_lb_slot(ctx: XdpContext) -> u32 {
    CHAIN.finish(&ctx, lb::run(&ctx))
}

dsrlab_ebpf::program_object!();
