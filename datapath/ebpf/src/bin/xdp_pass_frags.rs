//! `xdp_pass_frags`: returns XDP_PASS, and accepts multi-buffer frames.
//!
//! Not datapath but a harness instrument: the live rig attaches it to the
//! wire end of its veth pair, because a veth delivers frames another
//! program sends with XDP_TX only to a peer running native XDP. Being a
//! frags program, it attaches at any MTU, where `xdp_pass` is refused
//! above about 3.5 KB.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp(frags)]
pub fn xdp_pass_frags(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

dsrlab_ebpf::program_object!();
