//! The BPF objects of `datapath/ebpf`, embedded at build time.

/// An ELF object built from `datapath/ebpf`, with the program it holds.
#[derive(Clone, Copy, Debug)]
pub struct Object {
    /// The program's name (its function name in the object).
    pub program: &'static str,
    /// The ELF bytes; empty when the build was skipped (`AYA_BUILD_SKIP=1`).
    pub elf: &'static [u8],
}

macro_rules! object {
    ($name:literal) => {
        Object {
            program: $name,
            elf: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $name)),
        }
    };
}

/// Trivial XDP program returning XDP_PASS: the benchmark floor.
pub const XDP_PASS: Object = object!("xdp_pass");
/// XDP decapsulation.
pub const XDP_DECAP: Object = object!("xdp_decap");
/// TC (sched_cls) decapsulation.
pub const TC_DECAP: Object = object!("tc_decap");
