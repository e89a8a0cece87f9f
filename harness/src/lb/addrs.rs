//! The VIP address table (`LB_ADDRS`, layout in `dsrlab_abi::lb`): which
//! slots the plane's `LB_VIPS` entries give, and the writes that take the
//! table from one state to the next.
//!
//! The table only speeds lookups up — an `EXACT` slot answers what
//! `LB_VIPS` would, an `EMPTY` one says no entry exists, a `SHARED` one
//! sends the datapath to `LB_VIPS` — so the reference model has no copy of
//! it; the plane keeps it equal to `LB_VIPS` and the fuzzer's control events
//! check that it does.

use std::collections::BTreeMap;

use dsrlab_abi::lb::{ADDR_VIPS, AddrEntry, AddrVip, VipKey, VipMeta, addr_kind, addr_slot};

use super::control::Write;

/// An address as the table keys it: its words (see [`words`]) and family.
type AddrKey = ([u32; 4], u8);

/// The table's non-empty slots for a set of `LB_VIPS` entries.
pub fn table(entries: impl IntoIterator<Item = (VipKey, VipMeta)>) -> BTreeMap<u32, AddrEntry> {
    // Slot → address → its entries.
    let mut by_slot: BTreeMap<u32, BTreeMap<AddrKey, Vec<AddrVip>>> = BTreeMap::new();
    for (key, meta) in entries {
        let words = words(&key.addr);
        by_slot
            .entry(addr_slot(&words))
            .or_default()
            .entry((words, key.family))
            .or_default()
            .push(AddrVip {
                meta,
                port_be: key.port,
                proto: key.proto,
                pad: 0,
            });
    }
    by_slot
        .into_iter()
        .map(|(slot, addrs)| {
            let entry = match addrs.into_iter().collect::<Vec<_>>().as_slice() {
                [((addr, family), vips)] if vips.len() <= ADDR_VIPS => {
                    let mut inline = [AddrVip::default(); ADDR_VIPS];
                    inline[..vips.len()].copy_from_slice(vips);
                    AddrEntry {
                        addr: *addr,
                        family: *family,
                        kind: addr_kind::EXACT,
                        count: vips.len() as u8,
                        pad: 0,
                        vips: inline,
                    }
                }
                _ => AddrEntry {
                    kind: addr_kind::SHARED,
                    ..AddrEntry::default()
                },
            };
            (slot, entry)
        })
        .collect()
}

/// The writes that take the table from `old` to `new`: a changed `EXACT`
/// slot first becomes `SHARED` (only `kind` changes), new `EXACT` contents
/// are written under `SHARED` before `kind` becomes `EXACT` (only `kind`
/// changes), so that the datapath, which reads `kind` first and the
/// contents only under `EXACT`, never uses contents being rewritten.
pub fn rewrite(old: &BTreeMap<u32, AddrEntry>, new: &BTreeMap<u32, AddrEntry>) -> Vec<Write> {
    let empty = AddrEntry::default();
    let mut slots: Vec<u32> = old.keys().chain(new.keys()).copied().collect();
    slots.sort_unstable();
    slots.dedup();
    let mut writes = Vec::new();
    for slot in slots {
        let from = old.get(&slot).unwrap_or(&empty);
        let to = new.get(&slot).unwrap_or(&empty);
        if from == to {
            continue;
        }
        let shared = |e: &AddrEntry| AddrEntry {
            kind: addr_kind::SHARED,
            ..*e
        };
        // Inline contents are read only under EXACT: hide them before they
        // change, and show new ones only once they are all written.
        let mut steps = Vec::with_capacity(3);
        if from.kind == addr_kind::EXACT {
            steps.push(shared(from));
        }
        if to.kind == addr_kind::EXACT {
            steps.push(shared(to));
        }
        steps.push(*to);
        let mut current = *from;
        for step in steps {
            if step != current {
                writes.push(Write::Addr { slot, entry: step });
                current = step;
            }
        }
    }
    writes
}

