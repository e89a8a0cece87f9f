//! The wires of the replay rig: where frames come from and where frames
//! sent back arrive — the far end of a veth pair, or one of the emulated
//! NICs of [`crate::live::nic`] — and the rigs built around the NICs, whose
//! node is a sink that takes every packet into its stack.

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use super::{
    Delivery, FENCE_ETHERTYPE, FENCE_TIMEOUT, MAX_FRAME, MAX_MTU, MIN_MTU, Replay, ReplayError,
    fence_frame, io_err,
};
use crate::{
    instruments::{
        csum_audit::CsumAuditor,
        drop_watch::DropWatch,
        skb_state::{IpSummed, SkbStateProbe},
    },
    live::{
        attach::{self, Hook},
        nic::{NicError, Promise, self_check, tap::Tap, vxlan::Vxlan},
        packet_socket::PacketSocket,
        topology::{NodeSpec, Topology, TopologySpec},
    },
    load::LoadedProgram,
};

/// Where frames come from and where frames sent back arrive: the far end
/// of a veth pair, or an emulated NIC.
pub(super) enum Wire {
    /// `wire0`, the veth peer of `dut0`, with `xdp_pass_frags` so that
    /// XDP_TX frames reach it.
    Veth {
        inject: PacketSocket,
        sent_back: PacketSocket,
        _helper: LoadedProgram,
    },
    /// The TAP NIC `nic0` itself, with the instrument that checks every
    /// frame arrived as promised.
    Nic {
        tap: Tap,
        probe: SkbStateProbe,
        auditor: CsumAuditor,
        drops: DropWatch,
    },
    /// The VXLAN NIC: frames go in at `vx0` of the wire node and come out
    /// of `vx1` CHECKSUM_COMPLETE; frames sent back come out at `vx0`.
    Complete {
        vxlan: Vxlan,
        probe: SkbStateProbe,
        auditor: CsumAuditor,
        drops: DropWatch,
    },
}

impl Wire {
    pub(super) fn send(
        &self,
        frame: &[u8],
        linear: Option<usize>,
        validated: bool,
    ) -> io::Result<()> {
        match self {
            Self::Veth { inject, .. } => inject.send(frame),
            Self::Nic { tap, .. } => tap.deliver(frame, linear, validated.then_some(0)),
            Self::Complete { vxlan, .. } => vxlan.deliver(frame, linear),
        }
    }

    pub(super) fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        match self {
            Self::Veth { sent_back, .. } => sent_back.wait_readable(timeout),
            Self::Nic { tap, .. } => tap.wait_readable(timeout),
            Self::Complete { vxlan, .. } => vxlan.wait_readable(timeout),
        }
    }

    pub(super) fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Vec<u8>>> {
        match self {
            Self::Veth { sent_back, .. } => sent_back.try_recv(buf),
            Self::Nic { tap, .. } => tap.try_recv(buf),
            Self::Complete { vxlan, .. } => vxlan.try_recv(buf),
        }
    }

    /// The checksum auditor of an emulated NIC's sink.
    pub(super) fn auditor(&mut self) -> Option<&mut CsumAuditor> {
        match self {
            Self::Veth { .. } => None,
            Self::Nic { auditor, .. } | Self::Complete { auditor, .. } => Some(auditor),
        }
    }

    /// The drop watcher of an emulated NIC's sink.
    pub(super) fn drops(&mut self) -> Option<&mut DropWatch> {
        match self {
            Self::Veth { .. } => None,
            Self::Nic { drops, .. } | Self::Complete { drops, .. } => Some(drops),
        }
    }

    /// The instrument behind an emulated NIC.
    pub(super) fn probe(&mut self) -> Option<&mut SkbStateProbe> {
        match self {
            Self::Veth { .. } => None,
            Self::Nic { probe, .. } | Self::Complete { probe, .. } => Some(probe),
        }
    }
}

