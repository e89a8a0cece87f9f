//! The context a program is run with, beyond the packet's bytes: the skb
//! fields a test run may set (`mark`, `priority`, `ifindex`, `cb`, ...) and
//! the XDP metadata (`ingress_ifindex`, `rx_queue_index`).
//!
//! Scenarios write it per scenario, stream and packet ([`CtxSpec`]); the
//! levels merge field by field into one [`Ctx`] per packet, which the
//! test-run engine turns into the kernel's `struct __sk_buff` or
//! `struct xdp_md`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Number of `skb->cb` words a program sees.
pub const CB_WORDS: usize = 5;

/// Context fields as a scenario writes them; fields not given are left as
/// a lower level set them (packet over stream over scenario), or zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtxSpec {
    /// `skb->mark` (TC programs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// `skb->priority` (TC programs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// `skb->ifindex`, the device the skb is on (TC programs). The kernel
    /// looks it up in the harness's namespace; 1 is `lo`, which always
    /// exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// `ingress_ifindex`: the device the packet came in on (TC and XDP;
    /// for XDP the device must exist, as for `ifindex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ifindex: Option<u32>,
    /// `skb->cb[0..5]`, the scratch words shared along a chain of TC
    /// programs (TC programs; fewer than five leave the rest zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cb: Option<Vec<u32>>,
    /// `skb->tstamp` in ns (TC programs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tstamp: Option<u64>,
    /// `rx_queue_index`: the receive queue (XDP programs; it must exist on
    /// `ingress_ifindex`, so `lo` has only queue 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_queue_index: Option<u32>,
}

impl CtxSpec {
    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The names of the fields it sets, in declaration order.
    pub fn fields(&self) -> Vec<&'static str> {
        let set = [
            ("mark", self.mark.is_some()),
            ("priority", self.priority.is_some()),
            ("ifindex", self.ifindex.is_some()),
            ("ingress_ifindex", self.ingress_ifindex.is_some()),
            ("cb", self.cb.is_some()),
            ("tstamp", self.tstamp.is_some()),
            ("rx_queue_index", self.rx_queue_index.is_some()),
        ];
        set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect()
    }

    /// Fields only skb programs have.
    pub const SKB_ONLY: [&'static str; 5] = ["mark", "priority", "ifindex", "cb", "tstamp"];
    /// Fields only XDP programs have.
    pub const XDP_ONLY: [&'static str; 1] = ["rx_queue_index"];
}

/// The context of one packet, merged from every level: what the test run
/// is given (`None`: zero) and whether the context is read back after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ctx {
    /// `skb->mark`.
    pub mark: Option<u32>,
    /// `skb->priority`.
    pub priority: Option<u32>,
    /// `skb->ifindex`.
    pub ifindex: Option<u32>,
    /// `ingress_ifindex` (skb and XDP).
    pub ingress_ifindex: Option<u32>,
    /// `skb->cb`.
    pub cb: Option<[u32; CB_WORDS]>,
    /// `skb->tstamp`.
    pub tstamp: Option<u64>,
    /// XDP `rx_queue_index`.
    pub rx_queue_index: Option<u32>,
    /// The packet's expectation reads the context after the run.
    pub read_back: bool,
}

impl Ctx {
    /// `self` with the fields `over` sets (later wins). `cb` must have at
    /// most [`CB_WORDS`] words (the loader checks it).
    pub fn merged(self, over: &CtxSpec) -> Self {
        let cb = over.cb.as_ref().map(|words| {
            let mut cb = [0; CB_WORDS];
            for (slot, w) in cb.iter_mut().zip(words) {
                *slot = *w;
            }
            cb
        });
        Self {
            mark: over.mark.or(self.mark),
            priority: over.priority.or(self.priority),
            ifindex: over.ifindex.or(self.ifindex),
            ingress_ifindex: over.ingress_ifindex.or(self.ingress_ifindex),
            cb: cb.or(self.cb),
            tstamp: over.tstamp.or(self.tstamp),
            rx_queue_index: over.rx_queue_index.or(self.rx_queue_index),
            read_back: self.read_back,
        }
    }

    /// Whether the run needs a context at all (some field set, or read
    /// back): without one the kernel's defaults apply.
    pub fn is_used(&self) -> bool {
        *self != Self::default()
    }
}

/// An skb's context after a test run: the fields the kernel copies back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbCtxOut {
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->priority`.
    pub priority: u32,
    /// `skb->ifindex`.
    pub ifindex: u32,
    /// `ingress_ifindex`.
    pub ingress_ifindex: u32,
    /// `skb->cb`.
    pub cb: [u32; CB_WORDS],
    /// `skb->tstamp`.
    pub tstamp: u64,
}

impl SkbCtxOut {
    /// Each field `expected` sets that differs: (field, expected, actual).
    pub fn mismatches(&self, expected: &CtxSpec) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut check = |name: &str, want: Option<u64>, got: u64| {
            if let Some(want) = want
                && want != got
            {
                out.push((format!("skb.{name}"), hex_and_dec(want), hex_and_dec(got)));
            }
        };
        check("mark", expected.mark.map(u64::from), u64::from(self.mark));
        check(
            "priority",
            expected.priority.map(u64::from),
            u64::from(self.priority),
        );
        check(
            "ifindex",
            expected.ifindex.map(u64::from),
            u64::from(self.ifindex),
        );
        check(
            "ingress_ifindex",
            expected.ingress_ifindex.map(u64::from),
            u64::from(self.ingress_ifindex),
        );
        check("tstamp", expected.tstamp, self.tstamp);
        if let Some(words) = &expected.cb {
            for (i, &want) in words.iter().enumerate() {
                let got = self.cb.get(i).copied().unwrap_or(0);
                if want != got {
                    out.push((
                        format!("skb.cb[{i}]"),
                        hex_and_dec(want.into()),
                        hex_and_dec(got.into()),
                    ));
                }
            }
        }
        out
    }
}

/// `4660 (0x1234)`: marks are written in hex, counts in decimal.
fn hex_and_dec(v: u64) -> String {
    format!("{v} ({v:#x})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_merge_field_by_field() {
        let scenario = CtxSpec {
            mark: Some(1),
            priority: Some(7),
            ..CtxSpec::default()
        };
        let packet = CtxSpec {
            mark: Some(2),
            cb: Some(vec![9]),
            ..CtxSpec::default()
        };
        let ctx = Ctx::default().merged(&scenario).merged(&packet);
        assert_eq!(ctx.mark, Some(2));
        assert_eq!(ctx.priority, Some(7));
        assert_eq!(ctx.cb, Some([9, 0, 0, 0, 0]));
        assert!(ctx.is_used());
        assert!(!Ctx::default().is_used());
        assert_eq!(packet.fields(), ["mark", "cb"]);
    }

    #[test]
    fn mismatches_name_the_field_in_both_notations() {
        let out = SkbCtxOut {
            mark: 0x10,
            cb: [1, 2, 0, 0, 0],
            ..SkbCtxOut::default()
        };
        let want = CtxSpec {
            mark: Some(0x20),
            cb: Some(vec![1, 3]),
            ..CtxSpec::default()
        };
        assert_eq!(
            out.mismatches(&want),
            [
                ("skb.mark".into(), "32 (0x20)".into(), "16 (0x10)".into()),
                ("skb.cb[1]".into(), "3 (0x3)".into(), "2 (0x2)".into())
            ]
        );
        assert!(out.mismatches(&CtxSpec::default()).is_empty());
    }
}
