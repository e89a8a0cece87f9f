//! Replay: frames injected on one end of a veth pair, the program under test
//! attached on the other, and what it did observed from outside.
//!
//! ```text
//!   node "wire"                      node "dut"
//!   wire0 ── veth ──────────────────► dut0  [XDP | TC ingress: program]
//!   inject (AF_PACKET)                      │ delivered: a tap behind XDP, or one
//!   sent back ◄─────────────────────────────┘ socket per EtherType behind TC
//! ```
//!
//! Behind XDP the observer is a tap (`ETH_P_ALL`), which sees a frame right
//! after XDP with a VLAN tag still in the skb's metadata (restored from
//! `PACKET_AUXDATA`). Behind TC it is a socket per EtherType, which sees the
//! frame after TC ingress, with the protocol the program left — but by
//! then the kernel has dropped a VLAN tag it has no device for.
//!
//! Each frame is followed by a *fence*: a frame of EtherType 0x88b5 (IEEE
//! local experimental) that programs pass as "not mine". Frames of one
//! queue are processed in order on the injecting CPU, so when the fence
//! reaches its socket behind the program, the frame before it has met its
//! fate: delivered (seen by a protocol socket), sent back (XDP_TX or a
//! redirect out of `dut0`: seen on `wire0`, behind a second fence sent
//! back from `dut0`), or neither (dropped). That is an event to wait on
//! rather than a guess at how long the kernel takes.
//!
//! Both nodes are inert: IPv6 is off and no addresses exist, so the stack
//! neither sends anything of its own nor answers what is delivered, and
//! captures hold only the run's traffic. `wire0` carries `xdp_pass_frags`,
//! which gives the veth pair the NAPI path that XDP_TX needs to reach it, at
//! any MTU.

mod wire;
pub(crate) use wire::sink;

use std::{collections::BTreeMap, io, time::Duration};

use self::wire::Wire;
use super::{
    attach::{self, AttachError, Hook},
    netns::Namespace,
    nic::NicError,
    packet_socket::{ETH_P_ALL, PacketSocket, received_protocol},
    topology::{EndSpec, LinkSpec, NodeSpec, Topology, TopologyError, TopologySpec},
};
use crate::{
    datapath,
    instruments::skb_state::IpSummed,
    load::{LoadError, LoadOptions, LoadedProgram},
};

/// EtherType of fence frames (IEEE 802 local experimental 1).
pub const FENCE_ETHERTYPE: u16 = 0x88b5;
/// How long a fence may take before the run is declared stuck: far above
/// the microseconds it takes, it only bounds a run whose program swallows
/// fences.
const FENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame read back (64 KiB: a veth's largest MTU plus headers).
const MAX_FRAME: usize = 65_536 + 64;
const FENCE_MAGIC: &[u8; 12] = b"dsrlab-fence";

/// The smallest MTU the rig uses.
const MIN_MTU: u32 = 1500;
/// The largest MTU a veth accepts.
pub const MAX_MTU: u32 = 65_535;

/// What became of one injected frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Frames delivered to the stack of the program's node, in order.
    pub delivered: Vec<Vec<u8>>,
    /// Frames that came back out of the program's interface (XDP_TX, or a
    /// redirect to its egress).
    pub sent_back: Vec<Vec<u8>>,
    /// Behind an emulated NIC: the reasons the sink's stack dropped
    /// packets while this frame was processed (fences left out); `None` on
    /// the inert veth rig, where no stack watches.
    pub drops: Option<Vec<String>>,
    /// Behind an emulated NIC: the skb still claims validated checksums
    /// that the program removed (what the auditor saw, explained).
    pub stale_state: Option<String>,
    /// Behind the VXLAN NIC: the checksum auditor found `skb->csum` stale
    /// after the program — (what `skb->csum` folds to, what the bytes sum
    /// to).
    pub stale_checksum: Option<(u16, u16)>,
}

