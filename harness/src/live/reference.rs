//! The DSR reference topology: the network of the talk in a few lines of a
//! scenario.
//!
//! ```text
//!  client ──eth0───to-client── router ──to-lb────eth0── lb   (xdp_lb, one-armed)
//!                              │
//!                              to-host
//!                              │
//!                              eth0
//!                              host ──to-NAME───eth0── container NAME (VIPs on lo)
//! ```
//!
//! A client's packet to a VIP goes to the router, which routes VIPs to the
//! load balancer; `xdp_lb` encapsulates it towards a real (a container's
//! address) and sends it back out (XDP_TX) to the router, which forwards it
//! to the host and on to the container. The decapsulation happens either
//! on the host's NIC (`xdp_decap`: the host then routes the inner packet by
//! its VIP) or on each container's NIC (`tc_decap`). The reply leaves the
//! container from the VIP and goes through the host and the router straight
//! to the client: the load balancer never sees it.
//!
//! Addresses (`k` the link's subnet number; IPv6 `2001:db8:f:k::/64`, the
//! same host numbers with `::1` and `::fe`):
//!
//! | link | subnet | addresses |
//! | --- | --- | --- |
//! | client – router | 198.18.0.0/24 | client .1, router .254 |
//! | router – lb | 198.18.2.0/24 | lb .1, router .254 |
//! | router – host | 198.18.3.0/24 | host .1, router .254 |
//! | host – container *i* (1-based) | 198.18.(16+*i*).0/24 | container .1, host .254 |
//!
//! The client owns all of 198.18.1.0/24 and 2001:db8:1::/64 (a local route
//! on `lo`), so generated flows bind any source there. The client's NIC has
//! transmit checksum offload off, so its frames carry complete checksums,
//! as frames from a real wire do; the load balancer rewrites them without
//! the skb.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    ethtool::Feature,
    nic::link::NicQuirks,
    topology::{EndSpec, LinkSpec, NodeSpec, RouteSpec, TopologySpec, default_mac},
};

/// Most containers the reference topology holds (their subnets end below
/// 198.18.100.0, where VIPs usually go).
pub const MAX_CONTAINERS: usize = 16;

/// The nodes' names.
pub const CLIENT: &str = "client";
/// The router.
pub const ROUTER: &str = "router";
/// The load balancer.
pub const LB: &str = "lb";
/// The backend host.
pub const HOST: &str = "host";
/// The topology's own nodes (containers are named by the scenario).
pub const NODES: [&str; 4] = [CLIENT, ROUTER, LB, HOST];
/// Every node's interface towards the rest of the network.
pub const NIC: &str = "eth0";

/// A container: its node name and the VIPs on its `lo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The node's name.
    pub name: String,
    /// VIPs on `lo`.
    pub vips: Vec<IpAddr>,
}

/// The reference topology's parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    /// The containers, in order (container *i* has subnet 16 + *i*).
    pub containers: Vec<Container>,
    /// Addresses on the host's own `lo`.
    pub host_loopback: Vec<IpAddr>,
    /// The load balancer's VIP addresses: the router routes them to it.
    pub lb_vips: Vec<IpAddr>,
    /// Sysctls by node, applied after the topology's own.
    pub sysctls: Vec<(String, String, String)>,
    /// The containers' NICs are emulated ones with these quirks.
    pub container_nic: Option<NicQuirks>,
}

/// The address of host number `host` on subnet `k`, in `v6` or not.
fn on_subnet(k: u8, host: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xf,
            decimal_as_hex(k),
            0,
            0,
            0,
            u16::from(host),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, k, host))
    }
}

/// `17` → `0x17`, so that IPv6 subnets read like their IPv4 twins.
fn decimal_as_hex(k: u8) -> u16 {
    u16::from_str_radix(&k.to_string(), 16).expect("decimal digits are hex digits")
}

fn both(k: u8, host: u8) -> Vec<(IpAddr, u8)> {
    vec![
        (on_subnet(k, host, false), 24),
        (on_subnet(k, host, true), 64),
    ]
}

