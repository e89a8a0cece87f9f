//! The scenario format, version 1: what a scenario file may say.
//!
//! These types are the format: serde reads them (unknown keys rejected) and
//! schemars derives the JSON Schema that editors use (`dsrlab schema`). Their
//! doc comments become the schema's descriptions, so they are written for
//! scenario authors. Cross-field rules that the types can't express (exactly
//! one of `builtin`/`object`, paths that exist, map key sizes ...) are
//! checked after parsing, with the file, line and column of the offending key.

use std::{collections::BTreeMap, path::PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::formats::ctx::CtxSpec;

mod chain;
mod lb;
mod live;
mod program;

pub use chain::*;
pub use lb::*;
pub use live::*;
pub use program::*;

/// The only scenario format version this harness reads.
pub const VERSION: u32 = 1;

/// A scenario: programs under test, the traffic to send through them, the NIC
/// quirks to emulate, and what must happen.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Format version. Must be 1.
    pub version: u32,
    /// Name in reports and test names; defaults to the file name without
    /// `.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the scenario proves, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The programs under test. Every packet of the traffic runs through
    /// each of them, each with its own maps.
    pub programs: Vec<ProgramSpec>,
    /// How to run: `test-run` (BPF_PROG_TEST_RUN, one packet per syscall)
    /// and `netns` (attached in network namespaces). Results of all modes
    /// must agree.
    #[serde(default = "default_modes")]
    pub modes: Vec<Mode>,
    /// The packets: fixture sets, pcap files and generated flows, run in this
    /// order. Not with `topology:`, whose traffic is `clients:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<Stream>,
    /// A network of namespaces to attach the programs in (`netns` mode
    /// only): the DSR reference topology or nodes and links of your own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyDecl>,
    /// Socket services in the topology's nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceDecl>,
    /// Socket clients in the topology's nodes: the traffic of a topology.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientDecl>,
    /// Captures at link ends of the topology, with expectations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<CaptureDecl>,
    /// NIC quirks for every packet (a stream or packet may add its own).
    #[serde(default, skip_serializing_if = "QuirksSpec::is_empty")]
    pub quirks: QuirksSpec,
    /// The context every packet is run with (a stream or packet may set
    /// fields of its own, which win). Test runs only: a live packet's
    /// context is what the stack gives it, so live runs skip these packets.
    #[serde(default, skip_serializing_if = "CtxSpec::is_empty")]
    pub ctx: CtxSpec,
    /// Expectation for every packet of a stream that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// State every program must be in after all the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
    /// Keep snapshots of each program's run in `snapshots/` beside the
    /// scenario, in insta's format: a text dissection of every packet
    /// (input, verdict, counters, output) and the output packets as a
    /// .pcap; for a topology, every flow and what became of it. A snapshot
    /// that differs fails the run and is written as `.snap.new` (not in
    /// CI) for `dsrlab review` or `cargo insta review`.
    #[serde(default)]
    pub snapshot: bool,
}

fn default_modes() -> Vec<Mode> {
    vec![Mode::TestRun]
}

/// How packets reach the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `BPF_PROG_TEST_RUN`: one packet per syscall, no topology.
    TestRun,
    /// Attached in network namespaces joined by veth pairs: each packet
    /// sent into a two-node rig, or real sockets through a `topology:`.
    Netns,
}

impl Mode {
    /// `test-run` or `netns`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TestRun => "test-run",
            Self::Netns => "netns",
        }
    }
}

