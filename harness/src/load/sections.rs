//! libbpf's section names for TC programs, made readable to aya.
//!
//! libbpf names a TC classifier's section `tc`, `tc/ingress`, `tc/egress`,
//! `tcx/ingress` or `tcx/egress`; aya's object parser knows only the older
//! `classifier` and refuses the whole object on any other name. Rather than
//! load users' objects through a second loader, dsrlab renames those
//! sections to `classifier/<libbpf name>` before aya sees the ELF: the
//! program type is the same (`BPF_PROG_TYPE_SCHED_CLS`), the original name
//! stays readable after the slash (aya ignores what follows `classifier`),
//! and two libbpf sections never collide.
//!
//! A section's name is also referenced from `.BTF.ext` (function, line and
//! CO-RE relocation records are grouped by section name, as offsets into the
//! `.BTF` string table), so the new names are appended to that table and
//! the `.BTF.ext` groups pointed at them; otherwise aya would lose the
//! program's function info and refuse its CO-RE relocations.

use std::borrow::Cow;

/// Returns the object with libbpf's TC section names renamed for aya, or
/// the bytes unchanged when it has none (dsrlab's own objects, objects that
/// already say `classifier`) or is not a 64-bit ELF file (aya's error then
/// names what it is).
///
/// The ELF file is edited, not rebuilt: the section name table and `.BTF`
/// are copied to the end of the file with the new names appended and their
/// section headers pointed at the copies, so every other byte and offset
/// (symbols, relocations, DWARF, sections no ELF writer knows, such as
/// `.llvm_addrsig`) stays as the compiler wrote it.
pub fn for_aya(elf: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let Some(file) = Elf::parse(elf) else {
        return Ok(Cow::Borrowed(elf));
    };
    let names = file.section_name_table();
    let renamed: Vec<(usize, String, String)> = (0..file.sections)
        .filter_map(|i| {
            let name = file.name(i, names)?;
            classifier_name(name).map(|new| (i, name.to_owned(), new))
        })
        .collect();
    if renamed.is_empty() {
        return Ok(Cow::Borrowed(elf));
    }
    let mut out = elf.to_vec();
    // The names: a copy of the table with the new names at its end.
    let (names_at, names_len) = file.extent(file.names_index);
    let mut table = elf[names_at..names_at + names_len].to_vec();
    let mut offsets = Vec::new();
    for (_, _, new) in &renamed {
        offsets.push(table.len() as u32);
        table.extend_from_slice(new.as_bytes());
        table.push(0);
    }
    let moved = append(&mut out, &table);
    file.set_extent(&mut out, file.names_index, moved, table.len());
    for ((index, _, _), offset) in renamed.iter().zip(&offsets) {
        file.order
            .put(&mut out, file.header_at(*index), 4, u64::from(*offset));
    }
    // .BTF.ext groups its records by section name, as offsets into the
    // .BTF string table: append the new names there and repoint them.
    let btf = (0..file.sections).find(|&i| file.name(i, names) == Some(".BTF"));
    let ext = (0..file.sections).find(|&i| file.name(i, names) == Some(".BTF.ext"));
    if let (Some(btf), Some(ext)) = (btf, ext) {
        let order = file.order;
        let (btf_at, btf_len) = file.extent(btf);
        let mut btf_data = elf[btf_at..btf_at + btf_len].to_vec();
        let repoint = renamed
            .iter()
            .map(|(_, old, new)| {
                let old_off = find_string(&btf_data, order, old)?;
                let new_off = append_string(&mut btf_data, order, new)?;
                Ok((old_off, new_off))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let moved = append(&mut out, &btf_data);
        file.set_extent(&mut out, btf, moved, btf_data.len());
        let (ext_at, ext_len) = file.extent(ext);
        repoint_groups(&mut out[ext_at..ext_at + ext_len], order, &repoint)?;
    }
    Ok(Cow::Owned(out))
}

/// Appends `data` to the file, 8-byte aligned; returns its offset.
fn append(out: &mut Vec<u8>, data: &[u8]) -> usize {
    out.resize(out.len().next_multiple_of(8), 0);
    let at = out.len();
    out.extend_from_slice(data);
    at
}

/// The parts of an ELF64 file the rename touches: its section headers.
struct Elf<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
    headers: usize,
    header_size: usize,
    sections: usize,
    names_index: usize,
}

impl<'a> Elf<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        // e_ident: magic, EI_CLASS 2 (64-bit), EI_DATA 1 (little) or 2.
        if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 {
            return None;
        }
        let little = match bytes.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        let mut file = Self {
            bytes,
            order: ByteOrder { little },
            headers: 0,
            header_size: 0,
            sections: 0,
            names_index: 0,
        };
        file.headers = usize::try_from(file.read(0x28, 8)?).ok()?;
        file.header_size = file.read(0x3a, 2)? as usize;
        file.sections = file.read(0x3c, 2)? as usize;
        file.names_index = file.read(0x3e, 2)? as usize;
        let end = file
            .headers
            .checked_add(file.header_size.checked_mul(file.sections)?)?;
        (file.header_size >= 64 && end <= bytes.len() && file.names_index < file.sections)
            .then_some(file)
    }

    fn read(&self, at: usize, width: usize) -> Option<u64> {
        self.order.get(self.bytes, at, width)
    }

    fn header_at(&self, index: usize) -> usize {
        self.headers + index * self.header_size
    }

    /// (sh_offset, sh_size) of a section, clamped to the file.
    fn extent(&self, index: usize) -> (usize, usize) {
        let header = self.header_at(index);
        let at = self.read(header + 24, 8).unwrap_or(0) as usize;
        let len = self.read(header + 32, 8).unwrap_or(0) as usize;
        let at = at.min(self.bytes.len());
        (at, len.min(self.bytes.len() - at))
    }

    fn set_extent(&self, out: &mut [u8], index: usize, at: usize, len: usize) {
        let header = self.header_at(index);
        self.order.put(out, header + 24, 8, at as u64);
        self.order.put(out, header + 32, 8, len as u64);
    }

    fn section_name_table(&self) -> &'a [u8] {
        let (at, len) = self.extent(self.names_index);
        &self.bytes[at..at + len]
    }

    fn name(&self, index: usize, names: &'a [u8]) -> Option<&'a str> {
        let offset = self.read(self.header_at(index), 4)? as usize;
        let rest = names.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }
}

