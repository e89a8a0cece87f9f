//! A run's packet reports as they come: kept where a report needs them,
//! counted where it does not.
//!
//! A passing packet's report holds its output frame, and a run of ten
//! million packets cannot hold ten million of them. Unless the run keeps
//! them (a snapshot shows every packet; a comparison across modes or
//! backends pairs every packet), a passing packet without notes is only
//! counted. Everything a report says about a failure, a skip or a note is
//! kept whole.

use super::PacketReport;
use crate::formats::scenario::load::ScenarioPacket;

/// The packets of one run, kept or folded into a count.
#[derive(Debug)]
pub struct PacketLog {
    keep_passing: bool,
    /// The decap contract's expectations bind the program (see
    /// [`Self::push`]).
    counters: bool,
    packets: Vec<PacketReport>,
    folded: usize,
    /// Each stream in which a packet ran, and whether any of those was
    /// checked by an expectation.
    streams: Vec<(String, bool)>,
}

impl PacketLog {
    /// A log that keeps every packet if `keep_passing`, else only those
    /// that did not pass or carry notes; `counters`: the program implements
    /// the decap contract, whose fixture expectations then check packets.
    pub fn new(keep_passing: bool, counters: bool) -> Self {
        Self {
            keep_passing,
            counters,
            packets: Vec::new(),
            folded: 0,
            streams: Vec::new(),
        }
    }

    /// Adds the report of `packet`.
    pub fn push(&mut self, report: PacketReport, packet: &ScenarioPacket) {
        if report.skipped.is_none() {
            let checked = packet.expect.is_some() || (packet.fixture.is_some() && self.counters);
            match self
                .streams
                .iter_mut()
                .rev()
                .find(|(s, _)| *s == packet.stream)
            {
                Some((_, any)) => *any |= checked,
                None => self.streams.push((packet.stream.clone(), checked)),
            }
        }
        if !self.keep_passing && report.passed() && report.notes.is_empty() {
            self.folded += 1;
        } else {
            self.packets.push(report);
        }
    }

    /// The reports kept, in order.
    pub fn packets(&self) -> &[PacketReport] {
        &self.packets
    }

    /// Whether no packet ran: every one pushed was skipped (and at least
    /// one was pushed).
    pub fn none_ran(&self) -> bool {
        self.folded == 0
            && !self.packets.is_empty()
            && self.packets.iter().all(|p| p.skipped.is_some())
    }

    /// Streams of which packets ran and none was checked.
    pub fn unchecked_streams(&self) -> impl Iterator<Item = &str> {
        self.streams
            .iter()
            .filter(|(_, checked)| !checked)
            .map(|(s, _)| s.as_str())
    }

    /// An empty log that keeps and folds as this one does (a worker's).
    pub fn empty_like(&self) -> Self {
        Self::new(self.keep_passing, self.counters)
    }

    /// Takes in another log of the same run (a worker's): reports in packet
    /// order, counts added, streams' checks combined.
    pub fn merge(&mut self, other: Self) {
        self.packets.extend(other.packets);
        self.packets.sort_by_key(|p| p.number);
        self.folded += other.folded;
        for (stream, checked) in other.streams {
            match self.streams.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, any)) => *any |= checked,
                None => self.streams.push((stream, checked)),
            }
        }
    }

    /// Reports kept and folded.
    pub fn len(&self) -> usize {
        self.packets.len() + self.folded
    }

    /// Whether no report was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept reports and the number folded.
    pub fn into_parts(self) -> (Vec<PacketReport>, usize) {
        (self.packets, self.folded)
    }
}
