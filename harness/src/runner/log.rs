//! A run's packet reports as they come: kept where a report needs them,
//! counted where it does not.
//!
//! A passing packet's report holds its output frame, and a run of ten
//! million packets cannot hold ten million of them. Unless the run keeps
//! them (a snapshot shows every packet; a comparison across modes or
//! backends pairs every packet), a passing packet is only counted, and its
//! notes are kept as the report shows them: grouped by their general part
//! (before `;`) with the numbers of the packets that carry them. Everything
//! a report says about a failure or a skip is kept whole.

use super::PacketReport;
use crate::formats::scenario::load::ScenarioPacket;

/// One note of folded packets: its general part (before `;`, where the
/// details of each packet start) and which packets carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteGroup {
    /// The note up to its first `;`.
    pub why: String,
    /// The packets' numbers as ascending, disjoint inclusive ranges.
    pub ranges: Vec<(usize, usize)>,
}

impl NoteGroup {
    /// Packets in the group.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether it has no packet (never, once made).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Adds packet `number`; numbers come in ascending order.
    fn add(&mut self, number: usize) {
        match self.ranges.last_mut() {
            Some((_, end)) if *end + 1 == number => *end = number,
            Some((_, end)) if *end >= number => {}
            _ => self.ranges.push((number, number)),
        }
    }

    /// Takes in another log's ranges of the same note.
    fn merge(&mut self, mut other: Vec<(usize, usize)>) {
        self.ranges.append(&mut other);
        coalesce(&mut self.ranges);
    }
}

/// Sorts inclusive ranges of packet numbers and joins those that overlap
/// or touch, so that each number is in one range at most.
pub fn coalesce(ranges: &mut Vec<(usize, usize)>) {
    ranges.sort_unstable();
    let mut joined: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match joined.last_mut() {
            Some((_, end)) if a <= *end + 1 => *end = (*end).max(b),
            _ => joined.push((a, b)),
        }
    }
    *ranges = joined;
}

/// The notes of packets that passed and were folded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldedNotes {
    /// Folded packets that carried at least one note.
    pub packets: usize,
    /// Their notes, grouped, in the order first seen.
    pub groups: Vec<NoteGroup>,
}

impl FoldedNotes {
    fn add(&mut self, number: usize, notes: &[String]) {
        self.packets += 1;
        for note in notes {
            let why = general_part(note);
            match self.groups.iter_mut().find(|g| g.why == why) {
                Some(g) => g.add(number),
                None => self.groups.push(NoteGroup {
                    why: why.to_owned(),
                    ranges: vec![(number, number)],
                }),
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.packets += other.packets;
        for g in other.groups {
            match self.groups.iter_mut().find(|mine| mine.why == g.why) {
                Some(mine) => mine.merge(g.ranges),
                None => self.groups.push(g),
            }
        }
    }
}

/// A note's general part: details after `;` vary per packet.
pub fn general_part(note: &str) -> &str {
    note.split(';').next().unwrap_or(note)
}

/// The packets of one run, kept or folded into a count.
#[derive(Debug)]
pub struct PacketLog {
    keep_passing: bool,
    /// The decap contract's expectations bind the program (see
    /// [`Self::push`]).
    counters: bool,
    packets: Vec<PacketReport>,
    folded: usize,
    notes: FoldedNotes,
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
            notes: FoldedNotes::default(),
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
                .find(|(s, _)| **s == *packet.stream)
            {
                Some((_, any)) => *any |= checked,
                None => self.streams.push((packet.stream.to_string(), checked)),
            }
        }
        // A packet counted instead under another counter stays whole:
        // `after.counters` totals read it.
        if !self.keep_passing && report.passed() && report.counted_instead.is_none() {
            self.folded += 1;
            if !report.notes.is_empty() {
                self.notes.add(report.number, &report.notes);
            }
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
        self.notes.merge(other.notes);
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

    /// The kept reports, the number folded and the folded packets' notes.
    pub fn into_parts(self) -> (Vec<PacketReport>, usize, Box<FoldedNotes>) {
        (self.packets, self.folded, Box::new(self.notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture::Quirks;

    fn packet() -> ScenarioPacket {
        ScenarioPacket {
            stream: "s".into(),
            number: 1,
            name: "p".into(),
            bytes: vec![0; 60],
            quirks: Quirks::default(),
            expect: None,
            fixture: None,
            expected_output: None,
        }
    }

    fn report(number: usize, notes: &[&str], failed: bool) -> PacketReport {
        PacketReport {
            number,
            name: format!("p{number}"),
            quirks: Quirks::default(),
            skipped: None,
            run: None,
            counters: Vec::new(),
            lb_counters: Vec::new(),
            slots: Vec::new(),
            findings: if failed {
                vec![crate::oracles::Finding::RunFailed("x".into())]
            } else {
                Vec::new()
            },
            notes: notes.iter().map(|n| (*n).to_owned()).collect(),
            counted_instead: None,
        }
    }

    #[test]
    fn passing_packets_with_notes_fold_into_ranges_and_failures_stay_whole() {
        let p = packet();
        let mut a = PacketLog::new(false, false);
        let mut b = a.empty_like();
        // Two workers, packets interleaved; the details after ';' differ.
        for n in 1..=10 {
            let log = if n % 2 == 0 { &mut b } else { &mut a };
            let notes: &[&str] = match n {
                4 => &[],
                7 => &["evicted; flow 7", "other"],
                _ => &["evicted; flow"],
            };
            log.push(report(n, notes, n == 9), &p);
        }
        a.merge(b);
        let (kept, folded, notes) = a.into_parts();
        assert_eq!(kept.iter().map(|r| r.number).collect::<Vec<_>>(), [9]);
        assert_eq!(folded, 9);
        assert_eq!(notes.packets, 8, "packet 4 had no note, 9 failed");
        let groups: Vec<_> = notes
            .groups
            .iter()
            .map(|g| (g.why.as_str(), g.ranges.clone(), g.len()))
            .collect();
        assert_eq!(
            groups,
            [
                ("evicted", vec![(1, 3), (5, 8), (10, 10)], 8),
                ("other", vec![(7, 7)], 1)
            ]
        );
    }

    #[test]
    fn a_log_that_keeps_passing_packets_folds_nothing() {
        let p = packet();
        let mut log = PacketLog::new(true, false);
        log.push(report(1, &["evicted"], false), &p);
        let (kept, folded, notes) = log.into_parts();
        assert_eq!((kept.len(), folded, notes.packets), (1, 0, 0));
    }
}
