//! Captures judged against their `expect:` entries: the frames matching a
//! filter, counted (`none`, `count`, `at_least`), and the fields every one
//! of them must have.

use super::Finding;
use crate::formats::{packet::dissect, scenario::model::CaptureExpect};

/// How many failing frames a finding shows before it says "and N more".
const SHOWN: usize = 3;

/// What each expectation in `expect` finds wrong with `frames` (empty: it
/// holds), in order; `capture` names the capture in findings. Fields
/// asked of the matching frames need at least one match: checked on no
/// frame, they would check nothing.
pub fn judge(capture: &str, expect: &[CaptureExpect], frames: &[Vec<u8>]) -> Vec<Vec<Finding>> {
    let dissections: Vec<_> = frames.iter().map(|f| dissect(f)).collect();
    let mut all = Vec::new();
    for e in expect {
        let mut findings = Vec::new();
        let filter = if e.matching.is_empty() {
            "all frames".to_owned()
        } else {
            let parts: Vec<String> = e
                .matching
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            format!("frames with {}", parts.join(", "))
        };
        let matching: Vec<usize> = dissections
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                e.matching
                    .iter()
                    .all(|(path, want)| d.field(path).as_deref() == Some(want.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        let n = matching.len() as u64;
        let numbers = || {
            let shown: Vec<String> = matching
                .iter()
                .take(SHOWN)
                .map(|i| format!("#{}", i + 1))
                .collect();
            let more = matching.len().saturating_sub(SHOWN);
            if more > 0 {
                format!("{} and {more} more", shown.join(", "))
            } else {
                shown.join(", ")
            }
        };
        let count_problem = if e.none && n > 0 {
            Some(format!("expected none, found {n} ({})", numbers()))
        } else if e.count.is_some_and(|c| c != n) {
            Some(format!(
                "expected {}, found {n}",
                e.count.unwrap_or_default()
            ))
        } else if e.at_least.is_some_and(|c| n < c) {
            Some(format!(
                "expected at least {}, found {n}",
                e.at_least.unwrap_or_default()
            ))
        } else if n == 0 && !e.fields.is_empty() && !e.none && e.count.is_none() {
            Some("expected frames whose fields to check, found none".to_owned())
        } else {
            None
        };
        if let Some(problem) = count_problem {
            findings.push(Finding::Capture(format!(
                "capture {capture}: {filter}: {problem} of {} captured",
                frames.len()
            )));
        }
        for (path, want) in &e.fields {
            let wrong: Vec<(usize, Option<String>)> = matching
                .iter()
                .map(|&i| (i, dissections[i].field(path)))
                .filter(|(_, actual)| actual.as_deref() != Some(want.as_str()))
                .collect();
            if let Some((first, actual)) = wrong.first() {
                findings.push(Finding::Capture(format!(
                    "capture {capture}: {filter}: {path}: expected {want} in every one, but {} of {n} differ (first: frame #{}, {})",
                    wrong.len(),
                    first + 1,
                    actual.as_deref().unwrap_or("no such field")
                )));
            }
        }
        all.push(findings);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::packet::PacketSpec;

    fn udp(sport: u16) -> Vec<u8> {
        let spec: PacketSpec = serde_saphyr::from_str(&format!(
            "layers: [{{eth: {{}}}}, {{ipv4: {{src: 198.18.1.1, dst: 198.18.100.1}}}}, {{udp: {{sport: {sport}, dport: 53}}}}]"
        ))
        .unwrap();
        spec.build().unwrap()
    }

    #[test]
    fn counts_and_fields_are_checked_on_the_matching_frames() {
        let frames = vec![udp(1000), udp(1001), udp(53)];
        let by = |k: &str, v: &str| [(k.to_owned(), v.to_owned())].into_iter().collect();
        let none = CaptureExpect {
            matching: by("udp.sport", "53"),
            none: true,
            ..CaptureExpect::default()
        };
        let f = judge("lb-link", &[none], &frames).concat();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].to_string().contains("expected none, found 1 (#3)"),
            "{}",
            f[0]
        );
        let all = CaptureExpect {
            count: Some(3),
            fields: by("udp.dport", "53"),
            ..CaptureExpect::default()
        };
        assert_eq!(judge("x", &[all], &frames), [vec![]]);
        let wrong = CaptureExpect {
            at_least: Some(4),
            fields: by("ipv4.dst", "198.18.100.2"),
            ..CaptureExpect::default()
        };
        assert_eq!(judge("x", &[wrong], &frames)[0].len(), 2);
        // Fields of no frame at all check nothing: that fails.
        let nothing = CaptureExpect {
            matching: by("udp.sport", "7"),
            fields: by("udp.dport", "53"),
            ..CaptureExpect::default()
        };
        let f = judge("x", &[nothing], &frames).concat();
        assert!(f[0].to_string().contains("found none"), "{}", f[0]);
    }
}
