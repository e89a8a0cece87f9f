//! DEFECT (harness self-test only): `tc_decap` that, when a header it needs
//! is not in the linear part, passes the packet and counts `PassNotTunnel`
//! instead of reading it with `bpf_skb_load_bytes` and pulling it in (or
//! counting `PassNonLinear` when the outer headers cannot be removed).
//! Test runs hand TC programs linear skbs only, so it passes every test-run
//! check; the TAP NIC's unpulled headers catch it live.
#![no_std]
#![no_main]
#![allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "in the expansion of aya-ebpf's #[classifier]"
)]

use aya_ebpf::{macros::classifier, programs::TcContext};
use dsrlab_ebpf::{faults::GivesUpNonLinear, tc::run};

#[classifier]
pub fn defect_tc_gives_up_nonlinear(ctx: TcContext) -> i32 {
    run::<GivesUpNonLinear>(&ctx)
}

dsrlab_ebpf::program_object!();