impl Replay {
    /// Builds the one-node rig of the emulated TAP NIC at `mtu` (see
    /// [`crate::live::nic::tap`]): the NIC proves itself with probe frames
    /// (14 linear bytes, all linear, validated) before `program` — a TC
    /// program — is attached at its TCX ingress, after the NIC's own
    /// program and the instrument that checks every frame.
    pub fn with_nic(program: &mut LoadedProgram, mtu: u32) -> Result<Self, ReplayError> {
        let mtu = mtu.clamp(MIN_MTU, MAX_MTU);
        let topology = Topology::build(&nic_spec())?;
        let dut = topology.node("nic").expect("in the spec");
        let tap =
            Tap::create(dut, "nic0", mtu, NIC_MAC).map_err(io_err("creating the TAP NIC nic0"))?;
        let mac = NIC_MAC;
        let after = tap
            .nic_program_fd()
            .map_err(io_err("finding the NIC's program"))?;
        let mut probe = SkbStateProbe::attach(dut, tap.index(), Some(after))
            .map_err(io_err("attaching skb_state to nic0"))?;
        let probe_frame = crate::live::nic::probe_frame(mac, WIRE_MAC);
        let len = probe_frame.len() as u32;
        let promise = |linear, validated| Promise {
            len,
            linear: Some(linear),
            ip_summed: if validated {
                IpSummed::Unnecessary
            } else {
                IpSummed::None
            },
            csum_level: 0,
            complete_sw: false,
        };
        let probes = [
            (probe_frame.clone(), promise(14, false)),
            (probe_frame.clone(), promise(len, false)),
            (probe_frame, promise(14, true)),
        ];
        self_check("nic0 (TAP, NAPI_FRAGS)", &mut probe, &probes, |frame, p| {
            tap.deliver(
                frame,
                p.linear.map(|n| n as usize),
                (p.ip_summed == IpSummed::Unnecessary).then_some(0),
            )
        })?;
        let auditor = CsumAuditor::attach(dut).map_err(io_err("attaching the checksum auditor"))?;
        let drops = DropWatch::attach(dut).map_err(io_err("attaching the drop watcher"))?;
        attach::attach(program, dut, "nic0", tap.index(), Hook::TcIngress)?;
        let index = tap.index();
        let return_fence = dut
            .run(|| PacketSocket::sender(index))
            .and_then(|r| r)
            .map_err(io_err("opening the return fence socket"))?;
        Self::behind_nic(
            Wire::Nic {
                tap,
                probe,
                auditor,
                drops,
            },
            topology,
            index,
            return_fence,
        )
    }

    /// Builds the rig of the emulated VXLAN NIC (see
    /// [`crate::live::nic::vxlan`]): it proves itself with a probe (the
    /// inner frame must come out CHECKSUM_COMPLETE with a hardware sum,
    /// `csum_complete_sw = 0`) before `program` — a TC program — is attached
    /// at the TCX ingress of `vx1`, after the instrument that checks every
    /// frame. Its node is the same sink as the TAP NIC's.
    pub fn with_complete_nic(program: &mut LoadedProgram, mtu: u32) -> Result<Self, ReplayError> {
        // VXLAN adds 50 bytes of headers on the underlay.
        let mtu = mtu.clamp(MIN_MTU, MAX_MTU - 64);
        let (sysctls, local_routes) = sink();
        let topology = Topology::build(&crate::live::nic::vxlan::spec(sysctls, local_routes))?;
        let under = topology.node("under").expect("in the spec");
        let nic = topology.node("nic").expect("in the spec");
        let vxlan =
            Vxlan::create(under, nic, NIC_MAC, mtu).map_err(io_err("creating the VXLAN NIC"))?;
        let nic_index = vxlan.nic_index;
        let mut probe = SkbStateProbe::attach(nic, nic_index, None)
            .map_err(io_err("attaching skb_state to vx1"))?;
        let frame = crate::live::nic::probe_frame(NIC_MAC, WIRE_MAC);
        let len = frame.len() as u32;
        let probes = [(frame, complete_promise(len))];
        self_check(
            "vx1 (VXLAN, hardware COMPLETE)",
            &mut probe,
            &probes,
            |f, _| vxlan.deliver(f, None),
        )?;
        let auditor = CsumAuditor::attach(nic).map_err(io_err("attaching the checksum auditor"))?;
        let drops = DropWatch::attach(nic).map_err(io_err("attaching the drop watcher"))?;
        attach::attach(program, nic, "vx1", nic_index, Hook::TcIngress)?;
        let return_fence = nic
            .run(|| PacketSocket::sender(nic_index))
            .and_then(|r| r)
            .map_err(io_err("opening the return fence socket"))?;
        Self::behind_nic(
            Wire::Complete {
                vxlan,
                probe,
                auditor,
                drops,
            },
            topology,
            nic_index,
            return_fence,
        )
    }

