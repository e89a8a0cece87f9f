//! The live half of a scenario — the programs' attachments, `services:`,
//! `clients:` and `captures:` on the `topology:` that [`super::topology`]
//! resolves — checked and resolved into a [`LiveSetup`] that the live
//! runner builds without re-checking: every node, interface and address a
//! key names exists, and each mistake is reported at its line and column.

use std::{net::SocketAddr, time::Duration};

use super::{Checked, Loader, ScenarioError, objects::Hook as ObjectHook, tree::YPath};
use crate::{
    formats::scenario::{
        generate,
        model::{
            AttachDecl, AttachHook, CaptureExpect, ClientDecl, Contract, FlowExpect, Mode,
            Protocol, SocketProto, Tunnel,
        },
    },
    live::{
        attach::Hook,
        client::FlowSpec,
        reference::{self, Reference},
        service::{Proto, Reply, ServiceSpec},
        topology::{self, TopologySpec},
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
    /// Where each program goes; a program may be attached at several
    /// places.
    pub attachments: Vec<Attachment>,
    /// Services, in file order.
    pub services: Vec<ServiceSpec>,
    /// Client groups, in file order.
    pub clients: Vec<ClientGroup>,
    /// Captures, in file order.
    pub captures: Vec<CaptureSetup>,
}

/// A program at a link end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Its index in the scenario's `programs`.
    pub program: usize,
    /// The node.
    pub node: String,
    /// The interface.
    pub interface: String,
    /// The hook.
    pub hook: Hook,
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

impl Loader<'_> {
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
            if !listen.ip().is_unspecified() && !owns(&topology, &s.node, listen.ip()) {
                return Err(self.at_value(
                    &p.key("listen"),
                    format!(
                        "node `{}` does not own {}: a service binds an address of its node (its links, its lo), 0.0.0.0 or [::]",
                        s.node,
                        listen.ip()
                    ),
                ));
            }
            let proto = match s.proto {
                SocketProto::Tcp => Proto::Tcp,
                SocketProto::Udp => Proto::Udp,
            };
            // Two sockets on one port would both bind (SO_REUSEADDR), and
            // which one answers would be the kernel's choice.
            if let Some(other) = services.iter().find(|o: &&ServiceSpec| {
                o.node == s.node && o.proto == proto && o.listen.port() == listen.port() && {
                    let (a, b) = (o.listen.ip(), listen.ip());
                    a == b
                        || (a.is_unspecified() && (a.is_ipv6() || b.is_ipv4()))
                        || (b.is_unspecified() && (b.is_ipv6() || a.is_ipv4()))
                }
            }) {
                return Err(self.at_value(
                    &p.key("listen"),
                    format!(
                        "services[{}] already listens on {} {} in node `{}`: which of the two answers would be the kernel's choice",
                        other.id,
                        proto.name(),
                        other.listen,
                        s.node
                    ),
                ));
            }
            services.push(ServiceSpec {
                id: i,
                node: s.node.clone(),
                proto,
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
        let mut clients: Vec<ClientGroup> = Vec::new();
        for (i, c) in self.spec.clients.iter().enumerate() {
            let p = root.key("clients").index(i);
            let group = self.client(&p, i, c, &topology, has_lb)?;
            if clients.iter().any(|o| o.name == group.name) {
                return Err(self.at_value(
                    &p.key("name"),
                    format!(
                        "client group name `{}` is taken; each group needs its own",
                        group.name
                    ),
                ));
            }
            // Services report a flow by its client address and port: two
            // flows with the same ones to the same port cannot be told apart.
            for (flow, _) in &group.flows {
                let same = |f: &FlowSpec| {
                    f.proto == flow.proto && f.src == flow.src && f.dst.port() == flow.dst.port()
                };
                if let Some(other) = clients
                    .iter()
                    .find(|o| o.flows.iter().any(|(f, _)| same(f)))
                {
                    return Err(self.at_value(
                        &p.key("generate"),
                        format!(
                            "flow {} ({} from {} to port {}) is also a flow of `{}`: give the groups different `seed:`, `src:` or `sport:`",
                            flow.number,
                            flow.proto.name(),
                            flow.src,
                            flow.dst.port(),
                            other.name
                        ),
                    ));
                }
            }
            clients.push(group);
        }
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
                expect: c.expect.iter().map(canonical_values).collect(),
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

    fn attachments(
        &self,
        topology: &TopologySpec,
        reference: Option<&Reference>,
        programs: &[Checked],
    ) -> Result<Vec<Attachment>, ScenarioError> {
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
                                "program `{}` is {} and cannot go on hook {}",
                                checked.program.name,
                                match kind {
                                    ObjectHook::Xdp => "an XDP program",
                                    ObjectHook::Tc => "a TC program",
                                    ObjectHook::Other => "neither XDP nor TC",
                                },
                                hook.name()
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
                out.push(Attachment {
                    program: i,
                    node: place.node,
                    interface: place.interface,
                    hook,
                });
            }
        }
        // A native XDP program's veth peer gets a pass-through XDP program
        // (XDP_TX frames need it), which generic XDP there would exclude.
        for link in &topology.links {
            for (here, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
                let at = |e: &topology::EndSpec, hook| {
                    out.iter()
                        .find(|a| a.node == e.node && a.interface == e.name && a.hook == hook)
                };
                if let (Some(_), Some(generic)) =
                    (at(here, Hook::XdpNative), at(peer, Hook::XdpGeneric))
                {
                    return Err(self.at_value(
                        &YPath::root()
                            .key("programs")
                            .index(generic.program)
                            .key("attach"),
                        format!(
                            "generic XDP on {}/{} cannot be: its veth peer {}/{} runs native XDP, whose XDP_TX frames need native XDP here (make this one `xdp`)",
                            peer.node, peer.name, here.node, here.name
                        ),
                    ));
                }
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
        if let Some(f) = flows.iter().find(|f| !owns(topology, &c.node, f.src)) {
            let at = if c.generate.src.is_some() {
                g.key("src")
            } else {
                g.clone()
            };
            return Err(self.at_value(
                &at,
                format!(
                    "flow {} would send from {}, which node `{}` does not own: give `src:` addresses of the node (its links, its lo, or a local route)",
                    f.flow, f.src, c.node
                ),
            ));
        }
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

/// `expect` with every value that is an address written canonically, as
/// the dissector shows it (`2001:db8:0::1` → `2001:db8::1`), so that a
/// `none:` on a differently written address cannot pass for that reason.
fn canonical_values(expect: &CaptureExpect) -> CaptureExpect {
    let canon = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| {
                let v = v
                    .parse::<std::net::IpAddr>()
                    .map_or_else(|_| v.clone(), |a| a.to_string());
                (k.clone(), v)
            })
            .collect()
    };
    CaptureExpect {
        matching: canon(&expect.matching),
        fields: canon(&expect.fields),
        ..expect.clone()
    }
}

/// Whether `node` of `topology` owns `addr`: on one of its links, on its
/// `lo`, or in one of its local (AnyIP) routes.
fn owns(topology: &TopologySpec, node: &str, addr: std::net::IpAddr) -> bool {
    let Some(spec) = topology.nodes.iter().find(|n| n.name == node) else {
        return false;
    };
    let on_links = topology
        .links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .filter(|e| e.node == node)
        .any(|e| e.addresses.iter().any(|&(a, _)| a == addr));
    on_links
        || spec.loopback.iter().any(|&(a, _)| a == addr)
        || spec
            .local_routes
            .iter()
            .any(|&(net, prefix)| topology::contains(net, prefix, addr))
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
