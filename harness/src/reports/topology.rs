//! Reports of topology runs: what each client group observed (outcomes,
//! who served, what the load balancer chose), the failing flows, the
//! captures, and the captures written as pcaps.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{
    formats::pcap,
    live::client::FlowOutcome,
    runner::scenario::{FlowReport, TopologyReport},
};

/// How many failing flows the human report details per run.
const FAILURES_SHOWN: usize = 20;

/// Per client group: how many flows ended which way and who served them.
fn observed(report: &TopologyReport) -> Vec<(String, String)> {
    let mut groups: Vec<(String, Vec<&FlowReport>)> = Vec::new();
    for f in &report.flows {
        match groups.iter_mut().find(|(g, _)| *g == f.group) {
            Some((_, flows)) => flows.push(f),
            None => groups.push((f.group.clone(), vec![f])),
        }
    }
    groups
        .into_iter()
        .map(|(group, flows)| {
            let tally = |key: &dyn Fn(&FlowReport) -> Option<String>| {
                let mut m: BTreeMap<String, usize> = BTreeMap::new();
                for f in &flows {
                    if let Some(k) = key(f) {
                        *m.entry(k).or_default() += 1;
                    }
                }
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let outcomes = tally(&|f| Some(f.outcome.kind().to_owned()));
            let served = tally(&|f| f.served_by.clone());
            let chosen = tally(&|f| f.lb_choice.clone());
            let mut line = format!("{} flows: {outcomes}", flows.len());
            if !served.is_empty() {
                let _ = write!(line, "; served by {served}");
            }
            if !chosen.is_empty() {
                let _ = write!(line, "; load balancer chose {chosen}");
            }
            (group, line)
        })
        .collect()
}

/// The snapshot of a topology run: one line per flow — its tuple, how it
/// ended, who served it and what the load balancer chose — and per
/// capture the expectations' outcome. Frame contents stay out (TCP's
/// initial sequence numbers and timestamps differ on every run).
pub fn snapshot(report: &TopologyReport) -> String {
    let mut out = String::new();
    for f in &report.flows {
        let _ = write!(out, "{}", describe_flow(f));
        if let Some(by) = &f.served_by {
            let _ = write!(out, "; served by {by}");
        }
        if let Some(lb) = &f.lb_choice {
            let _ = write!(out, "; load balancer chose {lb}");
        }
        out.push('\n');
    }
    for c in &report.captures {
        let _ = writeln!(
            out,
            "capture {} ({}): {} expectation(s), {} failed",
            c.name,
            c.at,
            c.checks,
            c.findings.len()
        );
    }
    out
}

fn describe_flow(f: &FlowReport) -> String {
    let outcome = match &f.outcome {
        FlowOutcome::Reply { bytes, from } => {
            format!("reply {:?} from {from}", String::from_utf8_lossy(bytes))
        }
        FlowOutcome::Refused(why) | FlowOutcome::Unreachable(why) | FlowOutcome::Failed(why) => {
            format!("{} ({why})", f.outcome.kind())
        }
        FlowOutcome::Timeout => "timeout".to_owned(),
    };
    format!(
        "{} flow {} {} {} → {}: {outcome}",
        f.group,
        f.flow.number,
        f.flow.proto.name(),
        f.flow.src,
        f.flow.dst
    )
}

/// The human report's lines for one topology run labelled `at`.
pub fn human(out: &mut String, at: &str, report: &TopologyReport) {
    for (group, line) in observed(report) {
        let _ = writeln!(out, "\nobserved {at} · {group}: {line}");
    }
    for c in &report.captures {
        let _ = writeln!(
            out,
            "observed {at} · capture {} ({}): {} frames",
            c.name,
            c.at,
            c.frames.len()
        );
    }
    let failing: Vec<&FlowReport> = report
        .flows
        .iter()
        .filter(|f| !f.findings.is_empty())
        .collect();
    for f in failing.iter().take(FAILURES_SHOWN) {
        let _ = writeln!(out, "\nFAILED {at} · {}:", describe_flow(f));
        for finding in &f.findings {
            let _ = writeln!(out, "    {finding}");
        }
    }
    if failing.len() > FAILURES_SHOWN {
        let _ = writeln!(
            out,
            "\n... and {} more failing flows (--format json lists them all)",
            failing.len() - FAILURES_SHOWN
        );
    }
    for c in &report.captures {
        for finding in &c.findings {
            let _ = writeln!(out, "\nFAILED {at} · {finding}");
        }
    }
    for finding in &report.after {
        let _ = writeln!(out, "\nFAILED {at}: {finding}");
    }
}

/// The JSON of one topology run: observations, every failing flow, the
/// captures and the after-run findings.
pub fn json(report: &TopologyReport) -> Value {
    json!({
        "status": "ran",
        "passed": report.passed(),
        "failed": report.failed(),
        "skipped": 0,
        "observed": observed(report)
            .into_iter()
            .map(|(group, line)| json!({"clients": group, "summary": line}))
            .collect::<Vec<_>>(),
        "flows": report
            .flows
            .iter()
            .filter(|f| !f.findings.is_empty())
            .map(|f| json!({
                "clients": f.group,
                "flow": f.flow.number,
                "proto": f.flow.proto.name(),
                "src": f.flow.src.to_string(),
                "dst": f.flow.dst.to_string(),
                "outcome": f.outcome.kind(),
                "served_by": f.served_by,
                "lb_choice": f.lb_choice,
                "findings": f.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
        "captures": report
            .captures
            .iter()
            .map(|c| json!({
                "name": c.name,
                "at": c.at,
                "frames": c.frames.len(),
                "findings": c.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
        "after": report.after.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// JUnit test cases of one topology run: one per flow, one per capture,
/// one per after-run finding, as (name, failure messages).
pub fn cases(report: &TopologyReport) -> Vec<(String, Vec<String>)> {
    let mut cases: Vec<(String, Vec<String>)> = report
        .flows
        .iter()
        .map(|f| {
            (
                format!("{} flow {}", f.group, f.flow.number),
                f.findings.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    cases.extend(report.captures.iter().map(|c| {
        (
            format!("capture {}", c.name),
            c.findings.iter().map(ToString::to_string).collect(),
        )
    }));
    cases.extend(
        report
            .after
            .iter()
            .map(|f| ("after".to_owned(), vec![f.to_string()])),
    );
    cases
}

/// Writes every capture of `report` as `dir/<capture>.pcap`; returns the
/// files written.
pub fn write_captures(dir: &Path, report: &TopologyReport) -> io::Result<Vec<PathBuf>> {
    if report.captures.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir)?;
    report
        .captures
        .iter()
        .map(|c| {
            let path = dir.join(format!("{}.pcap", super::scenario::sanitize(&c.name)));
            pcap::write_file(&path, &c.frames).map_err(io::Error::other)?;
            Ok(path)
        })
        .collect()
}
