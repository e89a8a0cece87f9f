//! Reports of scenario runs: the human summary with failure details, JSON,
//! JUnit XML, and the pcaps (input / expected / actual) of failing packets.

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{
    formats::{
        packet::decapsulated,
        pcap, pcapng,
        scenario::{
            load::{LoadedScenario, ScenarioPacket},
            model::OutputExpect,
        },
    },
    runner::{
        NoteGroup, PacketReport, SuiteReport, coalesce, general_part,
        scenario::{RunOutcome, ScenarioReport},
    },
};

/// One line per scenario, program and mode, then the details of every
/// failure and skip, then the totals.
pub fn human(reports: &[ScenarioReport], written: &[(String, Vec<PathBuf>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<16} {:<9} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "scenario", "program", "mode", "packets", "passed", "failed", "skipped", "time"
    );
    for r in reports {
        for run in &r.runs {
            let (packets, passed, failed, skipped) = match &run.outcome {
                RunOutcome::Ran { report, after } => (
                    (report.packets.len() + report.folded).to_string(),
                    report.passed(),
                    report.failed() + after.len(),
                    report.skipped(),
                ),
                RunOutcome::Topology(report) => (
                    format!("{}f", report.flows.len()),
                    report.passed(),
                    report.failed(),
                    0,
                ),
                RunOutcome::Skipped(_) => ("-".to_owned(), 0, 0, 1),
                RunOutcome::SetupFailed(_) => ("-".to_owned(), 0, 1, 0),
            };
            let _ = writeln!(
                out,
                "{:<28} {:<16} {:<9} {:>7} {:>7} {:>7} {:>7} {:>7.2}s",
                r.name,
                run.program,
                run.mode.name(),
                packets,
                passed,
                failed,
                skipped,
                run.elapsed.as_secs_f64()
            );
        }
    }
    for r in reports {
        for run in &r.runs {
            let at = format!("{} · {} · {}", r.name, run.program, run.mode.name());
            match &run.outcome {
                RunOutcome::Skipped(why) => {
                    let _ = writeln!(out, "\nskipped {at}: {why}");
                }
                RunOutcome::SetupFailed(why) => {
                    let _ = writeln!(out, "\nSETUP FAILED {at}:\n    {why}");
                }
                RunOutcome::Topology(report) => {
                    super::topology::human(&mut out, &at, report);
                    if let Some((_, paths)) = written.iter().find(|(k, _)| *k == at) {
                        for path in paths {
                            let _ = writeln!(out, "    wrote {}", path.display());
                        }
                    }
                }
                RunOutcome::Ran { report, after } => {
                    write_skips(&mut out, &at, report);
                    for p in &report.packets {
                        write_packet(&mut out, &at, p, written);
                    }
                    for f in after {
                        let _ = writeln!(out, "\nFAILED {at}: {f}");
                    }
                }
            }
        }
    }
    let passed: usize = reports.iter().map(ScenarioReport::passed).sum();
    let failed: usize = reports.iter().map(ScenarioReport::failed).sum();
    let skipped: usize = reports.iter().map(ScenarioReport::skipped).sum();
    let _ = writeln!(out, "\n{passed} passed, {failed} failed, {skipped} skipped");
    out
}

/// Skipped packets grouped by reason, so that 20 short frames the kernel
/// refuses read as one line with their numbers; then, the same way, the
/// notes of packets judged with a kernel feature in mind.
fn write_skips(out: &mut String, at: &str, report: &SuiteReport) {
    let packets = &report.packets;
    let skips = packets
        .iter()
        .filter_map(|p| p.skipped.as_deref().map(|w| (p.number, w)));
    write_grouped(out, &format!("skipped {at}"), skips, &[]);
    let notes = packets
        .iter()
        .flat_map(|p| p.notes.iter().map(move |n| (p.number, n.as_str())));
    write_grouped(
        out,
        &format!("noted {at}"),
        notes,
        &report.folded_notes.groups,
    );
}

