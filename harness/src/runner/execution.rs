//! How a packet reaches a program — the one thing the modes differ in.
//!
//! The runner drives packets and the oracles judge results; an
//! [`Execution`] only carries one packet through a program and says what
//! came out, in the same [`RunResult`] shape for both modes. So oracles and
//! reports never know which mode produced a result, and a scenario that
//! runs in both modes can be compared packet by packet ([`agree`]).
//!
//! [`agree`]: crate::oracles::agree

use std::time::Instant;

use super::{SuiteError, cpu_pin::CpuPin};
use crate::{
    formats::scenario::model::Mode,
    kernel::features::Features,
    live::{
        attach::Hook,
        netns::Namespace,
        replay::{Delivery, Observation, Replay, ReplayError},
    },
    load::{LoadedProgram, ProgramKind},
    testrun::{self, Quirks, RunError, RunResult, Verdict},
};

/// One way of running packets through a loaded program.
pub trait Execution {
    /// The mode this is.
    fn mode(&self) -> Mode;

    /// Why `packet` with `quirks` cannot run this way on a program of
    /// `kind`, if it cannot.
    fn skip_reason(&self, kind: ProgramKind, packet: &[u8], quirks: Quirks) -> Option<String>;

    /// Runs one packet. The outer error is a failure of the mode's own
    /// machinery (never a verdict on the program), the inner one a run
    /// that produced no result.
    fn run(
        &mut self,
        program: &LoadedProgram,
        packet: &[u8],
        quirks: Quirks,
    ) -> Result<Result<RunResult, RunError>, SuiteError>;

    /// Sends one of the mode's own marker frames through the program, if
    /// the mode has them (live fences); false if it has none. Counters read
    /// around it show what each marker adds ([`MarkerCost`]).
    fn send_marker(&mut self) -> Result<bool, SuiteError> {
        Ok(false)
    }

    /// Marker frames the program has seen so far.
    fn markers(&self) -> u64 {
        0
    }

    /// The SNMP counters of the stack behind the program, if the mode has
    /// one (the live TAP NIC's node).
    fn snmp(&self) -> Option<std::io::Result<crate::live::snmp::Counters>> {
        None
    }
}

/// What one marker frame of the execution adds to the state the oracles
/// read, as groups of u64 words: group 0 is the contract's counters, the
/// groups after it the `after.maps` values (summed little-endian words).
/// The runner subtracts it from every packet's counter deltas and, times
/// the number of markers, from the totals after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarkerCost(pub Vec<Vec<u64>>);

impl MarkerCost {
    /// Measures it with `read`, a snapshot of the groups.
    pub fn measure<E>(
        execution: &mut dyn Execution,
        mut read: impl FnMut() -> Result<Vec<Vec<u64>>, E>,
    ) -> Result<Self, E>
    where
        E: From<SuiteError>,
    {
        let before = read()?;
        if !execution.send_marker()? {
            return Ok(Self::default());
        }
        let after = read()?;
        let groups = after
            .iter()
            .enumerate()
            .map(|(g, words)| {
                let old = before.get(g).map(Vec::as_slice).unwrap_or_default();
                words
                    .iter()
                    .enumerate()
                    .map(|(i, a)| a.wrapping_sub(old.get(i).copied().unwrap_or(0)))
                    .collect()
            })
            .collect();
        Ok(Self(groups))
    }

    /// `snapshot` of `group` less `times` markers' worth.
    pub fn remove(&self, group: usize, snapshot: &mut [u64], times: u64) {
        let Some(cost) = self.0.get(group) else {
            return;
        };
        for (value, cost) in snapshot.iter_mut().zip(cost) {
            *value = value.wrapping_sub(cost.wrapping_mul(times));
        }
    }
}

/// `BPF_PROG_TEST_RUN`, one packet per syscall.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestRun;

impl Execution for TestRun {
    fn mode(&self) -> Mode {
        Mode::TestRun
    }

    fn skip_reason(&self, kind: ProgramKind, _packet: &[u8], quirks: Quirks) -> Option<String> {
        super::skip_reason(kind, quirks)
    }

    fn run(
        &mut self,
        program: &LoadedProgram,
        packet: &[u8],
        quirks: Quirks,
    ) -> Result<Result<RunResult, RunError>, SuiteError> {
        Ok(testrun::run(program, packet, quirks))
    }
}

