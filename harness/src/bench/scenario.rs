//! `dsrlab bench --scenario`: any program — a user's object or dsrlab's —
//! measured on a scenario's packets, one case per stream, next to the floor
//! of its hook (xdp_pass or tc_pass) on the same packets in the same run.
//!
//! Every packet of a case is run through the program's oracles first: a
//! case whose packets do not do what the scenario expects is not timed, so
//! a figure always belongs to a program doing its job.

use super::Measurement;
use crate::{
    datapath,
    formats::scenario::{
        load::{LoadedScenario, ProgramSource},
        model::Contract,
    },
    load::{LoadOptions, LoadedProgram, ProgramKind},
    runner::{
        execution::{MarkerCost, TestRun},
        scenario::{
            Judging, chain_unsupported as unsupported, run_packet, set_up, set_up_chain, set_up_lb,
        },
    },
    testrun::Quirks,
};

/// One stream of one program.
#[derive(Clone, Debug)]
pub struct Case {
    /// The program's label.
    pub program: String,
    /// The stream.
    pub stream: String,
    /// The program's figures and its floor's, when the case was timed.
    pub timed: Option<(Measurement, Measurement)>,
    /// Why it was not timed.
    pub refused: Option<String>,
}

/// Measures every program of `scenario` on every stream, `calls` calls per
/// measurement. The thread should be pinned (see `pin_to_cpu`).
pub fn run(scenario: &LoadedScenario, calls: u32) -> Result<Vec<Case>, String> {
    let mut streams: Vec<String> = Vec::new();
    for p in &scenario.packets {
        if !streams.iter().any(|s| **s == *p.stream) {
            streams.push(p.stream.to_string());
        }
    }
    let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
    let mut cases = Vec::new();
    for program in &scenario.programs {
        let lb;
        let owned;
        let chain;
        let loaded: &LoadedProgram = match (&program.source, &program.contract, &program.lb) {
            (ProgramSource::Chain(spec), _, _) => {
                if let Some(why) = unsupported(spec.backend) {
                    cases.extend(streams.iter().map(|stream| Case {
                        program: program.name.clone(),
                        stream: (*stream).to_owned(),
                        timed: None,
                        refused: Some(why.clone()),
                    }));
                    continue;
                }
                chain = set_up_chain(spec)?;
                chain.root()
            }
            (_, Some(Contract::Lb), Some(setup)) => {
                lb = set_up_lb(program, setup)?;
                lb.program()
            }
            _ => {
                owned = set_up(program)?;
                &owned
            }
        };
        let floor = LoadedProgram::builtin(
            match loaded.kind() {
                ProgramKind::Xdp => datapath::XDP_PASS_FRAGS,
                ProgramKind::SchedCls => datapath::TC_PASS,
            },
            &LoadOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        for stream in &streams {
            if matches!(program.source, ProgramSource::Chain(_))
                && let Some(first) = scenario.chain_changes.first()
                && scenario
                    .packets
                    .iter()
                    .skip(first.before)
                    .any(|p| *p.stream == **stream)
            {
                cases.push(Case {
                    program: program.name.clone(),
                    stream: (*stream).to_owned(),
                    timed: None,
                    refused: Some(format!(
                        "the chain changes before it (stream `{}`); a benchmark times the chain \
                         as it is set up",
                        first.stream
                    )),
                });
                continue;
            }
            cases.push(case(
                scenario,
                program.name.as_str(),
                loaded,
                &floor,
                stream,
                calls,
            ));
        }
    }
    Ok(cases)
}

fn case(
    scenario: &LoadedScenario,
    program: &str,
    loaded: &LoadedProgram,
    floor: &LoadedProgram,
    stream: &str,
    calls: u32,
) -> Case {
    let refuse = |why: String| Case {
        program: program.to_owned(),
        stream: stream.to_owned(),
        timed: None,
        refused: Some(why),
    };
    let packets: Vec<(usize, _)> = scenario
        .packets
        .iter()
        .enumerate()
        .filter(|(_, p)| &*p.stream == stream)
        .collect();
    if let Some((_, p)) = packets.iter().find(|(_, p)| p.quirks != Quirks::default()) {
        return refuse(format!(
            "packet {} has quirks or a context, which a benchmark does not emulate",
            p.name
        ));
    }
    // Checked before timed: every packet passes the scenario's oracles.
    let judging = Judging {
        cost: &MarkerCost::default(),
        counters: false,
        watch: None,
        cpu: None,
    };
    for (i, packet) in &packets {
        match run_packet(loaded, &mut TestRun, &judging, i + 1, packet) {
            Ok(report) if report.skipped.is_some() => {
                return refuse(format!(
                    "packet {} cannot run: {}",
                    packet.name,
                    report.skipped.unwrap_or_default()
                ));
            }
            Ok(report) if !report.findings.is_empty() => {
                return refuse(format!(
                    "packet {} does not do what the scenario expects: {}",
                    packet.name, report.findings[0]
                ));
            }
            Ok(_) => {}
            Err(e) => return refuse(e.to_string()),
        }
    }
    let bytes: Vec<&[u8]> = packets.iter().map(|(_, p)| p.bytes.as_slice()).collect();
    let measured = super::measure_cycling(loaded, stream, &bytes, calls)
        .and_then(|m| super::measure_cycling(floor, stream, &bytes, calls).map(|f| (m, f)));
    match measured {
        Ok((mut m, f)) => {
            m.program = program.to_owned();
            Case {
                program: program.to_owned(),
                stream: stream.to_owned(),
                timed: Some((m, f)),
                refused: None,
            }
        }
        Err(e) => refuse(e.to_string()),
    }
}

/// A human table: per program and stream, the program and its floor, the
/// cost above the floor with its noise, and the ratio to the floor.
pub fn table(cases: &[Case]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<20} {:>6} {:>9} {:>9} {:>12} {:>6}",
        "program", "stream", "insns", "mean ns", "floor ns", "above floor", "ratio"
    );
    for c in cases {
        match (&c.timed, &c.refused) {
            (Some((m, f)), _) => {
                let above = m.kernel_ns_mean - f.kernel_ns_mean;
                let _ = writeln!(
                    out,
                    "{:<20} {:<20} {:>6} {:>9.1} {:>9.1} {:>+7.1} ±{:<4.1} {:>6.2}",
                    c.program,
                    c.stream,
                    m.instructions.map_or("?".into(), |n| n.to_string()),
                    m.kernel_ns_mean,
                    f.kernel_ns_mean,
                    above,
                    2.0 * m.standard_error_above(f),
                    m.kernel_ns_mean / f.kernel_ns_mean.max(f64::MIN_POSITIVE),
                );
            }
            (None, why) => {
                let _ = writeln!(
                    out,
                    "{:<20} {:<20} not timed: {}",
                    c.program,
                    c.stream,
                    why.as_deref().unwrap_or("")
                );
            }
        }
    }
    out
}