/// An address's 16 network-order bytes as four words in memory order.
fn words(addr: &[u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([
            addr[4 * i],
            addr[4 * i + 1],
            addr[4 * i + 2],
            addr[4 * i + 3],
        ])
    })
}

#[cfg(test)]
mod tests {
    use dsrlab_abi::lb::{FAMILY_V4, FAMILY_V6};

    use super::*;

    fn key(addr: [u8; 16], port: u16, proto: u8, family: u8) -> VipKey {
        VipKey {
            addr,
            port: port.to_be(),
            proto,
            family,
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    fn meta(n: u32) -> VipMeta {
        VipMeta {
            flags: 0,
            vip_num: n,
        }
    }

    /// Two addresses with the same slot (found by search, so the test does
    /// not depend on the hash's constants).
    fn colliding() -> ([u8; 16], [u8; 16]) {
        let a = v4([198, 18, 0, 10]);
        let slot = addr_slot(&words(&a));
        let b = (1..=255u8)
            .map(|x| v4([198, 18, 1, x]))
            .find(|b| addr_slot(&words(b)) == slot)
            .expect("256 slots: some address among 255 shares one");
        (a, b)
    }

    #[test]
    fn one_address_with_few_entries_is_exact_and_inline() {
        let a = v4([198, 18, 0, 10]);
        let t = table([
            (key(a, 80, 6, FAMILY_V4), meta(0)),
            (key(a, 0, 1, FAMILY_V4), meta(64)),
        ]);
        assert_eq!(t.len(), 1);
        let (&slot, e) = t.iter().next().unwrap();
        assert_eq!(slot, addr_slot(&words(&a)));
        assert_eq!(
            (e.kind, e.family, e.count),
            (addr_kind::EXACT, FAMILY_V4, 2)
        );
        assert_eq!(e.addr, words(&a));
        assert_eq!((e.vips[0].port_be, e.vips[0].proto), (80u16.to_be(), 6));
        assert_eq!(e.vips[0].meta, meta(0));
        assert_eq!(e.vips[2], AddrVip::default());
    }

    #[test]
    fn a_shared_slot_or_too_many_entries_sends_lookups_to_the_hash_map() {
        let (a, b) = colliding();
        let t = table([
            (key(a, 80, 6, FAMILY_V4), meta(0)),
            (key(b, 80, 6, FAMILY_V4), meta(1)),
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.values().next().unwrap().kind, addr_kind::SHARED);

        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 0x10;
        let many = (1..=ADDR_VIPS as u16 + 1).map(|p| (key(v6, p, 17, FAMILY_V6), meta(p.into())));
        let t = table(many);
        assert_eq!(t.values().next().unwrap().kind, addr_kind::SHARED);
    }

    #[test]
    fn a_slot_is_rewritten_in_three_steps_under_shared() {
        let a = v4([198, 18, 0, 10]);
        let before = table([(key(a, 80, 6, FAMILY_V4), meta(0))]);
        let after = table([
            (key(a, 80, 6, FAMILY_V4), meta(0)),
            (key(a, 443, 6, FAMILY_V4), meta(1)),
        ]);
        let writes = rewrite(&before, &after);
        let entries: Vec<AddrEntry> = writes
            .iter()
            .map(|w| match w {
                Write::Addr { entry, .. } => *entry,
                other => panic!("not an address write: {other:?}"),
            })
            .collect();
        assert_eq!(entries.len(), 3);
        // 1: only the kind changes.
        assert_eq!(entries[0].kind, addr_kind::SHARED);
        assert_eq!(entries[0].count, 1);
        // 2: the contents change under SHARED.
        assert_eq!((entries[1].kind, entries[1].count), (addr_kind::SHARED, 2));
        // 3: only the kind changes, to the final one.
        assert_eq!(entries[2], after.values().copied().next().unwrap());

        // From and to empty: two writes each (nothing to hide at first /
        // nothing inline at last), none when nothing changes.
        assert_eq!(rewrite(&BTreeMap::new(), &after).len(), 2);
        assert_eq!(rewrite(&after, &BTreeMap::new()).len(), 2);
        assert!(rewrite(&after, &after).is_empty());
    }
}
