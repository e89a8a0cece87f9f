//! A generator's packets one at a time, in the order and with the draws
//! the module documentation specifies: what [`super::expand`] collects and
//! what a scenario's traffic reads as the run goes, so that a generated
//! stream is never held whole.

use std::sync::Arc;

use rand_chacha::{ChaCha8Rng, rand_core::Rng as _};

use super::{
    Family, GenerateError, GeneratedPacket, Plan, STREAM_FLOWS, STREAM_PAYLOADS, Tuple,
    entropy_port,
    headers::{ext_layer, vlan_tags, with_headers},
    ip_layer, rng,
};
use crate::formats::{
    packet::{
        DEFAULT_GUE_PORT, LayerSpec, PacketSpec,
        spec::{EthSpec, GueSpec, IcmpSpec, PayloadSpec, TcpSpec, UdpSpec},
    },
    scenario::model::{Generator, Protocol},
};

/// What a flow's later packets need from its first: the outer addresses
/// and the TCP sequence numbers.
#[derive(Clone, Copy, Debug)]
struct FlowState {
    outer: Option<(u128, u128)>,
    seq: u32,
    peer_isn: u32,
}

/// The packets of one generator, in stream order. A clone made before the
/// first packet is taken yields the stream again from its start without
/// drawing the flows again (the tuples are shared).
#[derive(Clone, Debug)]
pub struct Packets {
    plan: Plan,
    generator: Generator,
    tuples: Arc<[Tuple]>,
    per_flow: ChaCha8Rng,
    payloads: ChaCha8Rng,
    stream: String,
    /// The next packet's flow (0-based) and number in it (1-based).
    flow: usize,
    k: u32,
    state: FlowState,
    /// Packets taken so far.
    taken: usize,
    /// Each protocol's inner IP length without payload, when the plan
    /// aims at lengths.
    bases: Vec<(Protocol, usize)>,
}

impl Packets {
    /// The stream of `tuples`; refused when a length the plan aims at is
    /// shorter than a protocol's headers.
    pub(super) fn new(
        plan: Plan,
        generator: Generator,
        tuples: Vec<Tuple>,
        stream: &str,
    ) -> Result<Self, GenerateError> {
        let mut packets = Self {
            per_flow: rng(generator.seed, STREAM_FLOWS),
            payloads: rng(generator.seed, STREAM_PAYLOADS),
            plan,
            generator,
            tuples: tuples.into(),
            stream: stream.to_owned(),
            flow: 0,
            k: 1,
            state: FlowState {
                outer: None,
                seq: 0,
                peer_isn: 0,
            },
            taken: 0,
            bases: Vec::new(),
        };
        if let Some(shortest) = packets.plan.ip_lens.iter().min().copied() {
            for t in packets.first_of_each_protocol() {
                let base = packets.inner_len(&t, 0)?;
                if shortest < base {
                    return Err(GenerateError {
                        stream: packets.stream.clone(),
                        field: "ip_len_around",
                        problem: format!(
                            "{shortest} bytes is shorter than the headers of a {} packet ({base})",
                            t.proto.name()
                        ),
                    });
                }
                packets.bases.push((t.proto, base));
            }
        }
        Ok(packets)
    }

    /// A flow of each protocol the stream has, the first drawn.
    fn first_of_each_protocol(&self) -> Vec<Tuple> {
        let mut seen: Vec<Tuple> = Vec::new();
        for t in self.tuples.iter() {
            if !seen.iter().any(|s| s.proto == t.proto) {
                seen.push(*t);
            }
        }
        seen
    }

    /// The state a flow's first packet is built with, outer addresses the
    /// first of their ranges (for lengths, which do not depend on them).
    fn first_state(&self) -> FlowState {
        FlowState {
            outer: self
                .plan
                .tunnel
                .as_ref()
                .map(|o| (o.src.first, o.dst.first)),
            seq: 0,
            peer_isn: 0,
        }
    }

    /// The inner IP length of `t`'s first packet with `payload` bytes.
    fn inner_len(&self, t: &Tuple, payload: usize) -> Result<usize, GenerateError> {
        let p = self.build(t, 1, 1, payload, &self.first_state())?;
        Ok(p.bytes.len() - p.inner_offset)
    }

    /// The payload that gives a `proto` packet the inner IP length `len`.
    fn payload_for(&self, proto: Protocol, len: usize) -> usize {
        let base = self
            .bases
            .iter()
            .find(|(p, _)| *p == proto)
            .map_or(0, |(_, b)| *b);
        len - base
    }

