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
//!  node wire: vx0 ─ u0 (198.19.255.1, tx csum off) ══ u1 (198.19.255.2) ─ vx1 :node nic
//!                                                     nic_complete
//! ```

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

/// The underlay's network: excluded from what the receiving node owns, so
/// that the tunnel's own packets route.
pub const UNDERLAY: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 19, 255, 0), 24);
const WIRE_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const NIC_UNDERLAY: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 2);
const VNI: u32 = 4242;
const PORT: u16 = 4789;

/// The two nodes and the underlay; `nic` gets `sysctls` and
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
        nodes: vec![node("wire"), nic],
        links: vec![LinkSpec {
            a: EndSpec {
                node: "wire".into(),
                name: "u0".into(),
                addresses: vec![(IpAddr::V4(WIRE_UNDERLAY), UNDERLAY.1)],
                features: vec![(Feature::TxChecksum, false)],
                ..EndSpec::default()
            },
            b: EndSpec {
                node: "nic".into(),
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
    /// Makes `vx0` in `wire` and `vx1` (MAC `mac`, MTU `mtu`) in `nic`,
    /// over `u0`/`u1`, and attaches `nic_complete` to `u1`.
    pub fn create(wire: &Namespace, nic: &Namespace, mac: [u8; 6], mtu: u32) -> io::Result<Self> {
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
        let (nic_index, u1) = end(nic, "vx1", "u1", NIC_UNDERLAY, WIRE_UNDERLAY, Some(mac))?;
        let link = nic.run(|| object.attach_tcx_ingress_first("nic_complete", u1))??;
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

/// `net/prefix` without `hole/hole_prefix`, as the fewest blocks: what a
/// node can own while the hole stays routable.
pub fn cover_except(
    net: Ipv4Addr,
    prefix: u8,
    hole: Ipv4Addr,
    hole_prefix: u8,
) -> Vec<(IpAddr, u8)> {
    let (net, hole) = (u32::from(net), u32::from(hole));
    let mut out = Vec::new();
    let (mut base, mut len) = (net, prefix);
    // Walk down towards the hole, keeping the half it is not in.
    while len < hole_prefix {
        len += 1;
        let half = 1u32 << (32 - len);
        let (lower, upper) = (base, base | half);
        if hole & half == 0 {
            out.push((IpAddr::V4(upper.into()), len));
            base = lower;
        } else {
            out.push((IpAddr::V4(lower.into()), len));
            base = upper;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_underlay_is_cut_out_of_the_ranges() {
        let blocks = cover_except(Ipv4Addr::new(198, 18, 0, 0), 15, UNDERLAY.0, UNDERLAY.1);
        assert_eq!(blocks.len(), 9);
        let contains = |a: Ipv4Addr| {
            blocks.iter().any(|&(n, p)| {
                let IpAddr::V4(n) = n else { return false };
                let mask = u32::MAX << (32 - p);
                u32::from(a) & mask == u32::from(n)
            })
        };
        assert!(contains(Ipv4Addr::new(198, 18, 1, 2)));
        assert!(contains(Ipv4Addr::new(198, 19, 254, 9)));
        assert!(!contains(Ipv4Addr::new(198, 19, 255, 1)));
        assert!(!contains(Ipv4Addr::new(198, 20, 0, 1)));
    }
}
