//! The test-run engine: one packet through a loaded program with
//! `BPF_PROG_TEST_RUN`, with the NIC quirks the kernel can emulate at unit
//! level.
//!
//! aya's own test-run has no `flags`, so this goes through libbpf's
//! `bpf_prog_test_run_opts`, which takes any program fd.
//!
//! Per-CPU state (counters, LRU maps) is updated on the CPU the calling thread
//! runs on; callers that compare per-CPU values should pin the thread.

use std::{
    cell::Cell,
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

pub mod limits;

use crate::{
    formats::ctx::{CB_WORDS, Ctx, SkbCtxOut},
    load::{LoadedProgram, ProgramKind},
};
pub use crate::{formats::fixture::Quirks, verdict::Verdict};

/// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`: give the program a CHECKSUM_COMPLETE
/// skb and fail the run with EBADMSG if `skb->csum` is stale afterwards.
const BPF_F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;

/// Room for headers a program may push (encapsulation) on top of the input.
pub const OUTPUT_HEADROOM: usize = 256;

/// What one test run returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The program's return code.
    pub verdict: Verdict,
    /// The packet as the program left it.
    pub output: Vec<u8>,
    /// Kernel-reported run time per call, in ns (the kernel's timer ticks in
    /// steps, so single values are coarse; use medians of many calls).
    pub kernel_ns: u32,
    /// Wall-clock time of the whole syscall per call, as the caller sees it.
    pub wall: Duration,
    /// The reasons a stack behind the program dropped what it passed
    /// (`UDP_CSUM`, `NO_SOCKET`, ...), in order — when one watched: live,
    /// behind an emulated NIC. `None` where no stack takes the packet (test
    /// runs, the inert veth rig).
    pub drops: Option<Vec<String>>,
    /// The skb's context after the run, when the packet's context was read
    /// back (test runs of TC programs).
    pub ctx: Option<SkbCtxOut>,
}

