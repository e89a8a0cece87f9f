//! Reading bytes back: `decode` for reports, `compare` against an
//! expectation, per-CPU totals.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::types::{Member, Ty};
use super::{
    Mismatch, Notation, ObjectTypes, TypeRef, get_bits, hex_string, join, set_bits, shown,
};

impl ObjectTypes {
    pub(super) fn decode_at(&self, r: TypeRef, b: &[u8]) -> Value {
        match self.ty(r) {
            Ty::Int { .. } => int_json(self.read_int(r, b)),
            Ty::Enum { .. } => self.enum_json(r, self.read_int(r, b)),
            Ty::Struct { name, .. } if name.ends_with("in6_addr") && b.len() == 16 => {
                <[u8; 16]>::try_from(b)
                    .map_or(Value::Null, |a| Ipv6Addr::from(a).to_string().into())
            }
            Ty::Struct { name, .. } if name.ends_with("in_addr") && b.len() == 4 => {
                <[u8; 4]>::try_from(b).map_or(Value::Null, |a| Ipv4Addr::from(a).to_string().into())
            }
            Ty::Struct { .. } => {
                let mut map = Map::new();
                self.decode_fields(r, b, 0, &mut map);
                Value::Object(map)
            }
            Ty::Array { elem, .. } => match text(b).filter(|_| self.is_char_array(r)) {
                Some(t) => Value::String(t),
                None => {
                    let es = self.size_of(*elem).max(1);
                    Value::Array(
                        b.chunks_exact(es)
                            .map(|c| self.decode_at(*elem, c))
                            .collect(),
                    )
                }
            },
            Ty::Float { .. } => {
                let f = match b.len() {
                    4 => <[u8; 4]>::try_from(b)
                        .map(f32::from_le_bytes)
                        .map(f64::from)
                        .ok(),
                    8 => <[u8; 8]>::try_from(b).map(f64::from_le_bytes).ok(),
                    _ => None,
                };
                f.and_then(serde_json::Number::from_f64)
                    .map_or_else(|| hex_string(b).into(), Value::Number)
            }
            Ty::Ptr { .. } | Ty::Other { .. } => Value::String(hex_string(b)),
        }
    }

