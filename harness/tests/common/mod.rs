//! Helpers the scenario tests share.

use dsrlab::{
    oracles::Finding,
    runner::scenario::{RunOutcome, ScenarioReport},
};

/// One run's findings: per packet (name → findings, packets without any
/// left out) and after the run.
pub type RunFindings = (Vec<(String, Vec<Finding>)>, Vec<Finding>);

/// The findings of every run of `report`, in run order; a run that did not
/// happen fails the test with its outcome.
pub fn findings(report: &ScenarioReport) -> Vec<RunFindings> {
    report
        .runs
        .iter()
        .map(|run| {
            let RunOutcome::Ran {
                report: suite,
                after,
            } = &run.outcome
            else {
                panic!("{} did not run: {:?}", run.program, run.outcome);
            };
            let packets = suite
                .packets
                .iter()
                .filter(|p| !p.findings.is_empty())
                .map(|p| (p.name.clone(), p.findings.clone()))
                .collect();
            (packets, after.clone())
        })
        .collect()
}
