//! The largest frame `BPF_PROG_TEST_RUN` takes, per program type, as this
//! kernel enforces it — measured, not assumed, because it depends on the
//! page size, the size of `struct skb_shared_info` and `MAX_SKB_FRAGS`,
//! which vary between kernels and architectures.
//!
//! An skb test run copies the frame into one page, less `NET_SKB_PAD`
//! headroom and the `skb_shared_info` tail (EINVAL beyond: about 3.7 KB on
//! x86_64 with 4 KiB pages); an XDP test run puts what exceeds one page's
//! linear area into at most `MAX_SKB_FRAGS` page frags (ENOMEM beyond:
//! about 73 KB). The limits are found once per process by bisection with
//! dsrlab's trivial pass programs, never with the program under test, whose
//! maps the probes would disturb.

use std::{os::fd::AsRawFd as _, sync::OnceLock};

use crate::{
    datapath,
    load::{LoadOptions, LoadedProgram, ProgramKind},
};

/// Frames no test run takes: the bisection's upper bound.
const CEILING: usize = 1 << 20;

/// The largest frame a test run of a `kind` program takes on this kernel;
/// `None` if it cannot be measured (no BPF, the pass programs not built).
pub fn largest_frame(kind: ProgramKind) -> Option<usize> {
    static SKB: OnceLock<Option<usize>> = OnceLock::new();
    static XDP: OnceLock<Option<usize>> = OnceLock::new();
    let (cell, object) = match kind {
        ProgramKind::SchedCls => (&SKB, datapath::TC_PASS),
        ProgramKind::Xdp => (&XDP, datapath::XDP_PASS_FRAGS),
    };
    *cell.get_or_init(|| {
        let program = LoadedProgram::builtin(object, &LoadOptions::default()).ok()?;
        let takes = |len: usize| {
            let mut frame = vec![0u8; len];
            // An IPv4 EtherType with a whole header would make skb runs
            // check it; an unknown EtherType is taken as it is.
            frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            accepts(&program, &frame)
        };
        let (mut good, mut bad) = (64, CEILING);
        if !takes(good) {
            return None;
        }
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            if takes(mid) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        Some(good)
    })
}

/// Whether one test run of `frame` succeeds. The bare syscall: the engine's
/// error mapping consults these limits, and must not be re-entered while
/// they are measured.
fn accepts(program: &LoadedProgram, frame: &[u8]) -> bool {
    let mut output = vec![0u8; frame.len() + super::OUTPUT_HEADROOM];
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: frame.len() as u32,
        data_out: output.as_mut_ptr().cast(),
        data_size_out: output.len() as u32,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: the input and output buffers live, with the sizes given,
    // for the duration of the call.
    unsafe { libbpf_sys::bpf_prog_test_run_opts(program.fd().as_raw_fd(), &mut opts) == 0 }
}
