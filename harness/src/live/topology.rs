//! Topologies: nodes (network namespaces) joined by veth pairs, with
//! addresses, routes, static neighbours and sysctls, built with rtnetlink
//! from a [`TopologySpec`] and torn down when the [`Topology`] drops.
//!
//! Nothing touches the root namespace: each veth is created inside its
//! first node's namespace with its peer placed directly in the second's.
//! Neighbour entries are permanent, so no ARP or neighbour discovery
//! crosses a link (captures hold only the traffic of the run), and IPv6
//! duplicate address detection is skipped, so addresses work at once.

use std::{
    collections::HashMap,
    fs, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd,
};

use super::{
    ethtool::{self, Feature},
    netlink::{NetlinkError, Rtnl},
    netns::{Namespace, NetnsError},
    nic::{
        link::{NicLink, NicQuirks},
        tap::Tap,
    },
};

/// A node: one network namespace.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    /// Its name in the topology (and the label of its namespace's name).
    pub name: String,
    /// `net.*` sysctls, as (`ipv4.ip_forward`, `1`): paths below
    /// `/proc/sys/net/`, applied before any link exists, so `default`
    /// settings reach every link.
    pub sysctls: Vec<(String, String)>,
    /// Addresses on `lo` (VIPs), with their prefix lengths.
    pub loopback: Vec<(IpAddr, u8)>,
    /// Routes of this node.
    pub routes: Vec<RouteSpec>,
    /// Blocks whose every address is local to the node ("AnyIP": a `local`
    /// route on `lo`), such as a client's range of source addresses.
    pub local_routes: Vec<(IpAddr, u8)>,
}

/// A route in a node.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Destination network.
    pub dst: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The next hop, or `None` for an on-link route.
    pub via: Option<IpAddr>,
    /// The node's link the route goes out of.
    pub dev: String,
}

/// One end of a veth pair.
#[derive(Clone, Debug, Default)]
pub struct EndSpec {
    /// The node it is in.
    pub node: String,
    /// The interface's name in that node (at most 15 bytes).
    pub name: String,
    /// MTU (default 1500).
    pub mtu: Option<u32>,
    /// MAC address (default: derived from the link's position).
    pub mac: Option<[u8; 6]>,
    /// Addresses with prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Offloads to turn on or off, in order.
    pub features: Vec<(Feature, bool)>,
    /// This end is an emulated NIC (the TAP NIC) delivering frames with
    /// these quirks, rather than a veth end (at most one end of a link).
    pub nic: Option<NicQuirks>,
}

/// A veth pair between two nodes.
#[derive(Clone, Debug, Default)]
pub struct LinkSpec {
    /// The first end (created in its node; the second is its peer).
    pub a: EndSpec,
    /// The second end.
    pub b: EndSpec,
}

/// A whole topology.
#[derive(Clone, Debug, Default)]
pub struct TopologySpec {
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// The links.
    pub links: Vec<LinkSpec>,
}

/// Why a topology could not be built. Whatever was built is removed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The spec contradicts itself.
    #[error("topology: {0}")]
    Invalid(String),
    /// A namespace could not be made.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The kernel refused a request.
    #[error("node {node}: {source}")]
    Netlink {
        /// The node the request was made in.
        node: String,
        /// The request and the kernel's reason.
        #[source]
        source: NetlinkError,
    },
    /// An emulated NIC at a link end did not deliver what it promises.
    #[error(transparent)]
    Nic(#[from] super::nic::NicError),
    /// A system call failed.
    #[error("node {node}: {what}: {source}")]
    Io {
        /// The node.
        node: String,
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A built topology; dropping it removes every namespace (and so every
/// link) it made.
#[derive(Debug)]
pub struct Topology {
    // Forwarders first: they stop before their namespaces go.
    nic_links: Vec<NicLink>,
    /// The hidden namespaces where NIC links' veth peers sit.
    hidden: Vec<Namespace>,
    nodes: Vec<(String, Namespace)>,
    interfaces: HashMap<(String, String), Interface>,
}

/// A link end as built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its index in its node.
    pub index: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// Whether `addr` is in the ranges dsrlab may use (198.18.0.0/15,
/// 2001:db8::/32), or the addresses of `lo` itself.
pub fn allowed_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let [x, y, ..] = a.octets();
            (x == 198 && (y & 0xfe) == 18) || a == Ipv4Addr::LOCALHOST
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (s[0] == 0x2001 && s[1] == 0x0db8) || a == Ipv6Addr::LOCALHOST
        }
    }
}

