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

mod live;

pub use live::*;

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
    /// Expectation for every packet of a stream that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// State every program must be in after all the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
    /// Keep insta snapshots of each program's run: a text dissection of
    /// every packet (input, verdict, counters, output) and the output
    /// packets as a .pcap; for a topology, every flow and what became of
    /// it. `cargo insta review` shows changes.
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

/// One program under test: one of dsrlab's own (`builtin`) or one from a
/// user's ELF object (`object` + `program`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// One of dsrlab's programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// A user's BPF ELF object, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<PathBuf>,
    /// The program's name in `object` (its function / section symbol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// UDP port of GUE tunnels (decap programs; default 6080). For the load
    /// balancer it is `lb.gue_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// The contract the program claims to implement, which turns on the
    /// oracles for it (counters by name). dsrlab's decap programs implement
    /// `decap` and `xdp_lb` implements `lb` without saying so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
    /// The load balancer's configuration (`xdp_lb`, or an object with
    /// `contract: lb`): settings, VIPs and their reals, given to the
    /// control plane before any traffic. Default: the default settings and
    /// no VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbSpec>,
    /// Entries to write into the object's maps before any traffic, by map
    /// name; keys and values as raw bytes in hex (user objects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maps: BTreeMap<String, Vec<MapEntry>>,
    /// Where the program is attached in the scenario's `topology:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachDecl>,
}

/// dsrlab's own programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// XDP decapsulation (frags-aware).
    XdpDecap,
    /// TC (sched_cls) decapsulation.
    TcDecap,
    /// Returns XDP_PASS: a floor and a control.
    XdpPass,
    /// Returns TC_ACT_OK: a floor and a control.
    TcPass,
    /// The XDP L4 load balancer (contract `lb`): configured by the
    /// program's `lb:` key, every packet judged by the reference model.
    XdpLb,
}

impl Builtin {
    /// The program's name, as in `datapath/ebpf`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::XdpDecap => "xdp_decap",
            Self::TcDecap => "tc_decap",
            Self::XdpPass => "xdp_pass",
            Self::TcPass => "tc_pass",
            Self::XdpLb => "xdp_lb",
        }
    }

    /// The contract the program implements, if any.
    pub const fn contract(self) -> Option<Contract> {
        match self {
            Self::XdpDecap | Self::TcDecap => Some(Contract::Decap),
            Self::XdpLb => Some(Contract::Lb),
            Self::XdpPass | Self::TcPass => None,
        }
    }
}

/// A behaviour contract with its own oracles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Contract {
    /// The decap ABI: a per-CPU `DECAP_COUNTERS` array of u64 with the
    /// counters of `dsrlab_abi::decap::Counter`, one increment per packet.
    Decap,
    /// The load balancer ABI and behaviour of `dsrlab_abi::lb` (its maps,
    /// `LB_COUNTERS` with the counters of `dsrlab_abi::lb::Counter`). An XDP
    /// program. Every packet's verdict, output bytes and counter increments
    /// are compared with the reference model's, and per-VIP and per-real
    /// statistics after the run. The run is pinned to one CPU, because the
    /// connection table (`LB_LRU`) is per CPU.
    Lb,
}

/// The load balancer's configuration: deployment settings and VIPs. Every
/// address must be in 198.18.0.0/15 or 2001:db8::/32.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbSpec {
    /// Maglev ring slots per VIP; a prime (default 65537). Small primes
    /// (13, 251) make runs faster and rings easy to reason about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_size: Option<u32>,
    /// Seed of the flow hash (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_seed: Option<u32>,
    /// MAC address every encapsulated packet is sent to
    /// (default `02:00:00:00:00:fe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<String>,
    /// Largest IP packet, outer header included, the path to the reals
    /// carries: 116 to 65535 (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// UDP destination port of GUE encapsulation (default 6080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// Answer ICMP / ICMPv6 echo requests to VIP addresses (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_echo: Option<bool>,
    /// Answer packets too big to encapsulate with ICMP fragmentation-needed
    /// / ICMPv6 packet-too-big (default true; false drops them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_too_big: Option<bool>,
    /// Outer IPv4 source: its first two bytes, then two bytes of the flow
    /// hash (default 198.19.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_v4_prefix: Option<String>,
    /// Outer IPv6 source: its first twelve bytes, then four bytes of the
    /// flow hash (default `2001:db8:5352::`; quote it in YAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_v6_prefix: Option<String>,
    /// The VIPs, each with its reals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipEntry>,
}

