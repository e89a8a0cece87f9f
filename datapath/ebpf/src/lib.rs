//! dsrlab's BPF programs: shared, hook-independent code.
//!
//! Each program is one binary in `src/bin/` (one ELF object each); the code
//! they share lives in this library:
//!
//! - [`packet`]: wire headers and the [`packet::Packet`] trait through which
//!   the core reads a frame (direct access, helper fallback);
//! - [`decap`]: the decapsulation core and its policy (one counter per
//!   packet);
//! - [`xdp`], [`tc`]: the two hooks' `Packet` implementations, the removal of
//!   the outer headers, and the entry point bodies;
//! - [`faults`]: compile-time fault switches for the deliberately broken
//!   variants (feature `defects`).
//!
//! The map `DECAP_COUNTERS` and the global `GUE_PORT` (names in
//! `dsrlab_abi::decap`) are defined here, once for every decap program.
#![no_std]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

pub mod chain;
pub mod decap;
pub mod faults;
pub mod packet;
pub mod tc;
pub mod xdp;

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use dsrlab_abi::decap::{Counter, DEFAULT_GUE_PORT};

/// `dsrlab_abi::decap::COUNTERS_MAP`: one `u64` per [`Counter`], per CPU.
#[btf_map]
pub static DECAP_COUNTERS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

/// `dsrlab_abi::decap::GUE_PORT_GLOBAL`: GUE destination port, host byte
/// order; the loader may override it.
#[unsafe(no_mangle)]
pub static GUE_PORT: u16 = DEFAULT_GUE_PORT;

/// The GUE destination port in network byte order.
#[inline(always)]
pub fn gue_port_be() -> u16 {
    // SAFETY: reading a static; volatile so that the loader's value is read
    // and not the compile-time default.
    unsafe { core::ptr::read_volatile(&GUE_PORT) }.to_be()
}

/// Increments counter `index` of `DECAP_COUNTERS` on this CPU.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(slot) = DECAP_COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, nothing else on this CPU runs concurrently
        // with this program.
        unsafe { *slot += 1 };
    }
}

/// Defines what every program object needs besides its entry point: a panic
/// handler (never reached: the verifier rejects code that could get there)
/// and the GPL license that the kernel requires for the helpers we call.
/// Invoke once at the end of each `src/bin/*.rs`.
#[macro_export]
macro_rules! program_object {
    () => {
        #[cfg(not(test))]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
            loop {}
        }

        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 4] = *b"GPL\0";
    };
}