/// Failures of the rig itself (never a verdict on the program).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The topology could not be built.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The wire end's helper program could not be loaded.
    #[error("loading the wire end's xdp_pass_frags: {0}")]
    Helper(#[from] LoadError),
    /// The program under test (or the helper) could not be attached.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The emulated NIC did not deliver what it promised (at its
    /// self-check or for a frame).
    #[error(transparent)]
    Nic(#[from] NicError),
    /// A fence did not come through: the program under test dropped or
    /// changed a frame it has no business touching.
    #[error(
        "the fence frame ({direction}, EtherType 0x88b5) did not come through within {FENCE_TIMEOUT:?}: live mode needs the program under test to pass frames it does not parse"
    )]
    FenceLost {
        /// Which fence.
        direction: &'static str,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ReplayError {
    let what = what.into();
    move |source| ReplayError::Io { what, source }
}

/// How a frame is to reach the program through the emulated NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Only this many bytes linear, the rest in page frags.
    pub linear: Option<u32>,
    /// `CHECKSUM_UNNECESSARY` (level 0) instead of `CHECKSUM_NONE`.
    pub validated: bool,
}

/// The two-node rig with a program attached to `dut0` (or the one-node
/// rig with the program on the TAP NIC `nic0`).
pub struct Replay {
    // Sockets and programs first: they drop before the namespaces.
    wire: Wire,
    return_fence: PacketSocket,
    delivered: BTreeMap<u16, PacketSocket>,
    /// Whether `delivered` is one tap (XDP) rather than protocol sockets.
    tap: bool,
    topology: Topology,
    dut_node: &'static str,
    dut_index: u32,
    /// Fence frames wire0 → dut0 and dut0 → wire0; the sequence number
    /// is written in before each send.
    fence_forward: Vec<u8>,
    fence_back: Vec<u8>,
    sequence: u32,
    forward_fences: u64,
    buf: Vec<u8>,
}

impl Replay {
    /// Builds the rig with both ends at `mtu` (raised to at least 1500) and
    /// attaches `program` at `hook` of `dut0`.
    pub fn new(program: &mut LoadedProgram, hook: Hook, mtu: u32) -> Result<Self, ReplayError> {
        Self::attached_by(hook, mtu, |dut, ifindex| {
            attach::attach(program, dut, "dut0", ifindex, hook).map_err(ReplayError::from)
        })
    }

    /// Builds the rig as [`Replay::new`] does, with what runs at `hook` of
    /// `dut0` attached by `attach` (given the node's namespace and the
    /// interface's index): a program that is not one [`LoadedProgram`],
    /// such as a chain, whose root may change under it.
    pub fn attached_by(
        hook: Hook,
        mtu: u32,
        attach: impl FnOnce(&Namespace, u32) -> Result<(), ReplayError>,
    ) -> Result<Self, ReplayError> {
        let mtu = mtu.clamp(MIN_MTU, MAX_MTU);
        let topology = Topology::build(&spec(mtu))?;
        let wire = topology.node("wire").expect("in the spec");
        let dut = topology.node("dut").expect("in the spec");
        let wire_if = topology.interface("wire", "wire0").expect("in the spec");
        let dut_if = topology.interface("dut", "dut0").expect("in the spec");

        let mut helper = LoadedProgram::builtin(datapath::XDP_PASS_FRAGS, &LoadOptions::default())?;
        attach::attach(&mut helper, wire, "wire0", wire_if.index, Hook::XdpNative)?;
        attach(dut, dut_if.index)?;

        let (inject, sent_back) = wire
            .run(|| {
                let inject = PacketSocket::sender(wire_if.index)?;
                let sent_back = PacketSocket::capture_arriving(wire_if.index, ETH_P_ALL)?;
                sent_back.set_receive_buffer(4 << 20)?;
                io::Result::Ok((inject, sent_back))
            })
            .and_then(|r| r)
            .map_err(io_err("opening the wire end's sockets"))?;
        let return_fence = dut
            .run(|| PacketSocket::sender(dut_if.index))
            .and_then(|r| r)
            .map_err(io_err("opening the return fence socket"))?;

        let mut replay = Self {
            wire: Wire::Veth {
                inject,
                sent_back,
                _helper: helper,
            },
            return_fence,
            delivered: BTreeMap::new(),
            tap: matches!(hook, Hook::XdpNative | Hook::XdpGeneric),
            topology,
            dut_node: "dut",
            dut_index: dut_if.index,
            fence_forward: fence_frame(dut_if.mac, wire_if.mac),
            fence_back: fence_frame(wire_if.mac, dut_if.mac),
            sequence: 0,
            forward_fences: 0,
            buf: vec![0; MAX_FRAME],
        };
        if replay.tap {
            replay.delivered_socket(ETH_P_ALL)?;
        } else {
            for protocol in [FENCE_ETHERTYPE, 0x0800, 0x86dd] {
                replay.delivered_socket(protocol)?;
            }
        }
        Ok(replay)
    }