/// The default MAC of end `end` (0 or 1) of link number `link`: locally
/// administered, unicast, and readable in captures (`02:64:73:LL:EE:00`,
/// "ds").
pub const fn default_mac(link: usize, end: u8) -> [u8; 6] {
    [0x02, 0x64, 0x73, link as u8, end, 0x00]
}

impl Topology {
    /// Builds `spec`. On failure, everything built so far is removed.
    pub fn build(spec: &TopologySpec) -> Result<Self, TopologyError> {
        validate(spec)?;
        let mut topology = Self {
            nic_links: Vec::new(),
            hidden: Vec::new(),
            nodes: Vec::with_capacity(spec.nodes.len()),
            interfaces: HashMap::new(),
        };
        for node in &spec.nodes {
            let ns = Namespace::create(&node.name)?;
            topology.nodes.push((node.name.clone(), ns));
            topology.in_node(&node.name, "sysctls", || apply_sysctls(node))??;
        }
        for (i, link) in spec.links.iter().enumerate() {
            topology.add_link(i, link)?;
        }
        for node in &spec.nodes {
            topology.configure_node(node)?;
        }
        topology.add_neighbours(spec)?;
        Ok(topology)
    }

    /// The namespace of `node`.
    pub fn node(&self, node: &str) -> Option<&Namespace> {
        self.nodes.iter().find(|(n, _)| n == node).map(|(_, ns)| ns)
    }

    /// The interface `name` of `node`.
    pub fn interface(&self, node: &str, name: &str) -> Option<Interface> {
        self.interfaces
            .get(&(node.to_owned(), name.to_owned()))
            .copied()
    }