/// The name aya reads as a TC classifier, for a libbpf TC section name.
fn classifier_name(section: &str) -> Option<String> {
    let kind = section.split('/').next()?;
    matches!(kind, "tc" | "tcx").then(|| format!("classifier/{section}"))
}

/// The original libbpf section name of a section renamed by [`for_aya`]
/// (what a user wrote in `SEC(...)`), or the name itself.
pub fn libbpf_name(section: &str) -> &str {
    section
        .strip_prefix("classifier/")
        .filter(|rest| classifier_name(rest).is_some())
        .unwrap_or(section)
}

/// The byte order of an ELF file and its BTF.
#[derive(Clone, Copy)]
struct ByteOrder {
    little: bool,
}

impl ByteOrder {
    /// The `width`-byte unsigned integer at `at`, if the bytes hold it.
    fn get(self, bytes: &[u8], at: usize, width: usize) -> Option<u64> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
        Some(if self.little {
            field.iter().rev().fold(0, fold)
        } else {
            field.iter().fold(0, fold)
        })
    }

    /// Writes the low `width` bytes of `value` at `at`.
    fn put(self, bytes: &mut [u8], at: usize, width: usize, value: u64) {
        for i in 0..width {
            let shift = 8 * if self.little { i } else { width - 1 - i };
            bytes[at + i] = (value >> shift) as u8;
        }
    }

    /// A `u32` of BTF, or where it is cut short.
    fn read(self, bytes: &[u8], at: usize) -> Result<u32, String> {
        self.get(bytes, at, 4)
            .map(|v| v as u32)
            .ok_or_else(|| format!("BTF truncated at byte {at}"))
    }

    fn write(self, bytes: &mut [u8], at: usize, value: u32) {
        self.put(bytes, at, 4, u64::from(value));
    }
}

