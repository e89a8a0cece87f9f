//! `encode`: JSON values to bytes, with errors that name the field path
//! and what the type would take.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::types::Ty;
use super::{Notation, ObjectTypes, TypeRef, at, hex, join, range, set_bits, shown};

impl ObjectTypes {
    pub(super) fn encode_at(
        &self,
        r: TypeRef,
        v: &Value,
        path: &str,
        out: &mut [u8],
    ) -> Result<(), String> {
        match (self.ty(r), v) {
            (Ty::Struct { .. }, Value::Object(map)) => self.encode_fields(r, map, path, out),
            (Ty::Array { elem, len, .. }, Value::Array(items)) => {
                if items.len() > *len {
                    let name = self.type_name(r);
                    return Err(format!(
                        "{}{} elements given, {name} has {len}",
                        at(path),
                        items.len()
                    ));
                }
                let es = self.size_of(*elem);
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.encode_at(*elem, item, &p, slot_mut(out, i * es, es, &p)?)?;
                }
                Ok(())
            }
            _ => self.encode_leaf(r, v, path, out).map(drop),
        }
    }

    fn encode_fields(
        &self,
        r: TypeRef,
        map: &Map<String, Value>,
        path: &str,
        out: &mut [u8],
    ) -> Result<(), String> {
        if matches!(self.ty(r), Ty::Struct { union: true, .. }) && map.is_empty() {
            let names = self.member_names(r).join(", ");
            let name = self.type_name(r);
            return Err(format!("{}give one member of {name} ({names})", at(path)));
        }
        // The member each union on the way was given, and by which key.
        let mut taken: Vec<((u32, TypeRef), usize, &str)> = Vec::new();
        for (key, v) in map {
            let Some(f) = self.find_member(r, key, 0) else {
                let (name, names) = (self.type_name(r), self.member_names(r).join(", "));
                return Err(format!(
                    "{}unknown member `{key}` of {name} (it has: {names})",
                    at(path)
                ));
            };
            for &(off, u, i) in &f.unions {
                match taken.iter().find(|t| t.0 == (off, u)) {
                    Some(t) if t.1 != i => {
                        let name = self.type_name(u);
                        return Err(format!(
                            "{}`{}` and `{key}` share {name}: give one of them",
                            at(path),
                            t.2
                        ));
                    }
                    Some(_) => {}
                    None => taken.push(((off, u), i, key)),
                }
            }
            let p = join(path, key);
            let m = f.member;
            if m.bits > 0 {
                let (val, _) = self.int_value(m.ty, v, m.bits, &p)?;
                set_bits(out, f.bit_offset, m.bits, val);
            } else {
                let slot = slot_mut(out, (f.bit_offset / 8) as usize, self.size_of(m.ty), &p)?;
                self.encode_at(m.ty, v, &p, slot)?;
            }
        }
        Ok(())
    }

    /// A value that is not a mapping for a struct nor a list for an array.
    pub(super) fn encode_leaf(
        &self,
        r: TypeRef,
        v: &Value,
        path: &str,
        out: &mut [u8],
    ) -> Result<Notation, String> {
        let ty = self.ty(r);
        let integer = matches!(ty, Ty::Int { .. } | Ty::Enum { .. });
        match v {
            Value::String(s) => {
                if let Some(n) = self.address(r, s, out) {
                    return Ok(n);
                }
                if integer && self.enumerator(r, s).is_some() {
                    return self.encode_int(r, v, path, out);
                }
                let raw = hex(s).ok().filter(|b| b.len() == out.len());
                if self.is_char_array(r) && !(raw.is_some() && s.starts_with("0x")) {
                    if s.len() <= out.len() {
                        out[..s.len()].copy_from_slice(s.as_bytes());
                        return Ok(Notation::Text);
                    }
                    if raw.is_none() {
                        let (n, name) = (s.len(), self.type_name(r));
                        return Err(format!(
                            "{}`{s}` is {n} bytes, longer than {name}",
                            at(path)
                        ));
                    }
                }
                if let Some(bytes) = raw {
                    out.copy_from_slice(&bytes);
                    return Ok(Notation::Raw {
                        prefix: s.starts_with("0x"),
                        sep: s.chars().find(|c| *c == ' ' || *c == ':'),
                    });
                }
                Err(self.expected(r, v, path))
            }
            Value::Number(_) | Value::Bool(_) if integer => self.encode_int(r, v, path, out),
            Value::Number(n) if matches!(ty, Ty::Float { .. }) => {
                let f = n.as_f64().unwrap_or_default();
                match out.len() {
                    4 => out.copy_from_slice(&(f as f32).to_le_bytes()),
                    8 => out.copy_from_slice(&f.to_le_bytes()),
                    _ => return Err(self.expected(r, v, path)),
                }
                Ok(Notation::Float)
            }
            _ => Err(self.expected(r, v, path)),
        }
    }

    fn encode_int(
        &self,
        r: TypeRef,
        v: &Value,
        path: &str,
        out: &mut [u8],
    ) -> Result<Notation, String> {
        let (val, notation) = self.int_value(r, v, 0, path)?;
        self.write_int(r, val, out);
        Ok(notation)
    }

    /// The integer `v` gives an integer or enum `r` (of `bits` bits when a
    /// bitfield, else 0), range-checked.
    pub(super) fn int_value(
        &self,
        r: TypeRef,
        v: &Value,
        bits: u32,
        path: &str,
    ) -> Result<(i128, Notation), String> {
        let (size, signed) = match self.ty(r) {
            Ty::Int { size, signed, .. } | Ty::Enum { size, signed, .. } => (*size, *signed),
            _ => return Err(self.expected(r, v, path)),
        };
        let (val, notation) = match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => (i128::from(u), Notation::Dec),
                (_, Some(i)) => (i128::from(i), Notation::Dec),
                _ => {
                    return Err(format!(
                        "{}{n} is not an integer ({}){}",
                        at(path),
                        self.type_name(r),
                        if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                            " (YAML reads it as a float: quote hex bytes, or write an integer)"
                        } else {
                            ""
                        }
                    ));
                }
            },
            Value::Bool(b) => (i128::from(*b), Notation::Bool),
            Value::String(s) => match self.enumerator(r, s) {
                Some(val) => (val, Notation::Name),
                None => return Err(self.expected(r, v, path)),
            },
            _ => return Err(self.expected(r, v, path)),
        };
        let width = if bits > 0 { bits } else { (size * 8) as u32 };
        let (min, max) = range(width, signed);
        if val < min || val > max {
            let name = self.type_name(r);
            let what = if bits > 0 {
                format!("a {bits}-bit field of {name}")
            } else {
                name
            };
            return Err(format!(
                "{}{} does not fit {what} ({min}..={max})",
                at(path),
                shown(v)
            ));
        }
        Ok((val, notation))
    }

    /// Writes an address string into a 4- or 16-byte value, in network order.
    fn address(&self, r: TypeRef, s: &str, out: &mut [u8]) -> Option<Notation> {
        if !self.takes_address(r) {
            return None;
        }
        match out.len() {
            4 => s
                .parse::<Ipv4Addr>()
                .ok()
                .map(|a| out.copy_from_slice(&a.octets()))
                .map(|()| Notation::Ip4),
            16 => s
                .parse::<Ipv6Addr>()
                .ok()
                .map(|a| out.copy_from_slice(&a.octets()))
                .map(|()| Notation::Ip6),
            _ => None,
        }
    }

    /// Integers and byte arrays of an address's size, and structs that are
    /// addresses (`struct in_addr`, any 16-byte one such as `in6_addr`).
    fn takes_address(&self, r: TypeRef) -> bool {
        match self.ty(r) {
            Ty::Int { .. } => true,
            Ty::Array { .. } => !self.is_char_array(r),
            Ty::Struct { name, size, .. } => *size == 16 || name.ends_with("in_addr"),
            _ => false,
        }
    }

    fn enumerator(&self, r: TypeRef, s: &str) -> Option<i128> {
        let Ty::Enum { variants, .. } = self.ty(r) else {
            return None;
        };
        variants.iter().find(|(n, _)| n == s).map(|(_, v)| *v)
    }

    /// The error for a value `r` cannot take: what it would take.
    fn expected(&self, r: TypeRef, v: &Value, path: &str) -> String {
        let (ty, name) = (self.ty(r), self.type_name(r));
        if let (Ty::Enum { variants, .. }, Value::String(s)) = (ty, v) {
            let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
            return format!(
                "{}unknown enumerator `{s}` of {name} (it has: {})",
                at(path),
                names.join(", ")
            );
        }
        let size = self.size_of(r);
        let mut forms = Vec::new();
        if self.takes_address(r) && size == 4 {
            forms.push("an IPv4 address".to_string());
        } else if self.takes_address(r) && size == 16 {
            forms.push("an IPv6 address".to_string());
        }
        match ty {
            Ty::Int { .. } | Ty::Float { .. } => forms.push("a number".into()),
            Ty::Enum { variants, .. } => {
                let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
                forms.push(format!("an enumerator ({})", names.join(", ")));
                forms.push("a number".into());
            }
            Ty::Struct { union, .. } => {
                let which = if *union {
                    "one of its members"
                } else {
                    "its members"
                };
                forms.push(format!(
                    "a mapping of {which} ({})",
                    self.member_names(r).join(", ")
                ));
            }
            Ty::Array { len, .. } => {
                if self.is_char_array(r) {
                    forms.push(format!("a string of at most {len} bytes"));
                }
                forms.push(format!("a list of at most {len} elements"));
            }
            Ty::Ptr { .. } | Ty::Other { .. } => {}
        }
        forms.push(format!("{size} hex bytes"));
        let last = forms.pop().unwrap_or_default();
        let forms = if forms.is_empty() {
            last
        } else {
            format!("{} or {last}", forms.join(", "))
        };
        // Why a value that looks right is not: hex bytes of another size
        // (strings are bytes, never numbers), or a YAML float.
        let hint = match v {
            Value::String(s) => match hex(s) {
                Ok(bytes) if bytes.len() != size => format!(
                    " ({} hex byte{}; a quoted value is bytes, an unquoted one a number)",
                    bytes.len(),
                    if bytes.len() == 1 { "" } else { "s" }
                ),
                _ => String::new(),
            },
            Value::Number(n) if n.is_f64() => {
                " (YAML reads it as a float: quote hex bytes, or write an integer)".to_owned()
            }
            _ => String::new(),
        };
        format!(
            "{}expected {forms} for {name}, got `{}`{hint}",
            at(path),
            shown(v)
        )
    }
}

/// `out[start..start + len]`, or an error if the BTF placed a member
/// beyond its struct (a broken object, never a user's mistake).
fn slot_mut<'a>(
    out: &'a mut [u8],
    start: usize,
    len: usize,
    path: &str,
) -> Result<&'a mut [u8], String> {
    out.get_mut(start..start.saturating_add(len))
        .ok_or_else(|| {
            format!(
                "{}the object's BTF places this field beyond its parent",
                at(path)
            )
        })
}