    /// The SNMP counters of the program's node, for a NIC rig (whose node
    /// runs a stack that takes every delivered packet); `None` for the
    /// veth rig, whose node is inert.
    pub fn snmp(&self) -> Option<io::Result<crate::live::snmp::Counters>> {
        (!matches!(self.wire, Wire::Veth { .. })).then(|| {
            self.topology
                .node(self.dut_node)
                .expect("in the spec")
                .run(crate::live::snmp::read)
                .and_then(|r| r)
        })
    }

    /// Injects `frame` on the wire and reports what the program did with it.
    pub fn replay(&mut self, frame: &[u8]) -> Result<Observation, ReplayError> {
        self.replay_with(frame, Delivery::default())
    }

    /// Delivers `frame` through the emulated NIC as `delivery` says (on a
    /// veth rig, only the default delivery exists) and reports what the
    /// program did with it. The NIC's instrument checks that the frame
    /// reached the program as promised: a NIC that breaks its promise is an
    /// error, never a weaker test.
    pub fn replay_with(
        &mut self,
        frame: &[u8],
        delivery: Delivery,
    ) -> Result<Observation, ReplayError> {
        if delivery != Delivery::default() && matches!(self.wire, Wire::Veth { .. }) {
            return Err(ReplayError::Io {
                what: "delivering through a veth".into(),
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "linear: N and checksum: unnecessary need the NIC rig",
                ),
            });
        }
        if let Some(protocol) = received_protocol(frame).filter(|_| !self.tap) {
            self.delivered_socket(protocol)?;
        }
        self.wire
            .send(
                frame,
                delivery.linear.map(|n| n as usize),
                delivery.validated,
            )
            .map_err(io_err(format!("injecting a {}-byte frame", frame.len())))?;
        self.check_promise(frame, delivery)?;
        let forward = self.send_fence(false)?;
        let mut observation = Observation::default();
        // Everything delivered before the fence belongs to this frame.
        self.await_fence(forward, true, &mut observation)?;
        let back = self.send_fence(true)?;
        self.await_fence(back, false, &mut observation)?;
        let dut = self.dut_index;
        if let Some(watch) = self.wire.drops() {
            // Drops happen while a frame is processed, before the fence
            // behind it reaches its socket. Only what came in through the
            // NIC counts: the fences' own drops, and those of the sink's
            // answers to itself (a RST over lo), are left out.
            let drops = watch.take().map_err(io_err("reading drop reasons"))?;
            observation.drops = Some(
                drops
                    .into_iter()
                    .filter(|d| {
                        d.ifindex == dut
                            && d.bytes.get(12..14) != Some(&FENCE_ETHERTYPE.to_be_bytes()[..])
                    })
                    .map(|d| d.reason)
                    .collect(),
            );
        }
        if let Some(auditor) = self.wire.auditor() {
            // The frame went through PRE_ROUTING before the fence behind
            // it reached its socket: its audit is in.
            let audits = auditor
                .take()
                .map_err(io_err("reading the checksum audit"))?;
            if let Some(a) = audits
                .iter()
                .find(|a| a.ip_summed == IpSummed::Complete && a.sum.is_none())
            {
                // Never a pass by default: a packet it could not sum is an
                // error of the rig, not a clean audit.
                return Err(ReplayError::Io {
                    what: "auditing skb->csum".into(),
                    source: io::Error::other(format!(
                        "the checksum auditor could not sum a {}-byte packet",
                        a.len
                    )),
                });
            }
            observation.stale_checksum = audits
                .iter()
                .find(|a| a.stale())
                .map(|a| (a.skb_csum, a.sum.unwrap_or_default()));
            if let (Some(after), Some(out)) = (audits.first(), observation.delivered.first()) {
                observation.stale_state = stale_state(frame, out, delivery, after);
            }
        }
        Ok(observation)
    }

    /// Sends a lone fence through the program and waits for it: what the
    /// program's counters do for one fence is what each [`Self::replay`]
    /// adds on top of its frame's own effect.
    pub fn fence(&mut self) -> Result<(), ReplayError> {
        let forward = self.send_fence(false)?;
        self.await_fence(forward, true, &mut Observation::default())
    }

    /// Fences the program has seen so far (one per replayed frame, plus
    /// those sent by [`Self::fence`]).
    pub const fn fences(&self) -> u64 {
        self.forward_fences
    }

    fn delivered_socket(&mut self, protocol: u16) -> Result<(), ReplayError> {
        if self.delivered.contains_key(&protocol) {
            return Ok(());
        }
        let index = self.dut_index;
        let socket = self
            .topology
            .node(self.dut_node)
            .expect("in the spec")
            .run(|| {
                let s = PacketSocket::capture_arriving(index, protocol)?;
                s.set_receive_buffer(4 << 20)?;
                io::Result::Ok(s)
            })
            .and_then(|r| r)
            .map_err(io_err(format!(
                "opening a capture for EtherType {protocol:#06x}"
            )))?;
        self.delivered.insert(protocol, socket);
        Ok(())
    }

    /// Sends the next fence forward (wire → dut) or back (dut → wire).
    fn send_fence(&mut self, back: bool) -> Result<u32, ReplayError> {
        self.sequence = self.sequence.wrapping_add(1);
        let frame = if back {
            &mut self.fence_back
        } else {
            &mut self.fence_forward
        };
        let at = 14 + FENCE_MAGIC.len();
        frame[at..at + 4].copy_from_slice(&self.sequence.to_be_bytes());
        if back {
            self.return_fence.send(frame)
        } else {
            self.wire.send(frame, None, false)
        }
        .map_err(io_err("sending a fence"))?;
        if !back && let Some(probe) = self.wire.probe() {
            // The fence's own record, so that only frames' records remain;
            // it must be the fence's, or records are out of step.
            let seen = probe
                .wait_for(1, FENCE_TIMEOUT)
                .map_err(io_err("reading the fence's skb state"))?;
            if seen.len() != 1 || fence_sequence(&seen[0].bytes) != Some(self.sequence) {
                return Err(ReplayError::Io {
                    what: "reading the fence's skb state".into(),
                    source: io::Error::other(format!(
                        "expected the record of fence {}, found {} record(s)",
                        self.sequence,
                        seen.len()
                    )),
                });
            }
        }
        if !back {
            self.forward_fences += 1;
        }
        Ok(self.sequence)
    }

    /// Collects frames until fence `sequence` arrives: on the program's
    /// side (`forward`) or back on the wire.
    fn await_fence(
        &mut self,
        sequence: u32,
        forward: bool,
        observation: &mut Observation,
    ) -> Result<(), ReplayError> {
        let direction = if forward { "forward" } else { "return" };
        loop {
            if forward {
                let key = if self.tap { ETH_P_ALL } else { FENCE_ETHERTYPE };
                let fence = &self.delivered[&key];
                if !fence
                    .wait_readable(FENCE_TIMEOUT)
                    .map_err(io_err("waiting for the fence"))?
                {
                    return Err(ReplayError::FenceLost { direction });
                }
                let mut seen = false;
                while let Some(frame) = fence
                    .try_recv(&mut self.buf)
                    .map_err(io_err("reading the fence"))?
                {
                    match fence_sequence(&frame) {
                        Some(s) => seen |= s == sequence,
                        // The tap sees every frame the program passed.
                        None if self.tap => observation.delivered.push(frame),
                        None => {}
                    }
                }
                if seen {
                    for (protocol, socket) in &self.delivered {
                        if *protocol == key {
                            continue;
                        }
                        while let Some(frame) = socket
                            .try_recv(&mut self.buf)
                            .map_err(io_err("reading delivered frames"))?
                        {
                            observation.delivered.push(frame);
                        }
                    }
                    return Ok(());
                }
            } else {
                if !self
                    .wire
                    .wait_readable(FENCE_TIMEOUT)
                    .map_err(io_err("waiting for the return fence"))?
                {
                    return Err(ReplayError::FenceLost { direction });
                }
                let mut seen = false;
                // Drain everything: on a multi-queue NIC, frames sent
                // before the fence may sit on another queue.
                while let Some(frame) = self
                    .wire
                    .try_recv(&mut self.buf)
                    .map_err(io_err("reading frames sent back"))?
                {
                    match fence_sequence(&frame) {
                        Some(s) => seen |= s == sequence,
                        None => observation.sent_back.push(frame),
                    }
                }
                if seen {
                    return Ok(());
                }
            }
        }
    }
}

