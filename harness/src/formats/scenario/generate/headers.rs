//! The generator's `headers:`: fields every generated packet's headers
//! carry beyond addresses and ports (ToS, TTL, IPv4 flags and options, IPv6
//! flow label and extension headers, TCP flags, VLAN tags), checked against
//! the packets' family and applied to the layers.

use super::{Family, Problem};
use crate::formats::{
    packet::{
        LayerSpec,
        repr::TCP_FLAG_LETTERS,
        spec::{ExtKind, Hex, Ipv4Spec, Ipv6ExtSpec, Ipv6Spec, VlanSpec},
    },
    scenario::model::{HeaderFields, Ipv6Ext},
};

/// Refuses header fields the inner family does not have, or values out of
/// their field's range, naming the field.
pub(super) fn check_headers(h: &HeaderFields, family: Family) -> Result<(), Problem> {
    let v4_only = [
        ("df", h.df.is_some()),
        ("mf", h.mf.is_some()),
        ("ip_options", h.ip_options.is_some()),
    ];
    let v6_only = [
        ("flow_label", h.flow_label.is_some()),
        ("ipv6_ext", !h.ipv6_ext.is_empty()),
    ];
    let (wrong, other): (&[(&str, bool)], _) = match family {
        Family::V4 => (&v6_only, "IPv6"),
        Family::V6 => (&v4_only, "IPv4"),
    };
    if let Some((field, _)) = wrong.iter().find(|(_, set)| *set) {
        return Err((
            "headers",
            format!(
                "`{field}` is a field of {other} headers, and the generated packets are not {other}"
            ),
        ));
    }
    if let Some(label) = h.flow_label.filter(|l| *l > 0xf_ffff) {
        return Err((
            "headers",
            format!("flow_label {label:#x} does not fit 20 bits (at most 0xfffff)"),
        ));
    }
    if let Some(options) = &h.ip_options {
        let bytes: Hex = options
            .parse()
            .map_err(|e| ("headers", format!("ip_options: {e}")))?;
        if bytes.0.len() > 40 {
            return Err((
                "headers",
                format!(
                    "ip_options has {} bytes; an IPv4 header holds at most 40",
                    bytes.0.len()
                ),
            ));
        }
    }
    if let Some(flags) = &h.tcp_flags
        && let Some(bad) = flags.chars().find(|c| !TCP_FLAG_LETTERS.contains(c))
    {
        return Err((
            "headers",
            format!(
                "tcp_flags `{flags}`: `{bad}` is not one of {}",
                TCP_FLAG_LETTERS.iter().collect::<String>()
            ),
        ));
    }
    if h.vlan.len() > 2 {
        return Err((
            "headers",
            format!("{} VLAN tags; at most 2 (QinQ)", h.vlan.len()),
        ));
    }
    if let Some(vid) = h.vlan.iter().find(|v| **v > 4095) {
        return Err(("headers", format!("VLAN id {vid} is over 4095")));
    }
    Ok(())
}

/// The inner IP header with the fields `h` sets.
pub(super) fn with_headers(layer: LayerSpec, h: &HeaderFields) -> LayerSpec {
    match layer {
        LayerSpec::Ipv4(ip) => LayerSpec::Ipv4(Ipv4Spec {
            tos: h.tos.or(ip.tos),
            ttl: h.ttl.or(ip.ttl),
            df: h.df.or(ip.df),
            mf: h.mf.or(ip.mf),
            // Checked by check_headers.
            options: h.ip_options.as_deref().and_then(|o| o.parse().ok()),
            ..ip
        }),
        LayerSpec::Ipv6(ip) => LayerSpec::Ipv6(Ipv6Spec {
            tclass: h.tos.or(ip.tclass),
            hop_limit: h.ttl.or(ip.hop_limit),
            flow: h.flow_label.or(ip.flow),
            ..ip
        }),
        other => other,
    }
}

/// 802.1Q tags, outermost first; the outer of two is an 802.1ad S-tag.
pub(super) fn vlan_tags(vids: &[u16]) -> impl Iterator<Item = LayerSpec> + '_ {
    vids.iter().enumerate().map(move |(i, &vid)| {
        LayerSpec::Vlan(VlanSpec {
            vid: Some(vid),
            tpid: (vids.len() == 2 && i == 0).then_some(0x88a8),
            ..VlanSpec::default()
        })
    })
}

/// An extension header with its defaults (see `Ipv6Ext`).
pub(super) fn ext_layer(e: Ipv6Ext) -> LayerSpec {
    let kind = match e {
        Ipv6Ext::HopByHop => ExtKind::HopByHop,
        Ipv6Ext::Routing => ExtKind::Routing,
        Ipv6Ext::Fragment => ExtKind::Fragment,
        Ipv6Ext::DestOpts => ExtKind::DestOpts,
    };
    LayerSpec::Ipv6Ext(Ipv6ExtSpec {
        kind,
        next_header: None,
        len: None,
        data: None,
        offset: None,
        mf: None,
        ident: None,
    })
}
