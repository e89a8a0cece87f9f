//! The XDP chainer: a root program running up to [`SLOTS`] slot programs
//! in slot order (the talk's "XDP Chainer"; before it, a "rootlet" of tail
//! calls, which is the `tail-call` backend here).
//!
//! Chain semantics, the same for every backend: a slot's verdict in its
//! continue set (by default `XDP_PASS` only) goes on to the next populated
//! slot; any other verdict ends the chain and is its verdict; a chain that
//! runs off its end passes the packet (`XDP_PASS`). Empty slots are
//! skipped.
//!
//! The maps are pinned by name (`LIBBPF_PIN_BY_NAME`) so that slot
//! programs of the tail-call backend, loaded later and elsewhere, share
//! the root's.

/// Slots in a chain.
pub const SLOTS: u32 = 20;

/// XDP verdicts counted per slot: `XDP_ABORTED` .. `XDP_REDIRECT`; a slot
/// returning anything else is counted as aborted (the kernel treats it so).
pub const VERDICTS: usize = 5;

/// `BPF_MAP_TYPE_PROG_ARRAY` of [`SLOTS`] entries: the slot programs of the
/// tail-call backend, by slot.
pub const PROGS_MAP: &str = "CHAIN_PROGS";

/// Array of [`SLOTS`] `u32` continue sets (bit `v` set: verdict `v` goes
/// on to the next slot); 0 stands for the default, `XDP_PASS` only.
pub const CONTINUE_MAP: &str = "CHAIN_CONTINUE";

/// Per-CPU array of [`SLOTS`] [`SlotStats`].
pub const STATS_MAP: &str = "CHAIN_STATS";

/// Read-only global (`u32`) of a tail-call slot program: the slot it is
/// loaded for, set by the loader.
pub const SLOT_GLOBAL: &str = "CHAIN_SLOT";

/// Read-only global (`u32`) of a slot program: 1 (the default) under the
/// tail-call backend, where it goes on to the next slot itself; 0 under
/// the EXT backend, where it returns its verdict to the root.
pub const TAIL_CALL_GLOBAL: &str = "CHAIN_BY_TAIL_CALL";

/// What an empty slot function of the EXT backend's root returns (no XDP
/// verdict has this value), as libxdp's dispatcher's stubs do.
pub const EMPTY: u32 = 31;

/// The name of slot `n`'s function in the EXT backend's root, which an
/// EXT program replaces: `chain_slot_<n>`.
pub const SLOT_FUNCTION_PREFIX: &str = "chain_slot_";

/// The default continue set: `XDP_PASS` (2) only.
pub const DEFAULT_CONTINUE: u32 = 1 << 2;

/// What one slot saw, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Packets the slot program ran on.
    pub packets: u64,
    /// Its verdicts, by XDP action.
    pub verdicts: [u64; VERDICTS],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]` plain data without padding.
    unsafe impl aya::Pod for super::SlotStats {}
}