/// Validated L4 checksums in `frame`: TCP, and UDP unless its checksum is
/// absent (zero over IPv4), outermost first.
fn l4_checksums(frame: &[u8]) -> usize {
    crate::formats::packet::dissect(frame)
        .layers
        .iter()
        .filter(|l| {
            matches!(l.repr.kind(), "tcp" | "udp")
                && l.checksum != Some(crate::formats::packet::dissect::ChecksumStatus::Absent)
        })
        .count()
}

/// Whether the skb, as the auditor saw it after the program, claims more
/// validated checksums than are left: the NIC validated the outermost
/// ones (`delivery`), and the program removed some of those headers.
fn stale_state(
    frame: &[u8],
    out: &[u8],
    delivery: Delivery,
    after: &crate::instruments::csum_audit::Audit,
) -> Option<String> {
    let validated = usize::from(delivery.validated);
    let removed = l4_checksums(frame).saturating_sub(l4_checksums(out));
    let left = validated.saturating_sub(removed);
    let claimed = usize::from(after.claimed());
    (claimed > left).then(|| {
        format!(
            "the skb still claims {claimed} validated checksum(s) (CHECKSUM_UNNECESSARY, csum_level {}) after the program removed {removed} of the {validated} the NIC validated",
            after.csum_level
        )
    })
}

