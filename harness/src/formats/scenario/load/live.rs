//! The live half of a scenario — `topology:`, the programs' attachments,
//! `services:`, `clients:` and `captures:` — checked and resolved into a
//! [`LiveSetup`] that the live runner builds without re-checking: every
//! node, interface and address a key names exists, every address is in
//! dsrlab's ranges, and each mistake is reported at its line and column.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::{Checked, Loader, ScenarioError, objects::Hook as ObjectHook, tree::YPath};
use crate::{
    formats::scenario::{
        generate,
        model::{
            AttachDecl, AttachHook, CaptureExpect, ClientDecl, Contract, EndDecl, FlowExpect, Mode,
            Protocol, RealSpec, ReferenceDecl, SocketProto, TopologyDecl, Tunnel,
        },
    },
    lb::instance::{parse_mac, parse_vip},
    live::{
        attach::Hook,
        client::FlowSpec,
        ethtool::Feature,
        reference::{self, Container, MAX_CONTAINERS, Reference},
        service::{Proto, Reply, ServiceSpec},
        topology::{self, EndSpec, LinkSpec, NodeSpec, RouteSpec, TopologySpec},
    },
};

/// Default time a flow waits for its connection and its reply.
const DEFAULT_FLOW_TIMEOUT: Duration = Duration::from_millis(2000);

/// A scenario's topology and its traffic, ready to build and run.
#[derive(Clone, Debug)]
pub struct LiveSetup {
    /// Nodes and links.
    pub topology: TopologySpec,
    /// The reference topology's parameters, when it is one.
    pub reference: Option<Reference>,
    /// Where each program goes: (index in `programs`, node, interface,
    /// hook); a program may be attached at several places.
    pub attachments: Vec<(usize, String, String, Hook)>,
    /// Services, in file order.
    pub services: Vec<ServiceSpec>,
    /// Client groups, in file order.
    pub clients: Vec<ClientGroup>,
    /// Captures, in file order.
    pub captures: Vec<CaptureSetup>,
}

/// One `clients:` entry.
#[derive(Clone, Debug)]
pub struct ClientGroup {
    /// Its name in reports.
    pub name: String,
    /// The node its flows start from.
    pub node: String,
    /// The flows with the first packet of each (what a load balancer sees
    /// first, for `served_by: lb_choice`).
    pub flows: Vec<(FlowSpec, Vec<u8>)>,
    /// How long a flow waits.
    pub timeout: Duration,
    /// What every flow must see.
    pub expect: FlowExpect,
}

/// One capture.
#[derive(Clone, Debug)]
pub struct CaptureSetup {
    /// Its name.
    pub name: String,
    /// The node.
    pub node: String,
    /// The interface.
    pub interface: String,
    /// Its expectations.
    pub expect: Vec<CaptureExpect>,
}

/// `lb_choice`: the node owning the real the load balancer chose.
pub const LB_CHOICE: &str = "lb_choice";

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

