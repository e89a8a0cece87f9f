//! The human summary: one line per suite, then the failing packets with their
//! findings.

use std::fmt::Write as _;

use crate::runner::SuiteReport;

/// A fixed-width table of suites with pass/fail/skip counts, followed by the
/// details of every failing or skipped packet.
pub fn summary(reports: &[SuiteReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<24} {:>7} {:>7} {:>7} {:>7}",
        "fixture", "program", "packets", "passed", "failed", "skipped"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<22} {:<24} {:>7} {:>7} {:>7} {:>7}",
            r.fixture,
            r.program,
            r.packets.len(),
            r.passed(),
            r.failed(),
            r.skipped()
        );
    }
    for r in reports {
        for p in &r.packets {
            if let Some(reason) = &p.skipped {
                let _ = writeln!(
                    out,
                    "\nskipped {}#{} {} on {}: {reason}",
                    r.fixture, p.number, p.name, r.program
                );
            } else if !p.findings.is_empty() {
                let _ = writeln!(
                    out,
                    "\nFAILED {}#{} {} on {}:",
                    r.fixture, p.number, p.name, r.program
                );
                for f in &p.findings {
                    for line in f.to_string().lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
        }
    }
    let (passed, failed, skipped) = reports.iter().fold((0, 0, 0), |(p, f, s), r| {
        (p + r.passed(), f + r.failed(), s + r.skipped())
    });
    let _ = writeln!(out, "\n{passed} passed, {failed} failed, {skipped} skipped");
    out
}
