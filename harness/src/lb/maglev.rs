//! Weighted Maglev consistent hashing: the ring a VIP's flows are hashed
//! onto, built in userspace and written to `LB_RING`.
//!
//! # The algorithm
//!
//! Maglev's population (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, §3.4) with Katran's weighted
//! turns ("maglev v2"):
//!
//! 1. The ring has `M` slots, `M` prime.
//! 2. Each real with a non-zero weight has a permutation of the slots made
//!    from two hashes of its key (the address bytes for the control plane):
//!    `offset = h1 % M`, `skip = h2 % (M - 1) + 1`, and its `j`-th preferred
//!    slot is `(offset + j * skip) % M`. Because `M` is prime and
//!    `1 <= skip < M`, that visits every slot exactly once. `h1` and `h2` are
//!    SipHash-1-3 of the key bytes with the fixed keys [`H1_KEYS`] and
//!    [`H2_KEYS`] (the hash only needs to be stable, and SipHash's output is
//!    fixed by its specification).
//! 3. The reals are ordered by key (then id), so the ring depends on the set
//!    of reals and weights, not on the order a caller lists them in: two load
//!    balancers given the same reals build the same ring, which is what
//!    keeps a flow on one real when ECMP moves it between them.
//! 4. Turns go round the reals in that order. Each round, every real adds
//!    its weight to an accumulator; when the accumulator reaches the largest
//!    weight `W`, the real takes a turn (and `W` is subtracted): it claims the
//!    next slot of its permutation that no real has claimed yet. A real of
//!    weight `w` thus takes `w / W` turns per round, i.e. `w` turns for every
//!    `W` of a real of weight `W`, and gets about `w / Σw` of the slots.
//! 5. The population stops when every slot is claimed.
//!
//! A real with weight 0 takes no turns (it is excluded); with no real left,
//! every slot is 0 ("no real", which the datapath drops).
//!
//! Maglev's guarantees follow: with equal weights the slot counts of any two
//! reals differ by at most one, and removing one real of `N` moves its own
//! slots plus a few more (measured in `tests/lb_maglev.rs`).

use siphasher::sip::SipHasher13;

/// The id of a real (`LB_REALS` index); never 0, which means "no real".
pub type RealId = u32;

/// SipHash-1-3 keys of the first hash (the permutation's offset).
pub const H1_KEYS: (u64, u64) = (0x6473_726c_6162_2d31, 0x6d61_676c_6576_2d6f);
/// SipHash-1-3 keys of the second hash (the permutation's skip).
pub const H2_KEYS: (u64, u64) = (0x6473_726c_6162_2d32, 0x6d61_676c_6576_2d73);

/// Why a ring could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// Maglev's permutations need a prime ring size.
    #[error("ring size {0} is not prime")]
    NotPrime(u32),
    /// Real id 0 means "no real" in the ring.
    #[error("real id 0 is reserved (0 in a ring slot means no real)")]
    ZeroId,
    /// The same real was given twice.
    #[error("real id {0} is given twice")]
    DuplicateId(RealId),
    /// Two reals have the same key, so they would have the same permutation.
    #[error("reals {0} and {1} have the same key")]
    DuplicateKey(RealId, RealId),
}

/// One real to place on a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend<'a> {
    /// What the ring's slots hold for it.
    pub id: RealId,
    /// The bytes its permutation is hashed from (for the control plane: the
    /// address, 4 or 16 bytes).
    pub key: &'a [u8],
    /// Relative share of the slots; 0 excludes it.
    pub weight: u32,
}

/// Whether `n` is prime (trial division; ring sizes are at most a few
/// million).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let n = u64::from(n);
    (3..)
        .step_by(2)
        .take_while(|d| d * d <= n)
        .all(|d| n % d != 0)
}

/// A real's permutation of a ring of `ring_size` slots: `(offset, skip)`,
/// its `j`-th preference being `(offset + j * skip) % ring_size`.
pub fn permutation(key: &[u8], ring_size: u32) -> (u32, u32) {
    let h1 = SipHasher13::new_with_keys(H1_KEYS.0, H1_KEYS.1).hash(key);
    let h2 = SipHasher13::new_with_keys(H2_KEYS.0, H2_KEYS.1).hash(key);
    let m = u64::from(ring_size);
    let offset = h1 % m;
    // A ring of one slot has no skip to speak of; 1 keeps the arithmetic sane.
    let skip = if m > 1 { h2 % (m - 1) + 1 } else { 1 };
    (offset as u32, skip as u32)
}

/// Builds a ring of `ring_size` slots for `reals` given as (id, weight), the
/// permutation keyed by the id's 4 big-endian bytes.
pub fn build_ring(reals: &[(RealId, u32)], ring_size: u32) -> Result<Vec<u32>, MaglevError> {
    let keys: Vec<[u8; 4]> = reals.iter().map(|(id, _)| id.to_be_bytes()).collect();
    let backends: Vec<Backend<'_>> = reals
        .iter()
        .zip(&keys)
        .map(|(&(id, weight), key)| Backend { id, key, weight })
        .collect();
    build_ring_keyed(&backends, ring_size)
}

/// Builds a ring of `ring_size` slots for `backends`, each permutation keyed
/// by the backend's own key (see the module docs for the algorithm).
pub fn build_ring_keyed(backends: &[Backend<'_>], ring_size: u32) -> Result<Vec<u32>, MaglevError> {
    if !is_prime(ring_size) {
        return Err(MaglevError::NotPrime(ring_size));
    }
    let mut sorted: Vec<Backend<'_>> = backends.to_vec();
    sorted.sort_by(|a, b| a.key.cmp(b.key).then(a.id.cmp(&b.id)));
    for pair in sorted.windows(2) {
        if pair[0].key == pair[1].key {
            return Err(MaglevError::DuplicateKey(pair[0].id, pair[1].id));
        }
    }
    let mut ids: Vec<RealId> = sorted.iter().map(|b| b.id).collect();
    ids.sort_unstable();
    if ids.first() == Some(&0) {
        return Err(MaglevError::ZeroId);
    }
    if let Some(pair) = ids.windows(2).find(|p| p[0] == p[1]) {
        return Err(MaglevError::DuplicateId(pair[0]));
    }

    let size = ring_size as usize;
    let mut ring = vec![0u32; size];
    sorted.retain(|b| b.weight > 0);
    let Some(max_weight) = sorted.iter().map(|b| u64::from(b.weight)).max() else {
        return Ok(ring);
    };
    let perms: Vec<(u64, u64)> = sorted
        .iter()
        .map(|b| {
            let (offset, skip) = permutation(b.key, ring_size);
            (u64::from(offset), u64::from(skip))
        })
        .collect();
    // next[i]: how far into its permutation real i has looked.
    let mut next = vec![0u64; sorted.len()];
    let mut accumulated = vec![0u64; sorted.len()];
    let mut taken = vec![false; size];
    let mut filled = 0usize;
    let m = u64::from(ring_size);
    loop {
        for (i, backend) in sorted.iter().enumerate() {
            accumulated[i] += u64::from(backend.weight);
            if accumulated[i] < max_weight {
                continue;
            }
            accumulated[i] -= max_weight;
            let (offset, skip) = perms[i];
            // Every slot is in the permutation and the ring is not full yet,
            // so this finds a free one.
            let slot = loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if !taken[slot] {
                    break slot;
                }
            };
            taken[slot] = true;
            ring[slot] = backend.id;
            filled += 1;
            if filled == size {
                return Ok(ring);
            }
        }
    }
}
