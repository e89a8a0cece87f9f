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
    testrun::RunResult,
};

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
        && !result.verdict.is(wanted)
    {
        findings.push(Finding::VerdictClass {
            expected: wanted.clone(),
            actual: result.verdict,
            moved: None,
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
        && (expect.equals.is_some() || expect.packet.is_some())
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
    if let Some(want) = &expect.ctx {
        match &result.ctx {
            Some(out) => {
                for (path, expected, actual) in out.mismatches(want) {
                    findings.push(Finding::Field {
                        path,
                        expected,
                        actual: Some(actual),
                    });
                }
            }
            None => findings.push(Finding::RunFailed(
                "the run did not read the skb's context back for `expect.ctx`".into(),
            )),
        }
    }
    if let (Some(want), Some(drops)) = (&expect.drop_reason, &result.drops) {
        let actual = if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(", ")
        };
        if actual != *want {
            findings.push(Finding::Stack(format!(
                "drop reason: expected {want}, actual {actual}"
            )));
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
