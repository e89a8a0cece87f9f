//! Two captures compared packet by packet: each pair of packets through the
//! layer-by-layer [`diff`] (the one the oracles use, so a report line reads
//! like an oracle's), then the packets only one capture has.

use std::fmt::Write as _;

use crate::formats::packet::{diff, dissect};

/// Compares capture `a` (the expected side of each packet diff) with `b`
/// (the actual side), packet by packet in order. Returns the report and
/// whether the captures are equal; an equal pair reports
/// `N packets, all equal`.
pub fn pcap_diff(a_name: &str, a: &[Vec<u8>], b_name: &str, b: &[Vec<u8>]) -> (String, bool) {
    let differing: Vec<(usize, String)> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter_map(|(i, (x, y))| diff(x, y).map(|d| (i + 1, d)))
        .collect();
    if differing.is_empty() && a.len() == b.len() {
        return (
            format!("{a_name} vs {b_name}: {} packets, all equal\n", a.len()),
            true,
        );
    }
    let mut out = format!(
        "{a_name} ({} packets, expected) vs {b_name} ({} packets, actual)\n",
        a.len(),
        b.len()
    );
    for (n, d) in &differing {
        let _ = writeln!(out, "packet {n} differs:");
        for line in d.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    // Packets past the shorter capture: shown dissected, since there is
    // nothing to diff them against.
    let (longer, longer_name) = if a.len() > b.len() {
        (a, a_name)
    } else {
        (b, b_name)
    };
    let common = a.len().min(b.len());
    for (i, p) in longer.iter().enumerate().skip(common) {
        let _ = writeln!(out, "packet {} only in {longer_name}:", i + 1);
        for line in dissect(p).to_string().lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let mut summary = format!("{} of {common} packets differ", differing.len());
    if longer.len() > common {
        let _ = write!(summary, ", {} only in {longer_name}", longer.len() - common);
    }
    let _ = writeln!(out, "{summary}");
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::packet::PacketSpec;

    fn build(yaml: &str) -> Vec<u8> {
        serde_saphyr::from_str::<PacketSpec>(yaml)
            .unwrap()
            .build()
            .unwrap()
    }

    fn tcp(ttl: u8) -> Vec<u8> {
        build(&format!(
            "layers: [eth, {{ipv4: {{ttl: {ttl}}}}}, tcp, {{payload: {{len: 8}}}}]"
        ))
    }

    #[test]
    fn equal_captures_say_so() {
        let a = vec![tcp(64), tcp(63)];
        let (report, equal) = pcap_diff("a.pcap", &a, "b.pcap", &a.clone());
        assert!(equal);
        assert_eq!(report, "a.pcap vs b.pcap: 2 packets, all equal\n");
        let (report, equal) = pcap_diff("a", &[], "b", &[]);
        assert!(equal);
        assert_eq!(report, "a vs b: 0 packets, all equal\n");
    }

    #[test]
    fn differing_packets_are_diffed_layer_by_layer() {
        let a = vec![tcp(64), tcp(64), tcp(64)];
        let b = vec![tcp(64), tcp(63), tcp(64)];
        let (report, equal) = pcap_diff("in.pcap", &a, "out.pcap", &b);
        assert!(!equal);
        assert_eq!(
            report,
            "in.pcap (3 packets, expected) vs out.pcap (3 packets, actual)\n\
             packet 2 differs:\n\
             \x20   ipv4.ttl: expected 64, actual 63\n\
             \x20   ipv4.csum: expected 0xee9f, actual 0xef9f\n\
             1 of 3 packets differ\n",
            "{report}"
        );
    }

    #[test]
    fn packets_in_one_capture_only_are_listed_from_either_side() {
        let a = vec![tcp(64)];
        let b = vec![tcp(64), tcp(9)];
        let (report, equal) = pcap_diff("a.pcap", &a, "b.pcap", &b);
        assert!(!equal);
        assert!(
            report.contains("packet 2 only in b.pcap:\n    eth "),
            "{report}"
        );
        assert!(report.contains("\n    ipv4 "), "{report}");
        assert!(
            report.ends_with("0 of 1 packets differ, 1 only in b.pcap\n"),
            "{report}"
        );

        let (report, equal) = pcap_diff("a.pcap", &b, "b.pcap", &a);
        assert!(!equal);
        assert!(report.contains("packet 2 only in a.pcap:"), "{report}");
        assert!(report.ends_with(", 1 only in a.pcap\n"), "{report}");
    }
}