/// A minimum-size fence frame from `src` to `dst`, sequence 0.
fn fence_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend(dst);
    frame.extend(src);
    frame.extend(FENCE_ETHERTYPE.to_be_bytes());
    frame.extend(FENCE_MAGIC);
    frame.extend(0u32.to_be_bytes());
    frame.resize(60, 0);
    frame
}

/// The sequence number of a fence frame, or `None` for any other frame.
fn fence_sequence(frame: &[u8]) -> Option<u32> {
    let at = 14 + FENCE_MAGIC.len();
    if received_protocol(frame) != Some(FENCE_ETHERTYPE) || frame.get(14..at)? != FENCE_MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(frame.get(at..at + 4)?.try_into().ok()?))
}

/// The rig's topology: two inert nodes and one veth pair at `mtu`.
fn spec(mtu: u32) -> TopologySpec {
    let inert = || {
        vec![
            ("ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned()),
            ("ipv6.conf.default.disable_ipv6".to_owned(), "1".to_owned()),
        ]
    };
    let node = |name: &str| NodeSpec {
        name: name.to_owned(),
        sysctls: inert(),
        ..NodeSpec::default()
    };
    let end = |node: &str, name: &str| EndSpec {
        node: node.to_owned(),
        name: name.to_owned(),
        mtu: Some(mtu),
        ..EndSpec::default()
    };
    TopologySpec {
        nodes: vec![node("wire"), node("dut")],
        links: vec![LinkSpec {
            a: end("wire", "wire0"),
            b: end("dut", "dut0"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_recognised_by_magic_and_sequence() {
        let mut frame = fence_frame([2; 6], [4; 6]);
        frame[26..30].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(fence_sequence(&frame), Some(7));
        frame[14] = b'x';
        assert_eq!(fence_sequence(&frame), None);
        assert_eq!(fence_sequence(&frame[..10]), None);
    }
}
