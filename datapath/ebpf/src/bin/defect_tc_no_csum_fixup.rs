//! DEFECT (harness self-test only): `tc_decap` that, after decapsulating,
//! changes the inner header without any checksum fix-up: an IPv4 inner
//! packet gets the outer ToS in its ToS byte (flipping bit 0x04 when they
//! are equal, so the byte always changes), fixing neither the IPv4 header
//! checksum nor `skb->csum`; an IPv6 inner packet gets a flow-label bit
//! flipped, which only `skb->csum` covers.
#![no_std]
#![no_main]
#![allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "in the expansion of aya-ebpf's #[classifier]"
)]

use aya_ebpf::{macros::classifier, programs::TcContext};
use dsrlab_ebpf::{faults::TosWithoutCsumFixup, tc::run};

#[classifier]
pub fn defect_tc_no_csum_fixup(ctx: TcContext) -> i32 {
    run::<TosWithoutCsumFixup>(&ctx)
}

dsrlab_ebpf::program_object!();
