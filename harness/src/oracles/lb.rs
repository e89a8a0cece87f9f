//! The lb contract: what `xdp_lb` (and any program claiming `contract: lb`)
//! must do with each packet, as the reference model (`crate::lb::model`)
//! says, given the same configuration.
//!
//! Per packet: the verdict, the output frame byte for byte (not for drops,
//! whose bytes go nowhere) and every `LB_COUNTERS` increment (a packet moves
//! an outcome counter and, when a real is selected, `lru_hit` or
//! `lru_miss`). After the run: per-VIP and per-real traffic as the model
//! accumulated it, and the connection table on the CPU the run was pinned
//! to. The model and the kernel's results come in; this module never touches
//! the kernel.

use std::collections::BTreeMap;

use dsrlab_abi::lb::{Counter, FlowKey, Traffic};

use super::Finding;
use crate::{
    formats::packet::{self, DissectOptions},
    lb::{
        control::Counters,
        model::{Expected, FlowTable},
    },
    testrun::{RunError, RunResult},
};

/// The counters that moved from `before` to `after` (sums over CPUs).
pub fn counter_deltas(before: &Counters, after: &Counters) -> Vec<(Counter, i64)> {
    after
        .since(before)
        .nonzero()
        .into_iter()
        .map(|(c, d)| (c, d as i64))
        .collect()
}

/// The increments the model expects of a packet, in counter order.
pub fn expected_deltas(expected: &Expected) -> Vec<(Counter, i64)> {
    let mut deltas: Vec<(Counter, i64)> = Vec::with_capacity(2);
    for c in expected.counters() {
        match deltas.iter_mut().find(|(d, _)| *d == c) {
            Some((_, n)) => *n += 1,
            None => deltas.push((c, 1)),
        }
    }
    deltas.sort_by_key(|(c, _)| *c);
    deltas
}

/// Everything in which `run` differs from the model's `expected`; `deltas`
/// are the counters that moved during the run, `gue_port` the port whose
/// UDP payload the output diff dissects as GUE.
pub fn judge(
    expected: &Expected,
    run: &Result<RunResult, RunError>,
    deltas: &[(Counter, i64)],
    gue_port: u16,
) -> Vec<Finding> {
    let result = match run {
        Ok(result) => result,
        Err(err) => return vec![Finding::RunFailed(err.to_string())],
    };
    let mut findings = Vec::new();
    if result.verdict != expected.verdict {
        findings.push(Finding::Verdict {
            expected: expected.verdict,
            actual: result.verdict,
        });
    }
    // A dropped frame's bytes are not observable.
    if !expected.verdict.drops()
        && let Some(diff) = packet::diff_with(
            &expected.output,
            &result.output,
            &DissectOptions { gue_port },
        )
    {
        findings.push(Finding::Output(diff));
    }
    let want = expected_deltas(expected);
    if deltas != want.as_slice() {
        let named = |d: &[(Counter, i64)]| d.iter().map(|(c, n)| (c.name(), *n)).collect();
        findings.push(Finding::CounterDeltas {
            expected: named(&want),
            actual: named(deltas),
        });
    }
    findings
}

/// Per-VIP and per-real traffic the model expects, accumulated packet by
/// packet from [`Expected::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// By VIP number.
    pub vips: BTreeMap<u32, Traffic>,
    /// By real id.
    pub reals: BTreeMap<u32, Traffic>,
}

impl Tally {
    /// Counts what the model says one packet adds.
    pub fn add(&mut self, expected: &Expected) {
        let Some(s) = expected.stats else { return };
        for t in [
            self.vips.entry(s.vip_num).or_default(),
            self.reals.entry(s.real).or_default(),
        ] {
            t.packets += 1;
            t.bytes += s.bytes;
        }
    }
}

/// Compares the traffic of one VIP or real (`what`: `VIP 198.18.0.10:80/tcp`,
/// `real 198.18.10.1`) with the model's.
pub fn judge_traffic(what: &str, expected: Traffic, actual: Traffic) -> Option<Finding> {
    (expected != actual).then(|| {
        Finding::After(format!(
            "{what}: expected {} packets, {} bytes (as the model counted them), actual {} packets, {} bytes",
            expected.packets, expected.bytes, actual.packets, actual.bytes
        ))
    })
}

/// Compares the connection table of the run's CPU with the model's: flows
/// that only one side has, or that name different reals — except flows
/// only the model has when the kernel's table is `full` (it may have
/// evicted them). At most `limit` flows are listed.
pub fn judge_connection_table(
    cpu: usize,
    expected: &FlowTable,
    (actual, full): (&FlowTable, bool),
    limit: usize,
) -> Option<Finding> {
    let mut differing: Vec<String> = expected
        .keys()
        .chain(actual.keys().filter(|k| !expected.contains_key(k)))
        // A full table may have evicted what the model still has (see
        // `lb::eviction`); what it holds must be the model's.
        .filter(|k| expected.get(k) != actual.get(k) && !(full && !actual.contains_key(k)))
        .map(|k| {
            let show = |r: Option<&u32>| r.map_or("none".to_owned(), |r| format!("real {r}"));
            format!(
                "{}: expected {}, actual {}",
                describe_flow(k),
                show(expected.get(k)),
                show(actual.get(k))
            )
        })
        .collect();
    if differing.is_empty() {
        return None;
    }
    differing.sort();
    let mut text = format!(
        "connection table on CPU {cpu}: {} of {} flows differ from the model's",
        differing.len(),
        expected.len().max(actual.len())
    );
    for line in differing.iter().take(limit) {
        text.push_str("\n    ");
        text.push_str(line);
    }
    if differing.len() > limit {
        text.push_str(&format!("\n    … and {} more", differing.len() - limit));
    }
    Some(Finding::After(text))
}

/// `198.18.2.1:40000 > 198.18.0.10:80 tcp`.
pub fn describe_flow(k: &FlowKey) -> String {
    let addr = |a: &[u8; 16]| {
        if k.family == dsrlab_abi::lb::FAMILY_V6 {
            format!("[{}]", std::net::Ipv6Addr::from(*a))
        } else {
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
    };
    let proto = match k.proto {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        p => format!("proto {p}"),
    };
    format!(
        "{}:{} > {}:{} {proto}",
        addr(&k.src),
        u16::from_be(k.sport),
        addr(&k.dst),
        u16::from_be(k.dport)
    )
}