/// The program attached in a namespace behind a veth pair; each packet is
/// injected on the wire and its fate observed ([`Replay`]). A TC program
/// whose scenario asks for NIC behaviour (`linear: N`, `checksum:
/// unnecessary`) or for the stack's counters (`after.snmp`) runs behind
/// the emulated TAP NIC instead, which carries every packet.
pub struct Live {
    replay: Replay,
    /// Behind the VXLAN NIC, for packets with `checksum: complete`.
    complete: Option<Replay>,
    // Frames are processed in order only within one CPU's queue, and the
    // injecting thread's CPU runs their softirq: stay on it.
    _pin: CpuPin,
}

impl Live {
    /// Attaches `program` (XDP native, or TC ingress) behind a fresh rig
    /// whose links carry frames up to `largest` bytes — for a TC program,
    /// behind the TAP NIC when `needs_nic`, and behind the VXLAN NIC too
    /// when `needs_complete`.
    pub fn attach(
        program: &mut LoadedProgram,
        largest: usize,
        needs_nic: bool,
        needs_complete: bool,
    ) -> Result<Self, SuiteError> {
        let hook = match program.kind() {
            ProgramKind::Xdp => Hook::XdpNative,
            ProgramKind::SchedCls => Hook::TcIngress,
        };
        let mtu = u32::try_from(largest.saturating_sub(14)).unwrap_or(u32::MAX);
        let pin = pin_here()?;
        // The emulated NICs' oracle is the checksum auditor, a netfilter
        // program.
        if hook == Hook::TcIngress
            && (needs_nic || needs_complete)
            && let Some(why) = Features::get().netfilter_programs.missing()
        {
            return Err(SuiteError::Unsupported(format!(
                "live TC runs behind an emulated NIC need the checksum auditor: {why}"
            )));
        }
        let replay = if needs_nic && hook == Hook::TcIngress {
            Replay::with_nic(program, mtu)
        } else {
            Replay::new(program, hook, mtu)
        }
        .map_err(SuiteError::Live)?;
        let complete = (needs_complete && hook == Hook::TcIngress)
            .then(|| Replay::with_complete_nic(program, mtu))
            .transpose()
            .map_err(SuiteError::Live)?;
        Ok(Self {
            replay,
            complete,
            _pin: pin,
        })
    }

    /// Attaches what `attach` attaches (given the namespace and the
    /// interface index) at native XDP behind a fresh rig whose links carry
    /// frames up to `largest` bytes: a chain, whose root keeps the device
    /// while its slots, or the root itself, change.
    pub fn attach_xdp_by(
        largest: usize,
        attach: impl FnOnce(&Namespace, u32) -> Result<(), String>,
    ) -> Result<Self, SuiteError> {
        let mtu = u32::try_from(largest.saturating_sub(14)).unwrap_or(u32::MAX);
        let pin = pin_here()?;
        let replay = Replay::attached_by(Hook::XdpNative, mtu, |ns, ifindex| {
            attach(ns, ifindex).map_err(|why| ReplayError::Io {
                what: "attaching at dut0".to_owned(),
                source: std::io::Error::other(why),
            })
        })
        .map_err(SuiteError::Live)?;
        Ok(Self {
            replay,
            complete: None,
            _pin: pin,
        })
    }
}

/// Pins the injecting thread to the CPU it is on.
fn pin_here() -> Result<CpuPin, SuiteError> {
    CpuPin::here().map_err(|e| {
        SuiteError::Live(ReplayError::Io {
            what: "pinning the injecting thread to one CPU".to_owned(),
            source: e,
        })
    })
}

impl Execution for Live {
    fn mode(&self) -> Mode {
        Mode::Netns
    }

