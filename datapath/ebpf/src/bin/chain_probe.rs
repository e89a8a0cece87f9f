//! `chain_probe`: a tail-call slot program for the chainer's own tests. It
//! appends its slot to `CHAIN_PROBE_TRACE` (pinned by name, shared by
//! every probe of a chain: the order slots ran in), counts its own runs in
//! `PROBE_RUNS`, and finishes with the verdict in its `PROBE_VERDICT`
//! global.
#![no_std]
#![no_main]

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map, macros::xdp, programs::XdpContext};

dsrlab_ebpf::chain_maps!();

/// Entry 0: how many slots ran; entry 1 + i: the i-th slot that ran.
#[btf_map(pin_by_name)]
static CHAIN_PROBE_TRACE: PerCpuArray<u32, 32> = PerCpuArray::new();

/// How many packets this probe (this loaded instance) ran on: not pinned,
/// so that an old and a new instance of a slot count apart.
#[btf_map]
static PROBE_RUNS: PerCpuArray<u64, 1> = PerCpuArray::new();

/// The verdict this probe returns.
#[unsafe(no_mangle)]
static PROBE_VERDICT: u32 = 2;

#[xdp]
pub fn chain_probe(ctx: XdpContext) -> u32 {
    // SAFETY: reading statics the loader may have set; volatile so that
    // its values are read.
    let (slot, verdict) = unsafe { (CHAIN.slot(), core::ptr::read_volatile(&PROBE_VERDICT)) };
    if let Some(runs) = PROBE_RUNS.get_ptr_mut(0) {
        // SAFETY: this CPU's entry.
        unsafe { *runs += 1 };
    }
    if let Some(count) = CHAIN_PROBE_TRACE.get_ptr_mut(0) {
        // SAFETY: per-CPU entries, this CPU's only.
        unsafe {
            let n = *count;
            if n < 31
                && let Some(entry) = CHAIN_PROBE_TRACE.get_ptr_mut(n + 1)
            {
                *entry = slot;
                *count = n + 1;
            }
        }
    }
    CHAIN.finish(&ctx, verdict)
}

dsrlab_ebpf::program_object!();