/// A VIP and its reals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VipEntry {
    /// `address:port/proto`: `198.18.0.10:80/tcp`, or
    /// `"[2001:db8::10]:443/udp"` (quoted: YAML reads `[` as a list).
    /// Port 0 is the "all ports" VIP, used when no VIP has the packet's
    /// port; proto is `tcp` or `udp`.
    pub vip: String,
    /// How the real is chosen and reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<VipFlag>,
    /// The reals (backends): an address (weight 1) or `{addr, weight}`.
    /// A real of another family than the VIP is allowed: an IPv4 VIP
    /// reaches an IPv6 real as IPv4-in-IPv6; an IPv6 VIP cannot reach an
    /// IPv4 real, and its packets are dropped (`drop_encap`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reals: Vec<RealSpec>,
}

/// A VIP flag (`dsrlab_abi::lb::vip_flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VipFlag {
    /// Hash without the source port: all of a client's connections go to
    /// one real.
    NoSport,
    /// Never use or fill the connection table.
    NoLru,
    /// Hash on the destination port only.
    DportOnly,
    /// Encapsulate in GUE (UDP to `gue_port`) instead of IP in IP.
    Gue,
}

impl VipFlag {
    /// The flag's name as written in scenarios.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoSport => "no_sport",
            Self::NoLru => "no_lru",
            Self::DportOnly => "dport_only",
            Self::Gue => "gue",
        }
    }
}

/// A real: an address (weight 1) or an address with a weight.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RealSpec {
    /// An address, weight 1.
    Addr(String),
    /// An address and its weight.
    Weighted(WeightedReal),
}

/// A real with a weight.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedReal {
    /// The real's address.
    pub addr: String,
    /// Relative share of the VIP's ring slots (default 1; 0 keeps the real
    /// provisioned without slots).
    #[serde(default = "one")]
    pub weight: u32,
}

/// A change to the load balancers' configuration, applied (through the
/// control plane, to every `lb` program, and to the reference model) before
/// the stream's first packet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LbChange {
    /// Adds a real to a VIP.
    AddReal {
        /// The VIP, as in `lb.vips[].vip`.
        vip: String,
        /// The real's address.
        addr: String,
        /// Its weight (default 1).
        #[serde(default = "one")]
        weight: u32,
    },
    /// Removes a real from a VIP.
    RemoveReal {
        /// The VIP, as in `lb.vips[].vip`.
        vip: String,
        /// The real's address.
        addr: String,
    },
    /// Changes a real's weight in a VIP.
    SetWeight {
        /// The VIP, as in `lb.vips[].vip`.
        vip: String,
        /// The real's address.
        addr: String,
        /// The new weight (0 takes all its slots away).
        weight: u32,
    },
}

/// One map entry as raw bytes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapEntry {
    /// The key, hex (spaces and `:` allowed between bytes), exactly the
    /// map's key size.
    pub key: String,
    /// The value, hex, exactly the map's value size. For per-CPU maps the
    /// same value is written for every CPU.
    pub value: String,
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
    /// NIC quirks for every packet of this stream.
    #[serde(default, skip_serializing_if = "QuirksSpec::is_empty")]
    pub quirks: QuirksSpec,
    /// Expectation for every packet of this stream (overrides the
    /// scenario's; for fixtures it adds to the fixture's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Per-packet overrides by 1-based packet number in the stream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packets: BTreeMap<u32, PacketOverride>,
    /// Load balancer changes applied before this stream's first packet (to
    /// every `lb` program): established flows keep their real through the
    /// connection table, new ones (and TCP SYNs) follow the new ring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lb_changes: Vec<LbChange>,
}

/// Quirks and expectation for one packet of a stream.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketOverride {
    /// NIC quirks for this packet.
    #[serde(default, skip_serializing_if = "QuirksSpec::is_empty")]
    pub quirks: QuirksSpec,
    /// Expectation for this packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
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
    /// Seed of the deterministic draw (default 0).
    #[serde(default)]
    pub seed: u64,
}

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
    /// Raw map values (user objects). Per-CPU values are summed as
    /// little-endian u64 words before comparing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapCheck>,
    /// How much the live stack's SNMP counters must move over the run, by
    /// `nstat` name (`UdpInCsumErrors: 1`, `Udp6InCsumErrors`,
    /// `TcpInCsumErrors`, `UdpNoPorts`, ...); counters not listed are not
    /// checked. netns mode and TC programs only: they run behind the TAP
    /// NIC, whose node takes every packet they pass into its stack.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snmp: BTreeMap<String, u64>,
}

/// One map value to check after the run.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapCheck {
    /// The map's name.
    pub map: String,
    /// The key, hex.
    pub key: String,
    /// The expected value, hex.
    pub value: String,
}