/// A source of packets. Exactly one of `fixture`, `pcap` and `generate`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Name in reports; defaults to the file name or `generated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fixture set (fixtures/*.yaml, relative to the scenario file): its
    /// packets and quirks, and its per-packet expectations, which bind the
    /// programs implementing the decap contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<PathBuf>,
    /// A pcap file (relative to the scenario file), Ethernet link type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PathBuf>,
    /// Generated flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generator>,
    /// Packets written in the scenario, each built from the layer recipe
    /// of fixtures (`layers:`, `cut:`, `mutate:`), with its own quirks,
    /// context and expectation if it needs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inline: Vec<PacketEntry>,
    /// NIC quirks for every packet of this stream.
    #[serde(default, skip_serializing_if = "QuirksSpec::is_empty")]
    pub quirks: QuirksSpec,
    /// Context fields for every packet of this stream.
    #[serde(default, skip_serializing_if = "CtxSpec::is_empty")]
    pub ctx: CtxSpec,
    /// Expectation for every packet of this stream (overrides the
    /// scenario's; for fixtures it adds to the fixture's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Per-packet overrides by 1-based packet number in the stream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packets: BTreeMap<u32, PacketEntry>,
    /// Load balancer changes applied before this stream's first packet (to
    /// every `lb` program): established flows keep their real through the
    /// connection table, new ones (and TCP SYNs) follow the new ring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lb_changes: Vec<LbChange>,
    /// Changes to the chains' slots applied before this stream's first
    /// packet (programs with `chain:`): a slot program attached, replaced
    /// or detached while the chain runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_changes: Option<ChainChanges>,
}

/// One packet of a stream: its quirks, context and expectation — under
/// `packets:` for a packet of the stream's source, by number — and, for a
/// packet written `inline:`, the recipe it is built from (`layers`, `cut`,
/// `mutate`, as in fixtures) and its name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketEntry {
    /// Inline packets: its name in reports; default `#N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Inline packets: layers, outermost first (see `PacketRecipe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<serde_json::Value>,
    /// Inline packets: build only the first N bytes (see `PacketRecipe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<usize>,
    /// Inline packets: changes to the built bytes (see `PacketRecipe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutate: Vec<serde_json::Value>,
    /// NIC quirks for this packet.
    #[serde(default, skip_serializing_if = "QuirksSpec::is_empty")]
    pub quirks: QuirksSpec,
    /// Context fields for this packet.
    #[serde(default, skip_serializing_if = "CtxSpec::is_empty")]
    pub ctx: CtxSpec,
    /// Expectation for this packet, replacing the stream's (or the
    /// scenario's) whole: nothing of it is checked unless repeated here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// More expectation for this packet, on top of the stream's (or the
    /// scenario's): its keys win where both say something, `fields` and
    /// `ctx` are merged key by key. Give `expect` or `also_expect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_expect: Option<Expect>,
}

/// NIC behaviour to emulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuirksSpec {
    /// `complete`: deliver as CHECKSUM_COMPLETE, as mlx5 does (skb programs);
    /// a stale `skb->csum` afterwards is reported. `unnecessary`: deliver
    /// as CHECKSUM_UNNECESSARY, level 0, as a NIC that validated the
    /// outermost checksum (skb programs, live only: a test run cannot make
    /// such an skb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumQuirk>,
    /// Only the first N bytes linear, the rest in page frags, as drivers that
    /// don't pull headers deliver them (XDP programs with frags support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<u32>,
}

impl QuirksSpec {
    /// No quirk set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Checksum state the NIC hands up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumQuirk {
    /// CHECKSUM_COMPLETE.
    Complete,
    /// CHECKSUM_UNNECESSARY, `csum_level` 0.
    Unnecessary,
}

/// Flows to generate: `flows` distinct 5-tuples drawn from the ranges
/// (deterministically from `seed`), `packets_per_flow` packets each.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Number of distinct flows.
    pub flows: u32,
    /// Packets per flow (default 1).
    #[serde(default = "one")]
    pub packets_per_flow: u32,
    /// Tunnel around each packet (default `none`).
    #[serde(default)]
    pub tunnel: Tunnel,
    /// Outer (tunnel) source addresses: an address, a CIDR block or
    /// `first-last`. Default: 198.18.0.1 or 2001:db8::1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outer_src: Option<String>,
    /// Outer (tunnel) destination addresses. Default: 198.18.0.2 or
    /// 2001:db8::2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outer_dst: Option<String>,
    /// Transport protocols, chosen per flow (default `[tcp]`).
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Protocol>,
    /// Inner source addresses (address, CIDR or `first-last`); the family
    /// must match the tunnel's inner family. Default: 198.18.1.0/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// Inner destination addresses. Default: 198.18.2.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    /// Source ports: a number or `first-last` (default 1024-65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<Range>,
    /// Destination ports (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<Range>,
    /// Payload bytes after the transport header: a number or `min-max`
    /// (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Range>,
    /// Inner IP packet lengths to aim at instead of drawing `payload`:
    /// each one byte under, at it and one byte over, the packets taking
    /// these sizes in turn. `mtu`: the thresholds of the scenario's load
    /// balancer, its MTU less the overhead of each encapsulation the reals
    /// of its VIPs among `dst` can use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_len_around: Option<IpLenAround>,
    /// Seed of the deterministic draw (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Header fields every generated packet carries (the inner packet's,
    /// for tunnels), beyond addresses and ports.
    #[serde(default, skip_serializing_if = "HeaderFields::is_empty")]
    pub headers: HeaderFields,
}