    /// The plan and the flows' tuples.
    pub(super) fn plan_and_tuples(&self) -> (&Plan, &[Tuple]) {
        (&self.plan, &self.tuples)
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Packets in the stream.
    pub fn len(&self) -> usize {
        self.tuples.len() * self.plan.packets_per_flow as usize
    }

    /// Whether it has none (never: a generator makes at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The per-flow draws, at a flow's first packet.
    fn start_flow(&mut self, t: &Tuple) {
        let outer = self.plan.tunnel.as_ref().map(|o| {
            let src = o.src.draw(&mut self.per_flow);
            (src, o.dst.draw(&mut self.per_flow))
        });
        let (isn, peer_isn) = match t.proto {
            Protocol::Tcp => (self.per_flow.next_u32(), self.per_flow.next_u32()),
            Protocol::Udp | Protocol::Icmp => (0, 0),
        };
        self.state = FlowState {
            outer,
            seq: isn,
            peer_isn,
        };
    }

    /// The longest packet the stream can hold: each of its protocols with
    /// the largest payload (headers have one length per protocol), built
    /// as the stream builds packets, so that a generator whose largest
    /// packet cannot be built is refused before any runs.
    pub fn largest(&self) -> Result<usize, GenerateError> {
        let mut largest = 0;
        for t in self.first_of_each_protocol() {
            let payload = match self.plan.ip_lens.iter().max() {
                Some(&len) => self.payload_for(t.proto, len),
                None => self.plan.payload.last as usize,
            };
            let state = self.first_state();
            largest = largest.max(self.build(&t, 1, 1, payload, &state)?.bytes.len());
        }
        Ok(largest)
    }

    /// Packet `k` of flow `flow` (both 1-based) of tuple `t`, with
    /// `payload` bytes after the headers and the flow's `state`.
    fn build(
        &self,
        t: &Tuple,
        flow: u32,
        k: u32,
        payload: usize,
        state: &FlowState,
    ) -> Result<GeneratedPacket, GenerateError> {
        let plan = &self.plan;
        let g = &self.generator;
        let name = if plan.packets_per_flow == 1 {
            format!("flow-{flow}")
        } else {
            format!("flow-{flow}/{k}")
        };
        let l4 = match t.proto {
            Protocol::Tcp => {
                let syn = k == 1;
                LayerSpec::Tcp(TcpSpec {
                    sport: Some(t.sport),
                    dport: Some(t.dport),
                    flags: Some(
                        g.headers
                            .tcp_flags
                            .clone()
                            .unwrap_or_else(|| if syn { "S" } else { "A" }.into()),
                    ),
                    seq: Some(state.seq),
                    ack: Some(if syn {
                        0
                    } else {
                        state.peer_isn.wrapping_add(1)
                    }),
                    ..TcpSpec::default()
                })
            }
            Protocol::Udp => LayerSpec::Udp(UdpSpec {
                sport: Some(t.sport),
                dport: Some(t.dport),
                ..UdpSpec::default()
            }),
            Protocol::Icmp => {
                let echo = IcmpSpec {
                    id: Some(t.sport),
                    // Wraps after 65535 packets, as ping's does.
                    seq: Some(k as u16),
                    ..IcmpSpec::default()
                };
                match plan.family {
                    Family::V4 => LayerSpec::Icmp(echo),
                    Family::V6 => LayerSpec::Icmpv6(echo),
                }
            }
        };
        // Ethernet, VLAN tags, outer IP, UDP, GUE, inner IP, extension
        // headers, L4, payload: rarely more.
        let mut layers = Vec::with_capacity(10);
        layers.push(LayerSpec::Eth(EthSpec::default()));
        layers.extend(vlan_tags(&g.headers.vlan));
        if let (Some(o), Some((src, dst))) = (&plan.tunnel, state.outer) {
            layers.push(ip_layer(o.src.family, src, dst));
            if o.gue {
                layers.push(LayerSpec::Udp(UdpSpec {
                    sport: Some(entropy_port(t)),
                    dport: Some(DEFAULT_GUE_PORT),
                    ..UdpSpec::default()
                }));
                layers.push(LayerSpec::Gue(GueSpec::default()));
            }
        }
        let inner = layers.len();
        layers.push(with_headers(
            ip_layer(plan.family, t.src, t.dst),
            &g.headers,
        ));
        layers.extend(g.headers.ipv6_ext.iter().map(|&e| ext_layer(e)));
        layers.push(l4);
        if payload > 0 {
            layers.push(LayerSpec::Payload(PayloadSpec {
                len: Some(payload),
                ..PayloadSpec::default()
            }));
        }
        let (bytes, offsets) = PacketSpec {
            layers,
            ..PacketSpec::default()
        }
        .into_bytes_with_offsets()
        .map_err(|e| GenerateError {
            stream: self.stream.clone(),
            field: "payload",
            problem: format!("{name}: {e}"),
        })?;
        Ok(GeneratedPacket {
            name,
            inner_offset: offsets[inner],
            bytes,
            flow,
        })
    }
}

/// What building one packet needs: its flow's tuple, the flow's and the
/// packet's numbers (1-based), its payload length and the flow's state.
type Next = (Tuple, u32, u32, usize, FlowState);

impl Packets {
    /// The flow (0-based) the next packet belongs to, if any is left.
    pub fn next_flow(&self) -> Option<usize> {
        (self.flow < self.tuples.len()).then_some(self.flow)
    }

    /// Passes over the next packet without building it, drawing what it
    /// draws, so that the packets after it are the same; false at the end.
    /// (A worker skips the rest of a flow another worker takes.)
    pub fn pass_over(&mut self) -> bool {
        self.advance().is_some()
    }

    /// Takes the next packet's draws and moves on: what building it needs.
    fn advance(&mut self) -> Option<Next> {
        let t = *self.tuples.get(self.flow)?;
        let (flow, k) = (self.flow as u32 + 1, self.k);
        if k == 1 {
            self.start_flow(&t);
        }
        if k == self.plan.packets_per_flow {
            self.flow += 1;
            self.k = 1;
        } else {
            self.k += 1;
        }
        let payload = match self.plan.ip_len(self.taken) {
            Some(len) => self.payload_for(t.proto, len),
            None => self.plan.payload.draw(&mut self.payloads) as usize,
        };
        self.taken += 1;
        let state = self.state;
        // A SYN takes one sequence number, data one per byte.
        self.state.seq = self
            .state
            .seq
            .wrapping_add(u32::from(t.proto == Protocol::Tcp && k == 1))
            .wrapping_add(payload as u32);
        Some((t, flow, k, payload, state))
    }
}

impl Iterator for Packets {
    type Item = Result<GeneratedPacket, GenerateError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (t, flow, k, payload, state) = self.advance()?;
        Some(self.build(&t, flow, k, payload, &state))
    }
}