fn host_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// 198.18.0.0/15 and 2001:db8::/32: everything there is.
fn everything(via_k: u8, via_host: u8, dev: &str) -> Vec<RouteSpec> {
    [
        (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15, false),
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
            32,
            true,
        ),
    ]
    .into_iter()
    .map(|(dst, prefix, v6)| RouteSpec {
        dst,
        prefix,
        via: Some(on_subnet(via_k, via_host, v6)),
        dev: dev.into(),
    })
    .collect()
}

fn via(dst: IpAddr, prefix: u8, k: u8, host: u8, dev: &str) -> RouteSpec {
    RouteSpec {
        dst,
        prefix,
        via: Some(on_subnet(k, host, dst.is_ipv6())),
        dev: dev.into(),
    }
}

/// Sysctls every node of the reference topology gets: no reverse-path
/// filter (the load balancer's outer sources are not routable), no ICMP
/// rate limit (every refused flow gets its ICMP error), and no IPv6
/// link-local addresses, whose duplicate detection and router
/// solicitations would only add noise to captures (neighbours are
/// permanent and next hops global).
fn base_sysctls(forwarding: bool) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = [
        ("ipv4.conf.all.rp_filter", "0"),
        ("ipv4.conf.default.rp_filter", "0"),
        ("ipv4.icmp_ratelimit", "0"),
        ("ipv6.icmp.ratelimit", "0"),
        ("ipv6.conf.default.addr_gen_mode", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if forwarding {
        s.push(("ipv4.ip_forward".into(), "1".into()));
        s.push(("ipv6.conf.all.forwarding".into(), "1".into()));
    }
    s
}

impl Reference {
    /// The subnet number of container `i` (0-based).
    fn container_subnet(i: usize) -> u8 {
        16 + i as u8 + 1
    }

    /// The address of container `i` (0-based) in the family of `like`: the
    /// real to give the load balancer for it.
    pub fn container_address(i: usize, like: IpAddr) -> IpAddr {
        on_subnet(Self::container_subnet(i), 1, like.is_ipv6())
    }

    /// The containers holding `vip`, by index.
    pub fn holders(&self, vip: IpAddr) -> impl Iterator<Item = usize> + '_ {
        self.containers
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.vips.contains(&vip))
            .map(|(i, _)| i)
    }

    /// The MAC address of the router's end towards the load balancer: where
    /// `xdp_lb` sends what it encapsulates (its `gateway_mac`).
    pub const fn gateway_mac() -> [u8; 6] {
        default_mac(1, 0)
    }

    /// The host's veth to container `name`.
    pub fn host_side(name: &str) -> String {
        format!("to-{name}")
    }

    /// The topology to build.
    pub fn spec(&self) -> TopologySpec {
        let mut nodes = vec![
            NodeSpec {
                name: CLIENT.into(),
                // IPv6 binds only configured addresses without it; the
                // local route then delivers to them (IPv4 binds through
                // the local route alone).
                sysctls: [
                    base_sysctls(false),
                    vec![("ipv6.ip_nonlocal_bind".into(), "1".into())],
                ]
                .concat(),
                local_routes: vec![
                    (IpAddr::V4(Ipv4Addr::new(198, 18, 1, 0)), 24),
                    (
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)),
                        64,
                    ),
                ],
                routes: everything(0, 254, NIC),
                ..NodeSpec::default()
            },
            NodeSpec {
                name: ROUTER.into(),
                sysctls: base_sysctls(true),
                routes: self.router_routes(),
                ..NodeSpec::default()
            },
            NodeSpec {
                name: LB.into(),
                sysctls: base_sysctls(false),
                routes: everything(2, 254, NIC),
                ..NodeSpec::default()
            },
            NodeSpec {
                name: HOST.into(),
                sysctls: base_sysctls(true),
                loopback: self
                    .host_loopback
                    .iter()
                    .map(|&a| (a, host_prefix(a)))
                    .collect(),
                routes: self.host_routes(),
                ..NodeSpec::default()
            },
        ];
        let mut links = vec![
            LinkSpec {
                a: EndSpec {
                    node: CLIENT.into(),
                    name: NIC.into(),
                    addresses: both(0, 1),
                    features: vec![(Feature::TxChecksum, false)],
                    ..EndSpec::default()
                },
                b: end(ROUTER, "to-client", both(0, 254)),
            },
            LinkSpec {
                a: EndSpec {
                    mac: Some(Self::gateway_mac()),
                    ..end(ROUTER, "to-lb", both(2, 254))
                },
                b: end(LB, NIC, both(2, 1)),
            },
            LinkSpec {
                a: end(ROUTER, "to-host", both(3, 254)),
                b: end(HOST, NIC, both(3, 1)),
            },
        ];
        for (i, c) in self.containers.iter().enumerate() {
            let k = Self::container_subnet(i);
            nodes.push(NodeSpec {
                name: c.name.clone(),
                sysctls: base_sysctls(false),
                loopback: c.vips.iter().map(|&a| (a, host_prefix(a))).collect(),
                routes: everything(k, 254, NIC),
                ..NodeSpec::default()
            });
            links.push(LinkSpec {
                a: end(HOST, &Self::host_side(&c.name), both(k, 254)),
                b: EndSpec {
                    nic: self.container_nic,
                    ..end(&c.name, NIC, both(k, 1))
                },
            });
        }
        for (node, key, value) in &self.sysctls {
            if let Some(n) = nodes.iter_mut().find(|n| &n.name == node) {
                n.sysctls.push((key.clone(), value.clone()));
            }
        }
        TopologySpec { nodes, links }
    }

    fn router_routes(&self) -> Vec<RouteSpec> {
        let mut routes = vec![
            via(
                IpAddr::V4(Ipv4Addr::new(198, 18, 1, 0)),
                24,
                0,
                1,
                "to-client",
            ),
            via(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)),
                64,
                0,
                1,
                "to-client",
            ),
        ];
        for i in 0..self.containers.len() {
            let k = Self::container_subnet(i);
            for v6 in [false, true] {
                routes.push(via(
                    on_subnet(k, 0, v6),
                    if v6 { 64 } else { 24 },
                    3,
                    1,
                    "to-host",
                ));
            }
        }
        let mut vips = self.lb_vips.clone();
        vips.extend(self.containers.iter().flat_map(|c| c.vips.iter().copied()));
        vips.sort();
        vips.dedup();
        for vip in vips {
            routes.push(via(vip, host_prefix(vip), 2, 1, "to-lb"));
        }
        routes
    }

    /// The host's routes: everything to the router; each VIP to the first
    /// container holding it (what the host can do with an inner packet
    /// that `xdp_decap` hands it: route it by its destination alone).
    fn host_routes(&self) -> Vec<RouteSpec> {
        let mut routes = everything(3, 254, NIC);
        let mut routed = Vec::new();
        for (i, c) in self.containers.iter().enumerate() {
            for &vip in &c.vips {
                if routed.contains(&vip) {
                    continue;
                }
                routed.push(vip);
                let k = Self::container_subnet(i);
                routes.push(via(vip, host_prefix(vip), k, 1, &Self::host_side(&c.name)));
            }
        }
        routes
    }
}