/// Sizes a generator aims at (see [`Generator::ip_len_around`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum IpLenAround {
    /// Thresholds named by what they come from.
    Named(NamedLengths),
    /// Inner IP packet lengths.
    Lengths(Vec<u32>),
}

/// Thresholds a scenario knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedLengths {
    /// The load balancer's MTU less each encapsulation's overhead.
    Mtu,
}

/// Header fields of generated packets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderFields {
    /// IPv4 ToS / IPv6 traffic class byte (DSCP and ECN; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<u8>,
    /// IPv4 TTL / IPv6 hop limit (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// IPv4 don't-fragment flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<bool>,
    /// IPv4 more-fragments flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mf: Option<bool>,
    /// IPv4 options, hex (padded to 4-byte words; `ihl` follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_options: Option<String>,
    /// IPv6 flow label (20 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_label: Option<u32>,
    /// IPv6 extension headers between the IPv6 header and the transport,
    /// in order: `hop_by_hop`, `routing`, `fragment`, `dest_opts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_ext: Vec<Ipv6Ext>,
    /// TCP flags of every TCP packet (`S`, `SA`, `FA`, `R`, ...; default:
    /// `S` for a flow's first packet, `A` after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<String>,
    /// 802.1Q tags after the Ethernet header, outermost first (two for
    /// QinQ, the outer one with TPID 0x88a8): VLAN ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
}

impl HeaderFields {
    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An IPv6 extension header of generated packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ipv6Ext {
    /// Hop-by-hop options (a PadN option).
    HopByHop,
    /// Routing (an empty type-0 routing header).
    Routing,
    /// Fragment (offset 0, no more fragments: an atomic fragment).
    Fragment,
    /// Destination options (a PadN option).
    DestOpts,
}

/// serde's default of fields that count from one.
const fn one() -> u32 {
    1
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Tcp]
}

/// A number or an inclusive range `first-last`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Range {
    /// One value.
    One(u32),
    /// `first-last`, inclusive.
    Span(String),
}

/// Encapsulation of generated packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tunnel {
    /// No tunnel: plain packets.
    #[default]
    None,
    /// IPv4 in IPv4 (protocol 4).
    Ip4InIp4,
    /// IPv6 in IPv4 (protocol 41).
    Ip6InIp4,
    /// IPv4 in IPv6.
    Ip4InIp6,
    /// IPv6 in IPv6.
    Ip6InIp6,
    /// IPv4 in GUE (variant 1) over UDP/IPv4.
    Gue4InIp4,
    /// IPv6 in GUE over UDP/IPv4.
    Gue6InIp4,
    /// IPv4 in GUE over UDP/IPv6.
    Gue4InIp6,
    /// IPv6 in GUE over UDP/IPv6.
    Gue6InIp6,
}

/// Transport protocol of generated packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP (SYN unless the flow has several packets: then SYN, ACK, ACK ...).
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo request (ICMPv6 for IPv6).
    Icmp,
}

impl Protocol {
    /// `tcp`, `udp` or `icmp`, as written in scenarios.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }
}

