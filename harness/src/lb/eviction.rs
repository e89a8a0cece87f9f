//! The connection table at capacity: what the model accepts when the
//! kernel's LRU has evicted entries it cannot name.
//!
//! `LB_LRU` holds [`LRU_ENTRIES`] keys. Once it is (nearly) full, inserting
//! a flow evicts others — which ones is the kernel's LRU bookkeeping (a
//! common LRU with per-CPU free lists), not the contract's, so the model,
//! whose table never evicts, cannot predict it. What it can say: a flow the
//! kernel evicted is selected again from the ring as it is now (an
//! `LruMiss`, and the entry written again), never sent anywhere else. So a
//! packet the model expects to hit the table may instead be that miss,
//! when the table may have evicted; and after the run, entries the model
//! has may be missing from a full kernel table, while every entry the
//! kernel has must be the model's.
//!
//! "May have evicted": the kernel takes free entries for a CPU in batches
//! of `LOCAL_FREE_TARGET` (128) onto that CPU's local free list, and evicts
//! when the global free list cannot fill a batch; so eviction can start
//! while up to 128 entries per possible CPU are still free (measured here
//! with 100 000 flows through a 65 536-entry table on 2 CPUs: 65 472 keys
//! left, 64 short of full).

use dsrlab_abi::lb::{Counter, FlowKey, LRU_ENTRIES};

use super::{Expected, ModelState};

/// The kernel's `LOCAL_FREE_TARGET` (kernel/bpf/bpf_lru_list.h).
const LOCAL_FREE_TARGET: usize = 128;

/// How many entries short of full the table may be when the kernel first
/// evicts: a batch of free entries per possible CPU.
pub fn slack() -> usize {
    let cpus = aya::util::nr_cpus().map_or(1, |n| n.get() as usize);
    LOCAL_FREE_TARGET * cpus
}

/// Whether a table of `entries` keys may have evicted some.
pub fn may_evict(entries: usize) -> bool {
    entries + slack() >= LRU_ENTRIES as usize
}

/// A flow's entry the model forgot, to take the evicted path; undone with
/// [`Eviction::undo`] when the datapath did not take it either.
#[derive(Debug)]
pub struct Eviction {
    flow: FlowKey,
    real: u32,
}

/// The model's answer for `frame` if the kernel had evicted the flow's
/// entry, when `expected` (the model's answer, already processed) is a
/// connection-table hit and the model's table is full enough for the
/// kernel's to have evicted it: `flows`, the keys the kernel's table holds
/// for all CPUs (the model's own when one model sees all the traffic). The
/// model then holds the alternative's state (the flow re-selected from the
/// ring); `None` leaves it as it was.
pub fn alternative(
    model: &mut ModelState,
    frame: &[u8],
    expected: &Expected,
    flows: usize,
) -> Option<(Expected, Eviction)> {
    if expected.selection != Some(Counter::LruHit) || !may_evict(flows) {
        return None;
    }
    let flow = expected.flow?;
    let real = model.lru.remove(&flow)?;
    let alternative = model.process(frame);
    Some((alternative, Eviction { flow, real }))
}

/// Whether a packet the model answers from the connection table
/// (`expected`, processed) would run the same had the kernel evicted its
/// flow: the table may have evicted (`flows`, as for [`alternative`]) and
/// the ring gives the flow the real the table remembers. Only the
/// selection counter, `lru_hit` or `lru_miss`, can tell the two apart
/// then: the packet claims either (the batch's `lru_miss` says how many
/// were evictions), and no read around it is needed.
pub fn indistinguishable(model: &ModelState, expected: &Expected, flows: usize) -> bool {
    expected.selection == Some(Counter::LruHit)
        && may_evict(flows)
        && expected
            .flow
            .is_some_and(|flow| model.ring_choice_for(&flow) == expected.real)
}

impl Eviction {
    /// Puts the model back as it was before [`alternative`].
    pub fn undo(self, model: &mut ModelState) {
        model.lru.insert(self.flow, self.real);
    }
}
