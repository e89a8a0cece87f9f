//! A NIC that delivers CHECKSUM_COMPLETE as hardware does ("mlx5-like"):
//! frames sent into a VXLAN tunnel with UDP checksums, over a veth
//! underlay whose sender computes every checksum itself (transmit
//! checksum offload off); on the receiving underlay the NIC's own TC
//! program (`nic_complete`) marks the outer packet validated, so the
//! stack hands the inner frame up on the receiving VXLAN device
//! `CHECKSUM_COMPLETE` with `csum_complete_sw = 0`: a sum the "hardware"
//! made and nobody recomputes. A stale `skb->csum` then shows only where
//! something checks it — which is what the program under test must keep
//! right.
//!
//! ```text
//!  node wire: vx0 ─ u0 (198.19.255.1, tx csum off) ══ u1 (198.19.255.2) :node under
//!                                                     nic_complete       │ its socket
//!                                                  node nic: vx1 ────────┘
//! ```
//!
//! `vx1` is made in the underlay's node and then moved into the node of
//! the program under test: the tunnel's socket stays behind, so that node's
//! stack sees only the inner frames, and its counters count only them.

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
};

use crate::{
    instruments::{NIC_COMPLETE_ELF, libbpf},
    live::{
        ethtool::Feature,
        netlink::Rtnl,
        netns::Namespace,
        topology::{EndSpec, LinkSpec, NodeSpec, TopologySpec, ifindex},
    },
};

/// The underlay's network, in nodes of its own.
const UNDERLAY: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 19, 255, 0), 24);
const WIRE_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const NIC_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 2);
const VNI: u32 = 4242;
const PORT: u16 = 4789;

/// The three nodes and the underlay; `nic` gets `sysctls` and
/// `local_routes` (the sink's).
pub fn spec(sysctls: Vec<(String, String)>, local_routes: Vec<(IpAddr, u8)>) -> TopologySpec {
    let node = |name: &str| NodeSpec {
        name: name.to_owned(),
        sysctls: vec![("ipv6.conf.default.addr_gen_mode".into(), "1".into())],
        ..NodeSpec::default()
    };
    let mut nic = node("nic");
    nic.sysctls.extend(sysctls);
    nic.local_routes = local_routes;
    TopologySpec {
        nodes: vec![node("wire"), node("under"), nic],
        links: vec![LinkSpec {
            a: EndSpec {
                node: "wire".into(),
                name: "u0".into(),
                addresses: vec![(IpAddr::V4(WIRE_UNDERLAY), UNDERLAY.1)],
                features: vec![(Feature::TxChecksum, false)],
                ..EndSpec::default()
            },
            b: EndSpec {
                node: "under".into(),
                name: "u1".into(),
                addresses: vec![(IpAddr::V4(NIC_UNDERLAY), UNDERLAY.1)],
                ..EndSpec::default()
            },
        }],
    }
}

/// The tunnel ends, made in the nodes of [`spec`]; the NIC's program goes
/// when this drops.
#[derive(Debug)]
pub struct Vxlan {
    /// `vx0`'s index in the wire node: where frames are sent in.
    pub wire_index: u32,
    /// `vx1`'s index in the nic node: where they come out.
    pub nic_index: u32,
    _complete: (libbpf::Link, libbpf::Object),
}

impl Vxlan {
    /// Makes `vx0` in `wire` and `vx1` (MAC `mac`, MTU `mtu`) over
    /// `u0`/`u1`, moves `vx1` from `under` into `nic`, and attaches
    /// `nic_complete` to `u1`.
    pub fn create(
        wire: &Namespace,
        under: &Namespace,
        nic: &Namespace,
        mac: [u8; 6],
        mtu: u32,
    ) -> io::Result<Self> {
        let object = libbpf::Object::load("nic_complete", NIC_COMPLETE_ELF)?;
        let end =
            |ns: &Namespace, name: &str, underlay: &str, local, remote, mac: Option<[u8; 6]>| {
                ns.run(|| {
                    let mut rtnl = Rtnl::open()?;
                    let under = ifindex(underlay)?;
                    rtnl.add_vxlan(name, VNI, local, remote, PORT, under)
                        .map_err(io::Error::other)?;
                    let index = ifindex(name)?;
                    rtnl.set_link(index, Some(mtu), mac, Some(true))
                        .map_err(io::Error::other)?;
                    Ok::<_, io::Error>((index, under))
                })?
            };
        let (wire_index, _) = end(wire, "vx0", "u0", WIRE_UNDERLAY, NIC_UNDERLAY, None)?;
        let (made, u1) = end(under, "vx1", "u1", NIC_UNDERLAY, WIRE_UNDERLAY, Some(mac))?;
        under.run(|| {
            Rtnl::open()?
                .move_link(made, nic.fd())
                .map_err(io::Error::other)
        })??;
        let nic_index = nic.run(|| {
            let index = ifindex("vx1")?;
            Rtnl::open()?
                .set_link(index, Some(mtu), Some(mac), Some(true))
                .map_err(io::Error::other)?;
            Ok::<_, io::Error>(index)
        })??;
        let link = under.run(|| object.attach_tcx_ingress_first("nic_complete", u1))??;
        Ok(Self {
            wire_index,
            nic_index,
            _complete: (link, object),
        })
    }
}

/// Why the tunnel cannot carry `frame` to the program, if it cannot: VXLAN
/// decapsulation reads the inner IP header (ECN) and drops inner frames
/// whose EtherType announces IPv4 or IPv6 without the whole header
/// (measured).
pub fn cannot_carry(frame: &[u8]) -> Option<String> {
    let max = crate::instruments::csum_audit::MAX_AUDITED;
    if frame.len() > 14 + max {
        return Some(format!(
            "the checksum auditor behind the VXLAN NIC sums packets of up to {max} bytes; this one has {}",
            frame.len() - 14
        ));
    }
    let header = match frame.get(12..14) {
        Some([0x08, 0x00]) => 20,
        Some([0x86, 0xdd]) => 40,
        _ => return None,
    };
    (frame.len() < 14 + header).then(|| {
        format!(
            "the VXLAN NIC drops inner IP frames without the whole IP header ({header} bytes) when it decapsulates; this one has {}",
            frame.len().saturating_sub(14)
        )
    })
}