    /// The rig around a NIC wire whose program sits on interface
    /// `dut_index` of the sink node `nic`: fences to and from the NIC's MAC,
    /// sockets behind the program for fences, IPv4 and IPv6.
    fn behind_nic(
        wire: Wire,
        topology: Topology,
        dut_index: u32,
        return_fence: PacketSocket,
    ) -> Result<Self, ReplayError> {
        let mut replay = Self {
            wire,
            return_fence,
            delivered: BTreeMap::new(),
            tap: false,
            topology,
            dut_node: "nic",
            dut_index,
            fence_forward: fence_frame(NIC_MAC, WIRE_MAC),
            fence_back: fence_frame(WIRE_MAC, NIC_MAC),
            sequence: 0,
            forward_fences: 0,
            buf: vec![0; MAX_FRAME],
        };
        for protocol in [FENCE_ETHERTYPE, 0x0800, 0x86dd] {
            replay.delivered_socket(protocol)?;
        }
        Ok(replay)
    }

    /// For a NIC rig: checks the instrument's record of the frame just
    /// delivered against what `delivery` promised.
    pub(super) fn check_promise(
        &mut self,
        frame: &[u8],
        delivery: Delivery,
    ) -> Result<(), ReplayError> {
        let complete = matches!(self.wire, Wire::Complete { .. });
        let Some(probe) = self.wire.probe() else {
            return Ok(());
        };
        let seen = probe
            .wait_for(1, FENCE_TIMEOUT)
            .map_err(io_err("reading the frame's skb state"))?;
        let len = frame.len() as u32;
        let promise = if complete {
            complete_promise(len)
        } else {
            Promise {
                len,
                // The stack pulls the Ethernet header if the NIC left less.
                linear: Some(delivery.linear.unwrap_or(len).clamp(14.min(len), len)),
                ip_summed: if delivery.validated {
                    IpSummed::Unnecessary
                } else {
                    IpSummed::None
                },
                csum_level: 0,
                complete_sw: false,
            }
        };
        let broken = match seen.as_slice() {
            [] => Some("the frame never reached TC ingress".to_owned()),
            [one] if one.bytes[..] != frame[..one.bytes.len().min(frame.len())] => {
                Some("the instrument recorded another frame".to_owned())
            }
            [one] => promise.broken_by(one),
            more => Some(format!("{} skbs for one frame", more.len())),
        };
        match broken {
            Some(what) => Err(ReplayError::Nic(NicError::Broken {
                nic: if complete {
                    "vx1 (VXLAN)"
                } else {
                    "nic0 (TAP)"
                }
                .into(),
                what: format!("a {len}-byte frame: {what}"),
            })),
            None => Ok(()),
        }
    }
}

/// The TAP NIC's MAC address: the destination every built packet has by
/// default (fixtures, generated flows), so that the NIC's stack takes
/// them as its own; and the MAC its fences come from.
const NIC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const WIRE_MAC: [u8; 6] = [0x02, 0x64, 0x73, 0xfe, 0x01, 0x00];

/// The NIC rig's one node (its TAP is made with the NIC): a sink that
/// owns every address dsrlab uses (local routes on `lo`), so that the
/// stack takes every packet the program delivers — validates its
/// checksums, looks for its socket — and answers only itself. Its SNMP
/// counters say what the stack made of each packet. No IPv6 link-local
/// addresses: nothing of its own goes out of the NIC.
fn nic_spec() -> TopologySpec {
    let (sysctls, local_routes) = sink();
    TopologySpec {
        nodes: vec![NodeSpec {
            name: "nic".to_owned(),
            sysctls,
            local_routes,
            ..NodeSpec::default()
        }],
        links: Vec::new(),
    }
}

/// Blocks a node owns, with their prefix lengths.
pub(crate) type LocalRoutes = Vec<(IpAddr, u8)>;

/// The sink's sysctls and local routes.
pub(crate) fn sink() -> (Vec<(String, String)>, LocalRoutes) {
    let sysctl = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let sysctls = vec![
        sysctl("ipv6.conf.default.addr_gen_mode", "1"),
        sysctl("ipv4.conf.all.rp_filter", "0"),
        sysctl("ipv4.conf.default.rp_filter", "0"),
        // Sources are in the ranges it owns too: not martians.
        sysctl("ipv4.conf.all.accept_local", "1"),
        sysctl("ipv4.conf.default.accept_local", "1"),
        // It owns everything, so it must answer no ARP request: a reply
        // would come out of the NIC as if the program had sent it.
        sysctl("ipv4.conf.all.arp_ignore", "8"),
        sysctl("ipv4.conf.default.arp_ignore", "8"),
    ];
    let routes = vec![
        (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15),
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
            32,
        ),
    ];
    (sysctls, routes)
}

/// What the VXLAN NIC promises for an inner frame of `len` bytes:
/// CHECKSUM_COMPLETE with a hardware sum.
const fn complete_promise(len: u32) -> Promise {
    Promise {
        len,
        linear: None,
        ip_summed: IpSummed::Complete,
        csum_level: 0,
        complete_sw: false,
    }
}
