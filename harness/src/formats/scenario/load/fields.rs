//! Field paths of `expect.fields` (`ipv4[1].ttl`, `eth.dst`), checked
//! against the names the dissection itself uses.
//!
//! The table of layer kinds and their field names is not written down here:
//! it is read off dissections of sample packets, so a field renamed or added
//! in `formats::packet` is renamed or added here too. The samples cover
//! every layer kind and every variant whose fields differ (ICMP echo and
//! errors, GUE variants 0 and 1, IPv6 fragment and other extension headers);
//! a test fails if a kind is missing.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::OnceLock,
};

use crate::formats::packet::{LayerRepr, PacketSpec, dissect};

/// Sample packets, as fixture layers.
const SAMPLES: &[&str] = &[
    "[eth, ipv4, {tcp: {flags: S}}, {payload: {len: 4}}]",
    "[{eth: {pad_to: 80}}, ipv4, udp]",
    "[eth, vlan, ipv6, udp]",
    "[eth, arp]",
    "[eth, ipv4, icmp]",
    "[eth, ipv4, {icmp: {type: 3, code: 4}}, ipv4, udp]",
    "[eth, ipv6, icmpv6]",
    "[eth, ipv6, {icmpv6: {type: 2}}, ipv6, udp]",
    "[eth, ipv4, udp, gue, ipv4, udp]",
    "[eth, ipv6, udp, {gue: {variant: 0}}, ipv6, tcp]",
    "[eth, ipv6, {ipv6_ext: {kind: fragment}}, udp]",
    "[eth, ipv6, {ipv6_ext: {kind: hop_by_hop}}, udp]",
];

/// Layer kind → the names of its fields, as dissections show them.
fn table() -> &'static BTreeMap<&'static str, BTreeSet<&'static str>> {
    static TABLE: OnceLock<BTreeMap<&'static str, BTreeSet<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
        for sample in SAMPLES {
            // The samples are constants; a failure is a bug here, caught by
            // the test below, and must not stop loading a scenario.
            let Ok(spec) = serde_saphyr::from_str::<PacketSpec>(&format!("layers: {sample}"))
            else {
                continue;
            };
            let Ok(bytes) = spec.build() else { continue };
            for layer in dissect(&bytes).layers {
                if matches!(layer.repr, LayerRepr::Malformed { .. }) {
                    continue;
                }
                table
                    .entry(layer.repr.kind())
                    .or_default()
                    .extend(layer.fields().iter().map(|f| f.name));
            }
        }
        table
    })
}

/// Checks that `path` names a field the dissection has: `KIND.FIELD` or
/// `KIND[N].FIELD`. The error says what was expected.
pub fn check(path: &str) -> Result<(), String> {
    let table = table();
    let kinds = || table.keys().copied().collect::<Vec<_>>().join(", ");
    let Some((label, field)) = path.rsplit_once('.') else {
        return Err(format!(
            "field `{path}` is not LAYER.FIELD (e.g. `ipv4[1].ttl`, `eth.dst`)"
        ));
    };
    let kind = match label.split_once('[') {
        Some((kind, index)) => {
            let ok = index
                .strip_suffix(']')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(format!(
                    "field `{path}`: layer `{label}` is not KIND or KIND[N] (e.g. `ipv4[1]`)"
                ));
            }
            kind
        }
        None => label,
    };
    let Some(fields) = table.get(kind) else {
        return Err(format!(
            "field `{path}`: no layer kind `{kind}`; expected one of {}",
            kinds()
        ));
    };
    if !fields.contains(field) {
        let names: Vec<&str> = fields.iter().copied().collect();
        return Err(format!(
            "field `{path}`: {kind} has no field `{field}`; expected one of {}",
            names.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::packet::spec::LAYER_KINDS;

    #[test]
    fn samples_cover_every_layer_kind() {
        for sample in SAMPLES {
            let spec: PacketSpec = serde_saphyr::from_str(&format!("layers: {sample}")).unwrap();
            spec.build().unwrap();
        }
        let table = table();
        for kind in LAYER_KINDS.iter().chain(&["trailer"]) {
            assert!(table.contains_key(kind), "no sample has a {kind} layer");
        }
        // Variant-dependent fields.
        for (kind, field) in [
            ("icmp", "id"),
            ("icmp", "rest"),
            ("gue", "hlen"),
            ("ipv6_ext", "ident"),
            ("ipv6_ext", "data"),
            ("ipv4", "csum_status"),
        ] {
            assert!(table[kind].contains(field), "{kind}.{field}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(check("ipv4[1].ttl"), Ok(()));
        assert_eq!(check("eth.dst"), Ok(()));
        assert_eq!(check("tcp.dport"), Ok(()));
        assert_eq!(check("ipv4.ttl"), Ok(()));
        assert!(check("ttl").unwrap_err().contains("is not LAYER.FIELD"));
        assert!(
            check("ipv4[x].ttl")
                .unwrap_err()
                .contains("is not KIND or KIND[N]")
        );
        assert!(
            check("ipv5.ttl")
                .unwrap_err()
                .contains("no layer kind `ipv5`")
        );
        let e = check("ipv4.tll").unwrap_err();
        assert!(
            e.contains("ipv4 has no field `tll`; expected one of"),
            "{e}"
        );
        assert!(e.contains("ttl"), "{e}");
    }
}