fn parse_address(text: &str) -> Result<IpAddr, String> {
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

fn valid_node_name(name: &str) -> bool {
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
            if [
                reference::CLIENT,
                reference::ROUTER,
                reference::LB,
                reference::HOST,
            ]
            .contains(&c.name.as_str())
                || out.iter().any(|o| o.name == c.name)
            {
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

    /// Checks and resolves the live half; `None` without `topology:`.
    pub(super) fn live(&self, programs: &[Checked]) -> Result<Option<LiveSetup>, ScenarioError> {
        let root = YPath::root();
        let Some(decl) = &self.spec.topology else {
            for (key, given) in [
                ("services", !self.spec.services.is_empty()),
                ("clients", !self.spec.clients.is_empty()),
                ("captures", !self.spec.captures.is_empty()),
            ] {
                if given {
                    return Err(self.at_key(
                        &root.key(key),
                        format!("`{key}` needs a `topology:` to run in"),
                    ));
                }
            }
            if let Some(i) = self.spec.programs.iter().position(|p| p.attach.is_some()) {
                return Err(self.at_key(
                    &root.key("programs").index(i).key("attach"),
                    "`attach` places a program in a `topology:`, and this scenario has none",
                ));
            }
            return Ok(None);
        };
        if let Some(i) = self.spec.modes.iter().position(|m| *m != Mode::Netns) {
            return Err(self.at_value(
                &root.key("modes").index(i),
                "a scenario with a `topology:` runs in netns mode only: `modes: [netns]`",
            ));
        }
        if !self.spec.traffic.is_empty() {
            return Err(self.at_key(
                &root.key("traffic"),
                "a scenario with a `topology:` sends its traffic with `clients:`, not `traffic:`",
            ));
        }
        if self.spec.clients.is_empty() {
            return Err(self.at_key(
                &root.key("topology"),
                "a topology without `clients:` sends nothing, so it would check nothing; add clients",
            ));
        }
        let (topology, reference) = self.topology(decl, programs)?;
        let attachments = self.attachments(&topology, reference.as_ref(), programs)?;
        let node_exists = |name: &str| topology.nodes.iter().any(|n| n.name == name);
        let mut services = Vec::new();
        for (i, s) in self.spec.services.iter().enumerate() {
            let p = root.key("services").index(i);
            if !node_exists(&s.node) {
                return Err(self.unknown_node(&p.key("node"), &s.node, &topology));
            }
            let listen: SocketAddr = s.listen.parse().map_err(|_| {
                self.at_value(
                    &p.key("listen"),
                    format!(
                        "`{}` is not ADDRESS:PORT (198.18.100.1:80, 0.0.0.0:80, \"[::]:8080\")",
                        s.listen
                    ),
                )
            })?;
            if !listen.ip().is_unspecified() && !topology::allowed_address(listen.ip()) {
                return Err(self.at_value(
                    &p.key("listen"),
                    format!("{} is outside 198.18.0.0/15 and 2001:db8::/32", listen.ip()),
                ));
            }
            services.push(ServiceSpec {
                id: i,
                node: s.node.clone(),
                proto: match s.proto {
                    SocketProto::Tcp => Proto::Tcp,
                    SocketProto::Udp => Proto::Udp,
                },
                listen,
                reply: match &s.reply {
                    None => Reply::Echo,
                    Some(text) => Reply::Fixed(text.replace("{node}", &s.node).into_bytes()),
                },
            });
        }
        let has_lb = programs
            .iter()
            .any(|c| c.program.contract == Some(Contract::Lb));
        let clients = self
            .spec
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| self.client(&root.key("clients").index(i), i, c, &topology, has_lb))
            .collect::<Result<Vec<_>, _>>()?;
        let mut captures: Vec<CaptureSetup> = Vec::new();
        for (i, c) in self.spec.captures.iter().enumerate() {
            let p = root.key("captures").index(i);
            if captures.iter().any(|o| o.name == c.name) {
                return Err(self.at_value(
                    &p.key("name"),
                    format!(
                        "capture name `{}` is taken; each capture needs its own",
                        c.name
                    ),
                ));
            }
            self.check_interface(&p, &c.node, &c.interface, &topology)?;
            for (j, e) in c.expect.iter().enumerate() {
                let ep = p.key("expect").index(j);
                for (key, map) in [("match", &e.matching), ("fields", &e.fields)] {
                    for path in map.keys() {
                        super::fields::check(path)
                            .map_err(|m| self.at_key(&ep.key(key).key(path), m))?;
                    }
                }
                let counts = usize::from(e.none)
                    + usize::from(e.count.is_some())
                    + usize::from(e.at_least.is_some());
                if counts > 1 {
                    return Err(self.at_value(
                        &p.key("expect").index(j),
                        "give one of `none`, `count` and `at_least`",
                    ));
                }
                if counts == 0 && e.fields.is_empty() {
                    return Err(self.at_value(
                        &p.key("expect").index(j),
                        "this expectation checks nothing: give `none`, `count`, `at_least` or `fields`",
                    ));
                }
            }
            captures.push(CaptureSetup {
                name: c.name.clone(),
                node: c.node.clone(),
                interface: c.interface.clone(),
                expect: c.expect.clone(),
            });
        }
        Ok(Some(LiveSetup {
            topology,
            reference,
            attachments,
            services,
            clients,
            captures,
        }))
    }

    fn unknown_node(&self, p: &YPath, name: &str, topology: &TopologySpec) -> ScenarioError {
        let names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
        self.at_value(
            p,
            format!(
                "unknown node `{name}`; the topology's nodes are {}",
                names.join(", ")
            ),
        )
    }

    fn check_interface(
        &self,
        p: &YPath,
        node: &str,
        interface: &str,
        topology: &TopologySpec,
    ) -> Result<(), ScenarioError> {
        if !topology.nodes.iter().any(|n| n.name == node) {
            return Err(self.unknown_node(&p.key("node"), node, topology));
        }
        let names: Vec<&str> = topology
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.node == node)
            .map(|e| e.name.as_str())
            .collect();
        if !names.contains(&interface) {
            return Err(self.at_value(
                &p.key("interface"),
                format!(
                    "node `{node}` has no interface `{interface}`; it has {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        Ok(())
    }

    fn topology(
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
                let reference = Reference {
                    containers: self.containers(r)?,
                    host_loopback,
                    lb_vips,
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
                let key = key.strip_prefix("net.").unwrap_or(key);
                if key.is_empty()
                    || key.contains("..")
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    return Err(self.at_key(
                        &p.key("sysctls").key(key),
                        format!("`{key}` is not a net.* sysctl name"),
                    ));
                }
                sysctls.push((key.to_owned(), value.to_string()));
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
        Ok(EndSpec {
            node: e.node.clone(),
            name: e.name.clone(),
            mtu: e.mtu,
            mac,
            addresses,
            features,
        })
    }

    fn attachments(
        &self,
        topology: &TopologySpec,
        reference: Option<&Reference>,
        programs: &[Checked],
    ) -> Result<Vec<(usize, String, String, Hook)>, ScenarioError> {
        let mut out = Vec::new();
        for (i, (spec, checked)) in self.spec.programs.iter().zip(programs).enumerate() {
            let p = YPath::root().key("programs").index(i);
            let places: Vec<AttachDecl> = match (&spec.attach, reference) {
                (Some(a), _) => vec![a.clone()],
                (None, Some(r)) => default_places(checked, r),
                (None, None) => Vec::new(),
            };
            if places.is_empty() {
                return Err(self.at_value(
                    &p,
                    format!(
                        "program `{}`: say where it goes in the topology with `attach: {{node, interface, hook}}`{}",
                        checked.program.name,
                        if reference.is_some() {
                            " (the reference topology places lb and decap programs itself, nothing else)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            for place in places {
                self.check_interface(&p.key("attach"), &place.node, &place.interface, topology)?;
                let hook = match (checked.hook, place.hook) {
                    (ObjectHook::Xdp, None | Some(AttachHook::Xdp)) => Hook::XdpNative,
                    (ObjectHook::Xdp, Some(AttachHook::XdpGeneric)) => Hook::XdpGeneric,
                    (ObjectHook::Tc, None | Some(AttachHook::TcIngress)) => Hook::TcIngress,
                    (ObjectHook::Tc, Some(AttachHook::TcEgress)) => Hook::TcEgress,
                    (kind, Some(hook)) => {
                        return Err(self.at_value(
                            &p.key("attach").key("hook"),
                            format!(
                                "program `{}` is {} and cannot go on hook {hook:?}",
                                checked.program.name,
                                match kind {
                                    ObjectHook::Xdp => "an XDP program",
                                    ObjectHook::Tc => "a TC program",
                                    ObjectHook::Other => "neither XDP nor TC",
                                }
                            ),
                        ));
                    }
                    (ObjectHook::Other, None) => {
                        return Err(self.at_value(
                            &p,
                            format!(
                                "program `{}` is neither XDP nor TC: it cannot be attached to a link",
                                checked.program.name
                            ),
                        ));
                    }
                };
                out.push((i, place.node, place.interface, hook));
            }
        }
        Ok(out)
    }

    fn client(
        &self,
        p: &YPath,
        i: usize,
        c: &ClientDecl,
        topology: &TopologySpec,
        has_lb: bool,
    ) -> Result<ClientGroup, ScenarioError> {
        let name = c
            .name
            .clone()
            .unwrap_or_else(|| format!("clients-{}", i + 1));
        if !topology.nodes.iter().any(|n| n.name == c.node) {
            return Err(self.unknown_node(&p.key("node"), &c.node, topology));
        }
        let g = p.key("generate");
        if c.generate.tunnel != Tunnel::None {
            return Err(self.at_value(
                &g.key("tunnel"),
                "clients send plain packets through sockets: no tunnel",
            ));
        }
        if c.generate.packets_per_flow != 1 {
            return Err(self.at_value(
                &g.key("packets_per_flow"),
                "a client flow is one request and one reply: packets_per_flow is 1",
            ));
        }
        if let Some(j) = c
            .generate
            .protocols
            .iter()
            .position(|p| *p == Protocol::Icmp)
        {
            return Err(self.at_value(
                &g.key("protocols").index(j),
                "clients open TCP and UDP sockets; icmp is for replayed traffic",
            ));
        }
        let flows = generate::flows(&c.generate, &name)
            .map_err(|e| self.at_value(&g.key(e.field), e.to_string()))?;
        let flows = flows
            .into_iter()
            .map(|f| {
                let proto = if f.proto == Protocol::Udp {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                // A request of at least one byte: the service answers a
                // request, and a TCP exchange with none would only end by
                // time-out.
                let text = format!("{name} flow {} ", f.flow);
                let request = text.bytes().cycle().take(f.payload.max(1)).collect();
                (
                    FlowSpec {
                        number: f.flow,
                        proto,
                        src: SocketAddr::new(f.src, f.sport),
                        dst: SocketAddr::new(f.dst, f.dport),
                        request,
                    },
                    f.first_packet,
                )
            })
            .collect();
        let expect = c.expect.clone().unwrap_or_default();
        if let Some(by) = &expect.served_by {
            if by == LB_CHOICE && !has_lb {
                return Err(self.at_value(
                    &p.key("expect").key("served_by"),
                    "`served_by: lb_choice` needs a program of the lb contract (xdp_lb) to choose",
                ));
            }
            if by != LB_CHOICE && !topology.nodes.iter().any(|n| &n.name == by) {
                return Err(self.unknown_node(&p.key("expect").key("served_by"), by, topology));
            }
        }
        if expect == FlowExpect::default() {
            return Err(self.at_key(
                p,
                format!(
                    "clients `{name}` expect nothing, so their flows would check nothing: give `expect:` (outcome, served_by, reply)"
                ),
            ));
        }
        Ok(ClientGroup {
            name,
            node: c.node.clone(),
            flows,
            timeout: c
                .timeout_ms
                .map_or(DEFAULT_FLOW_TIMEOUT, |ms| Duration::from_millis(ms.into())),
            expect,
        })
    }
}

/// Where the reference topology puts a program that does not say: the load
/// balancer on its NIC, an XDP decap on the host's NIC, a TC decap on each
/// container's NIC.
fn default_places(checked: &Checked, reference: &Reference) -> Vec<AttachDecl> {
    let place = |node: &str| AttachDecl {
        node: node.to_owned(),
        interface: reference::NIC.to_owned(),
        hook: None,
    };
    match (checked.program.contract, checked.hook) {
        (Some(Contract::Lb), ObjectHook::Xdp) => vec![place(reference::LB)],
        (Some(Contract::Decap), ObjectHook::Xdp) => vec![place(reference::HOST)],
        (Some(Contract::Decap), ObjectHook::Tc) => reference
            .containers
            .iter()
            .map(|c| place(&c.name))
            .collect(),
        _ => Vec::new(),
    }
}
