//! The `topology:` of a scenario checked and resolved into a
//! [`TopologySpec`]: the reference topology from its parameters (and what
//! it implies for the load balancers' configuration), or nodes and links of
//! the scenario's own, every address parsed and in dsrlab's ranges, every
//! mistake at its line and column.

use std::net::IpAddr;

use super::{Checked, Loader, ScenarioError, tree::YPath};
use crate::{
    formats::scenario::model::{
        ChecksumQuirk, EndDecl, NicDecl, RealSpec, ReferenceDecl, TopologyDecl,
    },
    lb::instance::{parse_mac, parse_vip},
    live::{
        ethtool::Feature,
        nic::link::NicQuirks,
        reference::{self, Container, MAX_CONTAINERS, Reference},
        topology::{self, EndSpec, LinkSpec, NodeSpec, RouteSpec, TopologySpec},
    },
};

fn parse_cidr(text: &str, host_default: bool) -> Result<(IpAddr, u8), String> {
    let bad =
        || format!("`{text}` is not an address with a prefix (198.18.3.1/24, 2001:db8:3::1/64)");
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (
            a.trim().parse::<IpAddr>().map_err(|_| bad())?,
            Some(p.trim().parse::<u8>().map_err(|_| bad())?),
        ),
        None if host_default => (text.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        None => return Err(bad()),
    };
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(bits);
    if prefix > bits {
        return Err(format!("{text}: the prefix is longer than {bits} bits"));
    }
    if !topology::allowed_address(addr) {
        return Err(format!(
            "{addr} is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
        ));
    }
    Ok((addr, prefix))
}

/// `addr` with the bits after `prefix` cleared.
fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

pub(super) fn parse_address(text: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address"))?;
    if !topology::allowed_address(addr) {
        return Err(format!(
            "{addr} is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
        ));
    }
    Ok(addr)
}

pub(super) fn valid_node_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 24
}

