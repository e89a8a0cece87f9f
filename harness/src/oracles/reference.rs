//! The kernel's tunnel drivers as the reference decapsulator: for every
//! decap fixture, what the kernel delivers to the inner stack (see
//! [`crate::live::kernel_decap`]) must be what dsrlab's decap contract
//! says a decap delivers — and dsrlab's programs are held to that contract
//! by the other oracles, in both modes.
//!
//! Differences that are policy, not bugs:
//! - Bytes after the outer packet (Ethernet padding) stay behind dsrlab's
//!   inner packet; the kernel trims them at the outer IP layer. The inner
//!   IP layer trims them either way, so packets are compared up to the
//!   inner packet's own length.
//! - GUE variant 0 (a GUE header with its own protocol field) is dropped
//!   by the decap, which takes variant 1 (direct IP, what Katran sends);
//!   the kernel's fou takes both.
//! - A tunnel whose inner header is malformed, or of the other family
//!   than the outer header announces, is dropped by the decap
//!   (`drop_malformed_tunnel`); the kernel's drivers hand it to the inner
//!   stack, whose own validation (`ip_rcv`, `ipv6_rcv`) drops it there.
//! - A tunnel packet the decap passes to the stack unchanged (outer IPv6
//!   extension headers, outer fragments: `pass_extension_header`,
//!   `pass_fragment`) is then the stack's: with its tunnel drivers, it
//!   decapsulates it. Both deliver the packet to the stack; the kernel's
//!   drivers are the stack.

use dsrlab_abi::decap::Counter;

use crate::{
    formats::{
        fixture::{FixturePacket, Outcome},
        packet::spec::LayerSpec,
    },
    live::kernel_decap::Delivered,
};

/// How the kernel's decapsulation of a fixture compares with the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// The same inner packet, or nothing from either.
    Same,
    /// Not comparable, and why.
    NotCompared(&'static str),
    /// Different, by a policy of the module's list: which.
    Policy(&'static str),
    /// A difference, described.
    Differs(String),
}

/// Compares what the kernel delivered for `packet` with its contract.
pub fn compare(packet: &FixturePacket, delivered: &[Delivered]) -> Comparison {
    if packet.bytes.len() < 14 {
        return Comparison::NotCompared("shorter than an Ethernet header: no NIC delivers it");
    }
    let want = match packet.expect.outcome {
        Outcome::Decap => packet.expected_output().map(|frame| frame[14..].to_vec()),
        Outcome::Pass | Outcome::Drop => None,
    };
    match (want, delivered) {
        (None, []) => Comparison::Same,
        (Some(want), [one]) => {
            let len = ip_len(&want).unwrap_or(want.len());
            match (want.get(..len), one.packet.get(..len)) {
                (Some(a), Some(b)) if a == b => Comparison::Same,
                _ => Comparison::Differs(format!(
                    "the kernel delivered another inner packet on {} ({} bytes; the contract's has {len}):\n{}",
                    one.device,
                    one.packet.len(),
                    crate::formats::packet::diff(&want, &one.packet).unwrap_or_default()
                )),
            }
        }
        (None, [_]) if gue_variant_0(packet) => Comparison::Policy(
            "GUE variant 0 (a GUE header of its own): the decap takes only variant 1, direct \
             IP, as Katran sends; the kernel's fou takes both",
        ),
        (None, [_]) if packet.expect.counter == Counter::DropMalformedTunnel => Comparison::Policy(
            "a malformed inner header: the decap drops it, the kernel's inner stack validates it",
        ),
        (None, [_])
            if matches!(
                packet.expect.counter,
                Counter::PassExtensionHeader | Counter::PassFragment
            ) =>
        {
            Comparison::Policy(
                "passed to the stack unchanged, whose tunnel driver then decapsulates it",
            )
        }
        (Some(_), []) => Comparison::Differs(
            "the kernel delivered nothing to the inner stack; the contract decapsulates".into(),
        ),
        (want, more) => Comparison::Differs(format!(
            "the kernel delivered {} packet(s) ({}); the contract {}",
            more.len(),
            more.iter()
                .map(|d| format!("{} bytes on {}", d.packet.len(), d.device))
                .collect::<Vec<_>>()
                .join(", "),
            if want.is_some() {
                "delivers one"
            } else {
                "delivers none through a tunnel"
            }
        )),
    }
}

/// Whether the packet carries a GUE variant 0 header.
fn gue_variant_0(packet: &FixturePacket) -> bool {
    packet
        .spec
        .layers
        .iter()
        .any(|layer| matches!(layer, LayerSpec::Gue(gue) if gue.variant == Some(0)))
}

/// The length an IP packet says it has.
fn ip_len(packet: &[u8]) -> Option<usize> {
    match packet.first()? >> 4 {
        4 => Some(usize::from(u16::from_be_bytes([
            *packet.get(2)?,
            *packet.get(3)?,
        ]))),
        6 => Some(40 + usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]))),
        _ => None,
    }
}
