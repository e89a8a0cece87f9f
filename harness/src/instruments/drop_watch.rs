//! `drop_watch`: where the kernel drops a namespace's packets, and why —
//! `tp_btf/kfree_skb` with its `skb_drop_reason`, named from the running
//! kernel's BTF (`UDP_CSUM`, `NO_SOCKET`, `IP_CSUM`, ...).

use std::{collections::BTreeMap, io, os::fd::AsFd};

use super::{
    DROP_WATCH_ELF,
    libbpf::{Link, Object, RingBuffer, kernel_enum},
};
use crate::live::netns::Namespace;

/// One dropped packet (named so as not to hide the `Drop` trait).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbDrop {
    /// The reason's name without `SKB_DROP_REASON_` (or its number).
    pub reason: String,
    /// The interface it was on.
    pub ifindex: u32,
    /// Its length when dropped.
    pub len: u32,
    /// Its first bytes from the MAC header (empty when unreadable).
    pub bytes: Vec<u8>,
}

/// Size of `struct record` in drop_watch.bpf.c.
const RECORD: usize = 16 + 64;

/// The watcher of one namespace; detached on drop.
#[derive(Debug)]
pub struct DropWatch {
    records: RingBuffer,
    reasons: BTreeMap<i64, String>,
    _link: Link,
    _object: Object,
}

impl DropWatch {
    /// Watches the drops of `ns`.
    pub fn attach(ns: &Namespace) -> io::Result<Self> {
        let object = Object::load("drop_watch", DROP_WATCH_ELF)?;
        let inode = {
            // SAFETY: fstat on a valid fd into a zeroed stat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::fstat(
                    std::os::fd::AsRawFd::as_raw_fd(&ns.fd().as_fd()),
                    &raw mut st,
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("drop_watch: fstat of namespace {}: {e}", ns.name()),
                ));
            }
            st.st_ino as u32
        };
        let target = object.map_fd("target")?;
        let (key, value) = (0u32, inode);
        // SAFETY: a 4-byte key and value for a u32 → u32 array map.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                target,
                (&raw const key).cast(),
                (&raw const value).cast(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::other(format!(
                "drop_watch: setting the target namespace: {rc}"
            )));
        }
        let link = object.attach_trace("drop_watch")?;
        let records = RingBuffer::new(object.map_fd("drops")?)?;
        Ok(Self {
            records,
            reasons: kernel_enum("skb_drop_reason")?,
            _link: link,
            _object: object,
        })
    }

    /// Every drop since the last call, in order.
    pub fn take(&mut self) -> io::Result<Vec<SkbDrop>> {
        self.records
            .drain()?
            .iter()
            .map(|r| {
                if r.len() < RECORD {
                    return Err(io::Error::other(format!(
                        "drop_watch record of {} bytes, expected {RECORD}",
                        r.len()
                    )));
                }
                let word = |i: usize| u32::from_ne_bytes(r[i..i + 4].try_into().expect("4 bytes"));
                let reason = i64::from(word(0) as i32);
                let name = self.reasons.get(&reason).map_or_else(
                    || reason.to_string(),
                    |n| n.strip_prefix("SKB_DROP_REASON_").unwrap_or(n).to_owned(),
                );
                Ok(SkbDrop {
                    reason: name,
                    ifindex: word(4),
                    len: word(8),
                    bytes: r[16..16 + (word(12) as usize).min(64)].to_vec(),
                })
            })
            .collect()
    }
}
