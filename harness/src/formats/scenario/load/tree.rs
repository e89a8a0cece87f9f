//! The scenario text as a tree of located nodes: where each key and value
//! is, so that rules checked after parsing can point at `line:column`
//! without putting `Spanned` into the model types (the schema derives from
//! them).
//!
//! The tree is read by serde-saphyr itself, so anchors, aliases and merge
//! keys resolve exactly as they do for the model.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};
use serde_saphyr::{Location, Spanned};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line.
    pub line: u64,
    /// Column.
    pub column: u64,
}

impl Pos {
    fn of(l: &Location) -> Option<Self> {
        // serde-saphyr reports 0:0 for "unknown".
        (l.line() > 0).then(|| Self {
            line: l.line(),
            column: l.column(),
        })
    }
}

/// One step of a path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key, as the scalar's text.
    Key(String),
    /// A 0-based sequence index.
    Index(usize),
}

/// Where a node is in the document: `traffic[1].packets.3.expect`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YPath(pub Vec<Seg>);

impl YPath {
    /// The document's root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path, then mapping key `k`.
    pub fn key(&self, k: impl ToString) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    /// This path, then sequence index `i`.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// The path without its last step (the root's parent is the root).
    pub fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }

    /// The keys and indices, outermost first.
    pub fn segs(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A YAML node and where it starts.
#[derive(Clone, Debug)]
pub struct Node {
    /// Where the node starts (for an alias: where the alias is used).
    pub pos: Option<Pos>,
    /// What it is.
    pub kind: Kind,
}

/// The shape of a node.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A mapping: its entries in document order, each key with its position.
    Map(Vec<(String, Option<Pos>, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar, as text (`~`/null as the empty string).
    Scalar(String),
}

impl Node {
    /// Parses `text`; an error here is a YAML syntax error.
    pub fn parse(text: &str) -> Result<Self, serde_saphyr::Error> {
        let spanned: Spanned<Kind> = serde_saphyr::from_str(text)?;
        Ok(Self::from(spanned))
    }

    /// The node at `path`, if there is one.
    pub fn get(&self, path: &YPath) -> Option<&Self> {
        let mut node = self;
        for seg in path.segs() {
            node = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => {
                    &entries.iter().rev().find(|(key, _, _)| key == k)?.2
                }
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where the value at `path` is; else where its nearest existing
    /// ancestor is (a missing key is reported at its mapping).
    pub fn value_pos(&self, path: &YPath) -> Option<Pos> {
        let mut p = path.clone();
        loop {
            if let Some(pos) = self.get(&p).and_then(|n| n.pos) {
                return Some(pos);
            }
            p.0.pop()?;
        }
    }

    /// Where the key ending `path` is (the value's position when `path`
    /// ends in an index), else as [`Node::value_pos`].
    pub fn key_pos(&self, path: &YPath) -> Option<Pos> {
        if let Some((Seg::Key(k), parent)) = path.segs().split_last()
            && let Some(Self {
                kind: Kind::Map(entries),
                ..
            }) = self.get(&YPath(parent.to_vec()))
            && let Some((_, Some(pos), _)) = entries.iter().rev().find(|(key, _, _)| key == k)
        {
            return Some(*pos);
        }
        self.value_pos(path)
    }

    /// Every key and node that starts at `pos`, outermost first, each as
    /// its path and whether the key (not the value) starts there: what a
    /// serde error's location may point at. Several match when a mapping
    /// starts with its first key.
    pub fn at(&self, pos: Pos) -> Vec<(YPath, bool, &Self)> {
        let mut found = Vec::new();
        self.walk(&YPath::root(), &mut |path, node, key_pos| {
            if key_pos == Some(pos) {
                found.push((path.clone(), true, node));
            } else if node.pos == Some(pos) {
                found.push((path.clone(), false, node));
            }
        });
        found
    }

    /// Calls `f` on every node, parents first, with its path and the
    /// position of the key that holds it (if a mapping holds it).
    fn walk<'a>(&'a self, path: &YPath, f: &mut impl FnMut(&YPath, &'a Self, Option<Pos>)) {
        self.walk_from(path, None, f);
    }

    fn walk_from<'a>(
        &'a self,
        path: &YPath,
        key_pos: Option<Pos>,
        f: &mut impl FnMut(&YPath, &'a Self, Option<Pos>),
    ) {
        f(path, self, key_pos);
        match &self.kind {
            Kind::Map(entries) => {
                for (k, kp, v) in entries {
                    v.walk_from(&path.key(k), *kp, f);
                }
            }
            Kind::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    v.walk_from(&path.index(i), None, f);
                }
            }
            Kind::Scalar(_) => {}
        }
    }

    /// The scalar's text, if this is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

impl From<Spanned<Kind>> for Node {
    fn from(s: Spanned<Kind>) -> Self {
        Self {
            pos: Pos::of(&s.referenced),
            kind: s.value,
        }
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Scalar(v.to_owned()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        Ok(Kind::Scalar(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Scalar(String::new()))
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Scalar(String::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Kind>>()? {
            items.push(Node::from(item));
        }
        Ok(Kind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Kind>>()? {
            let value: Spanned<Kind> = map.next_value()?;
            // Complex keys are rare in scenarios; their text is only for
            // lookups, which never ask for them.
            let text = match &key.value {
                Kind::Scalar(s) => s.clone(),
                _ => String::new(),
            };
            entries.push((text, Pos::of(&key.referenced), Node::from(value)));
        }
        Ok(Kind::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64, column: u64) -> Option<Pos> {
        Some(Pos { line, column })
    }

    #[test]
    fn keys_and_values_are_located() {
        let text = "version: 1\ntraffic:\n  - pcap: a.pcap\n    packets:\n      3: {expect: {verdict: pass}}\n";
        let n = Node::parse(text).unwrap();
        let p = YPath::root().key("traffic").index(0).key("pcap");
        assert_eq!(p.to_string(), "traffic[0].pcap");
        assert_eq!(n.key_pos(&p), at(3, 5));
        assert_eq!(n.value_pos(&p), at(3, 11));
        let o = YPath::root().key("traffic").index(0).key("packets").key(3);
        assert_eq!(n.key_pos(&o), at(5, 7));
        assert_eq!(
            n.get(&o.key("expect").key("verdict"))
                .and_then(Node::scalar),
            Some("pass")
        );
        let hits: Vec<(String, bool)> = n
            .at(Pos { line: 3, column: 5 })
            .into_iter()
            .map(|(p, k, _)| (p.to_string(), k))
            .collect();
        assert_eq!(
            hits,
            [
                ("traffic[0]".to_owned(), false),
                ("traffic[0].pcap".to_owned(), true)
            ]
        );
        // A missing key is reported at its mapping.
        assert_eq!(
            n.value_pos(&YPath::root().key("traffic").index(0).key("fixture")),
            at(3, 5)
        );
    }

    #[test]
    fn aliases_and_merges_resolve() {
        let text = "base: &b {linear: 40}\nq:\n  <<: *b\n  checksum: complete\n";
        let n = Node::parse(text).unwrap();
        let q = YPath::root().key("q");
        assert_eq!(n.get(&q.key("linear")).and_then(Node::scalar), Some("40"));
        assert_eq!(
            n.get(&q.key("checksum")).and_then(Node::scalar),
            Some("complete")
        );
    }
}