    /// The namespaces' names, in node order, then the hidden ones of NIC
    /// links.
    pub fn namespace_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(_, ns)| ns.name())
            .chain(self.hidden.iter().map(Namespace::name))
            .map(str::to_owned)
            .collect()
    }

    fn add_link(&mut self, i: usize, link: &LinkSpec) -> Result<(), TopologyError> {
        if link.a.nic.is_some() || link.b.nic.is_some() {
            return self.add_nic_link(i, link);
        }
        let peer_ns = self.namespace(&link.b.node)?;
        let peer_fd = peer_ns
            .fd()
            .try_clone_to_owned()
            .map_err(|source| TopologyError::Io {
                node: link.b.node.clone(),
                what: "dup namespace fd".into(),
                source,
            })?;
        let (a, b) = (&link.a, &link.b);
        self.in_node(&a.node, "veth", || {
            let mut rtnl = Rtnl::open().map_err(|e| io_err(&a.node, "open rtnetlink", e))?;
            rtnl.add_veth(&a.name, &b.name, peer_fd.as_fd())
                .map_err(|source| TopologyError::Netlink {
                    node: a.node.clone(),
                    source,
                })
        })??;
        for (end, n) in [(a, 0u8), (b, 1u8)] {
            self.configure_end(i, n, end)?;
        }
        Ok(())
    }

    /// A link with an emulated NIC at one end: the other end is a veth
    /// whose peer sits in a hidden namespace, and a forwarder carries frames
    /// between that peer and the TAP NIC ([`NicLink`]).
    fn add_nic_link(&mut self, i: usize, link: &LinkSpec) -> Result<(), TopologyError> {
        let (nic, other, n) = if link.b.nic.is_some() {
            (&link.b, &link.a, 1u8)
        } else {
            (&link.a, &link.b, 0u8)
        };
        let quirks = nic.nic.unwrap_or_default();
        let wire = Namespace::create(&format!("nicwire{i}"))?;
        let wire_fd = wire
            .fd()
            .try_clone_to_owned()
            .map_err(|e| io_err(&other.node, "dup namespace fd", e))?;
        self.hidden.push(wire);
        self.in_node(&other.node, "veth", || {
            let mut rtnl = Rtnl::open().map_err(|e| io_err(&other.node, "open rtnetlink", e))?;
            rtnl.add_veth(&other.name, "nw0", wire_fd.as_fd())
                .map_err(|source| TopologyError::Netlink {
                    node: other.node.clone(),
                    source,
                })
        })??;
        let wire = self.hidden.last().expect("pushed above");
        let mtu = nic.mtu.unwrap_or(1500).max(other.mtu.unwrap_or(1500));
        let wire_index = wire
            .run(|| {
                let index = ifindex("nw0")?;
                Rtnl::open()?
                    .set_link(index, Some(mtu), None, Some(true))
                    .map_err(io::Error::other)?;
                Ok::<_, io::Error>(index)
            })
            .and_then(|r| r)
            .map_err(|e| io_err(&other.node, "the NIC link's hidden end", e))?;
        let mac = nic.mac.unwrap_or(default_mac(i, n));
        let nic_ns = self.namespace(&nic.node)?;
        let tap = Tap::create(nic_ns, &nic.name, mtu, mac)
            .map_err(|e| io_err(&nic.node, &nic.name, e))?;
        prove(nic_ns, &nic.node, &nic.name, &tap, quirks)?;
        for end in [other, nic] {
            let n = if std::ptr::eq(end, &link.a) { 0 } else { 1 };
            self.configure_end(i, n, end)?;
        }
        let wire = self.hidden.last().expect("pushed above");
        let forwarder = NicLink::start(wire, wire_index, tap, quirks)
            .map_err(|e| io_err(&nic.node, "the NIC link's forwarder", e))?;
        self.nic_links.push(forwarder);
        Ok(())
    }

    /// Sets a link end up with its MAC, MTU, addresses and offloads, and
    /// records it.
    fn configure_end(&mut self, i: usize, n: u8, end: &EndSpec) -> Result<(), TopologyError> {
        let mac = end.mac.unwrap_or(default_mac(i, n));
        let index = self.in_node(&end.node, "link set", || {
            let index = ifindex(&end.name).map_err(|e| io_err(&end.node, &end.name, e))?;
            let mut rtnl = Rtnl::open().map_err(|e| io_err(&end.node, "open rtnetlink", e))?;
            let netlink = |source| TopologyError::Netlink {
                node: end.node.clone(),
                source,
            };
            rtnl.set_link(index, end.mtu, Some(mac), Some(true))
                .map_err(netlink)?;
            for &(addr, prefix) in &end.addresses {
                rtnl.add_address(index, addr, prefix).map_err(netlink)?;
            }
            for &(feature, on) in &end.features {
                ethtool::set_feature(&end.name, feature, on)
                    .map_err(|e| io_err(&end.node, &end.name, e))?;
            }
            Ok::<_, TopologyError>(index)
        })??;
        self.interfaces.insert(
            (end.node.clone(), end.name.clone()),
            Interface { index, mac },
        );
        Ok(())
    }

    fn configure_node(&self, node: &NodeSpec) -> Result<(), TopologyError> {
        let interfaces = &self.interfaces;
        self.in_node(&node.name, "configure", || {
            let netlink = |source| TopologyError::Netlink {
                node: node.name.clone(),
                source,
            };
            let mut rtnl = Rtnl::open().map_err(|e| io_err(&node.name, "open rtnetlink", e))?;
            let lo = ifindex("lo").map_err(|e| io_err(&node.name, "lo", e))?;
            rtnl.set_link(lo, None, None, Some(true)).map_err(netlink)?;
            for &(addr, prefix) in &node.loopback {
                rtnl.add_address(lo, addr, prefix).map_err(netlink)?;
            }
            for &(addr, prefix) in &node.local_routes {
                rtnl.add_local_route(addr, prefix, lo).map_err(netlink)?;
            }
            for route in &node.routes {
                let dev = interfaces
                    .get(&(node.name.clone(), route.dev.clone()))
                    .ok_or_else(|| {
                        TopologyError::Invalid(format!(
                            "node {}: route to {}/{} via unknown link {}",
                            node.name, route.dst, route.prefix, route.dev
                        ))
                    })?;
                rtnl.add_route(route.dst, route.prefix, route.via, dev.index)
                    .map_err(netlink)?;
            }
            Ok(())
        })?
    }

    /// Each end learns the MAC of its peer's addresses, permanently.
    fn add_neighbours(&self, spec: &TopologySpec) -> Result<(), TopologyError> {
        for link in &spec.links {
            for (here, there) in [(&link.a, &link.b), (&link.b, &link.a)] {
                if there.addresses.is_empty() {
                    continue;
                }
                let me = self.interfaces[&(here.node.clone(), here.name.clone())];
                let peer = self.interfaces[&(there.node.clone(), there.name.clone())];
                self.in_node(&here.node, "neighbours", || {
                    let mut rtnl =
                        Rtnl::open().map_err(|e| io_err(&here.node, "open rtnetlink", e))?;
                    for &(addr, _) in &there.addresses {
                        rtnl.add_neighbour(me.index, addr, peer.mac)
                            .map_err(|source| TopologyError::Netlink {
                                node: here.node.clone(),
                                source,
                            })?;
                    }
                    Ok::<_, TopologyError>(())
                })??;
            }
        }
        Ok(())
    }

    fn namespace(&self, node: &str) -> Result<&Namespace, TopologyError> {
        self.node(node)
            .ok_or_else(|| TopologyError::Invalid(format!("unknown node {node}")))
    }

    fn in_node<T>(
        &self,
        node: &str,
        what: &str,
        f: impl FnOnce() -> T,
    ) -> Result<T, TopologyError> {
        self.namespace(node)?
            .run(f)
            .map_err(|source| io_err(node, &format!("enter namespace ({what})"), source))
    }
}

