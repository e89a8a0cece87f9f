//! DEFECT (harness self-test only): `tc_decap` that removes the outer
//! headers with `BPF_F_ADJ_ROOM_NO_CSUM_RESET`, so a CHECKSUM_UNNECESSARY
//! that the NIC gave the outer packet (it validated the outer UDP checksum
//! of a GUE packet) stays on the inner packet, whose checksum nobody
//! validated: an inner packet with a bad checksum is delivered instead of
//! dropped. Invisible to test runs (they cannot make such an skb); caught
//! live by the namespace's SNMP counters.
#![no_std]
#![no_main]
#![allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "in the expansion of aya-ebpf's #[classifier]"
)]

use aya_ebpf::{macros::classifier, programs::TcContext};
use dsrlab_ebpf::{faults::KeepsCsumState, tc::run};

#[classifier]
pub fn defect_tc_keeps_csum_state(ctx: TcContext) -> i32 {
    run::<KeepsCsumState>(&ctx)
}

dsrlab_ebpf::program_object!();