    fn skip_reason(&self, kind: ProgramKind, packet: &[u8], quirks: Quirks) -> Option<String> {
        if quirks.ctx.is_used() {
            return Some(
                "`ctx` is given to and read back from test runs; a live packet's context is \
                 what the stack gives it"
                    .to_owned(),
            );
        }
        if packet.len() < 14 {
            return Some(format!(
                "{} bytes is shorter than an Ethernet header: no NIC delivers it",
                packet.len()
            ));
        }
        if kind == ProgramKind::SchedCls && matches!(packet[12..14], [0x81, 0x00] | [0x88, 0xa8]) {
            return Some(
                "VLAN-tagged at TC: the receiving kernel moves the tag into skb metadata before TC \
                 and clears it before delivery (no VLAN device), so what the program left cannot be \
                 observed byte for byte yet"
                    .to_owned(),
            );
        }
        if quirks.checksum_complete && kind == ProgramKind::Xdp {
            return Some(
                "checksum: complete is an skb property; XDP runs before the skb exists".to_owned(),
            );
        }
        if quirks.checksum_complete && quirks.checksum_unnecessary {
            return Some(
                "checksum: complete and unnecessary at once: a NIC reports one or the other"
                    .to_owned(),
            );
        }
        if quirks.checksum_complete && quirks.linear.is_some() {
            return Some(
                "checksum: complete with linear: N is not emulated live: the VXLAN NIC's tunnel \
                 pulls every header of the inner frame up to L4 into the linear part (measured: \
                 82 bytes for IPv4 in IPv6), so the headers a decap reads are never unpulled"
                    .to_owned(),
            );
        }
        if quirks.checksum_complete
            && let Some(why) = crate::live::nic::vxlan::cannot_carry(packet)
        {
            return Some(format!("checksum: complete: {why}"));
        }
        if kind == ProgramKind::Xdp && quirks.checksum_unnecessary {
            return Some(
                "checksum: unnecessary is an skb property; XDP runs before the skb exists"
                    .to_owned(),
            );
        }
        if kind == ProgramKind::Xdp && quirks.linear.is_some() {
            return Some(
                "linear: N live is emulated for TC programs: on the TAP NIC, XDP runs generic, \
                 which lays non-linear skbs out again (measured: xdp_decap then sees whole headers \
                 and decapsulates what it must pass as non-linear); test-run mode emulates it for XDP"
                    .to_owned(),
            );
        }
        None
    }

    fn run(
        &mut self,
        program: &LoadedProgram,
        packet: &[u8],
        quirks: Quirks,
    ) -> Result<Result<RunResult, RunError>, SuiteError> {
        let started = Instant::now();
        let delivery = Delivery {
            linear: quirks.linear,
            validated: quirks.checksum_unnecessary,
        };
        let observation = match &mut self.complete {
            Some(rig) if quirks.checksum_complete => rig.replay(packet),
            _ => self.replay.replay_with(packet, delivery),
        }
        .map_err(SuiteError::Live)?;
        if let Some((skb, sum)) = observation.stale_checksum {
            return Ok(Err(RunError::StaleChecksumLive { skb, sum }));
        }
        if let Some(why) = observation.stale_state {
            return Ok(Err(RunError::StaleChecksumState(why)));
        }
        Ok(Ok(as_result(program.kind(), observation, started)))
    }

    fn send_marker(&mut self) -> Result<bool, SuiteError> {
        self.replay.fence().map_err(SuiteError::Live)?;
        Ok(true)
    }

    fn markers(&self) -> u64 {
        self.replay.fences() + self.complete.as_ref().map_or(0, Replay::fences)
    }

    /// The counters of every rig with a stack, added up.
    fn snmp(&self) -> Option<std::io::Result<crate::live::snmp::Counters>> {
        let rigs = std::iter::once(&self.replay).chain(&self.complete);
        let mut total: Option<crate::live::snmp::Counters> = None;
        for counters in rigs.filter_map(Replay::snmp) {
            let counters = match counters {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let sum = total.get_or_insert_with(Default::default);
            for (name, value) in counters {
                *sum.entry(name).or_default() += value;
            }
        }
        total.map(Ok)
    }
}

/// What a live observation means in test-run terms: delivered is a pass,
/// sent back is a transmit (XDP) or a redirect (TC), nothing is a drop.
/// A live run cannot tell XDP_ABORTED from XDP_DROP, nor TC_ACT_UNSPEC
/// from TC_ACT_OK: the kernel does the same with both. A program that both
/// delivers and sends back (a clone) is reported by what it sent back.
fn as_result(kind: ProgramKind, observation: Observation, started: Instant) -> RunResult {
    let Observation {
        mut delivered,
        mut sent_back,
        drops,
        ..
    } = observation;
    let (verdict, output) = match kind {
        ProgramKind::Xdp if !sent_back.is_empty() => (Verdict::Xdp(3), sent_back.swap_remove(0)),
        ProgramKind::SchedCls if !sent_back.is_empty() => {
            (Verdict::Tc(7), sent_back.swap_remove(0))
        }
        ProgramKind::Xdp if !delivered.is_empty() => (Verdict::Xdp(2), delivered.swap_remove(0)),
        ProgramKind::SchedCls if !delivered.is_empty() => {
            (Verdict::Tc(0), delivered.swap_remove(0))
        }
        ProgramKind::Xdp => (Verdict::Xdp(1), Vec::new()),
        ProgramKind::SchedCls => (Verdict::Tc(2), Vec::new()),
    };
    RunResult {
        ctx: None,
        verdict,
        output,
        kernel_ns: 0,
        wall: started.elapsed(),
        drops,
    }
}
