//! `xdp_chain_ext`: the XDP chainer's root, EXT backend (the talk's XDP
//! Chainer, as libxdp's dispatcher): 20 global, never-inlined slot
//! functions, each replaced by an EXT (freplace) program when its slot is
//! populated, called in slot order. An empty slot's function returns
//! `dsrlab_abi::chain::EMPTY` and costs a call.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{xdp_action, xdp_md},
    helpers::generated::bpf_xdp_adjust_head,
    macros::xdp,
    programs::XdpContext,
};
use dsrlab_abi::chain::EMPTY;

dsrlab_ebpf::chain_maps!();

/// The value an empty slot returns, opaque to the compiler so that it
/// cannot fold a slot's result into the root: the function is replaced
/// at run time.
#[inline(always)]
fn empty(ctx: *mut xdp_md) -> u32 {
    // SAFETY: reading a constant's address.
    let empty = unsafe { core::ptr::read_volatile(&EMPTY) };
    if empty != EMPTY {
        // Never taken (the verifier prunes it: the value is read-only
        // data), but there: a call that marks the slot function as
        // changing packet data, which the kernel finds by scanning the
        // calls. It lets an EXT program that changes packet data
        // (xdp_decap adjusts the head; any tail call counts) replace only
        // such a function (6.12.y, 6.13+), as libxdp's dispatcher marks
        // its slots.
        // SAFETY: unreachable at run time.
        unsafe { bpf_xdp_adjust_head(ctx, 0) };
        return xdp_action::XDP_ABORTED;
    }
    empty
}

macro_rules! slots {
    ($($slot:literal $name:ident),* $(,)?) => {
        $(
            /// A slot function; an EXT program replaces it.
            #[unsafe(no_mangle)]
            #[inline(never)]
            pub extern "C" fn $name(ctx: *mut xdp_md) -> u32 {
                empty(ctx)
            }
        )*

        #[xdp]
        pub fn xdp_chain_ext(ctx: XdpContext) -> u32 {
            $(
                let verdict = $name(ctx.ctx);
                if verdict != EMPTY {
                    CHAIN.record($slot, verdict);
                    if !CHAIN.continues($slot, verdict) {
                        return verdict;
                    }
                }
            )*
            xdp_action::XDP_PASS
        }
    };
}

slots!(
    0 chain_slot_0, 1 chain_slot_1, 2 chain_slot_2, 3 chain_slot_3, 4 chain_slot_4,
    5 chain_slot_5, 6 chain_slot_6, 7 chain_slot_7, 8 chain_slot_8, 9 chain_slot_9,
    10 chain_slot_10, 11 chain_slot_11, 12 chain_slot_12, 13 chain_slot_13, 14 chain_slot_14,
    15 chain_slot_15, 16 chain_slot_16, 17 chain_slot_17, 18 chain_slot_18, 19 chain_slot_19,
);

dsrlab_ebpf::program_object!();
