//! The capacity case: a world whose connection table overflows. One UDP
//! VIP with two reals, three times [`LRU_ENTRIES`] flows, one real's
//! weight changed (its ring moves), then the same flows again in reverse
//! order: the second pass first meets the flows the table kept, which must
//! keep their real, then flows the kernel's LRU evicted, which the model
//! judges as `lb::eviction` says.

use std::net::{IpAddr, Ipv4Addr};

use dsrlab_abi::lb::LRU_ENTRIES;

use super::{
    CLIENT_MAC, Case, FrameKind, GATEWAY_MAC, LB_MAC, Step, VIPS4, VipRecipe, World, frame,
};
use crate::{
    formats::packet::{
        repr::Mac,
        spec::{EthSpec, Ipv4Spec, LayerSpec, PacketSpec, UdpSpec},
    },
    lb::{LbSettings, Proto, VipSpec},
};

/// Flows of the capacity case.
pub const FLOWS: u32 = 3 * LRU_ENTRIES;

const PORT: u16 = 53;

impl Case {
    /// The capacity case (see the module); `seed` names it in reports and
    /// seeds the flow hash.
    pub fn capacity(seed: u64) -> Self {
        let vip = VIPS4[0];
        let world = World {
            settings: LbSettings {
                ring_size: 13,
                hash_seed: seed as u32,
                gateway_mac: GATEWAY_MAC,
                ..LbSettings::default()
            },
            vips: vec![VipRecipe {
                spec: VipSpec {
                    addr: IpAddr::V4(vip),
                    port: PORT,
                    proto: Proto::Udp,
                    flags: 0,
                },
                reals: vec![
                    ("198.18.10.1".parse().expect("an address"), 1),
                    ("198.18.10.2".parse().expect("an address"), 1),
                ],
            }],
        };
        let pass = |steps: &mut Vec<Step>, flows: &mut dyn Iterator<Item = u32>| {
            for i in flows {
                // Distinct flows: 65 536 sources, the source port for the rest.
                let src = Ipv4Addr::new(198, 18, (i >> 8) as u8, i as u8);
                let sport = 1024 + (i >> 16) as u16;
                let bytes = PacketSpec {
                    layers: vec![
                        LayerSpec::Eth(EthSpec {
                            src: Some(Mac(CLIENT_MAC)),
                            dst: Some(Mac(LB_MAC)),
                            ..EthSpec::default()
                        }),
                        LayerSpec::Ipv4(Ipv4Spec::between(src, vip)),
                        LayerSpec::Udp(UdpSpec {
                            sport: Some(sport),
                            dport: Some(PORT),
                            ..UdpSpec::default()
                        }),
                    ],
                    ..PacketSpec::default()
                }
                .build()
                .expect("a UDP frame builds");
                steps.push(frame(
                    format!("udp {src}:{sport} > {vip}:{PORT}"),
                    FrameKind::WellFormed,
                    bytes,
                ));
            }
        };
        let mut steps = Vec::new();
        pass(&mut steps, &mut (0..FLOWS));
        steps.push(Step::SetWeight {
            vip: 0,
            real: 0,
            weight: 3,
        });
        pass(&mut steps, &mut (0..FLOWS).rev());
        Self { seed, world, steps }
    }
}
