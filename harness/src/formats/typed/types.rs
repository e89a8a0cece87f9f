//! The owned type table of an object: what `typed` needs of its BTF, read
//! once with libbpf and copied, so that no libbpf handle (not `Send`, tied
//! to the ELF bytes) outlives `ObjectTypes::parse`.

use std::collections::{BTreeMap, HashMap};

use libbpf_rs::btf::types::{
    Array, Composite, DataSec, Enum, Enum64, Float, Int, IntEncoding, Linkage, MemberAttr, Var,
};
use libbpf_rs::btf::{Btf, BtfKind, BtfType, HasSize, ReferencesType, TypeId};
use object::Object;

/// A type of one object's table (only meaningful with the `ObjectTypes` it
/// came from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeRef(u32);

/// A type with typedefs and qualifiers resolved. `name` is what messages
/// show: the outermost typedef's name when there is one (`__be32`), else
/// the C spelling (`struct rule`, `unsigned int`).
#[derive(Debug)]
pub(super) enum Ty {
    /// `net`: a `__be*`/`__sum16` typedef, stored in network byte order.
    Int {
        name: String,
        size: usize,
        signed: bool,
        net: bool,
    },
    Enum {
        name: String,
        size: usize,
        signed: bool,
        variants: Vec<(String, i128)>,
    },
    /// A struct, or a union when `union`.
    Struct {
        name: String,
        size: usize,
        union: bool,
        members: Vec<Member>,
    },
    Array {
        name: Option<String>,
        elem: TypeRef,
        len: usize,
    },
    Ptr {
        name: String,
    },
    Float {
        name: String,
        size: usize,
    },
    /// void, forward declarations, functions: nothing a value can be.
    Other {
        name: String,
    },
}

/// A struct or union member. Anonymous members (`name: None`) are structs
/// or unions whose own members are addressed by their names.
#[derive(Debug)]
pub(super) struct Member {
    pub name: Option<String>,
    pub bit_offset: u32,
    /// The width of a bitfield; 0 for a plain member.
    pub bits: u32,
    pub ty: TypeRef,
}

/// A global variable of a data section (`.rodata`, `.data`, `.bss`, or a
/// named `.rodata.*`/`.data.*` one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// The ELF section it lives in.
    pub section: String,
    /// Its offset in that section.
    pub offset: u32,
    /// Its size in bytes.
    pub size: u32,
    /// Its type.
    pub ty: TypeRef,
}

/// The types of one BPF object's maps and globals, from its BTF.
#[derive(Debug)]
pub struct ObjectTypes {
    types: Vec<Ty>,
    /// Map name → (key type, value type); `None` where the map gives sizes only.
    maps: BTreeMap<String, (Option<TypeRef>, Option<TypeRef>)>,
    globals: BTreeMap<String, Global>,
}

/// What a stale or foreign `TypeRef` resolves to, rather than a panic.
static NO_TYPE: Ty = Ty::Other {
    name: String::new(),
};

/// Typedef/modifier chains are short in C; a longer one is a broken BTF.
const MAX_DEPTH: u32 = 64;