/// `.BTF` header: magic, version, flags, hdr_len, type_off, type_len,
/// str_off, str_len; offsets count from the end of the header.
struct StringTable {
    start: usize,
    len: usize,
}

fn string_table(btf: &[u8], order: ByteOrder) -> Result<StringTable, String> {
    let hdr_len = order.read(btf, 4)? as usize;
    let str_off = order.read(btf, 16)? as usize;
    let str_len = order.read(btf, 20)? as usize;
    let start = hdr_len + str_off;
    if start + str_len > btf.len() {
        return Err(".BTF: string table runs past the section".into());
    }
    Ok(StringTable {
        start,
        len: str_len,
    })
}

fn find_string(btf: &[u8], order: ByteOrder, name: &str) -> Result<u32, String> {
    let table = string_table(btf, order)?;
    let strings = &btf[table.start..table.start + table.len];
    let mut offset = 0;
    for s in strings.split(|&b| b == 0) {
        if s == name.as_bytes() {
            return Ok(offset as u32);
        }
        offset += s.len() + 1;
    }
    Err(format!(".BTF has no string `{name}` for its section"))
}

/// Appends `name` to the string table, which clang and libbpf place last in
/// `.BTF`; returns its offset.
fn append_string(btf: &mut Vec<u8>, order: ByteOrder, name: &str) -> Result<u32, String> {
    let table = string_table(btf, order)?;
    if table.start + table.len != btf.len() {
        return Err(".BTF: the string table is not the section's last part".into());
    }
    let offset = table.len as u32;
    btf.extend_from_slice(name.as_bytes());
    btf.push(0);
    order.write(btf, 20, (table.len + name.len() + 1) as u32);
    Ok(offset)
}

/// Points every `.BTF.ext` group (function info, line info, CO-RE
/// relocations) naming an old section at the new name.
fn repoint_groups(ext: &mut [u8], order: ByteOrder, renames: &[(u32, u32)]) -> Result<(), String> {
    let hdr_len = order.read(ext, 4)? as usize;
    // func_info and line_info (off, len) pairs, then core_relo's in headers
    // long enough to have it.
    let mut parts = vec![(8, 12), (16, 20)];
    if hdr_len >= 32 {
        parts.push((24, 28));
    }
    for (off_at, len_at) in parts {
        let start = hdr_len + order.read(ext, off_at)? as usize;
        let len = order.read(ext, len_at)? as usize;
        if len == 0 {
            continue;
        }
        let end = start + len;
        let record_size = order.read(ext, start)? as usize;
        let mut at = start + 4;
        while at < end {
            let name = order.read(ext, at)?;
            let count = order.read(ext, at + 4)? as usize;
            if let Some(&(_, new)) = renames.iter().find(|(old, _)| *old == name) {
                order.write(ext, at, new);
            }
            at += 8 + count * record_size;
        }
        if at != end {
            return Err(".BTF.ext: a record group runs past its part".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_tc_names_become_classifier_names() {
        assert_eq!(classifier_name("tc").as_deref(), Some("classifier/tc"));
        assert_eq!(
            classifier_name("tcx/ingress").as_deref(),
            Some("classifier/tcx/ingress")
        );
        assert_eq!(classifier_name("classifier"), None);
        assert_eq!(classifier_name("xdp.frags"), None);
        assert_eq!(classifier_name("tc_foo"), None);
        assert_eq!(libbpf_name("classifier/tcx/egress"), "tcx/egress");
        assert_eq!(libbpf_name("classifier/mine"), "classifier/mine");
        assert_eq!(libbpf_name("xdp"), "xdp");
    }

    #[test]
    fn objects_without_libbpf_tc_sections_are_not_rewritten() {
        let elf = crate::datapath::TC_DECAP.elf;
        assert!(
            !elf.is_empty(),
            "the harness's tests embed the built objects"
        );
        assert!(matches!(for_aya(elf), Ok(Cow::Borrowed(_))));
        assert!(matches!(for_aya(b"not an elf"), Ok(Cow::Borrowed(_))));
        assert!(matches!(for_aya(b"\x7fELF\x02\x01"), Ok(Cow::Borrowed(_))));
    }
}
