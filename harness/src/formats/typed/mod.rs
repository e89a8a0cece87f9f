//! Typed map keys, map values and globals: scenario values written as the
//! types the object's BTF declares, instead of raw hex.
//!
//! The notation `encode` takes, by type:
//! - integers: a number (`42`, `0x2a` unquoted, `-1` for signed types) or
//!   `true`/`false`; range-checked against the width.
//!   `__be16`/`__be32`/`__be64`/`__sum16` are written in network order.
//! - addresses, stored in network order as the kernel keeps them: an IPv4
//!   address for a 4-byte integer (`__be32` or not), byte array or `struct
//!   in_addr`; an IPv6 address for any 16-byte type (`struct in6_addr`,
//!   `__u8[16]`, `__u32[4]`), `char` arrays excepted.
//! - enums: an enumerator's name, or a number.
//! - structs: a mapping by member name, members not given are zero;
//!   members of anonymous structs/unions are named directly; a union takes
//!   exactly one member.
//! - arrays: a list (shorter: the rest is zero); `char[N]`: a string.
//! - any type: hex bytes of exactly its size (`"0a000001"`, `"0a 00 00 01"`,
//!   `"0x0a:00:00:01"`). A string is read as, in order: an address, an
//!   enumerator, hex bytes of the exact size, text (`char` arrays). A string
//!   is never a number: `"1234"` for a `__u16` is the bytes 12 34, and
//!   `1234` unquoted the number (unquoted hex-looking digits such as
//!   `08000000` are a YAML float, refused with that hint).
//!
//! Only little-endian objects are supported (see `ObjectTypes::parse`).

mod encode;
mod read;
mod types;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use types::{Global, ObjectTypes, TypeRef};
use types::{Member, Ty};

/// A field whose actual value differs from the expected one (`compare`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The field path from the root (`rules.addr`, `tallies[1].bytes`);
    /// empty when the whole value was compared as one.
    pub field: String,
    /// The expected value, as the scenario wrote it.
    pub expected: String,
    /// The actual value, in the notation of the expected one (an address
    /// as an address, an enumerator by name, hex as hex).
    pub actual: String,
}

/// How a leaf value was written, so that `compare` can show the actual
/// value the same way.
#[derive(Clone, Copy, Debug)]
enum Notation {
    Dec,
    Bool,
    Name,
    Ip4,
    Ip6,
    Text,
    Raw { prefix: bool, sep: Option<char> },
    Float,
}

/// The bytes of `value` as a value of type `ty`, in the object's (little-
/// endian) byte order. Errors name the field path and what was expected.
pub fn encode(types: &ObjectTypes, ty: TypeRef, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = vec![0; types.size_of(ty)];
    types.encode_at(ty, value, "", &mut out)?;
    Ok(out)
}

/// `bytes` as a value of type `ty`, for reports: integers as numbers
/// (`__be*` converted to host order), enumerators by name, structs as
/// mappings (a union as its largest member), arrays as lists, `char` arrays
/// as text, `struct in6_addr`/`struct in_addr` as addresses. `encode` reads
/// it back to the same bytes (padding aside). Bytes of the wrong size are
/// shown as hex.
pub fn decode(types: &ObjectTypes, ty: TypeRef, bytes: &[u8]) -> Value {
    if bytes.len() != types.size_of(ty) {
        return Value::String(hex_string(bytes));
    }
    types.decode_at(ty, bytes)
}

/// The differences between `actual` and `expected`. Only what `expected`
/// writes is compared: the members of a mapping (a partial struct checks
/// just those fields) and the elements of a list (a shorter list checks
/// just the first ones). A leaf is compared whole: hex bytes compare all
/// the bytes of their type, a string all the bytes of a `char` array.
/// An expectation that cannot be encoded is reported as a mismatch too.
pub fn compare(types: &ObjectTypes, ty: TypeRef, expected: &Value, actual: &[u8]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let size = types.size_of(ty);
    if actual.len() != size {
        let (expected, actual) = (format!("{size} bytes"), format!("{} bytes", actual.len()));
        out.push(Mismatch {
            field: String::new(),
            expected,
            actual,
        });
    } else {
        types.compare_at(ty, expected, "", actual, &mut out);
    }
    out
}

/// The total of a per-CPU value: integer members summed field by field
/// (wrapping at their width), other leaves (enums, `char` arrays, floats,
/// pointers, unions) taken from CPU 0. CPUs whose bytes are not of the
/// type's size are skipped.
pub fn sum_per_cpu(types: &ObjectTypes, ty: TypeRef, per_cpu: &[&[u8]]) -> Vec<u8> {
    let size = types.size_of(ty);
    let mut total = vec![0; size];
    if let Some(first) = per_cpu.first() {
        let n = first.len().min(size);
        total[..n].copy_from_slice(&first[..n]);
    }
    for cpu in per_cpu.iter().skip(1).filter(|c| c.len() == size) {
        types.add_at(ty, &mut total, cpu);
    }
    total
}