impl ObjectTypes {
    /// Reads the BTF of the BPF ELF object `elf` (clang `-g` output).
    /// `None` when it has no `.BTF` section; an error when it is not a
    /// little-endian BPF object or libbpf cannot open it.
    pub fn parse(elf: &[u8]) -> Result<Option<ObjectTypes>, String> {
        let file = object::File::parse(elf).map_err(|e| format!("not an ELF object: {e}"))?;
        if file.architecture() != object::Architecture::Bpf {
            return Err(format!(
                "not a BPF object (architecture {:?})",
                file.architecture()
            ));
        }
        // Values are written in the target's order; a big-endian object
        // (`-target bpfeb`) cannot be loaded on the little-endian hosts
        // dsrlab runs on anyway.
        if !file.is_little_endian() {
            return Err(
                "a big-endian BPF object (-target bpfeb); only little-endian objects are supported"
                    .into(),
            );
        }
        if file.section_by_name(".BTF").is_none() {
            return Ok(None);
        }
        // Opening the object (not just the .BTF bytes) lets libbpf fill in
        // the data sections' sizes and variable offsets, as it does on load.
        let btf = match Btf::from_raw("typed", elf) {
            Ok(Some(btf)) => btf,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("libbpf cannot read the object's BTF: {e:#}")),
        };
        let mut b = Builder {
            btf: &btf,
            types: Vec::new(),
            memo: HashMap::new(),
            depth: 0,
        };
        let mut maps = BTreeMap::new();
        let mut globals = BTreeMap::new();
        for sec in btf.type_by_kind::<DataSec<'_>>() {
            let section = os(sec.name());
            let data = [".rodata", ".data", ".bss"].iter().any(|p| {
                section == *p
                    || section
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('.'))
            });
            if section != ".maps" && !data {
                continue;
            }
            for info in sec.iter() {
                let Some(var) = btf.type_by_id::<Var<'_>>(info.ty) else {
                    continue;
                };
                let name = os(var.name());
                if section == ".maps" {
                    let def = skip_mods(var.referenced_type());
                    let key = b.map_field(def, "key")?;
                    let value = b.map_field(def, "value")?;
                    maps.insert(name, (key, value));
                } else if var.linkage() != Linkage::Extern {
                    let ty = b.convert(var.referenced_type_id())?;
                    let (offset, size) = (info.offset, info.size as u32);
                    globals.insert(
                        name,
                        Global {
                            section: section.clone(),
                            offset,
                            size,
                            ty,
                        },
                    );
                }
            }
        }
        Ok(Some(ObjectTypes {
            types: b.types,
            maps,
            globals,
        }))
    }

    /// The key type of the BTF-defined map `map`; `None` for an unknown
    /// map or one declared with `key_size` (use hex then).
    pub fn map_key(&self, map: &str) -> Option<TypeRef> {
        self.maps.get(map).and_then(|m| m.0)
    }

    /// The value type of the BTF-defined map `map` (see `map_key`).
    pub fn map_value(&self, map: &str) -> Option<TypeRef> {
        self.maps.get(map).and_then(|m| m.1)
    }

    /// The names of the object's BTF-defined maps, typed or not.
    pub fn maps(&self) -> impl Iterator<Item = &str> {
        self.maps.keys().map(String::as_str)
    }

    /// The global variable `name`.
    pub fn global(&self, name: &str) -> Option<&Global> {
        self.globals.get(name)
    }

    /// All global variables by name, in name order (for "it has: …").
    pub fn globals(&self) -> impl Iterator<Item = (&str, &Global)> {
        self.globals.iter().map(|(n, g)| (n.as_str(), g))
    }

    /// The size of a value of type `ty` in bytes.
    pub fn size_of(&self, ty: TypeRef) -> usize {
        match self.ty(ty) {
            Ty::Int { size, .. } | Ty::Enum { size, .. } | Ty::Struct { size, .. } => *size,
            Ty::Float { size, .. } => *size,
            Ty::Array { elem, len, .. } => self.size_of(*elem).saturating_mul(*len),
            Ty::Ptr { .. } => 8,
            Ty::Other { .. } => 0,
        }
    }

    /// The C-like name of `ty` for messages: `struct rule`, `__be32`, `__u32[4]`.
    pub fn type_name(&self, ty: TypeRef) -> String {
        match self.ty(ty) {
            Ty::Array {
                name: Some(name), ..
            } => name.clone(),
            Ty::Array { .. } => {
                // `__u32 m[2][3]` is an array of 2 arrays of 3.
                let (mut base, mut dims) = (ty, String::new());
                while let Ty::Array {
                    elem,
                    len,
                    name: None,
                } = self.ty(base)
                {
                    dims.push_str(&format!("[{len}]"));
                    base = *elem;
                }
                format!("{}{dims}", self.type_name(base))
            }
            Ty::Int { name, .. } | Ty::Enum { name, .. } | Ty::Struct { name, .. } => name.clone(),
            Ty::Ptr { name } | Ty::Float { name, .. } | Ty::Other { name } => name.clone(),
        }
    }

    pub(super) fn ty(&self, ty: TypeRef) -> &Ty {
        self.types.get(ty.0 as usize).unwrap_or(&NO_TYPE)
    }
}

fn os(name: Option<&std::ffi::OsStr>) -> String {
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Converts BTF types on demand, each BTF id once.
struct Builder<'b> {
    btf: &'b Btf<'b>,
    types: Vec<Ty>,
    memo: HashMap<TypeId, TypeRef>,
    depth: u32,
}

