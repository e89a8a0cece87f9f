//! A scenario's `expect:` judged against one run: verdict (by name or
//! class), output shape, output fields, output equal to a reference, and the
//! contract counter.

use dsrlab_abi::decap::Counter;

use super::Finding;
use crate::{
    formats::{
        packet::{self, decapsulated, dissect},
        scenario::model::{Expect, OutputExpect},
    },
    testrun::{RunResult, Verdict},
};

/// Whether `verdict` satisfies `wanted`: a kernel name (`XDP_PASS`) or a
/// class (`pass`, `drop`, `tx`, `redirect`) that fits every program type.
pub fn verdict_matches(wanted: &str, verdict: Verdict) -> bool {
    match wanted {
        "pass" => verdict.passes(),
        "drop" => verdict.drops(),
        "tx" => verdict == Verdict::Xdp(3),
        "redirect" => matches!(verdict, Verdict::Xdp(4) | Verdict::Tc(7)),
        name => verdict.name() == name,
    }
}

/// The verdict names and classes `verdict:` accepts.
pub const VERDICT_WORDS: [&str; 19] = [
    "pass",
    "drop",
    "tx",
    "redirect",
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
    "TC_ACT_UNSPEC",
    "TC_ACT_OK",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_SHOT",
    "TC_ACT_PIPE",
    "TC_ACT_STOLEN",
    "TC_ACT_QUEUED",
    "TC_ACT_REPEAT",
    "TC_ACT_REDIRECT",
    "TC_ACT_TRAP",
];

/// Everything in `expect` that `result` violates. `expected_output` is the
/// resolved `equals:` packet; `deltas` the contract counters that moved
/// (`None`: the program has no contract counters).
pub fn judge(
    expect: &Expect,
    input: &[u8],
    expected_output: Option<&[u8]>,
    result: &RunResult,
    deltas: Option<&[(Counter, i64)]>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(wanted) = &expect.verdict
        && !verdict_matches(wanted, result.verdict)
    {
        findings.push(Finding::VerdictClass {
            expected: wanted.clone(),
            actual: result.verdict,
        });
    }
    match expect.output {
        Some(OutputExpect::Unchanged) => {
            if let Some(diff) = packet::diff(input, &result.output) {
                findings.push(Finding::Output(diff));
            }
        }
        Some(OutputExpect::Decapsulated) => match decapsulated(input) {
            Some(want) => {
                if let Some(diff) = packet::diff(&want, &result.output) {
                    findings.push(Finding::Output(diff));
                }
            }
            None => findings.push(Finding::Output(
                "expected a decapsulated output, but the input is not a tunnel packet".into(),
            )),
        },
        None => {}
    }
    if let Some(want) = expected_output
        && expect.equals.is_some()
        && let Some(diff) = packet::diff(want, &result.output)
    {
        findings.push(Finding::Output(diff));
    }
    if !expect.fields.is_empty() {
        let dissection = dissect(&result.output);
        for (path, want) in &expect.fields {
            let actual = dissection.field(path);
            if actual.as_deref() != Some(want.as_str()) {
                findings.push(Finding::Field {
                    path: path.clone(),
                    expected: want.clone(),
                    actual,
                });
            }
        }
    }
    if let (Some(name), Some(deltas)) = (&expect.counter, deltas)
        && let Some(counter) = Counter::from_name(name)
        && deltas != [(counter, 1)]
    {
        findings.push(Finding::Counters {
            expected: counter,
            actual: deltas.to_vec(),
        });
    }
    findings
}
