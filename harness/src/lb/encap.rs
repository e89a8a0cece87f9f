//! What sending a packet to a real adds in front of it, and the inner
//! packet lengths at which the MTU draws the line: one answer for the
//! model, the fuzzer's threshold frames and generators that aim at the
//! thresholds.

use std::{collections::BTreeSet, net::IpAddr};

use dsrlab_abi::lb::vip_flags;

use super::VipSpec;

/// Bytes in front of the inner IP packet once encapsulated to a real: the
/// outer IP header of the real's family and, for GUE, a UDP header.
pub const fn overhead(real_v6: bool, gue: bool) -> usize {
    (if real_v6 { 40 } else { 20 }) + if gue { 8 } else { 0 }
}

/// The overheads `vip`'s packets can be sent with: one per family of its
/// `reals` (with their weights) that can carry them — weight above 0, and
/// an IPv6 VIP's packets only over IPv6.
pub fn vip_overheads(
    vip: &VipSpec,
    reals: impl IntoIterator<Item = (IpAddr, u32)>,
) -> BTreeSet<usize> {
    let gue = vip.flags & vip_flags::GUE != 0;
    let v6 = vip.addr.is_ipv6();
    reals
        .into_iter()
        .filter(|(real, weight)| *weight > 0 && (real.is_ipv6() || !v6))
        .map(|(real, _)| overhead(real.is_ipv6(), gue))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::Proto;

    #[test]
    fn an_ipv6_vip_is_never_carried_over_ipv4_and_weight_zero_carries_nothing() {
        let vip = |addr: &str, flags| VipSpec {
            addr: addr.parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
            flags,
        };
        let reals = || {
            [
                ("198.18.10.1".parse().unwrap(), 1),
                ("2001:db8:10::1".parse().unwrap(), 1),
                ("198.18.10.2".parse().unwrap(), 0),
            ]
        };
        let v4 = vip_overheads(&vip("198.18.0.1", 0), reals());
        assert_eq!(v4.into_iter().collect::<Vec<_>>(), [20, 40]);
        let v6 = vip_overheads(&vip("2001:db8::1", vip_flags::GUE), reals());
        assert_eq!(v6.into_iter().collect::<Vec<_>>(), [48]);
    }
}