/// Why a test run produced no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Under `checksum: complete` the program changed bytes covered by
    /// `skb->csum` without updating it (the kernel's EBADMSG): a defect of the
    /// program under test, not of the harness.
    #[error(
        "checksum bookkeeping defect: the program left skb->csum stale under CHECKSUM_COMPLETE (the kernel returned EBADMSG); a real mlx5-style NIC would see the packet's checksum fail or, for UDP, deliver it silently"
    )]
    StaleChecksum,
    /// Live, behind the VXLAN NIC: the checksum auditor at PRE_ROUTING
    /// found `skb->csum` stale after the program.
    #[error(
        "checksum bookkeeping defect: the program left skb->csum stale under CHECKSUM_COMPLETE (the checksum auditor at PRE_ROUTING: skb->csum folds to {skb:#06x}, the packet sums to {sum:#06x}); a real mlx5-style NIC's sum would be trusted, and for UDP the packet delivered silently"
    )]
    StaleChecksumLive {
        /// `skb->csum`, folded.
        skb: u16,
        /// What the packet sums to.
        sum: u16,
    },
    /// Live, behind an emulated NIC: the skb claims validated checksums
    /// that the program removed.
    #[error("checksum state defect: {0}; the stack would trust what nobody validated")]
    StaleChecksumState(String),
    /// A quirk the program type cannot have.
    #[error("quirk `{quirk}` does not apply to {kind} program `{program}`: {why}")]
    QuirkUnsupported {
        /// The quirk as written in a fixture.
        quirk: &'static str,
        /// The program type.
        kind: &'static str,
        /// The program.
        program: String,
        /// What to do instead.
        why: &'static str,
    },
    /// The output did not fit the buffer.
    #[error(
        "program `{program}` grew the packet beyond the {capacity}-byte output buffer ({input} bytes in + {OUTPUT_HEADROOM} headroom): ENOSPC"
    )]
    OutputTooLarge {
        /// The program.
        program: String,
        /// Input length.
        input: usize,
        /// Buffer size.
        capacity: usize,
    },
    /// The kernel refuses to build this input in test-run mode (it is too
    /// short for the headers its EtherType announces); a live run can still
    /// deliver it.
    #[error("BPF_PROG_TEST_RUN refuses this packet for {kind} programs: {why}")]
    Unrunnable {
        /// The program type.
        kind: &'static str,
        /// What the kernel requires.
        why: String,
    },
    /// The frame is larger than any test run of this program type takes
    /// on this kernel.
    #[error(
        "a {len}-byte frame is larger than BPF_PROG_TEST_RUN takes for {kind} programs on this kernel: at most {limit} bytes ({why}); run it live (netns mode) instead"
    )]
    TooLarge {
        /// The program type.
        kind: &'static str,
        /// The frame's length.
        len: usize,
        /// The largest frame a test run takes, measured.
        limit: usize,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// The kernel rejected the input (EINVAL), with the likely reasons.
    #[error("the kernel rejected the test run of `{program}` (EINVAL): {hint}")]
    InvalidInput {
        /// The program.
        program: String,
        /// What is most likely wrong.
        hint: String,
    },
    /// Any other failure of the syscall.
    #[error("BPF_PROG_TEST_RUN of `{program}` failed: {source}")]
    Syscall {
        /// The program.
        program: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Wall time spent inside `BPF_PROG_TEST_RUN` by threads that ended, ns.
static IN_TEST_RUN_NS: AtomicU64 = AtomicU64::new(0);
/// `BPF_PROG_TEST_RUN` calls made by threads that ended.
static TEST_RUNS: AtomicU64 = AtomicU64::new(0);

/// One thread's test runs and time in them, added to the process's totals
/// when the thread ends: counted per thread, since workers on several CPUs
/// updating one shared counter per packet would contend for its cache
/// line.
#[derive(Default)]
struct ThreadTestRuns {
    runs: Cell<u64>,
    ns: Cell<u64>,
}

impl ThreadTestRuns {
    fn add(&self, elapsed: Duration) {
        self.runs.set(self.runs.get() + 1);
        self.ns.set(self.ns.get() + elapsed.as_nanos() as u64);
    }
}

impl Drop for ThreadTestRuns {
    fn drop(&mut self) {
        TEST_RUNS.fetch_add(self.runs.get(), Ordering::Relaxed);
        IN_TEST_RUN_NS.fetch_add(self.ns.get(), Ordering::Relaxed);
    }
}

thread_local! {
    static THREAD_TEST_RUNS: ThreadTestRuns = ThreadTestRuns::default();
}

/// The `BPF_PROG_TEST_RUN` calls made so far by this thread and by threads
/// that ended (a run's workers, once joined), and the wall time spent
/// inside them: what the throughput benchmark compares the harness's own
/// work with.
pub fn time_in_test_runs() -> (u64, Duration) {
    let (runs, ns) = THREAD_TEST_RUNS.with(|t| (t.runs.get(), t.ns.get()));
    (
        TEST_RUNS.load(Ordering::Relaxed) + runs,
        Duration::from_nanos(IN_TEST_RUN_NS.load(Ordering::Relaxed) + ns),
    )
}

/// Runs `packet` once through `program` with `quirks`.
pub fn run(program: &LoadedProgram, packet: &[u8], quirks: Quirks) -> Result<RunResult, RunError> {
    run_repeated(program, packet, quirks, 1)
}

/// Runs `packet` through `program` `repeat` times in one syscall; times are
/// per call. In repeat mode a non-live XDP run feeds its output into the next
/// repetition, so only repeat packets the program leaves unchanged.
pub fn run_repeated(
    program: &LoadedProgram,
    packet: &[u8],
    quirks: Quirks,
    repeat: u32,
) -> Result<RunResult, RunError> {
    let target = Target {
        fd: program.fd(),
        kind: program.kind(),
        name: program.name(),
    };
    run_target(target, packet, quirks, repeat)
}

/// A loaded program by descriptor, for runs of programs dsrlab did not
/// load in this process (pinned ones).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The program.
    pub fd: std::os::fd::BorrowedFd<'a>,
    /// Its type.
    pub kind: ProgramKind,
    /// Its name, for messages.
    pub name: &'a str,
}

/// [`run_repeated`] on a program given by descriptor.
pub fn run_target(
    target: Target<'_>,
    packet: &[u8],
    quirks: Quirks,
    repeat: u32,
) -> Result<RunResult, RunError> {
    let kind = target.kind;
    let mut flags = 0;
    if quirks.checksum_complete {
        if kind != ProgramKind::SchedCls {
            return Err(RunError::QuirkUnsupported {
                quirk: "checksum: complete",
                kind: kind.name(),
                program: target.name.to_owned(),
                why: "XDP runs before an skb exists; CHECKSUM_COMPLETE is an skb property (emulate it live on a netns topology instead)",
            });
        }
        flags |= BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
    }
    if quirks.linear.is_some() && kind != ProgramKind::Xdp {
        return Err(RunError::QuirkUnsupported {
            quirk: "linear",
            kind: kind.name(),
            program: target.name.to_owned(),
            why: "skb test runs are always linear on this kernel; unpulled headers for TC need a live TAP with IFF_NAPI_FRAGS",
        });
    }
    let mut context = KernelCtx::new(kind, packet.len(), quirks);
    let (ctx_in, ctx_out) = context.buffers();

    let capacity = packet.len() + OUTPUT_HEADROOM;
    let mut output = vec![0u8; capacity];
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: packet.as_ptr().cast(),
        data_size_in: packet.len() as u32,
        data_out: output.as_mut_ptr().cast(),
        data_size_out: capacity as u32,
        ctx_in: ctx_in.map_or(std::ptr::null(), |c| c.as_ptr().cast()),
        ctx_size_in: ctx_in.map_or(0, |c| c.len() as u32),
        ctx_size_out: ctx_out.as_ref().map_or(0, |c| c.len() as u32),
        ctx_out: ctx_out.map_or(std::ptr::null_mut(), |c| c.as_mut_ptr().cast()),
        repeat: repeat.max(1) as i32,
        flags,
        ..Default::default()
    };
    let started = Instant::now();
    // SAFETY: every pointer in opts points into a live buffer of the stated
    // size for the duration of the call.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(target.fd.as_raw_fd(), &mut opts) };
    let elapsed = started.elapsed();
    THREAD_TEST_RUNS.with(|t| t.add(elapsed));
    let wall = elapsed / repeat.max(1);
    if rc != 0 {
        let source = std::io::Error::from_raw_os_error(-rc);
        return Err(match source.raw_os_error() {
            Some(libc::EBADMSG) => RunError::StaleChecksum,
            Some(libc::ENOSPC) => RunError::OutputTooLarge {
                program: target.name.to_owned(),
                input: packet.len(),
                capacity,
            },
            Some(libc::EINVAL | libc::ENOMEM)
                if let Some(limit) =
                    limits::largest_frame(kind).filter(|limit| packet.len() > *limit) =>
            {
                RunError::TooLarge {
                    kind: kind.name(),
                    len: packet.len(),
                    limit,
                    why: match kind {
                        ProgramKind::SchedCls => {
                            "an skb test run holds the frame in one page, less headroom and skb_shared_info"
                        }
                        ProgramKind::Xdp => {
                            "one page's linear area, the rest in at most MAX_SKB_FRAGS page frags"
                        }
                    },
                }
            }
            Some(libc::EINVAL) if let Some(why) = kernel_minimum(kind, packet) => {
                RunError::Unrunnable {
                    kind: kind.name(),
                    why,
                }
            }
            Some(libc::EINVAL) => RunError::InvalidInput {
                program: target.name.to_owned(),
                hint: einval_hint(kind, quirks),
            },
            Some(libc::ENODEV) if quirks.ctx.is_used() => RunError::InvalidInput {
                program: target.name.to_owned(),
                hint: format!(
                    "no device has the context's ifindex or ingress_ifindex ({}) in the \
                     harness's network namespace (ENODEV); 1 is lo, which always exists",
                    [quirks.ctx.ifindex, quirks.ctx.ingress_ifindex]
                        .iter()
                        .flatten()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            _ => RunError::Syscall {
                program: target.name.to_owned(),
                source,
            },
        });
    }
    output.truncate(opts.data_size_out as usize);
    Ok(RunResult {
        verdict: match kind {
            ProgramKind::Xdp => Verdict::Xdp(opts.retval),
            // TC actions are signed: TC_ACT_UNSPEC is -1.
            ProgramKind::SchedCls => Verdict::Tc(opts.retval as i32),
        },
        output,
        kernel_ns: opts.duration,
        wall,
        drops: None,
        ctx: context.skb_out(),
    })
}

/// `struct __sk_buff` as `BPF_PROG_TEST_RUN` takes and returns it (uapi
/// layout; libbpf-sys has no binding for it). Only the fields the kernel
/// accepts from user space are ever set; the rest must stay zero.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SkBuff {
    len: u32,
    pkt_type: u32,
    mark: u32,
    queue_mapping: u32,
    protocol: u32,
    vlan_present: u32,
    vlan_tci: u32,
    vlan_proto: u32,
    priority: u32,
    ingress_ifindex: u32,
    ifindex: u32,
    tc_index: u32,
    cb: [u32; CB_WORDS],
    hash: u32,
    tc_classid: u32,
    data: u32,
    data_end: u32,
    napi_id: u32,
    family: u32,
    remote_ip4: u32,
    local_ip4: u32,
    remote_ip6: [u32; 4],
    local_ip6: [u32; 4],
    remote_port: u32,
    local_port: u32,
    data_meta: u32,
    flow_keys: u64,
    tstamp: u64,
    wire_len: u32,
    gso_segs: u32,
    sk: u64,
    gso_size: u32,
    tstamp_type: u8,
    _pad: [u8; 3],
    hwtstamp: u64,
}

// The uapi layout, checked where it is easy to get wrong.
const _: () = assert!(size_of::<SkBuff>() == 192);
const _: () = assert!(std::mem::offset_of!(SkBuff, tstamp) == 152);
const _: () = assert!(std::mem::offset_of!(SkBuff, hwtstamp) == 184);

/// The context buffers of one run: none (the kernel's defaults), an skb's
/// or an XDP frame's. It lives on the stack for one syscall, so the size
/// difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum KernelCtx {
    None,
    Skb { input: SkBuff, output: SkBuff },
    Xdp([u32; 6]),
}

