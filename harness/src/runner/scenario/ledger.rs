//! Counter movements attributed to packets without a read around each one.
//!
//! Reading a per-CPU counter array costs a syscall, as much as the test run
//! it checks, and reading it around every packet halved the harness's
//! throughput. Where each packet says in advance which counters it must
//! move (its *claim*: the decap counter of its expectation, or the lb
//! model's counters), the counters are read once per batch and the
//! batch's movement is compared with the sum of its claims. A batch that
//! adds up passes every claim in it; one that does not is taken apart by
//! the runner (each packet run again alone, or the batch named).
//!
//! A claim may leave one word open between two (`from`, or `to` instead):
//! a load balancer's packet whose run is the same whether the kernel's
//! connection table still held its flow (`lru_hit`) or had evicted it
//! (`lru_miss`). The batch then adds up if what `to` moved beyond its
//! certain claims is at most the number of such packets, and every word
//! adds up with that many of them counted as `to`.
//!
//! Packets without a claim, and runs that show each packet's counters
//! (snapshots), read around every packet: a batch of one.

/// Packets per batch: small enough that taking a failed batch apart costs
/// little, large enough that the read is a fraction of the batch's cost.
pub(crate) const BATCH: usize = 256;

/// Counter words at the last read and the claims made since.
#[derive(Debug)]
pub(crate) struct Ledger {
    limit: usize,
    last: Vec<u64>,
    claimed: Vec<u64>,
    /// Claims of `from` that may have been `to` instead: (from, to) → how
    /// many. Pairs share no word.
    open: Vec<((usize, usize), u64)>,
    pending: usize,
}

/// A batch whose counters moved otherwise than its packets claimed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The claims, summed, per counter word.
    pub claimed: Vec<u64>,
    /// What the counters moved, per counter word.
    pub moved: Vec<u64>,
}

impl Ledger {
    /// A ledger of batches of up to `limit` packets (at least one), from
    /// the counter words `start`.
    pub fn new(limit: usize, start: Vec<u64>) -> Self {
        Self {
            limit: limit.max(1),
            claimed: vec![0; start.len()],
            last: start,
            open: Vec::new(),
            pending: 0,
        }
    }

    /// Packets claimed since the last read.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Records one packet's claim: each word in `words` moves by one.
    /// Returns whether the batch is full (time to [`settle`](Self::settle)).
    pub fn claim(&mut self, words: impl IntoIterator<Item = usize>) -> bool {
        for word in words {
            if word >= self.claimed.len() {
                self.claimed.resize(word + 1, 0);
            }
            self.claimed[word] += 1;
        }
        self.pending += 1;
        self.pending >= self.limit
    }

    /// Records one packet's claim of `words`, of which `from` may have
    /// been `to` instead (`words` holds `from`). Returns whether the batch
    /// is full.
    pub fn claim_either(
        &mut self,
        words: impl IntoIterator<Item = usize>,
        (from, to): (usize, usize),
    ) -> bool {
        match self.open.iter_mut().find(|(pair, _)| *pair == (from, to)) {
            Some((_, n)) => *n += 1,
            None => {
                debug_assert!(
                    self.open
                        .iter()
                        .all(|((f, t), _)| ![*f, *t].iter().any(|w| [from, to].contains(w))),
                    "open claims share a word"
                );
                self.open.push(((from, to), 1));
            }
        }
        self.claim(words)
    }

    /// Compares the pending claims with the counters `now` and starts a new
    /// batch from them.
    pub fn settle(&mut self, now: Vec<u64>) -> Result<(), Mismatch> {
        let mut claimed = std::mem::take(&mut self.claimed);
        let open = std::mem::take(&mut self.open);
        let moved = self.advance(now);
        self.claimed = vec![0; moved.len()];
        for ((from, to), n) in open {
            // As many of the open claims as `to` moved beyond its certain
            // ones (at most all of them) were `to`.
            let beyond = moved
                .get(to)
                .unwrap_or(&0)
                .saturating_sub(*claimed.get(to).unwrap_or(&0));
            let counted_to = beyond.min(n);
            let words = claimed.len().max(from + 1).max(to + 1);
            claimed.resize(words, 0);
            claimed[from] -= counted_to;
            claimed[to] += counted_to;
        }
        let words = moved.len().max(claimed.len());
        let adds_up =
            (0..words).all(|w| moved.get(w).unwrap_or(&0) == claimed.get(w).unwrap_or(&0));
        if adds_up {
            Ok(())
        } else {
            Err(Mismatch { claimed, moved })
        }
    }

