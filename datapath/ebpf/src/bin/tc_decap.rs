//! `tc_decap`: the same decapsulation as `xdp_decap` at TC (`sched_cls`,
//! ingress), correct under CHECKSUM_COMPLETE and with unpulled headers.
//! Policy and counters: `dsrlab_ebpf::decap`; removal: `dsrlab_ebpf::tc`.
#![no_std]
#![no_main]
#![allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "in the expansion of aya-ebpf's #[classifier]"
)]

use aya_ebpf::{macros::classifier, programs::TcContext};
use dsrlab_ebpf::{faults::Correct, tc::run};

#[classifier]
pub fn tc_decap(ctx: TcContext) -> i32 {
    run::<Correct>(&ctx)
}

dsrlab_ebpf::program_object!();
