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
/// XDP_PASS for multi-buffer frames: the live rig's wire end (an
/// instrument, not datapath), attachable at any MTU.
pub const XDP_PASS_FRAGS: Object = object!("xdp_pass_frags");
/// Trivial sched_cls program returning TC_ACT_OK: the floor for TC.
pub const TC_PASS: Object = object!("tc_pass");
/// XDP decapsulation.
pub const XDP_DECAP: Object = object!("xdp_decap");
/// TC (sched_cls) decapsulation.
pub const TC_DECAP: Object = object!("tc_decap");
/// XDP L4 load balancer (contract: `dsrlab_abi::lb`; loaded without frags).
pub const XDP_LB: Object = object!("xdp_lb");

/// The XDP chainer's root, tail-call backend (`dsrlab_abi::chain`).
pub const XDP_CHAIN_TAIL: Object = object!("xdp_chain_tail");
/// The XDP chainer's root, EXT backend (`dsrlab_abi::chain`).
pub const XDP_CHAIN_EXT: Object = object!("xdp_chain_ext");
/// `xdp_lb` as a slot program of the chainer's tail-call backend.
pub const XDP_LB_SLOT: Object = object!("xdp_lb_slot");
/// `xdp_decap` as a slot program of the chainer's tail-call backend
/// (without frags, like the root).
pub const XDP_DECAP_SLOT: Object = object!("xdp_decap_slot");
/// The trivial slot program (XDP_PASS through the chain): the chainer's
/// benchmark.
pub const CHAIN_PASS: Object = object!("chain_pass");
/// A slot program for the chainer's tests: records the order
/// slots ran in and returns the verdict in its `PROBE_VERDICT` global.
pub const CHAIN_PROBE: Object = object!("chain_probe");

/// Deliberately broken variants of the datapath, embedded only for the
/// harness's own tests: each one proves that an oracle notices a class of bug.
#[cfg(feature = "defects")]
pub mod defects {
    use super::Object;

    /// tc_decap that also copies the outer ToS into the inner IPv4 header
    /// without any checksum fix-up: caught under `checksum: complete`.
    pub const TC_NO_CSUM_FIXUP: Object = object!("defect_tc_no_csum_fixup");
    /// tc_decap that silently passes packets whose headers are not linear:
    /// invisible to test runs (linear skbs), caught live behind the TAP NIC.
    pub const TC_GIVES_UP_NONLINEAR: Object = object!("defect_tc_gives_up_nonlinear");
    /// tc_decap that keeps a validated outer packet's CHECKSUM_UNNECESSARY on
    /// the inner packet: caught live by the SNMP counters.
    pub const TC_KEEPS_CSUM_STATE: Object = object!("defect_tc_keeps_csum_state");
    /// xdp_decap that silently passes packets whose headers are not linear.
    pub const XDP_GIVES_UP_NONLINEAR: Object = object!("defect_xdp_gives_up_nonlinear");
    /// xdp_decap whose inner-length check is off by one.
    pub const XDP_OFF_BY_ONE: Object = object!("defect_xdp_off_by_one");
    /// xdp_lb that never writes its connection table: caught by the lb
    /// oracle, also once the table is full and evicts.
    pub const XDP_LB_LRU_NO_UPDATE: Object = object!("defect_xdp_lb_lru_no_update");
}
