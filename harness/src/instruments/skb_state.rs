//! `skb_state`: what the kernel handed a program — per skb, its length, how
//! much of it is linear, its checksum state (`ip_summed`, `csum_level`,
//! `csum_valid`, `csum_complete_sw`, `skb->csum`) and its first bytes —
//! recorded by a TC program at the head of an interface's TCX ingress
//! chain, before the program under test.

use std::io;

use super::{
    SKB_STATE_ELF,
    libbpf::{Link, Object, RingBuffer},
};
use crate::live::netns::Namespace;

/// How the skb's checksum was left by the NIC or the stack
/// (`CHECKSUM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpSummed {
    /// `CHECKSUM_NONE`: nothing checked.
    None,
    /// `CHECKSUM_UNNECESSARY`: validated (`csum_level` + 1 checksums).
    Unnecessary,
    /// `CHECKSUM_COMPLETE`: `skb->csum` is the sum of the packet.
    Complete,
    /// `CHECKSUM_PARTIAL`: to be completed on transmit.
    Partial,
}

impl IpSummed {
    /// From the kernel's `CHECKSUM_*` value.
    pub fn from_raw(v: u8) -> Self {
        match v & 3 {
            0 => Self::None,
            1 => Self::Unnecessary,
            2 => Self::Complete,
            _ => Self::Partial,
        }
    }

    /// `none`, `unnecessary`, `complete`, `partial`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Unnecessary => "unnecessary",
            Self::Complete => "complete",
            Self::Partial => "partial",
        }
    }
}

/// One skb as the instrument saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbState {
    /// The interface it arrived on.
    pub ifindex: u32,
    /// `skb->len` (from the MAC header at TC).
    pub len: u32,
    /// Bytes in the linear part (`len - data_len`).
    pub linear: u32,
    /// `skb->csum`.
    pub csum: u32,
    /// `skb->ip_summed`.
    pub ip_summed: IpSummed,
    /// `skb->csum_level`.
    pub csum_level: u8,
    /// `skb->csum_valid`.
    pub csum_valid: bool,
    /// `skb->csum_complete_sw`: the COMPLETE sum was made by software.
    pub csum_complete_sw: bool,
    /// The first bytes (up to 96).
    pub bytes: Vec<u8>,
}

/// Size of `struct record` in skb_state.bpf.c.
const RECORD: usize = 4 * 4 + 4 + 4 + 96;

impl SkbState {
    fn parse(r: &[u8]) -> Option<Self> {
        if r.len() < RECORD {
            return None;
        }
        let word = |i: usize| u32::from_ne_bytes(r[i..i + 4].try_into().expect("4 bytes"));
        let captured = (word(20) as usize).min(96);
        Some(Self {
            ifindex: word(0),
            len: word(4),
            linear: word(8),
            csum: word(12),
            ip_summed: IpSummed::from_raw(r[16]),
            csum_level: r[17],
            csum_valid: r[18] != 0,
            csum_complete_sw: r[19] != 0,
            bytes: r[24..24 + captured].to_vec(),
        })
    }
}

/// The instrument attached at one interface; detached on drop.
#[derive(Debug)]
pub struct SkbStateProbe {
    records: RingBuffer,
    _link: Link,
    _object: Object,
}

impl SkbStateProbe {
    /// Attaches the instrument in the TCX ingress chain of interface
    /// `ifindex` in `ns`: right after the program `after` (an fd: the
    /// NIC's own), or first.
    pub fn attach(
        ns: &Namespace,
        ifindex: u32,
        after: Option<std::os::fd::RawFd>,
    ) -> io::Result<Self> {
        let object = Object::load("skb_state", SKB_STATE_ELF)?;
        let link = ns.run(|| object.attach_tcx_ingress("skb_state", ifindex, after))??;
        let records = RingBuffer::new(object.map_fd("records")?)?;
        Ok(Self {
            records,
            _link: link,
            _object: object,
        })
    }

    /// Every skb recorded since the last call, in order.
    pub fn take(&mut self) -> io::Result<Vec<SkbState>> {
        let raw = self.records.drain()?;
        Self::parse_all(&raw)
    }

    /// Waits until at least `n` skbs have been recorded since the last
    /// call (an event wait on the ring buffer), or `timeout` has passed;
    /// returns what was recorded.
    pub fn wait_for(
        &mut self,
        n: usize,
        timeout: std::time::Duration,
    ) -> io::Result<Vec<SkbState>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = self.take()?;
        while seen.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            seen.extend(Self::parse_all(&self.records.wait(left)?)?);
        }
        Ok(seen)
    }

    fn parse_all(raw: &[Vec<u8>]) -> io::Result<Vec<SkbState>> {
        raw.iter()
            .map(|r| {
                SkbState::parse(r).ok_or_else(|| {
                    io::Error::other(format!(
                        "skb_state record of {} bytes, expected {RECORD}",
                        r.len()
                    ))
                })
            })
            .collect()
    }
}
