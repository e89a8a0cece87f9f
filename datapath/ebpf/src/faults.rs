//! Compile-time fault switches: how the deliberately broken programs differ.
//!
//! Every switch is an associated constant whose default is the correct
//! behaviour; the core tests them in `if` conditions that the compiler folds,
//! so [`Correct`] compiles to exactly the code it would be without them.
//! The broken variants (feature `defects`) exist only to prove that the
//! harness's oracles notice each class of bug.

/// A set of faults to build into a program.
pub trait Faults {
    /// When a header is in the packet but not in the linear area, give up:
    /// pass the packet and count `PassNotTunnel` (instead of reading it with
    /// the load-bytes helper, or counting `PassNonLinear` when the outer
    /// header cannot be removed).
    const GIVE_UP_NONLINEAR: bool = false;
    /// Slack (bytes) in the inner-packet length checks: an inner header or
    /// inner total length longer than the carried bytes by up to this much
    /// is accepted and decapsulated instead of dropped.
    const INNER_LEN_SLACK: u32 = 0;
    /// After decapsulating, change the inner header by a direct write with
    /// no checksum fix-up of any kind: an IPv4 inner packet's ToS byte
    /// becomes the outer ToS / traffic class (flipping bit 0x04 when they
    /// are equal, so the byte always changes), an IPv6 inner packet's flow
    /// label has a bit flipped (no header checksum notices). TC only.
    const TOS_WITHOUT_CSUM_FIXUP: bool = false;
    /// Remove the outer headers with `BPF_F_ADJ_ROOM_NO_CSUM_RESET`: a
    /// CHECKSUM_UNNECESSARY the NIC gave the outer packet stays on the
    /// inner one, whose checksums nobody validated. TC only.
    const KEEP_CSUM_STATE: bool = false;
    /// The load balancer selects reals but never writes the connection
    /// table: every packet of a flow is a ring selection (an `LruMiss`),
    /// and nothing is remembered. `xdp_lb` only.
    const LRU_NO_UPDATE: bool = false;
}

/// No faults: the shipped programs.
pub struct Correct;
impl Faults for Correct {}

/// `defect_tc_no_csum_fixup`.
#[cfg(feature = "defects")]
pub struct TosWithoutCsumFixup;
#[cfg(feature = "defects")]
impl Faults for TosWithoutCsumFixup {
    const TOS_WITHOUT_CSUM_FIXUP: bool = true;
}

/// `defect_xdp_gives_up_nonlinear`.
#[cfg(feature = "defects")]
pub struct GivesUpNonLinear;
#[cfg(feature = "defects")]
impl Faults for GivesUpNonLinear {
    const GIVE_UP_NONLINEAR: bool = true;
}

/// `defect_tc_keeps_csum_state`.
#[cfg(feature = "defects")]
pub struct KeepsCsumState;
#[cfg(feature = "defects")]
impl Faults for KeepsCsumState {
    const KEEP_CSUM_STATE: bool = true;
}

/// `defect_xdp_lb_lru_no_update`.
#[cfg(feature = "defects")]
pub struct LruNoUpdate;
#[cfg(feature = "defects")]
impl Faults for LruNoUpdate {
    const LRU_NO_UPDATE: bool = true;
}

/// `defect_xdp_off_by_one`.
#[cfg(feature = "defects")]
pub struct InnerLenOffByOne;
#[cfg(feature = "defects")]
impl Faults for InnerLenOffByOne {
    const INNER_LEN_SLACK: u32 = 1;
}
