//! `dsrlab run --partition hash:k/n`: machine k of n runs its share of the
//! scenario files, as `cargo nextest run --partition hash:k/n` runs its
//! share of the tests; the shares of 1..n together are every file, once.

use std::{hash::Hasher as _, path::Path, str::FromStr};

use siphasher::sip::SipHasher13;

/// Share `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// This share, 1..=n.
    pub k: u64,
    /// Shares in all.
    pub n: u64,
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}`: expected hash:k/n (or k/n) with 1 <= k <= n, as nextest takes");
        let spec = s.strip_prefix("hash:").unwrap_or(s);
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let (k, n): (u64, u64) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Self { k, n })
    }
}

impl Partition {
    /// Whether the scenario file `path` is in this share. The hash is of
    /// the path as given (a leading `./` removed), with fixed keys, so
    /// every machine that names the files alike splits them alike.
    pub fn holds(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        let text = text.strip_prefix("./").unwrap_or(&text);
        let mut hasher = SipHasher13::new_with_keys(0, 0);
        hasher.write(text.as_bytes());
        hasher.finish() % self.n == self.k - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_nextest_takes_and_refuses_the_rest() {
        assert_eq!("hash:2/3".parse(), Ok(Partition { k: 2, n: 3 }));
        assert_eq!("1/1".parse(), Ok(Partition { k: 1, n: 1 }));
        for bad in ["0/3", "4/3", "hash:1/0", "count:1/2", "1-2", "a/b", ""] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shares_cover_every_file_once() {
        let files: Vec<String> = (0..200).map(|i| format!("scenarios/s{i}.yaml")).collect();
        let n = 3;
        let mut counts = vec![0; files.len()];
        for k in 1..=n {
            let share = Partition { k, n };
            for (i, f) in files.iter().enumerate() {
                counts[i] += usize::from(share.holds(Path::new(f)));
            }
        }
        assert!(counts.iter().all(|&c| c == 1));
        // `./x` and `x` are the same file.
        let share = Partition { k: 1, n: 2 };
        assert_eq!(
            share.holds(Path::new("./scenarios/a.yaml")),
            share.holds(Path::new("scenarios/a.yaml"))
        );
    }
}