/// The NIC at a link end proves itself before it carries anything: a probe
/// written into it must reach TC ingress as its quirks promise.
fn prove(
    ns: &Namespace,
    node: &str,
    name: &str,
    tap: &Tap,
    quirks: NicQuirks,
) -> Result<(), TopologyError> {
    use crate::{
        instruments::skb_state::{IpSummed, SkbStateProbe},
        live::nic::{Promise, probe_frame, self_check},
    };
    let after = tap.nic_program_fd().map_err(|e| io_err(node, name, e))?;
    let mut probe =
        SkbStateProbe::attach(ns, tap.index(), Some(after)).map_err(|e| io_err(node, name, e))?;
    let frame = probe_frame([2, 0, 0, 0, 0, 0xfe], [2, 0, 0, 0, 0, 0xfd]);
    let len = frame.len() as u32;
    let promise = Promise {
        len,
        linear: Some(quirks.linear.unwrap_or(len).clamp(14, len)),
        ip_summed: if quirks.validated {
            IpSummed::Unnecessary
        } else {
            IpSummed::None
        },
        csum_level: 0,
        complete_sw: false,
    };
    let label = format!("{node}/{name} (TAP)");
    self_check(&label, &mut probe, &[(frame, promise)], |f, p| {
        tap.deliver(
            f,
            p.linear.map(|n| n as usize),
            quirks.validated.then_some(0),
        )
    })?;
    Ok(())
}