/// What must happen to each packet. Every key is optional; the ones given
/// must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The verdict: a kernel name (`XDP_PASS`, `XDP_DROP`, `XDP_TX`,
    /// `TC_ACT_OK`, `TC_ACT_SHOT`, ...) or a class that fits any program
    /// type: `pass`, `drop`, `tx`, `redirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The output packet: `unchanged`, or `decapsulated` (the Ethernet
    /// header, EtherType set to the inner family, followed by exactly the
    /// inner packet of the input's tunnel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputExpect>,
    /// Fields the output must have, by dissection path (`ipv4[0].ttl`,
    /// `eth.dst`, `tcp.dport`) → value as dissected (`63`, `02:00:00:00:00:09`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Output equals packet N of this pcap (relative to the scenario file),
    /// N being the packet's number in its stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<PathBuf>,
    /// The one contract counter this packet increments (e.g.
    /// `decap_ip4_in_ip4`); needs a program with the decap contract (an
    /// `lb` packet moves several counters, which the reference model
    /// checks per packet; use `after.counters` for totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Why the stack behind the program must drop what the program passed
    /// — a `skb_drop_reason` without its prefix (`UDP_CSUM`, `NO_SOCKET`,
    /// `IP_CSUM`) — or `none`. Live only, TC programs: they run behind an
    /// emulated NIC whose node's stack takes every packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
    /// The skb's context after the run (`mark`, `priority`, `cb`, ...),
    /// field by field; fields not given are not checked. Test runs of TC
    /// programs (the kernel copies an skb's context back; XDP has none to
    /// change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<CtxSpec>,
    /// The output packet byte for byte, built from the layer recipe of
    /// fixtures and inline packets (`{layers: [eth, ipv4, udp]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<PacketRecipe>,
}

/// A packet built from layers, as in fixtures: outermost first, fields not
/// given derived (lengths, checksums, protocol numbers) or defaulted; see
/// the fixture format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketRecipe {
    /// Layers, outermost first: `eth`, `vlan`, `arp`, `ipv4`, `ipv6`,
    /// `udp`, `gue`, `tcp`, `icmp`, `icmpv6`, `payload`, each a name or a
    /// mapping of its fields (`{ipv4: {src: 198.18.1.1, ttl: 1}}`).
    pub layers: Vec<serde_json::Value>,
    /// Build only the first N bytes, with the length fields of every whole
    /// header fitted to what remains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<usize>,
    /// Changes to the built bytes, in order (`truncate`, `append`, `set`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutate: Vec<serde_json::Value>,
}

/// Expected shape of the output packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputExpect {
    /// Byte for byte the input.
    Unchanged,
    /// The input with its outer tunnel headers removed.
    Decapsulated,
}

/// State after the run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct After {
    /// Contract counters by name → exact total over all CPUs (counters not
    /// listed are not checked): `dsrlab_abi::decap::Counter` names for the
    /// decap contract, `dsrlab_abi::lb::Counter` names (`tx`, `lru_hit`,
    /// ...) for the lb contract.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    /// Map values (user objects), typed by the object's BTF or hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapCheck>,
    /// Global variables of a user's object (`.data`, `.bss`; `.rodata`
    /// cannot change) by name → value, typed by the object's BTF or hex.
    /// A struct written in part is checked in part.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub globals: BTreeMap<String, Value>,
    /// How much the live stack's SNMP counters must move over the run, by
    /// `nstat` name (`UdpInCsumErrors: 1`, `Udp6InCsumErrors`,
    /// `TcpInCsumErrors`, `UdpNoPorts`, ...); counters not listed are not
    /// checked. netns mode and TC programs only: they run behind the TAP
    /// NIC, whose node takes every packet they pass into its stack.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snmp: BTreeMap<String, u64>,
    /// A chain's per-slot counters over the run, by slot: `packets` (runs
    /// of the slot's program) and verdicts by name (`XDP_DROP: 3`); what
    /// is not listed is not checked. Every chain of the scenario is held
    /// to them, under each backend.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<u32, BTreeMap<String, u64>>,
}

/// One map value to check after the run.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapCheck {
    /// The map's name.
    pub map: String,
    /// The key (typed by the object's BTF, or hex; see `Value`).
    pub key: Value,
    /// The expected value (typed, or hex); of a struct, only the members
    /// written are checked. Per-CPU values are summed over the CPUs first,
    /// member by member (without BTF: as little-endian u64 words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Per-CPU maps: the expected value on each CPU, from CPU 0 (CPUs
    /// after the list are not checked). Test runs run on the first CPU the
    /// process may use. Give `value` or `per_cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<Value>>,
}
