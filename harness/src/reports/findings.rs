//! Findings as records for machines: what was checked, what was expected,
//! what was there, and what the packet counted — not free text to parse.

use serde_json::{Map, Value, json};

use crate::{oracles::Finding, runner::PacketReport};

/// One finding as a JSON object: `kind`, the structured parts its kind has
/// (`field`, `expected`, `actual`, `counters`, ...) and `message`, the same
/// text the human report prints.
pub fn record(finding: &Finding) -> Value {
    let mut r = match finding {
        Finding::RunFailed(_) => json!({"kind": "run_failed"}),
        Finding::Verdict { expected, actual } => json!({
            "kind": "verdict",
            "expected": expected.to_string(),
            "actual": actual.to_string(),
        }),
        Finding::VerdictClass {
            expected,
            actual,
            moved,
        } => json!({
            "kind": "verdict",
            "expected": expected,
            "actual": actual.to_string(),
            "counters": moved,
        }),
        Finding::Field {
            path,
            expected,
            actual,
        } => json!({
            "kind": "field",
            "field": path,
            "expected": expected,
            "actual": actual,
        }),
        Finding::State {
            at,
            field,
            expected,
            actual,
        } => json!({
            "kind": "state",
            "at": at,
            "field": field,
            "expected": expected,
            "actual": actual,
        }),
        Finding::After(_) => json!({"kind": "after"}),
        Finding::Unchecked(stream) => json!({"kind": "unchecked", "stream": stream}),
        Finding::Output(diff) => json!({"kind": "output", "diff": diff}),
        Finding::CounterDeltas { expected, actual } => json!({
            "kind": "counters",
            "expected": deltas(expected.iter().map(|(c, d)| (*c, *d))),
            "actual": deltas(actual.iter().map(|(c, d)| (*c, *d))),
        }),
        Finding::Counters { expected, actual } => json!({
            "kind": "counters",
            "expected": deltas([(expected.name(), 1)]),
            "actual": deltas(actual.iter().map(|(c, d)| (c.name(), *d))),
        }),
        Finding::Flow(_) => json!({"kind": "flow"}),
        Finding::Capture(_) => json!({"kind": "capture"}),
        Finding::Stack(_) => json!({"kind": "stack"}),
        Finding::ModesDisagree(_) => json!({"kind": "modes_disagree"}),
    };
    r["message"] = finding.to_string().into();
    r
}

fn deltas<'a>(moved: impl IntoIterator<Item = (&'a str, i64)>) -> Value {
    Value::Object(
        moved
            .into_iter()
            .map(|(name, d)| (name.to_owned(), d.into()))
            .collect::<Map<_, _>>(),
    )
}

/// A packet that did not pass: its number and name, why it was skipped,
/// its findings as records and the contract counters it moved.
pub fn packet(p: &PacketReport) -> Value {
    json!({
        "packet": p.number,
        "name": p.name,
        "skipped": p.skipped,
        "findings": p.findings.iter().map(record).collect::<Vec<_>>(),
        "counters": deltas(
            p.counters
                .iter()
                .map(|(c, d)| (c.name(), *d))
                .chain(p.lb_counters.iter().map(|(c, d)| (c.name(), *d)))
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_keep_their_parts() {
        let r = record(&Finding::State {
            at: "map tallies key 1".into(),
            field: "bytes".into(),
            expected: "117".into(),
            actual: "116".into(),
        });
        assert_eq!(r["kind"], "state");
        assert_eq!(r["field"], "bytes");
        assert_eq!(r["expected"], "117");
        assert_eq!(r["actual"], "116");
        assert_eq!(
            r["message"],
            "after the run: map tallies key 1.bytes: expected 117, actual 116"
        );
        let r = record(&Finding::Unchecked("s".into()));
        assert_eq!(
            (r["kind"].as_str(), r["stream"].as_str()),
            (Some("unchecked"), Some("s"))
        );
    }
}