/// The bytes of a hex string: an optional `0x`, then pairs of hex digits,
/// with spaces or `:` allowed between bytes (`"0a000001"`, `"0a 00 00 01"`,
/// `"0x0a:00:00:01"`). The only notation of a map key, value or global
/// whose type the object's BTF does not give.
pub fn hex(s: &str) -> Result<Vec<u8>, String> {
    let body = s.trim();
    let body = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .unwrap_or(body);
    let mut out = Vec::new();
    for group in body.split(|c: char| c == ':' || c.is_whitespace()) {
        if group.is_empty() {
            continue;
        }
        if group.len() % 2 != 0 {
            return Err(format!(
                "`{s}` is not hex bytes: `{group}` has an odd number of digits"
            ));
        }
        if let Some(bad) = group.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not hex bytes: `{bad}` is not a hex digit"
            ));
        }
        for pair in group.as_bytes().chunks(2) {
            // Two ASCII hex digits: both conversions succeed.
            let text = std::str::from_utf8(pair).unwrap_or("00");
            out.push(u8::from_str_radix(text, 16).unwrap_or(0));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "`{s}` is empty; expected hex bytes such as `01000000`"
        ));
    }
    Ok(out)
}

/// A member found by name, through anonymous members.
struct Found<'a> {
    member: &'a Member,
    /// From the start of the struct it was looked up in.
    bit_offset: u32,
    /// The unions on the way: (bit offset, union, index of the member taken).
    unions: Vec<(u32, TypeRef, usize)>,
}

impl ObjectTypes {
    /// The member `name` of the struct or union `r`, looked up through
    /// anonymous members as C does.
    fn find_member(&self, r: TypeRef, name: &str, base: u32) -> Option<Found<'_>> {
        let Ty::Struct { members, union, .. } = self.ty(r) else {
            return None;
        };
        for (i, m) in members.iter().enumerate() {
            let bit_offset = base + m.bit_offset;
            let found = match &m.name {
                Some(n) if n == name => Some(Found {
                    member: m,
                    bit_offset,
                    unions: Vec::new(),
                }),
                None => self.find_member(m.ty, name, bit_offset),
                Some(_) => None,
            };
            if let Some(mut f) = found {
                if *union {
                    f.unions.push((base, r, i));
                }
                return Some(f);
            }
        }
        None
    }

    /// The names `find_member` finds, for "it has: …".
    fn member_names(&self, r: TypeRef) -> Vec<String> {
        let Ty::Struct { members, .. } = self.ty(r) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for m in members {
            match &m.name {
                Some(n) => names.push(n.clone()),
                None => names.extend(self.member_names(m.ty)),
            }
        }
        names
    }

    fn is_char_array(&self, r: TypeRef) -> bool {
        matches!(self.ty(r), Ty::Array { elem, .. } if self.is_char(*elem))
    }

    /// `char` itself, not `__u8`/`__s8`: those hold numbers.
    fn is_char(&self, r: TypeRef) -> bool {
        matches!(self.ty(r), Ty::Int { name, size: 1, .. } if name.ends_with("char"))
    }

    fn write_int(&self, r: TypeRef, val: i128, out: &mut [u8]) {
        let n = out.len().min(16);
        out[..n].copy_from_slice(&(val as u128).to_le_bytes()[..n]);
        if matches!(self.ty(r), Ty::Int { net: true, .. }) {
            out.reverse();
        }
    }

    fn read_int(&self, r: TypeRef, b: &[u8]) -> i128 {
        let (signed, net) = match self.ty(r) {
            Ty::Int { signed, net, .. } => (*signed, *net),
            Ty::Enum { signed, .. } => (*signed, false),
            _ => (false, false),
        };
        let n = b.len().min(16);
        let mut le = [0u8; 16];
        le[..n].copy_from_slice(&b[..n]);
        if net {
            le[..n].reverse();
        }
        extend(u128::from_le_bytes(le), (n * 8) as u32, signed)
    }

    fn int_signed(&self, r: TypeRef) -> bool {
        matches!(
            self.ty(r),
            Ty::Int { signed: true, .. } | Ty::Enum { signed: true, .. }
        )
    }
}

/// The prefix of an error about `path` (nothing at the root: the caller
/// names the map or global).
fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("`{path}`: ")
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A value as the scenario wrote it: strings without quotes.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// The values `bits` bits hold, signed or not.
fn range(bits: u32, signed: bool) -> (i128, i128) {
    match (bits.clamp(1, 128), signed) {
        (128, true) => (i128::MIN, i128::MAX),
        // u128 values above i128::MAX are only reachable as hex bytes.
        (128, false) => (0, i128::MAX),
        (b, true) => (-(1 << (b - 1)), (1 << (b - 1)) - 1),
        (b, false) => (0, (1 << b) - 1),
    }
}

/// The low `bits` bits of `raw`, sign-extended when `signed`.
fn extend(raw: u128, bits: u32, signed: bool) -> i128 {
    if bits == 0 || bits >= 128 {
        return raw as i128;
    }
    let shift = 128 - bits;
    if signed {
        ((raw << shift) as i128) >> shift
    } else {
        (raw & ((1 << bits) - 1)) as i128
    }
}

/// A bitfield's bits, which clang lays out from the least significant bit
/// on little-endian targets.
fn get_bits(b: &[u8], bit_offset: u32, bits: u32, signed: bool) -> i128 {
    let mut raw = 0u128;
    for i in 0..bits.min(128) {
        let at = (bit_offset + i) as usize;
        let bit = b.get(at / 8).map_or(0, |byte| (byte >> (at % 8)) & 1);
        raw |= u128::from(bit) << i;
    }
    extend(raw, bits, signed)
}

fn set_bits(out: &mut [u8], bit_offset: u32, bits: u32, val: i128) {
    for i in 0..bits.min(128) {
        let at = (bit_offset + i) as usize;
        if let Some(byte) = out.get_mut(at / 8) {
            let mask = 1u8 << (at % 8);
            if (val >> i) & 1 == 1 {
                *byte |= mask
            } else {
                *byte &= !mask
            }
        }
    }
}