fn end(node: &str, name: &str, addresses: Vec<(IpAddr, u8)>) -> EndSpec {
    EndSpec {
        node: node.into(),
        name: name.into(),
        addresses,
        ..EndSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_numbered_from_subnet_17_in_both_families() {
        let v4: IpAddr = "198.18.100.1".parse().unwrap();
        let v6: IpAddr = "2001:db8:100::1".parse().unwrap();
        assert_eq!(
            Reference::container_address(0, v4).to_string(),
            "198.18.17.1"
        );
        assert_eq!(
            Reference::container_address(1, v6).to_string(),
            "2001:db8:f:18::1"
        );
    }

    #[test]
    fn the_host_routes_a_shared_vip_to_its_first_holder_only() {
        let vip: IpAddr = "198.18.100.1".parse().unwrap();
        let r = Reference {
            containers: vec![
                Container {
                    name: "a".into(),
                    vips: vec![vip],
                },
                Container {
                    name: "b".into(),
                    vips: vec![vip],
                },
            ],
            ..Reference::default()
        };
        let to_vip: Vec<_> = r
            .host_routes()
            .into_iter()
            .filter(|x| x.dst == vip)
            .collect();
        assert_eq!(to_vip.len(), 1);
        assert_eq!(to_vip[0].dev, "to-a");
        assert_eq!(r.holders(vip).collect::<Vec<_>>(), [0, 1]);
        let spec = r.spec();
        assert_eq!(spec.nodes.len(), 6);
        assert_eq!(spec.links.len(), 5);
    }
}
