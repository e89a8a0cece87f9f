//! The live half of the format: a topology of network namespaces, where the
//! programs are attached in it, socket services and clients, and captures
//! with their expectations. Only `netns` mode reads these keys.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Generator;

/// The network the programs run in: the DSR reference topology by name
/// (`reference:`), or nodes and links of your own. Every address must be in
/// 198.18.0.0/15 or 2001:db8::/32.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopologyDecl {
    /// The DSR reference topology: client → router → load balancer
    /// (`xdp_lb`, one-armed behind the router, tunnelling to the reals) →
    /// backend host → containers with VIPs on `lo`. Replies go from the
    /// container through the host and the router straight to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceDecl>,
    /// Nodes of your own topology: each is a network namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeDecl>,
    /// Links of your own topology: each is a veth pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkDecl>,
}

/// Parameters of the DSR reference topology. Its nodes are `client`,
/// `router`, `lb`, `host` and one per container; see the README for its
/// interfaces and addresses.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceDecl {
    /// The containers behind the backend host, each in its own namespace
    /// (default: one, `c1`, with no VIP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerDecl>,
    /// Addresses on the backend host's own `lo` (a VIP that a service of
    /// the host publishes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_loopback: Vec<String>,
    /// Each container's NIC is an emulated one with these quirks (a
    /// Broadcom-like NIC: `{linear: 34}`) instead of a veth end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_nic: Option<NicDecl>,
    /// `net.*` sysctls by node, applied after the topology's own (`host:
    /// {ipv4.conf.all.accept_local: 1}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, BTreeMap<String, SysctlValue>>,
}

/// A container of the reference topology.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerDecl {
    /// The node's name (at most 11 bytes: the host's veth to it is
    /// `to-NAME`).
    pub name: String,
    /// VIPs on the container's `lo`. A VIP of the load balancer that lists
    /// no reals gets, as reals, every container holding it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<String>,
}

/// A node: one network namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDecl {
    /// Its name: a letter, then letters, digits, `-` or `_`, at most 24.
    pub name: String,
    /// `net.*` sysctls of the node, as `ipv4.ip_forward: 1` (the `net.`
    /// prefix may be written or not). Applied before its links exist, so
    /// `conf.default.*` settings reach them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, SysctlValue>,
    /// Addresses on `lo` with their prefix (`198.18.100.1/32`; a bare
    /// address is a host route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loopback: Vec<String>,
    /// Routes of the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteDecl>,
}

/// A sysctl's value: a number or a text.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    /// A number.
    Number(i64),
    /// Anything else.
    Text(String),
}

impl std::fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// A route.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteDecl {
    /// The destination: a CIDR block or an address; `default` (IPv4) and
    /// `default6` (IPv6) are 198.18.0.0/15 and 2001:db8::/32 — the only
    /// networks there are.
    pub to: String,
    /// The next hop (absent: on-link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The node's interface it leaves by.
    pub dev: String,
}

/// A veth pair: two ends, in two nodes (or one).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDecl {
    /// The first end.
    pub a: EndDecl,
    /// The second end.
    pub b: EndDecl,
}

/// One end of a link: an interface of a node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndDecl {
    /// The node it is in.
    pub node: String,
    /// The interface's name (1 to 15 bytes, not `lo`).
    pub name: String,
    /// Addresses with prefix lengths (`198.18.3.1/24`, `"2001:db8:3::1/64"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// MTU (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MAC address (default `02:64:73:LL:EE:00`, LL the link's number and
    /// EE the end: 0 for `a`, 1 for `b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Generic receive offload (veth default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gro: Option<bool>,
    /// Transmit checksum offload (veth default: on). Off makes the stack
    /// finish every checksum before the frame leaves, as a frame from a
    /// real wire would arrive; an XDP program that rewrites packets needs
    /// that from whoever sends to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_checksum: Option<bool>,
    /// Receive checksum offload (veth default: on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_checksum: Option<bool>,
    /// Make this end an emulated NIC rather than a veth end: the TAP NIC,
    /// delivering every frame with these quirks (at most one end of a
    /// link; TC and generic XDP programs attach to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<NicDecl>,
}