/// Reasons by their general part with the packets they apply to: those of
/// `items` and the `folded` groups of packets not kept.
fn write_grouped<'a>(
    out: &mut String,
    title: &str,
    items: impl Iterator<Item = (usize, &'a str)>,
    folded: &[NoteGroup],
) {
    let mut reasons: Vec<NoteGroup> = folded.to_vec();
    for (number, why) in items {
        let key = general_part(why);
        match reasons.iter_mut().find(|g| g.why == key) {
            Some(g) => g.ranges.push((number, number)),
            None => reasons.push(NoteGroup {
                why: key.to_owned(),
                ranges: vec![(number, number)],
            }),
        }
    }
    for mut group in reasons {
        coalesce(&mut group.ranges);
        let _ = writeln!(
            out,
            "\n{title}: {} packet(s): {}\n    {}",
            group.len(),
            group.why,
            shown(&group.ranges)
        );
    }
}

/// `#1-#3 #7 #9-#12` for coalesced ranges.
fn shown(ranges: &[(usize, usize)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(start, end)| {
            if end == start {
                format!("#{start}")
            } else {
                format!("#{start}-#{end}")
            }
        })
        .collect();
    parts.join(" ")
}

fn write_packet(out: &mut String, at: &str, p: &PacketReport, written: &[(String, Vec<PathBuf>)]) {
    if p.skipped.is_some() || p.findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nFAILED {at} #{} {}:", p.number, p.name);
    for f in &p.findings {
        for line in f.to_string().lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let key = failure_key(at, p);
    if let Some((_, paths)) = written.iter().find(|(k, _)| *k == key) {
        for path in paths {
            let _ = writeln!(out, "    wrote {}", path.display());
        }
    }
}

fn failure_key(at: &str, p: &PacketReport) -> String {
    format!("{at}#{}", p.number)
}

/// Machine-readable results.
pub fn json(reports: &[ScenarioReport]) -> Value {
    let scenarios: Vec<Value> = reports
        .iter()
        .map(|r| {
            let runs: Vec<Value> = r
                .runs
                .iter()
                .map(|run| {
                    let mut v = json!({"program": run.program, "mode": run.mode.name()});
                    match &run.outcome {
                        RunOutcome::Skipped(why) => {
                            v["status"] = "skipped".into();
                            v["reason"] = why.as_str().into();
                        }
                        RunOutcome::SetupFailed(why) => {
                            v["status"] = "setup_failed".into();
                            v["reason"] = why.as_str().into();
                        }
                        RunOutcome::Topology(report) => {
                            if let (Value::Object(v), Value::Object(t)) =
                                (&mut v, super::topology::json(report))
                            {
                                v.extend(t);
                            }
                        }
                        RunOutcome::Ran { report, after } => {
                            v["status"] = "ran".into();
                            v["passed"] = report.passed().into();
                            v["failed"] = report.failed().into();
                            v["skipped"] = report.skipped().into();
                            v["packets"] = report
                                .packets
                                .iter()
                                .filter(|p| !p.passed())
                                .map(super::findings::packet)
                                .collect::<Vec<_>>()
                                .into();
                            v["after"] = after
                                .iter()
                                .map(super::findings::record)
                                .collect::<Vec<_>>()
                                .into();
                        }
                    }
                    v
                })
                .collect();
            json!({
                "name": r.name,
                "path": r.path,
                "seconds": r.elapsed.as_secs_f64(),
                "passed": r.passed(),
                "failed": r.failed(),
                "skipped": r.skipped(),
                "runs": runs,
            })
        })
        .collect();
    json!({
        "passed": reports.iter().map(ScenarioReport::passed).sum::<usize>(),
        "failed": reports.iter().map(ScenarioReport::failed).sum::<usize>(),
        "skipped": reports.iter().map(ScenarioReport::skipped).sum::<usize>(),
        "scenarios": scenarios,
    })
}

/// JUnit XML: a test suite per scenario, and per program and mode the same
/// test cases whatever happens — `setup`, one per packet (or flow and
/// capture), `after` — so that CI tools can follow a case from run to run.
/// Files written with `--out` are attached to their case
/// (`[[ATTACHMENT|path]]` in its output, as JUnit attachment plugins read
/// them). A scenario that could not be read is a suite of one errored case
/// `load`, with the error.
pub fn junit(
    reports: &[ScenarioReport],
    written: &[(String, Vec<PathBuf>)],
    unreadable: &[(PathBuf, String)],
) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let failed = |message: &str, description: Option<String>| {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(message);
        if let Some(d) = description {
            s.set_description(d);
        }
        s
    };
    let attach = |case: &mut TestCase, key: &str| {
        if let Some((_, paths)) = written.iter().find(|(k, _)| k == key) {
            let lines: Vec<String> = paths
                .iter()
                .map(|p| format!("[[ATTACHMENT|{}]]", p.display()))
                .collect();
            case.set_system_out(lines.join("\n"));
        }
    };
    let mut junit = Report::new("dsrlab");
    for (path, error) in unreadable {
        let mut suite = TestSuite::new(path.display().to_string());
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(error.as_str());
        suite.add_test_case(TestCase::new("load", status));
        junit.add_test_suite(suite);
    }
    for r in reports {
        let mut suite = TestSuite::new(r.name.as_str());
        suite.set_time(r.elapsed);
        for run in &r.runs {
            let class = format!("{}.{}", run.program, run.mode.name());
            let at = format!("{} · {} · {}", r.name, run.program, run.mode.name());
            let mut add = |mut case: TestCase| {
                case.set_classname(class.as_str());
                suite.add_test_case(case);
            };
            let setup = match &run.outcome {
                RunOutcome::Skipped(why) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why.as_str());
                    s
                }
                RunOutcome::SetupFailed(why) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(why.as_str());
                    s
                }
                _ => TestCaseStatus::success(),
            };
            add(TestCase::new("setup", setup));
            match &run.outcome {
                RunOutcome::Skipped(_) | RunOutcome::SetupFailed(_) => {}
                RunOutcome::Topology(report) => {
                    for (name, failures) in super::topology::cases(report) {
                        let status = match failures.first() {
                            None => TestCaseStatus::success(),
                            Some(first) => failed(first, Some(failures.join("\n"))),
                        };
                        let mut case = TestCase::new(name, status);
                        attach(&mut case, &at);
                        add(case);
                    }
                }
                RunOutcome::Ran { report, after } => {
                    if report.folded > 0 {
                        let name =
                            format!("{} passing packets (counted, not listed)", report.folded);
                        let mut case = TestCase::new(name, TestCaseStatus::success());
                        attach(&mut case, &at);
                        add(case);
                    }
                    for p in &report.packets {
                        let status = if let Some(why) = &p.skipped {
                            let mut s = TestCaseStatus::skipped();
                            s.set_message(why.as_str());
                            s
                        } else if p.findings.is_empty() {
                            TestCaseStatus::success()
                        } else {
                            let text: Vec<String> =
                                p.findings.iter().map(ToString::to_string).collect();
                            failed(&text[0], Some(text.join("\n")))
                        };
                        let mut case = TestCase::new(format!("#{} {}", p.number, p.name), status);
                        attach(&mut case, &failure_key(&at, p));
                        add(case);
                    }
                    let status = match after.first() {
                        None => TestCaseStatus::success(),
                        Some(first) => failed(
                            &first.to_string(),
                            Some(
                                after
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                            ),
                        ),
                    };
                    add(TestCase::new("after", status));
                }
            }
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit XML: {e} -->"))
}