    /// The members of `r` at `base` bits into `b` into `map`; anonymous
    /// members' fields at the same level, as `encode` takes them. A union
    /// shows its first largest member, which covers all its bytes.
    fn decode_fields(&self, r: TypeRef, b: &[u8], base: u32, map: &mut Map<String, Value>) {
        let Ty::Struct { members, union, .. } = self.ty(r) else {
            return;
        };
        let shown = members
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, m)| self.size_of(m.ty))
            .map(|(i, _)| i);
        for (_, m) in members
            .iter()
            .enumerate()
            .filter(|(i, _)| !union || Some(*i) == shown)
        {
            let bit_offset = base + m.bit_offset;
            let Some(name) = &m.name else {
                self.decode_fields(m.ty, b, bit_offset, map);
                continue;
            };
            let value = if m.bits > 0 {
                let v = get_bits(b, bit_offset, m.bits, self.int_signed(m.ty));
                self.enum_json(m.ty, v)
            } else {
                let start = (bit_offset / 8) as usize;
                match b.get(start..start + self.size_of(m.ty)) {
                    Some(slot) => self.decode_at(m.ty, slot),
                    None => continue,
                }
            };
            map.insert(name.clone(), value);
        }
    }

    /// An enumerator's name, or the number (also for plain integers).
    fn enum_json(&self, r: TypeRef, v: i128) -> Value {
        match self.ty(r) {
            Ty::Enum { variants, .. } => variants
                .iter()
                .find(|(_, x)| *x == v)
                .map_or_else(|| int_json(v), |(n, _)| Value::String(n.clone())),
            _ => int_json(v),
        }
    }

    pub(super) fn compare_at(
        &self,
        r: TypeRef,
        v: &Value,
        path: &str,
        actual: &[u8],
        out: &mut Vec<Mismatch>,
    ) {
        match (self.ty(r), v) {
            (Ty::Struct { .. }, Value::Object(map)) => {
                for (key, v) in map {
                    let p = join(path, key);
                    let Some(f) = self.find_member(r, key, 0) else {
                        let names = self.member_names(r).join(", ");
                        let actual =
                            format!("(no such member of {}; it has: {names})", self.type_name(r));
                        out.push(Mismatch {
                            field: p,
                            expected: shown(v),
                            actual,
                        });
                        continue;
                    };
                    let m = f.member;
                    if m.bits > 0 {
                        self.compare_bits(m, f.bit_offset, v, &p, actual, out);
                    } else {
                        let start = (f.bit_offset / 8) as usize;
                        if let Some(slot) = actual.get(start..start + self.size_of(m.ty)) {
                            self.compare_at(m.ty, v, &p, slot, out);
                        }
                    }
                }
            }
            (Ty::Array { elem, len, .. }, Value::Array(items)) => {
                let es = self.size_of(*elem);
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match actual.get(i * es..(i + 1) * es) {
                        Some(slot) if i < *len => self.compare_at(*elem, item, &p, slot, out),
                        _ => {
                            let actual = format!("(beyond the end of {})", self.type_name(r));
                            out.push(Mismatch {
                                field: p,
                                expected: shown(item),
                                actual,
                            });
                        }
                    }
                }
            }
            _ => {
                let mut want = vec![0; actual.len()];
                let field = path.to_string();
                match self.encode_leaf(r, v, path, &mut want) {
                    Err(e) => out.push(Mismatch {
                        field,
                        expected: shown(v),
                        actual: format!("(not comparable: {e})"),
                    }),
                    Ok(n) if want != actual => out.push(Mismatch {
                        field,
                        expected: shown(v),
                        actual: self.render(r, actual, n),
                    }),
                    Ok(_) => {}
                }
            }
        }
    }

    fn compare_bits(
        &self,
        m: &Member,
        bit_offset: u32,
        v: &Value,
        path: &str,
        actual: &[u8],
        out: &mut Vec<Mismatch>,
    ) {
        let field = path.to_string();
        match self.int_value(m.ty, v, m.bits, path) {
            Err(e) => out.push(Mismatch {
                field,
                expected: shown(v),
                actual: format!("(not comparable: {e})"),
            }),
            Ok((want, n)) => {
                let got = get_bits(actual, bit_offset, m.bits, self.int_signed(m.ty));
                if got != want {
                    out.push(Mismatch {
                        field,
                        expected: shown(v),
                        actual: self.render_int(m.ty, got, n),
                    });
                }
            }
        }
    }

    /// `b` in notation `n`.
    fn render(&self, r: TypeRef, b: &[u8], n: Notation) -> String {
        match n {
            Notation::Ip4 => <[u8; 4]>::try_from(b)
                .map_or_else(|_| hex_string(b), |a| Ipv4Addr::from(a).to_string()),
            Notation::Ip6 => <[u8; 16]>::try_from(b)
                .map_or_else(|_| hex_string(b), |a| Ipv6Addr::from(a).to_string()),
            Notation::Text => {
                String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default())
                    .into_owned()
            }
            Notation::Raw { prefix, sep } => {
                let pairs: Vec<String> = b.iter().map(|c| format!("{c:02x}")).collect();
                let sep = sep.map(String::from).unwrap_or_default();
                format!("{}{}", if prefix { "0x" } else { "" }, pairs.join(&sep))
            }
            Notation::Float => self.decode_at(r, b).to_string(),
            Notation::Dec | Notation::Bool | Notation::Name => {
                self.render_int(r, self.read_int(r, b), n)
            }
        }
    }

    fn render_int(&self, r: TypeRef, v: i128, n: Notation) -> String {
        match n {
            Notation::Name => match self.enum_json(r, v) {
                Value::String(s) => s,
                other => other.to_string(),
            },
            Notation::Bool => (v != 0).to_string(),
            _ => v.to_string(),
        }
    }

    /// Adds `cpu` into `total` (both of `r`'s size), integer leaves only.
    pub(super) fn add_at(&self, r: TypeRef, total: &mut [u8], cpu: &[u8]) {
        match self.ty(r) {
            Ty::Int { .. } if !self.is_char(r) => {
                let sum = self.read_int(r, total).wrapping_add(self.read_int(r, cpu));
                self.write_int(r, sum, total);
            }
            Ty::Struct {
                union: false,
                members,
                ..
            } => {
                for m in members {
                    if m.bits > 0 {
                        if matches!(self.ty(m.ty), Ty::Int { .. }) {
                            let a = get_bits(total, m.bit_offset, m.bits, false);
                            set_bits(
                                total,
                                m.bit_offset,
                                m.bits,
                                a.wrapping_add(get_bits(cpu, m.bit_offset, m.bits, false)),
                            );
                        }
                        continue;
                    }
                    let start = (m.bit_offset / 8) as usize;
                    let range = start..start + self.size_of(m.ty);
                    if let (Some(t), Some(c)) = (total.get_mut(range.clone()), cpu.get(range)) {
                        self.add_at(m.ty, t, c);
                    }
                }
            }
            Ty::Array { elem, .. } => {
                let es = self.size_of(*elem).max(1);
                for (t, c) in total.chunks_exact_mut(es).zip(cpu.chunks_exact(es)) {
                    self.add_at(*elem, t, c);
                }
            }
            _ => {}
        }
    }
}

/// A number when it fits JSON's integers, else decimal text (128-bit).
fn int_json(v: i128) -> Value {
    match (u64::try_from(v), i64::try_from(v)) {
        (Ok(u), _) => u.into(),
        (_, Ok(i)) => i.into(),
        _ => Value::String(v.to_string()),
    }
}

/// The text of a `char` array: printable UTF-8, then only NULs (so that
/// `encode` gives the same bytes back).
fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    if b[end..].iter().any(|c| *c != 0) {
        return None;
    }
    let s = std::str::from_utf8(&b[..end]).ok()?;
    (!s.chars().any(char::is_control)).then(|| s.to_string())
}
