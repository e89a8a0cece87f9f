//! serde-saphyr's errors in the scenario's words: which part of the file
//! (`in a stream`), what was found and what was expected.

use super::tree::{Node, Pos, Seg, YPath};

/// A serde-saphyr error's message without its location suffix and snippet.
pub(super) fn bare_message(e: &serde_saphyr::Error) -> String {
    let inner = e.without_snippet();
    let mut message = inner.to_string();
    if let Some(l) = inner.location()
        && let Some(m) =
            message.strip_suffix(&format!(" at line {}, column {}", l.line(), l.column()))
    {
        message = m.to_owned();
    }
    message
}

/// What a part of the document is, for messages: `a stream`, `a program`.
fn noun(path: &YPath) -> String {
    use Seg::{Index, Key};
    let key = |s: &Seg, k: &str| matches!(s, Key(x) if x == k);
    let segs = path.segs();
    match segs {
        [] => "the scenario".into(),
        [a, Index(_)] if key(a, "programs") => "a program".into(),
        [a, Index(_), b, Key(_), Index(_)] if key(a, "programs") && key(b, "maps") => {
            "a map entry".into()
        }
        [a, Index(_), b] if key(a, "programs") && key(b, "lb") => "a load balancer's `lb`".into(),
        [.., a, Index(_)] if key(a, "vips") => "a VIP".into(),
        [.., a, Index(_)] if key(a, "reals") => "a real".into(),
        [.., a, Index(_)] if key(a, "lb_changes") => "an lb change".into(),
        [.., a, Index(_), Key(k)] if key(a, "lb_changes") => format!("`{k}`"),
        [a, Index(_)] if key(a, "traffic") => "a stream".into(),
        [a, Index(_), b] if key(a, "traffic") && key(b, "generate") => "a generator".into(),
        [.., a, Key(_)] if key(a, "packets") => "a packet override".into(),
        [.., a] if key(a, "quirks") => "quirks".into(),
        [.., a] if key(a, "expect") => "an expectation".into(),
        [a] if key(a, "after") => "`after`".into(),
        [a, b, Index(_)] if key(a, "after") && key(b, "maps") => "a map check".into(),
        _ => format!("`{path}`"),
    }
}

/// Plain words for serde's names of expected types.
fn expected_words(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" => "a whole number from 0 to 18446744073709551615".into(),
        "a sequence" => "a list".into(),
        "a boolean" => "true or false".into(),
        s if s.starts_with("struct ") || s == "a map" => "a mapping".into(),
        s => s.into(),
    }
}

/// The location and message of a serde error, rewritten to name the part of
/// the scenario at fault (`in a stream`) and what was expected.
pub(super) fn serde_message(e: &serde_saphyr::Error, tree: &Node) -> (Option<Pos>, String) {
    use serde_saphyr::Error as E;
    let mut inner = e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let pos = e
        .location()
        .map(|l| Pos {
            line: l.line(),
            column: l.column(),
        })
        .filter(|p| p.line > 0);
    let hits = pos.map(|p| tree.at(p)).unwrap_or_default();
    // The deepest key and the deepest value starting there.
    let key = hits.iter().rev().find(|(_, is_key, _)| *is_key);
    let value = hits.iter().rev().find(|(_, is_key, _)| !is_key);
    // Only `packets:` has keys that are not strings: (the mapping, the key).
    let bad_key = key.and_then(|(p, _, _)| match p.segs().split_last() {
        Some((Seg::Key(k), parent)) if matches!(parent.last(), Some(Seg::Key(x)) if x == "packets") => {
            Some((YPath(parent.to_vec()), k.clone()))
        }
        _ => None,
    });
    let message = match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let holder = key.map(|(p, _, _)| p.parent()).unwrap_or_default();
            if expected.is_empty() {
                format!(
                    "unknown key `{field}` in {}; it takes no keys",
                    noun(&holder)
                )
            } else {
                format!(
                    "unknown key `{field}` in {}; expected one of {}",
                    noun(&holder),
                    expected.join(", ")
                )
            }
        }
        E::SerdeMissingField { field, .. } => {
            // serde-saphyr points at the mapping's last key (or, for an
            // empty mapping, at the mapping): report the mapping.
            let holder = match (key, value) {
                (Some((p, _, _)), _) => p.parent(),
                (None, Some((p, _, _))) => p.clone(),
                (None, None) => YPath::root(),
            };
            let message = format!("missing key `{field}` in {}", noun(&holder));
            return (tree.value_pos(&holder).or(pos), message);
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let what = value.map_or(String::new(), |(p, _, _)| format!(" for `{p}`"));
            format!(
                "unknown value `{variant}`{what}; expected one of {}",
                expected.join(", ")
            )
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let expected = expected_words(expected);
            match (bad_key, value) {
                (Some((parent, _)), _) => {
                    format!("key of `{parent}`: expected {expected}, found {unexpected}")
                }
                (None, Some((p, _, _))) => {
                    format!("`{p}`: expected {expected}, found {unexpected}")
                }
                (None, None) => format!("expected {expected}, found {unexpected}"),
            }
        }
        E::InvalidScalar { ty, .. } => {
            let expected = expected_words(ty);
            match (bad_key, value) {
                (Some((parent, k)), _) => {
                    format!("key of `{parent}`: expected {expected}, found `{k}`")
                }
                (None, Some((p, _, n))) => {
                    let found = n.scalar().unwrap_or_default();
                    format!("`{p}`: expected {expected}, found `{found}`")
                }
                (None, None) => format!("expected {expected}"),
            }
        }
        _ => {
            let mut m = bare_message(e);
            if m.contains("untagged enum Range") {
                m = "expected a number or a range `first-last`".into();
            }
            if m.contains("untagged enum RealSpec") {
                m = "expected an address or `{addr: ADDRESS, weight: N}`".into();
            }
            match value {
                Some((p, _, _)) if !p.segs().is_empty() => format!("`{p}`: {m}"),
                _ => m,
            }
        }
    };
    // An unquoted IPv6 VIP (`vip: [2001:db8::10]`) is a list to YAML.
    let unquoted_vip = value.is_some_and(|(p, _, n)| {
        matches!(p.segs().last(), Some(Seg::Key(k)) if k == "vip")
            && matches!(n.kind, super::tree::Kind::Seq(_))
    });
    if unquoted_vip {
        return (
            pos,
            format!(
                "{message}: quote an IPv6 VIP, \"[2001:db8::10]:80/tcp\" (YAML reads `[` as \
                 the start of a list)"
            ),
        );
    }
    (pos, message)
}