impl KernelCtx {
    fn new(kind: ProgramKind, len: usize, quirks: Quirks) -> Self {
        let ctx: Ctx = quirks.ctx;
        match kind {
            ProgramKind::SchedCls if ctx.is_used() => {
                let input = SkBuff {
                    mark: ctx.mark.unwrap_or(0),
                    priority: ctx.priority.unwrap_or(0),
                    ifindex: ctx.ifindex.unwrap_or(0),
                    ingress_ifindex: ctx.ingress_ifindex.unwrap_or(0),
                    cb: ctx.cb.unwrap_or_default(),
                    tstamp: ctx.tstamp.unwrap_or(0),
                    ..SkBuff::default()
                };
                Self::Skb {
                    input,
                    output: SkBuff::default(),
                }
            }
            ProgramKind::SchedCls => Self::None,
            ProgramKind::Xdp if ctx.is_used() || quirks.linear.is_some() => {
                // xdp_md: data, data_end, data_meta, ingress_ifindex,
                // rx_queue_index, egress_ifindex. data_end < len leaves the
                // rest in frags.
                let data_end = quirks.linear.map_or(len, |n| (n as usize).min(len));
                Self::Xdp([
                    0,
                    data_end as u32,
                    0,
                    ctx.ingress_ifindex.unwrap_or(0),
                    ctx.rx_queue_index.unwrap_or(0),
                    0,
                ])
            }
            ProgramKind::Xdp => Self::None,
        }
    }