impl Loader<'_> {
    /// Fills in what the reference topology implies for the load
    /// balancers' configuration (reals of VIPs that list none, the gateway
    /// MAC), before the programs are resolved.
    pub(super) fn complete_for_reference(&mut self) -> Result<(), ScenarioError> {
        let Some(reference) = self
            .spec
            .topology
            .as_ref()
            .and_then(|t| t.reference.clone())
        else {
            return Ok(());
        };
        let containers = self.containers(&reference)?;
        let r = Reference {
            containers,
            ..Reference::default()
        };
        for program in &mut self.spec.programs {
            let Some(lb) = program.lb.as_mut() else {
                continue;
            };
            if lb.gateway_mac.is_none() {
                let m = Reference::gateway_mac();
                lb.gateway_mac = Some(
                    m.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            }
            for vip in &mut lb.vips {
                if !vip.reals.is_empty() {
                    continue;
                }
                let Ok(parsed) = parse_vip(&vip.vip) else {
                    continue; // reported where the VIP is resolved
                };
                vip.reals = r
                    .holders(parsed.addr)
                    .map(|i| {
                        RealSpec::Addr(Reference::container_address(i, parsed.addr).to_string())
                    })
                    .collect();
            }
        }
        Ok(())
    }

    fn containers(&self, reference: &ReferenceDecl) -> Result<Vec<Container>, ScenarioError> {
        let at = YPath::root()
            .key("topology")
            .key("reference")
            .key("containers");
        if reference.containers.len() > MAX_CONTAINERS {
            return Err(self.at_value(
                &at,
                format!(
                    "{} containers; the reference topology holds at most {MAX_CONTAINERS}",
                    reference.containers.len()
                ),
            ));
        }
        let mut out: Vec<Container> = Vec::new();
        for (i, c) in reference.containers.iter().enumerate() {
            let p = at.index(i);
            if !valid_node_name(&c.name) || c.name.len() > 11 {
                return Err(self.at_value(
                    &p.key("name"),
                    format!(
                        "container name `{}`: a letter, then letters, digits, `-` or `_`, at most 11 bytes (the host's veth to it is `to-NAME`)",
                        c.name
                    ),
                ));
            }
            if reference::NODES.contains(&c.name.as_str()) || out.iter().any(|o| o.name == c.name) {
                return Err(self.at_value(
                    &p.key("name"),
                    format!(
                        "container name `{}` is taken (client, router, lb and host are the topology's own nodes)",
                        c.name
                    ),
                ));
            }
            let vips = c
                .vips
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    parse_address(v).map_err(|e| self.at_value(&p.key("vips").index(j), e))
                })
                .collect::<Result<_, _>>()?;
            out.push(Container {
                name: c.name.clone(),
                vips,
            });
        }
        if out.is_empty() {
            out.push(Container {
                name: "c1".into(),
                vips: Vec::new(),
            });
        }
        Ok(out)
    }

    pub(super) fn topology(
        &self,
        decl: &TopologyDecl,
        programs: &[Checked],
    ) -> Result<(TopologySpec, Option<Reference>), ScenarioError> {
        let at = YPath::root().key("topology");
        let (spec, reference) = match (&decl.reference, decl.nodes.is_empty()) {
            (Some(_), false) => {
                return Err(self.at_key(
                    &at.key("nodes"),
                    "give `reference:` or `nodes:` and `links:`, not both",
                ));
            }
            (None, true) => {
                return Err(self.at_value(
                    &at,
                    "a topology needs `reference:` (the DSR reference topology) or `nodes:` and `links:`",
                ));
            }
            (Some(r), true) => {
                let host_loopback = r
                    .host_loopback
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        parse_address(a).map_err(|e| {
                            self.at_value(&at.key("reference").key("host_loopback").index(i), e)
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let lb_vips = programs
                    .iter()
                    .filter_map(|c| c.program.lb.as_ref())
                    .flat_map(|lb| lb.vips.iter().map(|(v, _)| v.addr))
                    .collect();
                let containers = self.containers(r)?;
                let mut sysctls = Vec::new();
                for (node, settings) in &r.sysctls {
                    let known = reference::NODES.contains(&node.as_str())
                        || containers.iter().any(|c| &c.name == node);
                    let p = at.key("reference").key("sysctls").key(node);
                    if !known {
                        return Err(self.at_key(
                            &p,
                            format!(
                                "unknown node `{node}`; the reference topology has client, router, lb, host and its containers"
                            ),
                        ));
                    }
                    for (key, value) in settings {
                        let key = self.sysctl_key(&p, key)?;
                        sysctls.push((node.clone(), key, value.to_string()));
                    }
                }
                let container_nic = r
                    .container_nic
                    .map(|n| self.nic(&at.key("reference").key("container_nic"), n))
                    .transpose()?;
                let reference = Reference {
                    containers,
                    host_loopback,
                    lb_vips,
                    sysctls,
                    container_nic,
                };
                (reference.spec(), Some(reference))
            }
            (None, false) => (self.custom_topology(decl)?, None),
        };
        topology::validate(&spec).map_err(|e| self.at_key(&at, e.to_string()))?;
        Ok((spec, reference))
    }

    fn custom_topology(&self, decl: &TopologyDecl) -> Result<TopologySpec, ScenarioError> {
        let at = YPath::root().key("topology");
        let mut nodes = Vec::new();
        for (i, n) in decl.nodes.iter().enumerate() {
            let p = at.key("nodes").index(i);
            if !valid_node_name(&n.name) {
                return Err(self.at_value(
                    &p.key("name"),
                    format!(
                        "node name `{}`: a letter, then letters, digits, `-` or `_`, at most 24 bytes",
                        n.name
                    ),
                ));
            }
            let mut sysctls = Vec::new();
            for (key, value) in &n.sysctls {
                let key = self.sysctl_key(&p.key("sysctls"), key)?;
                sysctls.push((key, value.to_string()));
            }
            let loopback = n
                .loopback
                .iter()
                .enumerate()
                .map(|(j, a)| {
                    parse_cidr(a, true).map_err(|e| self.at_value(&p.key("loopback").index(j), e))
                })
                .collect::<Result<_, _>>()?;
            let mut routes = Vec::new();
            for (j, r) in n.routes.iter().enumerate() {
                let rp = p.key("routes").index(j);
                let (dst, prefix) = match r.to.as_str() {
                    "default" => (IpAddr::from([198, 18, 0, 0]), 15),
                    "default6" => ("2001:db8::".parse().expect("an address"), 32),
                    to => parse_cidr(to, true).map_err(|e| self.at_value(&rp.key("to"), e))?,
                };
                let network = network_of(dst, prefix);
                if network != dst {
                    return Err(self.at_value(
                        &rp.key("to"),
                        format!(
                            "{dst}/{prefix} has host bits set: the network is {network}/{prefix}"
                        ),
                    ));
                }
                let via = r
                    .via
                    .as_deref()
                    .map(parse_address)
                    .transpose()
                    .map_err(|e| self.at_value(&rp.key("via"), e))?;
                if via.is_some_and(|v| v.is_ipv4() != dst.is_ipv4()) {
                    return Err(self.at_value(
                        &rp.key("via"),
                        "the next hop is of another family than the destination",
                    ));
                }
                let has_dev = decl
                    .links
                    .iter()
                    .flat_map(|l| [&l.a, &l.b])
                    .any(|e| e.node == n.name && e.name == r.dev);
                if !has_dev {
                    return Err(self.at_value(
                        &rp.key("dev"),
                        format!("node `{}` has no interface `{}`", n.name, r.dev),
                    ));
                }
                routes.push(RouteSpec {
                    dst,
                    prefix,
                    via,
                    dev: r.dev.clone(),
                });
            }
            nodes.push(NodeSpec {
                name: n.name.clone(),
                sysctls,
                loopback,
                routes,
                local_routes: Vec::new(),
            });
        }
        let mut links = Vec::new();
        for (i, l) in decl.links.iter().enumerate() {
            let p = at.key("links").index(i);
            let a = self.end(&p.key("a"), &l.a)?;
            let b = self.end(&p.key("b"), &l.b)?;
            for (end, key) in [(&a, "a"), (&b, "b")] {
                if !nodes.iter().any(|n: &NodeSpec| n.name == end.node) {
                    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                    return Err(self.at_value(
                        &p.key(key).key("node"),
                        format!(
                            "unknown node `{}`; the topology's nodes are {}",
                            end.node,
                            names.join(", ")
                        ),
                    ));
                }
            }
            links.push(LinkSpec { a, b });
        }
        Ok(TopologySpec { nodes, links })
    }

    /// An emulated NIC's quirks, checked.
    fn nic(&self, p: &YPath, n: NicDecl) -> Result<NicQuirks, ScenarioError> {
        if n.checksum == Some(ChecksumQuirk::Complete) {
            return Err(self.at_value(
                &p.key("checksum"),
                "a link end's NIC is the TAP NIC: unpulled headers and `unnecessary`; `complete` (the VXLAN NIC) is not available at a link end yet",
            ));
        }
        if let Some(linear) = n.linear
            && linear < 14
        {
            return Err(self.at_value(
                &p.key("linear"),
                format!("linear: {linear}: at least 14, the stack pulls the Ethernet header"),
            ));
        }
        Ok(NicQuirks {
            linear: n.linear,
            validated: n.checksum == Some(ChecksumQuirk::Unnecessary),
        })
    }

    /// A sysctl name below `net.` (the prefix may be written), checked.
    fn sysctl_key(&self, p: &YPath, key: &str) -> Result<String, ScenarioError> {
        let bare = key.strip_prefix("net.").unwrap_or(key);
        if bare.is_empty()
            || bare.contains("..")
            || !bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(self.at_key(&p.key(key), format!("`{key}` is not a net.* sysctl name")));
        }
        Ok(bare.to_owned())
    }

    fn end(&self, p: &YPath, e: &EndDecl) -> Result<EndSpec, ScenarioError> {
        let addresses = e
            .addresses
            .iter()
            .enumerate()
            .map(|(j, a)| {
                parse_cidr(a, false).map_err(|m| self.at_value(&p.key("addresses").index(j), m))
            })
            .collect::<Result<_, _>>()?;
        let mac = e
            .mac
            .as_deref()
            .map(parse_mac)
            .transpose()
            .map_err(|m| self.at_value(&p.key("mac"), m))?;
        if let Some(mtu) = e.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(self.at_value(&p.key("mtu"), format!("MTU {mtu} is outside 68-65535")));
        }
        let features = [
            (Feature::Gro, e.gro),
            (Feature::TxChecksum, e.tx_checksum),
            (Feature::RxChecksum, e.rx_checksum),
        ]
        .into_iter()
        .filter_map(|(f, on)| on.map(|on| (f, on)))
        .collect();
        let nic = e.nic.map(|n| self.nic(&p.key("nic"), n)).transpose()?;
        Ok(EndSpec {
            node: e.node.clone(),
            name: e.name.clone(),
            mtu: e.mtu,
            mac,
            addresses,
            features,
            nic,
        })
    }
}
