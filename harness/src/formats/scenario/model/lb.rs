//! The load balancer's configuration: settings, VIPs and their reals, and
//! the changes a stream makes to them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::one;

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
    /// Send GUE over IPv6 with a zero UDP checksum (default false: it is
    /// computed). Only for reals that accept zero-checksum UDP over IPv6
    /// (RFC 6935; Linux drops it unless the tunnel has `udp6zerocsumrx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_v6_zero_checksum: Option<bool>,
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