fn io_err(node: &str, what: &str, source: io::Error) -> TopologyError {
    TopologyError::Io {
        node: node.to_owned(),
        what: what.to_owned(),
        source,
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

fn apply_sysctls(node: &NodeSpec) -> Result<(), TopologyError> {
    for (key, value) in &node.sysctls {
        // Paths under /proc/sys/net resolve in the opening thread's
        // namespace: this writes the node's own setting.
        let path = format!("/proc/sys/net/{}", key.replace('.', "/"));
        fs::write(&path, value).map_err(|source| TopologyError::Io {
            node: node.name.clone(),
            what: format!("sysctl net.{key} = {value}"),
            source,
        })?;
    }
    Ok(())
}

/// Checks `spec` without building anything: names, address ranges,
/// duplicates, and that every link end is in a known node.
pub fn validate(spec: &TopologySpec) -> Result<(), TopologyError> {
    let invalid = |m: String| Err(TopologyError::Invalid(m));
    let mut names = std::collections::HashSet::new();
    for node in &spec.nodes {
        if !names.insert(node.name.as_str()) {
            return invalid(format!("node {} is declared twice", node.name));
        }
    }
    let mut ends = std::collections::HashSet::new();
    let mut addresses = HashMap::new();
    let mut check_addr = |where_: String, addr: IpAddr| {
        if !allowed_address(addr) {
            return invalid(format!(
                "{where_}: address {addr} is outside 198.18.0.0/15 and 2001:db8::/32"
            ));
        }
        if let Some(first) = addresses.insert(addr, where_.clone()) {
            return invalid(format!("{where_}: address {addr} is already on {first}"));
        }
        Ok(())
    };
    // The same VIP on the `lo` of several nodes is the point of some
    // topologies (two containers serving one VIP); twice in one node, or on
    // a link as well, is a mistake.
    let mut loopbacks: HashMap<IpAddr, Vec<&str>> = HashMap::new();
    for node in &spec.nodes {
        for &(addr, _) in node.loopback.iter().chain(&node.local_routes) {
            if !allowed_address(addr) {
                return invalid(format!(
                    "{}/lo: address {addr} is outside 198.18.0.0/15 and 2001:db8::/32",
                    node.name
                ));
            }
            let holders = loopbacks.entry(addr).or_default();
            if holders.contains(&node.name.as_str()) {
                return invalid(format!("{}/lo: address {addr} is given twice", node.name));
            }
            holders.push(&node.name);
        }
    }
    for link in &spec.links {
        if link.a.nic.is_some() && link.b.nic.is_some() {
            return invalid(format!(
                "link {}/{} — {}/{}: only one end of a link can be an emulated NIC",
                link.a.node, link.a.name, link.b.node, link.b.name
            ));
        }
        for end in [&link.a, &link.b] {
            if !names.contains(end.node.as_str()) {
                return invalid(format!(
                    "link end {} is in unknown node {}",
                    end.name, end.node
                ));
            }
            if end.name.is_empty() || end.name.len() > 15 || end.name == "lo" {
                return invalid(format!(
                    "node {}: interface name `{}` must be 1 to 15 bytes and not `lo`",
                    end.node, end.name
                ));
            }
            if !ends.insert((end.node.as_str(), end.name.as_str())) {
                return invalid(format!(
                    "node {}: interface {} is declared twice",
                    end.node, end.name
                ));
            }
            for &(addr, _) in &end.addresses {
                let here = format!("{}/{}", end.node, end.name);
                if let Some(nodes) = loopbacks.get(&addr) {
                    return invalid(format!(
                        "{here}: address {addr} is already on {}/lo",
                        nodes[0]
                    ));
                }
                check_addr(here, addr)?;
            }
        }
    }
    // Two interfaces of one node on overlapping networks make routing
    // depend on which was configured first.
    for node in &spec.nodes {
        let nets: Vec<(&str, IpAddr, u8)> = spec
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.node == node.name)
            .flat_map(|e| e.addresses.iter().map(|&(a, p)| (e.name.as_str(), a, p)))
            .collect();
        for (i, &(if_a, a, pa)) in nets.iter().enumerate() {
            for &(if_b, b, pb) in &nets[i + 1..] {
                if if_a != if_b && overlap(a, pa, b, pb) {
                    return invalid(format!(
                        "node {}: {a}/{pa} on {if_a} overlaps {b}/{pb} on {if_b}",
                        node.name
                    ));
                }
            }
        }
    }
    for node in &spec.nodes {
        for route in &node.routes {
            for addr in std::iter::once(route.dst).chain(route.via) {
                if !allowed_address(addr) {
                    return invalid(format!(
                        "node {}: route {}/{}: address {addr} is outside 198.18.0.0/15 and 2001:db8::/32",
                        node.name, route.dst, route.prefix
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether `addr` is in the network `net/prefix`.
pub fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    overlap(net, prefix, addr, 128)
}

/// Whether the networks of `a/pa` and `b/pb` share an address.
fn overlap(a: IpAddr, pa: u8, b: IpAddr, pb: u8) -> bool {
    let (xa, xb, width) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    // Equal under the shorter of the two prefixes.
    let host_bits = width - u32::from(pa.min(pb)).min(width);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    (xa ^ xb) & mask == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> TopologySpec {
        TopologySpec {
            nodes: vec![
                NodeSpec {
                    name: "a".into(),
                    ..Default::default()
                },
                NodeSpec {
                    name: "b".into(),
                    ..Default::default()
                },
            ],
            links: vec![LinkSpec {
                a: EndSpec {
                    node: "a".into(),
                    name: "a0".into(),
                    addresses: vec![("198.18.0.1".parse().unwrap(), 24)],
                    ..Default::default()
                },
                b: EndSpec {
                    node: "b".into(),
                    name: "b0".into(),
                    ..Default::default()
                },
            }],
        }
    }

    #[test]
    fn specs_are_checked_before_anything_is_built() {
        assert!(validate(&two_nodes()).is_ok());
        let mut outside = two_nodes();
        outside.links[0]
            .b
            .addresses
            .push(("10.0.0.1".parse().unwrap(), 8));
        let err = validate(&outside).unwrap_err().to_string();
        assert!(err.contains("b/b0: address 10.0.0.1 is outside"), "{err}");
        let mut twice = two_nodes();
        twice.links[0]
            .b
            .addresses
            .push(("198.18.0.1".parse().unwrap(), 24));
        let err = validate(&twice).unwrap_err().to_string();
        assert!(err.contains("already on a/a0"), "{err}");
        let mut unknown = two_nodes();
        unknown.links[0].b.node = "c".into();
        assert!(
            validate(&unknown)
                .unwrap_err()
                .to_string()
                .contains("unknown node c")
        );
        let mut overlapping = two_nodes();
        overlapping.links.push(LinkSpec {
            a: EndSpec {
                node: "a".into(),
                name: "a1".into(),
                addresses: vec![("198.18.0.130".parse().unwrap(), 25)],
                ..Default::default()
            },
            b: EndSpec {
                node: "b".into(),
                name: "b1".into(),
                ..Default::default()
            },
        });
        let err = validate(&overlapping).unwrap_err().to_string();
        assert!(
            err.contains("node a: 198.18.0.1/24 on a0 overlaps 198.18.0.130/25 on a1"),
            "{err}"
        );
        overlapping.links[1].a.addresses[0] = ("198.18.1.1".parse().unwrap(), 24);
        assert!(validate(&overlapping).is_ok());
        let mut long = two_nodes();
        long.links[0].a.name = "a-very-long-name".into();
        assert!(
            validate(&long)
                .unwrap_err()
                .to_string()
                .contains("1 to 15 bytes")
        );
    }

    #[test]
    fn only_the_documentation_ranges_are_allowed() {
        for ok in [
            "198.18.0.1",
            "198.19.255.255",
            "2001:db8::1",
            "2001:db8:ffff::1",
        ] {
            assert!(allowed_address(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "198.20.0.1",
            "10.0.0.1",
            "2001:db9::1",
            "fe80::1",
            "192.168.1.1",
        ] {
            assert!(!allowed_address(no.parse().unwrap()), "{no}");
        }
    }
}