/// An emulated NIC at a link end and how it hands frames up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NicDecl {
    /// Only the first N bytes linear, the rest in page frags (at least 14:
    /// the stack pulls the Ethernet header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<u32>,
    /// `unnecessary`: the NIC validated the outermost checksum
    /// (`complete` is not available at a link end yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<super::ChecksumQuirk>,
}

/// Where a program is attached in the topology. In the reference topology
/// this may be left out: an `lb` program goes on the load balancer's NIC,
/// an XDP decap program on the host's NIC, a TC decap program on each
/// container's NIC (ingress).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachDecl {
    /// The node.
    pub node: String,
    /// The interface of the node.
    pub interface: String,
    /// The hook (default: `xdp` for XDP programs, `tc_ingress` for TC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<AttachHook>,
}

/// An attachment point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachHook {
    /// XDP in the driver (veth's native XDP).
    Xdp,
    /// Generic (skb) XDP.
    XdpGeneric,
    /// TC ingress (TCX where the kernel has it, else clsact).
    TcIngress,
    /// TC egress.
    TcEgress,
}

impl AttachHook {
    /// The name as written in scenarios.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::XdpGeneric => "xdp_generic",
            Self::TcIngress => "tc_ingress",
            Self::TcEgress => "tc_egress",
        }
    }
}

/// A socket service in a node.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    /// The node it runs in.
    pub node: String,
    /// `tcp` or `udp`.
    pub proto: SocketProto,
    /// The address and port it binds: `198.18.100.1:80`, `0.0.0.0:80`, or
    /// `"[::]:8080"` (dual-stack, as `bindv6only=0` makes it; quoted).
    pub listen: String,
    /// What it answers: absent, the request back (echo); else this text,
    /// with `{node}` replaced by the service's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// Transport protocol of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SocketProto {
    /// A TCP listener; one request and one reply per connection.
    Tcp,
    /// A UDP socket; one reply per datagram.
    Udp,
}

/// Clients in a node, one flow per generated 5-tuple: each binds the
/// flow's source address and port, sends its payload, and records the
/// reply (bytes, from, which service served it) or the error.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDecl {
    /// Name in reports (default `clients-N`, 1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The node the clients run in (in the reference topology: `client`,
    /// whose sources are 198.18.1.0/24 and 2001:db8:1::/64).
    pub node: String,
    /// The flows: protocols `tcp` and `udp`, no tunnel; `src` must be
    /// addresses the node owns (default 198.18.1.0/24 or
    /// 2001:db8:1::/120).
    pub generate: Generator,
    /// How long a flow may wait for its connection or reply, in ms
    /// (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// What every flow must see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<FlowExpect>,
}

/// What a flow must see; every key given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowExpect {
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<FlowOutcomeKind>,
    /// The node whose service answered; `lb_choice`: the node owning the
    /// real that the load balancer chose for the flow (the reference model
    /// says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The reply's bytes, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// How a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowOutcomeKind {
    /// A reply came back.
    Reply,
    /// Refused: a TCP RST, or ICMP port unreachable for UDP.
    Refused,
    /// ICMP host/network unreachable (or no route).
    Unreachable,
    /// Nothing came back in time.
    Timeout,
}

impl FlowOutcomeKind {
    /// The name as written in scenarios.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
        }
    }
}

/// A capture at a link end: every frame that end sends or receives, from
/// before the first flow to after the last, written as a pcap with `--out`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureDecl {
    /// Name in reports and of the pcap file.
    pub name: String,
    /// The node.
    pub node: String,
    /// The interface.
    pub interface: String,
    /// What the capture must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<CaptureExpect>,
}

/// One expectation on a capture: the frames that match `match` (all of
/// them when absent), counted, and their `fields`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureExpect {
    /// Which frames: dissection path → value, all must hold (`tcp.sport:
    /// "80"`, `"ipv4[0].dst": 198.18.17.1`).
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matching: BTreeMap<String, String>,
    /// No frame matches: `none: true` ("the load balancer's link carries no
    /// reply traffic").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none: bool,
    /// Exactly this many frames match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// At least this many frames match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    /// Fields every matching frame must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}