/// Writes, for every failing packet, `input.pcap`, `actual.pcap` and (when
/// the expectation determines it) `expected.pcap` under
/// `out/<scenario>/<program>-<mode>/<number>-<name>/`, and every capture of
/// a topology run as `out/<scenario>/<programs>-netns/<capture>.pcap`.
/// Returns, per failure key (or run, for captures), the files written.
///
/// With `pcapng`, the packet files are pcapng (`input.pcapng`, ...) and
/// each packet carries a comment: the packet's name for the input, what
/// was expected of it, and its verdict and findings for the output.
pub fn write_failure_pcaps(
    out: &Path,
    scenario: &LoadedScenario,
    report: &ScenarioReport,
    pcapng: bool,
) -> io::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut written = Vec::new();
    // The failing packets' inputs, read in one pass (a replay is read from
    // its pcap, not held).
    let failing: std::collections::BTreeSet<usize> = report
        .runs
        .iter()
        .filter_map(|run| match &run.outcome {
            RunOutcome::Ran { report, .. } => Some(report),
            _ => None,
        })
        .flat_map(|suite| suite.packets.iter().filter(|p| !p.findings.is_empty()))
        .map(|p| p.number)
        .collect();
    let inputs: std::collections::HashMap<usize, _> = if failing.is_empty() {
        Default::default()
    } else {
        scenario
            .packets
            .iter()
            .enumerate()
            .filter(|(i, _)| failing.contains(&(i + 1)))
            .map(|(i, p)| (i + 1, p))
            .collect()
    };
    for run in &report.runs {
        let at = format!("{} · {} · {}", report.name, run.program, run.mode.name());
        if let RunOutcome::Topology(topology) = &run.outcome {
            let dir = out.join(sanitize(&report.name)).join(format!(
                "{}-{}",
                sanitize(&run.program),
                run.mode.name()
            ));
            let files = super::topology::write_captures(&dir, topology)?;
            if !files.is_empty() {
                written.push((at, files));
            }
            continue;
        }
        let RunOutcome::Ran { report: suite, .. } = &run.outcome else {
            continue;
        };
        for p in suite.packets.iter().filter(|p| !p.findings.is_empty()) {
            let Some(input) = inputs.get(&p.number) else {
                continue;
            };
            let dir = out
                .join(sanitize(&report.name))
                .join(format!("{}-{}", sanitize(&run.program), run.mode.name()))
                .join(format!("{:04}-{}", p.number, sanitize(&p.name)));
            fs::create_dir_all(&dir)?;
            let mut files = Vec::new();
            let mut put = |name: &str, bytes: &[u8], comment: String| -> io::Result<()> {
                let path = if pcapng {
                    let path = dir.join(format!("{name}.pcapng"));
                    fs::write(&path, pcapng::to_bytes(&[(bytes, Some(comment))]))?;
                    path
                } else {
                    let path = dir.join(format!("{name}.pcap"));
                    pcap::write_file(&path, &[bytes]).map_err(io::Error::other)?;
                    path
                };
                files.push(path);
                Ok(())
            };
            let title = format!("{at} #{} {}", p.number, p.name);
            put("input", &input.bytes, format!("input of {title}"))?;
            if let Some(expected) = expected_output(input) {
                put("expected", &expected, format!("expected output of {title}"))?;
            }
            if let Some(Ok(result)) = &p.run {
                let findings: Vec<String> = p.findings.iter().map(ToString::to_string).collect();
                put(
                    "actual",
                    &result.output,
                    format!(
                        "actual output of {title}: {}\n{}",
                        result.verdict,
                        findings.join("\n")
                    ),
                )?;
            }
            written.push((failure_key(&at, p), files));
        }
    }
    Ok(written)
}

/// The output a packet's expectation determines, if it determines one.
fn expected_output(packet: &ScenarioPacket) -> Option<Vec<u8>> {
    if let Some(out) = &packet.expected_output {
        return Some(out.clone());
    }
    match packet.expect.as_ref()?.output? {
        OutputExpect::Unchanged => Some(packet.bytes.clone()),
        OutputExpect::Decapsulated => decapsulated(&packet.bytes),
    }
}

/// `name` with everything but letters, digits, `-`, `_` and `.` made `_`:
/// a file name.
pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_of_kept_and_folded_packets_read_as_one_line_per_reason() {
        let folded = [NoteGroup {
            why: "evicted".to_owned(),
            ranges: vec![(1, 3), (7, 7)],
        }];
        let kept = [
            (4, "evicted; flow 4"),
            (5, "family change refused"),
            (7, "evicted; flow 7"),
            (9, "family change refused; again"),
        ];
        let mut out = String::new();
        write_grouped(&mut out, "noted run", kept.into_iter(), &folded);
        assert_eq!(
            out,
            "\nnoted run: 5 packet(s): evicted\n    #1-#4 #7\
             \n\nnoted run: 2 packet(s): family change refused\n    #5 #9\n"
        );
    }
}
