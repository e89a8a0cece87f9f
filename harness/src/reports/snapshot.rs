//! Snapshot material for insta: a stable, readable dissection of every packet
//! of a suite run, and the output packets as a pcap that Wireshark opens.
//!
//! Nothing time-dependent goes in here, so a snapshot changes only when the
//! packets, verdicts or counters change.

use std::fmt::Write as _;

use crate::{
    formats::{fixture::FixtureSet, packet, pcap},
    oracles::agree,
    runner::SuiteReport,
    testrun::Quirks,
};

/// The text snapshot of a fixture suite run.
pub fn dissection(set: &FixtureSet, report: &SuiteReport) -> String {
    let inputs: Vec<&[u8]> = set.packets.iter().map(|p| p.bytes.as_slice()).collect();
    dissection_of(&inputs, report)
}

/// The text snapshot: per packet its input (`inputs[number - 1]`), quirks,
/// verdict, counters and output, each packet layer on its own line.
pub fn dissection_of(inputs: &[&[u8]], report: &SuiteReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fixture {} through {} ({})",
        report.fixture,
        report.program,
        report.kind.name()
    );
    for packet in &report.packets {
        let input = inputs.get(packet.number - 1).copied().unwrap_or_default();
        let _ = writeln!(out, "\n#{} {}", packet.number, packet.name);
        if packet.quirks != Quirks::default() {
            let _ = writeln!(out, "  quirks {}", describe_quirks(packet.quirks));
        }
        write_block(&mut out, "in", &packet::dissect(input).to_string());
        if let Some(reason) = &packet.skipped {
            let _ = writeln!(out, "  skip   {reason}");
            continue;
        }
        let Some(run) = &packet.run else { continue };
        match run {
            Err(err) => {
                let _ = writeln!(out, "  error  {err}");
            }
            Ok(result) => {
                let counters: Vec<String> = packet
                    .counters
                    .iter()
                    .map(|(c, d)| format!("{} {d:+}", c.name()))
                    .chain(
                        packet
                            .lb_counters
                            .iter()
                            .map(|(c, d)| format!("{} {d:+}", c.name())),
                    )
                    .collect();
                let moved = match (counters.is_empty(), packet.slots.is_empty()) {
                    (true, true) => "no counter moved".to_owned(),
                    (false, true) => counters.join(", "),
                    (true, false) => format!("slots {}", agree::slot_path(&packet.slots)),
                    (false, false) => format!(
                        "slots {}; {}",
                        agree::slot_path(&packet.slots),
                        counters.join(", ")
                    ),
                };
                let _ = writeln!(out, "  run    {} · {moved}", result.verdict);
                if result.verdict.drops() {
                    let _ = writeln!(out, "  out    (dropped)");
                } else if result.output == input {
                    let _ = writeln!(out, "  out    unchanged");
                } else {
                    write_block(
                        &mut out,
                        "out",
                        &packet::dissect(&result.output).to_string(),
                    );
                }
                if let Some(ctx) = &result.ctx {
                    let _ = writeln!(
                        out,
                        "  ctx    mark {:#x} priority {} cb {:?} tstamp {} ifindex {} ingress_ifindex {}",
                        ctx.mark,
                        ctx.priority,
                        ctx.cb,
                        ctx.tstamp,
                        ctx.ifindex,
                        ctx.ingress_ifindex
                    );
                }
                if let Some(drops) = &result.drops {
                    let _ = writeln!(
                        out,
                        "  stack  {}",
                        if drops.is_empty() {
                            "took it, no drop".to_owned()
                        } else {
                            format!("dropped: {}", drops.join(", "))
                        }
                    );
                }
            }
        }
        for finding in &packet.findings {
            write_block(&mut out, "FAIL", &finding.to_string());
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped",
        report.passed(),
        report.failed(),
        report.skipped()
    );
    out
}

/// The packets that left the program (not dropped), in order, as a pcap.
pub fn output_pcap(report: &SuiteReport) -> Vec<u8> {
    let outputs: Vec<Vec<u8>> = report
        .packets
        .iter()
        .filter_map(|p| match &p.run {
            Some(Ok(result)) if !result.verdict.drops() => Some(result.output.clone()),
            _ => None,
        })
        .collect();
    pcap::to_bytes(&outputs)
}

/// `checksum complete, linear 34`.
pub fn describe_quirks(quirks: Quirks) -> String {
    let mut parts = Vec::new();
    if quirks.checksum_complete {
        parts.push("checksum complete".to_owned());
    }
    if let Some(n) = quirks.linear {
        parts.push(format!("linear {n}"));
    }
    let ctx = quirks.ctx;
    let given = [
        ("mark", ctx.mark.map(|v| format!("{v:#x}"))),
        ("priority", ctx.priority.map(|v| v.to_string())),
        ("ifindex", ctx.ifindex.map(|v| v.to_string())),
        (
            "ingress_ifindex",
            ctx.ingress_ifindex.map(|v| v.to_string()),
        ),
        ("cb", ctx.cb.map(|v| format!("{v:?}"))),
        ("tstamp", ctx.tstamp.map(|v| v.to_string())),
        ("rx_queue_index", ctx.rx_queue_index.map(|v| v.to_string())),
    ];
    parts.extend(
        given
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("ctx {name} {v}"))),
    );
    parts.join(", ")
}

fn write_block(out: &mut String, label: &str, text: &str) {
    for (i, line) in text.lines().enumerate() {
        let label = if i == 0 { label } else { "" };
        let _ = writeln!(out, "  {label:<6} {line}");
    }
}