impl Builder<'_> {
    /// The pointee type of a map definition's `key`/`value` member
    /// (`__type(key, T)` declares `T *key`); `None` if it is absent.
    fn map_field(&mut self, def: BtfType<'_>, field: &str) -> Result<Option<TypeRef>, String> {
        let Ok(def) = Composite::try_from(def) else {
            return Ok(None);
        };
        let Some(member) = def.iter().find(|m| os(m.name) == field) else {
            return Ok(None);
        };
        let Some(ty) = self.btf.type_by_id::<BtfType<'_>>(member.ty) else {
            return Ok(None);
        };
        let ty = skip_mods(ty);
        match (ty.kind(), ty.next_type()) {
            (BtfKind::Ptr, Some(pointee)) => self.convert(pointee.type_id()).map(Some),
            _ => Ok(None),
        }
    }

    fn convert(&mut self, id: TypeId) -> Result<TypeRef, String> {
        if let Some(r) = self.memo.get(&id) {
            return Ok(*r);
        }
        let t = self
            .btf
            .type_by_id::<BtfType<'_>>(id)
            .ok_or(format!("BTF type {id} is missing"))?;
        let ty = self.resolve(t, None, false)?;
        let r = TypeRef(self.types.len() as u32);
        self.types.push(ty);
        self.memo.insert(id, r);
        Ok(r)
    }

    /// `t` with typedefs and qualifiers resolved, named by the outermost
    /// typedef `alias`; `net` once any typedef on the way is `__be*`.
    fn resolve(&mut self, t: BtfType<'_>, alias: Option<String>, net: bool) -> Result<Ty, String> {
        self.depth += 1;
        let ty = if self.depth > MAX_DEPTH {
            Err(format!(
                "BTF type {} nests deeper than {MAX_DEPTH} levels",
                t.type_id()
            ))
        } else {
            self.resolve_kind(t, alias, net)
        };
        self.depth -= 1;
        ty
    }

    fn resolve_kind(
        &mut self,
        t: BtfType<'_>,
        alias: Option<String>,
        net: bool,
    ) -> Result<Ty, String> {
        let own = os(t.name());
        let tagged = |tag: &str| alias.clone().unwrap_or_else(|| named(tag, &own));
        Ok(match t.kind() {
            BtfKind::Typedef
            | BtfKind::Const
            | BtfKind::Volatile
            | BtfKind::Restrict
            | BtfKind::TypeTag => {
                let is_typedef = t.kind() == BtfKind::Typedef;
                let net = net || (is_typedef && (own.starts_with("__be") || own == "__sum16"));
                let alias = alias.or_else(|| is_typedef.then_some(own));
                let next = t
                    .next_type()
                    .ok_or(format!("BTF type {} refers to nothing", t.type_id()))?;
                return self.resolve(next, alias, net);
            }
            BtfKind::Int => {
                let int = Int::try_from(t).map_err(|_| "BTF int")?;
                let signed = matches!(int.encoding, IntEncoding::Signed);
                Ty::Int {
                    name: alias.unwrap_or(own),
                    size: int.size(),
                    signed,
                    net,
                }
            }
            BtfKind::Enum => {
                let e = Enum::try_from(t).map_err(|_| "BTF enum")?;
                let variants = e
                    .iter()
                    .map(|v| (os(v.name), i128::from(v.value)))
                    .collect();
                Ty::Enum {
                    name: tagged("enum"),
                    size: e.size(),
                    signed: e.is_signed(),
                    variants,
                }
            }
            BtfKind::Enum64 => {
                let e = Enum64::try_from(t).map_err(|_| "BTF enum64")?;
                let variants = e.iter().map(|v| (os(v.name), v.value)).collect();
                Ty::Enum {
                    name: tagged("enum"),
                    size: e.size(),
                    signed: e.is_signed(),
                    variants,
                }
            }
            BtfKind::Struct | BtfKind::Union => {
                let c = Composite::try_from(t).map_err(|_| "BTF struct")?;
                let raw: Vec<_> = c
                    .iter()
                    .map(|m| {
                        (
                            m.name.map(|n| n.to_string_lossy().into_owned()),
                            m.ty,
                            m.attr,
                        )
                    })
                    .collect();
                let mut members = Vec::with_capacity(raw.len());
                for (name, ty, attr) in raw {
                    let (bit_offset, bits) = match attr {
                        MemberAttr::Normal { offset } => (offset, 0),
                        MemberAttr::BitField { size, offset } => (offset, u32::from(size)),
                    };
                    members.push(Member {
                        name,
                        bit_offset,
                        bits,
                        ty: self.convert(ty)?,
                    });
                }
                let union = t.kind() == BtfKind::Union;
                let name = tagged(if union { "union" } else { "struct" });
                Ty::Struct {
                    name,
                    size: c.size(),
                    union,
                    members,
                }
            }
            BtfKind::Array => {
                let a = Array::try_from(t).map_err(|_| "BTF array")?;
                Ty::Array {
                    name: alias,
                    elem: self.convert(a.ty())?,
                    len: a.capacity(),
                }
            }
            BtfKind::Ptr => {
                // Only the pointee's name: following it could loop (`struct
                // node { struct node *next; }`) and no value needs it.
                let pointee = t.next_type().map(skip_mods);
                let target = match pointee.map(|p| (p.kind(), os(p.name()))) {
                    Some((BtfKind::Struct, name)) => named("struct", &name),
                    Some((BtfKind::Union, name)) => named("union", &name),
                    Some((BtfKind::Enum | BtfKind::Enum64, name)) => named("enum", &name),
                    Some((_, name)) if !name.is_empty() => name,
                    _ => "void".into(),
                };
                Ty::Ptr {
                    name: alias.unwrap_or(format!("{target} *")),
                }
            }
            BtfKind::Float => {
                let size = Float::try_from(t).map(|f| f.size()).unwrap_or(0);
                Ty::Float {
                    name: alias.unwrap_or(own),
                    size,
                }
            }
            _ => Ty::Other {
                name: alias.unwrap_or(if own.is_empty() { "void".into() } else { own }),
            },
        })
    }
}

fn named(tag: &str, name: &str) -> String {
    if name.is_empty() {
        format!("{tag} <anonymous>")
    } else {
        format!("{tag} {name}")
    }
}

/// `t` without typedefs and qualifiers; libbpf-rs's own version loops
/// forever on a (malformed) typedef cycle and panics on a dangling one.
fn skip_mods(t: BtfType<'_>) -> BtfType<'_> {
    let mut t = t;
    for _ in 0..MAX_DEPTH {
        if !(t.is_mod() || t.kind() == BtfKind::Typedef) {
            break;
        }
        match t.next_type() {
            Some(next) => t = next,
            None => break,
        }
    }
    t
}
