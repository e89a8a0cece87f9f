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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