    /// The counters' movement since the last read, `now` becoming the last
    /// read: what one packet run alone moved. Claims pending are dropped,
    /// so settle them first.
    pub fn advance(&mut self, now: Vec<u64>) -> Vec<u64> {
        let moved = now
            .iter()
            .enumerate()
            .map(|(w, v)| v.wrapping_sub(self.last.get(w).copied().unwrap_or(0)))
            .collect();
        self.last = now;
        self.claimed.iter_mut().for_each(|c| *c = 0);
        self.open.clear();
        self.pending = 0;
        moved
    }
}

/// Counter words as `name +n`, those that moved, by `names` (the
/// counters' names in word order); `nothing` when none did.
pub(crate) fn named(words: &[u64], names: &[&str]) -> String {
    let moved: Vec<String> = names
        .iter()
        .zip(words)
        .filter(|(_, n)| **n != 0)
        .map(|(name, n)| format!("{name} +{n}"))
        .collect();
    if moved.is_empty() {
        "nothing".to_owned()
    } else {
        moved.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_adds_up_settles() {
        let mut ledger = Ledger::new(3, vec![5, 0, 7]);
        assert!(!ledger.claim([0]));
        assert!(!ledger.claim([0, 2]));
        assert!(ledger.claim([1]));
        assert_eq!(ledger.settle(vec![7, 1, 8]), Ok(()));
        assert_eq!(ledger.pending(), 0);
        // The next batch starts from that read.
        ledger.claim([2]);
        assert_eq!(ledger.settle(vec![7, 1, 9]), Ok(()));
    }

    #[test]
    fn a_batch_that_moved_otherwise_is_a_mismatch() {
        let mut ledger = Ledger::new(8, vec![0, 0]);
        ledger.claim([0]);
        ledger.claim([0]);
        assert_eq!(
            ledger.settle(vec![1, 1]),
            Err(Mismatch {
                claimed: vec![2, 0],
                moved: vec![1, 1],
            })
        );
        // Nothing claimed, nothing moved: adds up.
        assert_eq!(ledger.settle(vec![1, 1]), Ok(()));
        // A word nobody claimed that moved does not add up.
        assert!(ledger.settle(vec![1, 2]).is_err());
    }

    #[test]
    fn open_claims_add_up_however_many_were_the_other_word() {
        // Words: 0 tx, 1 hit, 2 miss.
        for misses in 0..=2 {
            let mut ledger = Ledger::new(8, vec![0, 0, 0]);
            ledger.claim([0, 2]);
            ledger.claim_either([0, 1], (1, 2));
            ledger.claim_either([0, 1], (1, 2));
            assert_eq!(
                ledger.settle(vec![3, 2 - misses, 1 + misses]),
                Ok(()),
                "{misses}"
            );
        }
    }

    #[test]
    fn open_claims_allow_nothing_else() {
        let open = |ledger: &mut Ledger| {
            ledger.claim([0, 2]);
            ledger.claim_either([0, 1], (1, 2));
        };
        let mut ledger = Ledger::new(8, vec![0, 0, 0]);
        // More misses than open claims could explain.
        open(&mut ledger);
        assert_eq!(
            ledger.settle(vec![2, 0, 3]),
            Err(Mismatch {
                claimed: vec![2, 0, 2],
                moved: vec![2, 0, 3],
            })
        );
        // Fewer misses than the certain claims.
        open(&mut ledger);
        assert!(ledger.settle(vec![4, 1, 3]).is_err());
        // A hit and a miss both counted for the open packet.
        open(&mut ledger);
        assert!(ledger.settle(vec![6, 2, 5]).is_err());
        // Open claims do not outlive their batch.
        open(&mut ledger);
        assert_eq!(ledger.settle(vec![8, 3, 6]), Ok(()));
        ledger.claim([0, 1]);
        assert!(ledger.settle(vec![9, 3, 7]).is_err());
    }

    #[test]
    fn advance_gives_what_one_packet_moved() {
        let mut ledger = Ledger::new(1, vec![3, 4]);
        assert_eq!(ledger.advance(vec![3, 5]), vec![0, 1]);
        assert_eq!(ledger.advance(vec![4, 5]), vec![1, 0]);
    }
}