    /// (input, output) as byte buffers for `bpf_test_run_opts`.
    fn buffers(&mut self) -> (Option<&[u8]>, Option<&mut [u8]>) {
        match self {
            Self::None => (None, None),
            Self::Xdp(md) => (Some(as_bytes(md)), None),
            Self::Skb { input, output } => (Some(as_bytes(input)), Some(as_bytes_mut(output))),
        }
    }

    fn skb_out(&self) -> Option<SkbCtxOut> {
        let Self::Skb { output, .. } = self else {
            return None;
        };
        Some(SkbCtxOut {
            mark: output.mark,
            priority: output.priority,
            ifindex: output.ifindex,
            ingress_ifindex: output.ingress_ifindex,
            cb: output.cb,
            tstamp: output.tstamp,
        })
    }
}

fn as_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is a plain repr(C) integer struct or array without padding
    // that could be uninitialised (SkBuff's padding is an explicit field).
    unsafe { std::slice::from_raw_parts((value as *const T).cast(), size_of::<T>()) }
}

fn as_bytes_mut<T: Copy>(value: &mut T) -> &mut [u8] {
    // SAFETY: as in as_bytes; every bit pattern is a valid T.
    unsafe { std::slice::from_raw_parts_mut((value as *mut T).cast(), size_of::<T>()) }
}

/// The minimum sizes `BPF_PROG_TEST_RUN` enforces before running anything:
/// an Ethernet header for every program, and for skb programs the whole
/// network header its EtherType announces (IPv4: 20 bytes, IPv6: 40).
fn kernel_minimum(kind: ProgramKind, packet: &[u8]) -> Option<String> {
    if packet.len() < 14 {
        return Some(format!(
            "it needs at least an Ethernet header (14 bytes); the frame has {}",
            packet.len()
        ));
    }
    if kind != ProgramKind::SchedCls {
        return None;
    }
    let (family, header) = match u16::from_be_bytes([packet[12], packet[13]]) {
        0x0800 => ("IPv4", 20),
        0x86dd => ("IPv6", 40),
        _ => return None,
    };
    (packet.len() < 14 + header).then(|| {
        format!(
            "an skb test run needs the full {family} header ({header} bytes) after Ethernet; the packet has {}",
            packet.len() - 14
        )
    })
}

fn einval_hint(kind: ProgramKind, quirks: Quirks) -> String {
    let mut hints = Vec::new();
    if let (ProgramKind::Xdp, Some(n)) = (kind, quirks.linear) {
        hints.push(format!(
            "`linear: {n}` needs a program loaded with frags support (#[xdp(frags)] / SEC(\"xdp.frags\")) and a packet longer than {n} bytes"
        ));
    }
    if hints.is_empty() {
        hints.push("the packet size or context is not acceptable for this program type".into());
    }
    hints.join("; ")
}
