//! The maps and the global of `xdp_lb` (names and layouts in
//! `dsrlab_abi::lb`), and the helpers that update the counters.
//!
//! They are defined in the `xdp_lb` object only: statics of the library
//! crate end up in every object that links it, and nothing else should
//! carry a 16 MB ring.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray},
    macros::btf_map,
};
use dsrlab_abi::lb::{
    ADDR_SLOTS, AddrEntry, Counter, DEFAULT_RING_SIZE, FlowKey, FlowState, LRU_ENTRIES, LbConfig,
    MAX_REALS, MAX_VIPS, RealDef, Traffic, VipKey, VipMeta,
};

/// `LB_ADDRS`: the VIP address table, consulted before `LB_VIPS`.
#[btf_map]
pub static LB_ADDRS: Array<AddrEntry, { ADDR_SLOTS as usize }> = Array::new();

/// `LB_VIPS`: room for every VIP and one ICMP echo entry per VIP address.
#[btf_map]
pub static LB_VIPS: HashMap<VipKey, VipMeta, { (MAX_VIPS * 2) as usize }> = HashMap::new();

/// `LB_REALS`: real id → address and family.
#[btf_map]
pub static LB_REALS: Array<RealDef, { MAX_REALS as usize }> = Array::new();

/// `LB_RING`: the Maglev rings, `RING_SIZE` slots per VIP. The loader
/// resizes it together with `RING_SIZE`.
#[btf_map]
pub static LB_RING: Array<u32, { (MAX_VIPS * DEFAULT_RING_SIZE) as usize }> = Array::new();

/// `LB_LRU`: the per-CPU connection table.
#[btf_map]
pub static LB_LRU: LruPerCpuHashMap<FlowKey, FlowState, { LRU_ENTRIES as usize }> =
    LruPerCpuHashMap::new();

/// `LB_CONFIG`: the one [`LbConfig`].
#[btf_map]
pub static LB_CONFIG: Array<LbConfig, 1> = Array::new();

/// `LB_VIP_STATS`: frames and bytes sent to a real, per VIP.
#[btf_map]
pub static LB_VIP_STATS: PerCpuArray<Traffic, { MAX_VIPS as usize }> = PerCpuArray::new();

/// `LB_REAL_STATS`: frames and bytes sent, per real.
#[btf_map]
pub static LB_REAL_STATS: PerCpuArray<Traffic, { MAX_REALS as usize }> = PerCpuArray::new();

/// `LB_COUNTERS`: one `u64` per [`Counter`].
#[btf_map]
pub static LB_COUNTERS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

/// `RING_SIZE` (`dsrlab_abi::lb::RING_SIZE_GLOBAL`): slots per VIP ring. Set
/// by the loader; read with [`ring_size`].
#[unsafe(no_mangle)]
static RING_SIZE: u32 = DEFAULT_RING_SIZE;

/// The ring size the loader set.
#[inline(always)]
pub fn ring_size() -> u32 {
    // SAFETY: reading a static; volatile so that the loader's value is read,
    // not the compile-time default.
    unsafe { core::ptr::read_volatile(&RING_SIZE) }
}

/// Increments `counter` on this CPU.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = LB_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently
        // with this program.
        unsafe { *slot += 1 };
    }
}

/// Adds one frame of `bytes` to the VIP's and the real's [`Traffic`].
#[inline(always)]
pub fn account(vip_num: u32, real: u32, bytes: u64) {
    if let Some(slot) = LB_VIP_STATS.get_ptr_mut(vip_num) {
        // SAFETY: per-CPU slot, as in `count`.
        unsafe { add(slot, bytes) };
    }
    if let Some(slot) = LB_REAL_STATS.get_ptr_mut(real) {
        // SAFETY: as above.
        unsafe { add(slot, bytes) };
    }
}

/// # Safety
///
/// `slot` is a per-CPU map value of this CPU.
#[inline(always)]
unsafe fn add(slot: *mut Traffic, bytes: u64) {
    unsafe {
        (*slot).packets += 1;
        (*slot).bytes += bytes;
    }
}
