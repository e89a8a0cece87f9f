//! The XDP chainer's BPF side (semantics in `dsrlab_abi::chain`): its
//! maps, shared by the root and, for the tail-call backend, by every slot
//! program through pinning by name; the walk over the slots; and what a
//! tail-call slot program calls with its verdict ([`finish`]).
//!
//! What the tail-call backend asks of a slot program: it is an XDP program
//! of the same kind as the root (no frags), it declares these maps (by
//! using this module, or `dsrlab_chain.h` in C), it is loaded with its
//! slot in the `CHAIN_SLOT` global, and it ends with
//! `return CHAIN.finish(&ctx, verdict)` instead of `return verdict`.

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray, Pinned, ProgramArray},
    programs::XdpContext,
};
use dsrlab_abi::chain::{DEFAULT_CONTINUE, SLOTS, SlotStats, VERDICTS};

/// The chain's maps and the slot global, as defined in a chain program by
/// [`chain_maps!`](crate::chain_maps) — there only: maps in this library
/// would be in every program object, and these are pinned by name.
pub struct Chain {
    /// `dsrlab_abi::chain::PROGS_MAP`.
    pub progs: &'static Pinned<ProgramArray<{ SLOTS as usize }>>,
    /// `dsrlab_abi::chain::CONTINUE_MAP`.
    pub continues: &'static Pinned<Array<u32, { SLOTS as usize }>>,
    /// `dsrlab_abi::chain::STATS_MAP`.
    pub stats: &'static Pinned<PerCpuArray<SlotStats, { SLOTS as usize }>>,
    /// `dsrlab_abi::chain::SLOT_GLOBAL`: a slot program's slot.
    pub slot: &'static u32,
    /// `dsrlab_abi::chain::TAIL_CALL_GLOBAL`: whether the slot program
    /// runs under the tail-call backend (else the root counts and goes on).
    pub by_tail_call: &'static u32,
}

/// Defines the chain's maps and the `CHAIN_SLOT` global in a chain program
/// (the root, or a tail-call slot program), and `CHAIN`, a [`Chain`] of
/// them. Invoke once in each such `src/bin/*.rs`.
#[macro_export]
macro_rules! chain_maps {
    () => {
        #[aya_ebpf::macros::btf_map(pin_by_name)]
        static CHAIN_PROGS: aya_ebpf::btf_maps::ProgramArray<
            { dsrlab_abi::chain::SLOTS as usize },
        > = aya_ebpf::btf_maps::ProgramArray::new();

        #[aya_ebpf::macros::btf_map(pin_by_name)]
        static CHAIN_CONTINUE: aya_ebpf::btf_maps::Array<
            u32,
            { dsrlab_abi::chain::SLOTS as usize },
        > = aya_ebpf::btf_maps::Array::new();

        #[aya_ebpf::macros::btf_map(pin_by_name)]
        static CHAIN_STATS: aya_ebpf::btf_maps::PerCpuArray<
            dsrlab_abi::chain::SlotStats,
            { dsrlab_abi::chain::SLOTS as usize },
        > = aya_ebpf::btf_maps::PerCpuArray::new();

        #[unsafe(no_mangle)]
        static CHAIN_SLOT: u32 = 0;

        #[unsafe(no_mangle)]
        static CHAIN_BY_TAIL_CALL: u32 = 1;

        static CHAIN: $crate::chain::Chain = $crate::chain::Chain {
            progs: &CHAIN_PROGS,
            continues: &CHAIN_CONTINUE,
            stats: &CHAIN_STATS,
            slot: &CHAIN_SLOT,
            by_tail_call: &CHAIN_BY_TAIL_CALL,
        };
    };
}

impl Chain {
    /// Counts `verdict` of `slot`.
    #[inline(always)]
    pub fn record(&self, slot: u32, verdict: u32) {
        if let Some(stats) = self.stats.get_ptr_mut(slot) {
            // Opaque, so that the bound check stays on the very register
            // that indexes: a verdict from a slot function is unknown to
            // the verifier, and 6.12's loses a bound the compiler folded.
            let v = crate::packet::opaque(verdict as usize);
            let v = if v < VERDICTS {
                v
            } else {
                xdp_action::XDP_ABORTED as usize
            };
            // SAFETY: a per-CPU entry; nothing else on this CPU runs
            // meanwhile.
            unsafe {
                (*stats).packets += 1;
                if let Some(count) = (*stats).verdicts.get_mut(v) {
                    *count += 1;
                }
            }
        }
    }

    /// Whether `verdict` of `slot` goes on to the next slot.
    #[inline(always)]
    pub fn continues(&self, slot: u32, verdict: u32) -> bool {
        let set = match self.continues.get(slot) {
            Some(&0) | None => DEFAULT_CONTINUE,
            Some(&set) => set,
        };
        verdict < 32 && set & (1 << verdict) != 0
    }

    /// Tail-calls the first populated slot from `from` on; returns only if
    /// there is none.
    #[inline(always)]
    pub fn walk_from(&self, ctx: &XdpContext, from: u32) {
        // A constant trip count, which the compiler unrolls: each index is
        // then a constant the verifier knows (`from` is 0 or a slot
        // program's read-only slot), and the JIT makes each tail call a
        // direct jump instead of an indirect one through a retpoline.
        for i in 0..SLOTS {
            let slot = from + i;
            if slot >= SLOTS {
                break;
            }
            // SAFETY: a tail call returns only when the slot is empty.
            unsafe { self.progs.tail_call(ctx, slot) };
        }
    }

    /// This slot program's slot (the loader's value).
    #[inline(always)]
    pub fn slot(&self) -> u32 {
        // SAFETY: reading a static; volatile so that the loader's value is
        // read and not the compile-time default.
        unsafe { core::ptr::read_volatile(self.slot) }
    }

    /// What a slot program returns. Under the tail-call backend: records
    /// `verdict` for its slot, then goes on to the next populated slot if
    /// the verdict continues (the chain's end passes the packet). Under the
    /// EXT backend, `verdict` itself: the root does the rest. One object
    /// serves both backends.
    #[inline(always)]
    pub fn finish(&self, ctx: &XdpContext, verdict: u32) -> u32 {
        // SAFETY: reading a static the loader sets; volatile so that its
        // value is read (the verifier then prunes the other branch).
        if unsafe { core::ptr::read_volatile(self.by_tail_call) } == 0 {
            // The EXT backend: the root counts and goes on.
            return verdict;
        }
        let slot = self.slot();
        self.record(slot, verdict);
        if !self.continues(slot, verdict) {
            return verdict;
        }
        self.walk_from(ctx, slot + 1);
        xdp_action::XDP_PASS
    }
}
