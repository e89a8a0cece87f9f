//! Decapsulation programs (`xdp_decap`, `tc_decap`): counters and settings.
//!
//! Both hooks share one counter layout so that the harness can compare them
//! index by index.

/// UDP destination port of GUE/FOU variant-1 tunnels when not configured.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// Name of the per-CPU array of `u64` packet counters, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "DECAP_COUNTERS";

/// Name of the read-only global (`u16`, host byte order) holding the GUE
/// destination port; the loader may override it before loading.
pub const GUE_PORT_GLOBAL: &str = "GUE_PORT";

/// One packet counter per outcome of the decap programs.
///
/// Every packet increments exactly one counter, so the counters of a run add
/// up to the number of packets it saw.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// IPv4 packet carried in IPv4 (protocol 4) decapsulated.
    DecapIp4InIp4 = 0,
    /// IPv6 packet carried in IPv4 (protocol 41) decapsulated.
    DecapIp6InIp4 = 1,
    /// IPv4 packet carried in IPv6 (next header 4) decapsulated.
    DecapIp4InIp6 = 2,
    /// IPv6 packet carried in IPv6 (next header 41) decapsulated.
    DecapIp6InIp6 = 3,
    /// IPv4 packet in GUE variant 1 over UDP/IPv4 decapsulated.
    DecapGue4InIp4 = 4,
    /// IPv6 packet in GUE variant 1 over UDP/IPv4 decapsulated.
    DecapGue6InIp4 = 5,
    /// IPv4 packet in GUE variant 1 over UDP/IPv6 decapsulated.
    DecapGue4InIp6 = 6,
    /// IPv6 packet in GUE variant 1 over UDP/IPv6 decapsulated.
    DecapGue6InIp6 = 7,
    /// Not a tunnel packet (any other EtherType, protocol or UDP port,
    /// including ICMP): passed untouched.
    PassNotTunnel = 8,
    /// Outer IPv4 fragment or IPv6 fragment header: passed untouched so that
    /// the stack reassembles it.
    PassFragment = 9,
    /// Outer IPv6 with extension headers before the payload: passed untouched.
    PassExtensionHeader = 10,
    /// Headers could not be read or removed because they are not in the
    /// linear part of the packet (and could not be pulled): passed untouched.
    PassNonLinear = 11,
    /// Outer headers are malformed (truncated, bad IHL, inconsistent lengths)
    /// before the packet could be identified as a tunnel: passed untouched so
    /// that the stack drops and accounts for it.
    PassMalformed = 12,
    /// Identified as a tunnel packet but the tunnel or inner header is
    /// malformed (truncated, wrong inner version, bad lengths): dropped.
    DropMalformedTunnel = 13,
    /// A kernel helper failed while removing the outer header: dropped.
    DropHelperError = 14,
}

impl Counter {
    /// Number of counters, the size of [`COUNTERS_MAP`].
    pub const COUNT: u32 = 15;

    /// All counters in index order.
    pub const ALL: [Self; Self::COUNT as usize] = [
        Self::DecapIp4InIp4,
        Self::DecapIp6InIp4,
        Self::DecapIp4InIp6,
        Self::DecapIp6InIp6,
        Self::DecapGue4InIp4,
        Self::DecapGue6InIp4,
        Self::DecapGue4InIp6,
        Self::DecapGue6InIp6,
        Self::PassNotTunnel,
        Self::PassFragment,
        Self::PassExtensionHeader,
        Self::PassNonLinear,
        Self::PassMalformed,
        Self::DropMalformedTunnel,
        Self::DropHelperError,
    ];

    /// The snake_case name used in reports and fixture files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DecapIp4InIp4 => "decap_ip4_in_ip4",
            Self::DecapIp6InIp4 => "decap_ip6_in_ip4",
            Self::DecapIp4InIp6 => "decap_ip4_in_ip6",
            Self::DecapIp6InIp6 => "decap_ip6_in_ip6",
            Self::DecapGue4InIp4 => "decap_gue4_in_ip4",
            Self::DecapGue6InIp4 => "decap_gue6_in_ip4",
            Self::DecapGue4InIp6 => "decap_gue4_in_ip6",
            Self::DecapGue6InIp6 => "decap_gue6_in_ip6",
            Self::PassNotTunnel => "pass_not_tunnel",
            Self::PassFragment => "pass_fragment",
            Self::PassExtensionHeader => "pass_extension_header",
            Self::PassNonLinear => "pass_non_linear",
            Self::PassMalformed => "pass_malformed",
            Self::DropMalformedTunnel => "drop_malformed_tunnel",
            Self::DropHelperError => "drop_helper_error",
        }
    }

    /// The counter called `name` (see [`Counter::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether packets counted here leave the program decapsulated.
    pub const fn is_decap(self) -> bool {
        (self as u32) <= Self::DecapGue6InIp6 as u32
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn all_is_in_index_order_and_complete() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?} out of order");
            assert_eq!(Counter::from_name(c.name()), Some(*c));
        }
    }
}
