//! `csum_audit`: the checksum auditor. At PRE_ROUTING (netfilter, IPv4 and
//! IPv6), after every TC program, it sums each CHECKSUM_COMPLETE packet
//! from its network header to its end and compares with `skb->csum`. A
//! program that changed bytes without updating `skb->csum` leaves it
//! stale; the stack would trust a hardware sum (and for UDP deliver the
//! packet silently), so only the auditor sees it.

use std::io;

use super::{
    CSUM_AUDIT_ELF,
    libbpf::{Link, Object, RingBuffer},
    skb_state::IpSummed,
};
use crate::formats::packet::checksum;
use crate::live::netns::Namespace;

/// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
const FAMILIES: [u32; 2] = [2, 10];
/// `NF_INET_PRE_ROUTING`.
const PRE_ROUTING: u32 = 0;
/// Early, before conntrack (-200) could drop or change anything.
const PRIORITY: i32 = -300;

/// One skb as audited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// Its checksum state after the programs before PRE_ROUTING.
    pub ip_summed: IpSummed,
    /// Its `csum_level` (meaningful for CHECKSUM_UNNECESSARY).
    pub csum_level: u8,
    /// Its length from the network header.
    pub len: u32,
    /// `skb->csum`, folded to 16 bits.
    pub skb_csum: u16,
    /// What the bytes sum to, folded (`None`: not CHECKSUM_COMPLETE, or not
    /// audited — too long, or unreadable).
    pub sum: Option<u16>,
    /// `csum_complete_sw`.
    pub complete_sw: bool,
    /// The first bytes of the network header.
    pub bytes: Vec<u8>,
}

impl Audit {
    /// Validated checksums the skb claims: `csum_level + 1` when
    /// CHECKSUM_UNNECESSARY, none otherwise.
    pub const fn claimed(&self) -> u8 {
        match self.ip_summed {
            IpSummed::Unnecessary => self.csum_level + 1,
            _ => 0,
        }
    }

    /// Whether `skb->csum` is stale: the bytes sum to something else (0
    /// and 0xffff are the same ones'-complement value).
    pub fn stale(&self) -> bool {
        let norm = |s: u16| if s == 0xffff { 0 } else { s };
        self.sum.is_some_and(|s| norm(s) != norm(self.skb_csum))
    }
}

/// Longest packet (from its network header) the auditor sums in full.
pub const MAX_AUDITED: usize = 64 * 160;

/// Size of `struct record` in csum_audit.bpf.c.
const RECORD: usize = 16 + 64;

/// The auditor attached in one namespace; detached on drop.
#[derive(Debug)]
pub struct CsumAuditor {
    records: RingBuffer,
    _links: Vec<Link>,
    _object: Object,
}

impl CsumAuditor {
    /// Attaches the auditor at PRE_ROUTING of both families in `ns`.
    pub fn attach(ns: &Namespace) -> io::Result<Self> {
        let object = Object::load("csum_audit", CSUM_AUDIT_ELF)?;
        let links = ns.run(|| {
            FAMILIES
                .iter()
                .map(|&pf| object.attach_netfilter("csum_audit", pf, PRE_ROUTING, PRIORITY))
                .collect::<io::Result<Vec<_>>>()
        })??;
        let records = RingBuffer::new(object.map_fd("audits")?)?;
        Ok(Self {
            records,
            _links: links,
            _object: object,
        })
    }

    /// Every skb audited since the last call, in order.
    pub fn take(&mut self) -> io::Result<Vec<Audit>> {
        self.records
            .drain()?
            .iter()
            .map(|r| {
                if r.len() < RECORD {
                    return Err(io::Error::other(format!(
                        "csum_audit record of {} bytes, expected {RECORD}",
                        r.len()
                    )));
                }
                let word = |i: usize| u32::from_ne_bytes(r[i..i + 4].try_into().expect("4 bytes"));
                Ok(Audit {
                    ip_summed: IpSummed::from_raw(r[14]),
                    csum_level: r[15],
                    len: word(0),
                    skb_csum: checksum::fold(u64::from(word(4))),
                    sum: (r[13] != 0).then(|| word(8) as u16),
                    complete_sw: r[12] != 0,
                    bytes: r[16..16 + 64.min(word(0) as usize)].to_vec(),
                })
            })
            .collect()
    }
}
