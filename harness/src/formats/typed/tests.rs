//! Tests against tests/data/typed.bpf.c, compiled with clang at first use.

use std::{net::Ipv6Addr, path::Path, process::Command, sync::OnceLock};

use serde_json::{Value, json};

use super::*;

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/typed.bpf.c");

/// The test object compiled with `flags` (clang and libbpf headers are
/// installed by ci/setup).
fn compile(flags: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("types.bpf.o");
    let include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new("clang")
        .args(["-O2", "-Wall", "-Werror", &include, "-c", SOURCE, "-o"])
        .arg(&out)
        .args(flags)
        .status()
        .expect("clang runs");
    assert!(
        status.success(),
        "clang {flags:?} {}",
        Path::new(SOURCE).display()
    );
    std::fs::read(out).expect("object written")
}

fn types() -> &'static ObjectTypes {
    static TYPES: OnceLock<ObjectTypes> = OnceLock::new();
    TYPES.get_or_init(|| {
        let elf = compile(&["-g", "-target", "bpf"]);
        ObjectTypes::parse(&elf).expect("parses").expect("has BTF")
    })
}

fn value(map: &str) -> TypeRef {
    types().map_value(map).expect("typed value")
}

fn key(map: &str) -> TypeRef {
    types().map_key(map).expect("typed key")
}

fn global(name: &str) -> TypeRef {
    types().global(name).expect("global").ty
}

fn enc(ty: TypeRef, v: Value) -> Vec<u8> {
    encode(types(), ty, &v).unwrap_or_else(|e| panic!("{v} does not encode: {e}"))
}

fn err(ty: TypeRef, v: Value) -> String {
    match encode(types(), ty, &v) {
        Ok(b) => panic!("{v} encoded to {b:02x?}"),
        Err(e) => e,
    }
}

fn policy(v: Value) -> Vec<u8> {
    enc(value("rules"), v)
}

fn assert_has(e: &str, want: &str) {
    assert!(e.contains(want), "error `{e}` lacks `{want}`");
}

#[test]
fn maps_have_key_and_value_types() {
    let t = types();
    let name = |r: Option<TypeRef>| r.map(|r| t.type_name(r));
    assert_eq!(name(t.map_key("rules")).as_deref(), Some("struct lpm_key"));
    assert_eq!(name(t.map_value("rules")).as_deref(), Some("struct policy"));
    assert_eq!(name(t.map_key("by_v6")).as_deref(), Some("struct in6_addr"));
    assert_eq!(name(t.map_value("by_v6")).as_deref(), Some("__u32"));
    assert_eq!(
        name(t.map_value("tallies")).as_deref(),
        Some("struct tally")
    );
    assert_eq!(t.size_of(key("rules")), 8);
    assert_eq!(t.size_of(value("rules")), 80);
    assert_eq!(t.size_of(value("stats")), 64);
    // Declared with key_size/value_size: no types, the caller uses hex.
    assert_eq!(t.map_key("untyped"), None);
    assert_eq!(t.map_value("untyped"), None);
    assert_eq!(t.map_value("nope"), None);
    let maps: Vec<&str> = t.maps().collect();
    assert_eq!(maps, ["by_v6", "rules", "stats", "tallies", "untyped"]);
}

#[test]
fn globals_have_sections_offsets_and_types() {
    let t = types();
    let g = |n: &str| t.global(n).expect(n);
    assert_eq!((g("x").section.as_str(), g("x").size), (".rodata", 4));
    assert_eq!(t.type_name(g("x").ty), "__u32");
    assert_eq!(t.type_name(g("vip").ty), "__be32");
    assert_eq!(
        g("vip").offset,
        g("x").offset + 4,
        "{:?} {:?}",
        g("x"),
        g("vip")
    );
    assert_eq!(
        (g("y").section.as_str(), t.type_name(g("y").ty)),
        (".bss", "__u64".into())
    );
    assert_eq!(
        (g("name").section.as_str(), t.type_name(g("name").ty)),
        (".data", "char[8]".into())
    );
    assert_eq!(t.type_name(g("mode").ty), "enum verdict");
    assert_eq!(t.type_name(g("last_tally").ty), "struct tally *");
    assert_eq!(
        (t.type_name(g("grid").ty), t.size_of(g("grid").ty)),
        ("__u16[2][3]".into(), 12)
    );
    let names: Vec<&str> = t.globals().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "grid",
            "gw",
            "last_tally",
            "mode",
            "name",
            "ratio",
            "scale",
            "vip",
            "x",
            "y"
        ]
    );
    assert!(
        t.global("LICENSE").is_none(),
        "license section is not a data section"
    );
}

#[test]
fn objects_without_btf_or_not_bpf_or_big_endian() {
    assert_eq!(
        ObjectTypes::parse(&compile(&["-target", "bpf"])).map(|t| t.is_none()),
        Ok(true)
    );
    let e = ObjectTypes::parse(&compile(&["-g", "-target", "bpfeb"])).expect_err("big-endian");
    assert_has(&e, "big-endian");
    assert_has(
        &ObjectTypes::parse(b"not an elf").expect_err("garbage"),
        "not an ELF object",
    );
    let host = std::fs::read(std::env::current_exe().expect("exe")).expect("read exe");
    assert_has(
        &ObjectTypes::parse(&host).expect_err("host ELF"),
        "not a BPF object",
    );
}

#[test]
fn integers_numbers_strings_and_ranges() {
    let b = policy(json!({"mark": 0x01020304, "weight": -3, "proto": true}));
    assert_eq!(&b[4..8], [4, 3, 2, 1]);
    assert_eq!(&b[48..50], [0xfd, 0xff]);
    assert_eq!(b[10], 1);
    // A quoted value is bytes, never a number.
    assert_eq!(&policy(json!({"mark": "10000000"}))[4..8], [0x10, 0, 0, 0]);
    assert_eq!(&policy(json!({"weight": -2}))[48..50], [0xfe, 0xff]);
    assert_has(
        &err(value("rules"), json!({"mark": "4096"})),
        "got `4096` (2 hex bytes; a quoted value is bytes, an unquoted one a number)",
    );
    assert_has(
        &err(value("rules"), json!({"mark": 8000000.0})),
        "(YAML reads it as a float: quote hex bytes, or write an integer)",
    );
    assert_eq!(
        err(value("rules"), json!({"range": {"lo": 70000}})),
        "`range.lo`: 70000 does not fit __u16 (0..=65535)"
    );
    assert_eq!(
        err(value("rules"), json!({"mark": -1})),
        "`mark`: -1 does not fit __u32 (0..=4294967295)"
    );
    assert_has(
        &err(value("rules"), json!({"weight": 40000})),
        "does not fit __s16 (-32768..=32767)",
    );
    assert_has(
        &err(value("rules"), json!({"mark": 1.5})),
        "`mark`: 1.5 is not an integer (__u32)",
    );
    assert_eq!(
        err(global("y"), json!("ten")),
        "expected a number or 8 hex bytes for __u64, got `ten`"
    );
}

#[test]
fn network_order_typedefs() {
    let b = policy(json!({"port": 80, "csum": "0x1234", "seq": 1}));
    assert_eq!(&b[8..10], [0, 80]);
    assert_eq!(&b[60..62], [0x12, 0x34]);
    assert_eq!(&b[64..72], [0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(enc(global("vip"), json!(0x0a000001)), [10, 0, 0, 1]);
    assert_eq!(enc(global("x"), json!(0x0a000001)), [1, 0, 0, 10]);
}

#[test]
fn addresses_in_network_order() {
    assert_eq!(
        enc(key("rules"), json!({"prefixlen": 24, "addr": "10.1.2.0"})),
        [24, 0, 0, 0, 10, 1, 2, 0]
    );
    // A host-order integer holding an address stores it as the kernel does.
    assert_eq!(enc(global("x"), json!("192.0.2.1")), [192, 0, 2, 1]);
    assert_eq!(enc(global("gw"), json!("198.18.0.1")), [198, 18, 0, 1]);
    let v6: Vec<u8> = "2001:db8::1"
        .parse::<Ipv6Addr>()
        .expect("v6")
        .octets()
        .into();
    assert_eq!(enc(key("by_v6"), json!("2001:db8::1")), v6);
    assert_eq!(&policy(json!({"ports": "2001:db8::1"}))[16..32], v6);
    assert_eq!(
        err(global("vip"), json!("foo")),
        "expected an IPv4 address, a number or 4 hex bytes for __be32, got `foo`"
    );
    assert_eq!(
        err(value("rules"), json!({"via": {"gateway": "10.0.0.256"}})),
        "`via.gateway`: expected an IPv4 address, a number or 4 hex bytes for __be32, got `10.0.0.256`"
    );
    assert_has(
        &err(global("y"), json!("10.0.0.1")),
        "expected a number or 8 hex bytes for __u64",
    );
    assert_has(
        &err(key("by_v6"), json!("10.0.0.1")),
        "expected an IPv6 address, a mapping of its members (in6_u) or 16 hex bytes for struct in6_addr",
    );
}

#[test]
fn enums_by_name_or_number() {
    assert_eq!(
        &policy(json!({"verdict": "VERDICT_REDIRECT"}))[0..4],
        [7, 0, 0, 0]
    );
    assert_eq!(&policy(json!({"verdict": 1}))[0..4], [1, 0, 0, 0]);
    assert_eq!(enc(global("mode"), json!("VERDICT_DROP")), [1, 0, 0, 0]);
    assert_eq!(
        err(value("rules"), json!({"verdict": "VERDICT_NOPE"})),
        "`verdict`: unknown enumerator `VERDICT_NOPE` of enum verdict (it has: VERDICT_PASS, VERDICT_DROP, VERDICT_REDIRECT)"
    );
}

#[test]
fn structs_nested_arrays_of_structs_and_unknown_members() {
    let b = policy(json!({"range": {"lo": 1, "hi": 0x203}}));
    assert_eq!(&b[12..16], [1, 0, 3, 2]);
    assert!(
        b.iter()
            .enumerate()
            .all(|(i, c)| (12..16).contains(&i) || *c == 0),
        "members not given are zero"
    );
    let s = enc(
        value("stats"),
        json!({"by_verdict": [{}, {"bytes": 5}], "last": "VERDICT_DROP"}),
    );
    assert_eq!(&s[24..32], [5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&s[48..52], [1, 0, 0, 0]);
    let e = err(value("rules"), json!({"marks": 1}));
    assert_has(
        &e,
        "unknown member `marks` of struct policy (it has: verdict, mark, port, proto, flags, level, range, ports, via, cookie, cookie_lo, cookie_hi,",
    );
    assert_eq!(
        err(value("stats"), json!({"by_verdict": [{}, {"bytes": "x"}]})),
        "`by_verdict[1].bytes`: expected a number or 8 hex bytes for __u64, got `x`"
    );
    assert_has(
        &err(value("rules"), json!({"range": 5})),
        "`range`: expected a mapping of its members (lo, hi) or 4 hex bytes for struct range, got `5`",
    );
}

#[test]
fn bitfields_set_their_bits() {
    assert_eq!(policy(json!({"flags": 5, "level": 17}))[11], 5 | (17 << 3));
    assert_eq!(policy(json!({"bias": -3}))[72], 0b1101);
    assert_eq!(
        err(value("rules"), json!({"flags": 9})),
        "`flags`: 9 does not fit a 3-bit field of __u8 (0..=7)"
    );
    assert_has(
        &err(value("rules"), json!({"bias": -9})),
        "`bias`: -9 does not fit a 4-bit field of __s8 (-8..=7)",
    );
}

#[test]
fn unions_take_one_member_anonymous_ones_by_their_fields() {
    assert_eq!(
        &policy(json!({"via": {"gateway": "10.0.0.1"}}))[32..36],
        [10, 0, 0, 1]
    );
    assert_eq!(
        &policy(json!({"via": {"ifindex": 3}}))[32..36],
        [3, 0, 0, 0]
    );
    assert_has(
        &err(value("rules"), json!({"via": {}})),
        "`via`: give one member of union <anonymous> (ifindex, gateway)",
    );
    assert_has(
        &err(value("rules"), json!({"via": {"gateway": 2, "ifindex": 1}})),
        "`via`: `gateway` and `ifindex` share union",
    );
    let b = policy(json!({"cookie_lo": 1, "cookie_hi": 2}));
    assert_eq!(&b[40..48], [1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        &policy(json!({"cookie": 0x0102}))[40..48],
        [2, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_has(
        &err(value("rules"), json!({"cookie": 1, "cookie_hi": 2})),
        "`cookie` and `cookie_hi` share union <anonymous>: give one of them",
    );
}

#[test]
fn arrays_lists_and_char_text() {
    assert_eq!(
        &policy(json!({"ports": [1, 2]}))[16..32],
        [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        err(value("rules"), json!({"ports": [1, 2, 3, 4, 5]})),
        "`ports`: 5 elements given, __u32[4] has 4"
    );
    assert_eq!(&policy(json!({"tag": "ab"}))[56..60], b"ab\0\0");
    assert_eq!(&policy(json!({"tag": "abcd"}))[56..60], b"abcd");
    assert_eq!(
        err(value("rules"), json!({"tag": "abcde"})),
        "`tag`: `abcde` is 5 bytes, longer than char[4]"
    );
    assert_eq!(enc(global("name"), json!("dsrlab")), b"dsrlab\0\0");
    assert_eq!(
        enc(global("grid"), json!([[1], [0, 0, 0x0203]]))[..12],
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2]
    );
    assert_has(
        &err(global("grid"), json!([[1, 2, 3, 4]])),
        "`[0]`: 4 elements given, __u16[3] has 3",
    );
}

#[test]
fn raw_hex_is_accepted_for_any_type() {
    let want = [24, 0, 0, 0, 10, 1, 2, 0];
    assert_eq!(enc(key("rules"), json!("18000000 0a010200")), want);
    assert_eq!(enc(key("rules"), json!("0x180000000a010200")), want);
    assert_eq!(enc(key("rules"), json!("18:00:00:00:0a:01:02:00")), want);
    assert_eq!(
        &policy(json!({"mac": "aa:bb:cc:dd:ee:ff"}))[50..56],
        [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
    );
    assert_eq!(&policy(json!({"tag": "0x61626364"}))[56..60], b"abcd");
    // Not a decimal number: the bytes, in memory order.
    assert_eq!(enc(global("x"), json!("0a000001")), [10, 0, 0, 1]);
    assert_eq!(enc(global("last_tally"), json!("0000000000000000")), [0; 8]);
    assert_has(
        &err(key("rules"), json!("18000000 0a0102")),
        "a mapping of its members (prefixlen, addr) or 8 hex bytes for struct lpm_key, got `18000000 0a0102`",
    );
    assert_has(&err(key("rules"), json!("1 2")), "8 hex bytes");
}

#[test]
fn floats_are_numbers() {
    assert_eq!(enc(global("ratio"), json!(1.5)), 1.5f32.to_le_bytes());
    assert_eq!(enc(global("scale"), json!(-2)), (-2f64).to_le_bytes());
    assert_eq!(
        decode(types(), global("scale"), &0.25f64.to_le_bytes()),
        0.25
    );
    let got = mismatches(global("ratio"), json!(2.5), &1.5f32.to_le_bytes());
    assert_eq!(got, [m("", "2.5", "1.5")]);
    assert_eq!(
        err(global("ratio"), json!("x")),
        "expected a number or 4 hex bytes for float, got `x`"
    );
}

#[test]
fn pointers_take_hex_only() {
    assert_eq!(
        err(global("last_tally"), json!(5)),
        "expected 8 hex bytes for struct tally *, got `5`"
    );
}

#[test]
fn decode_shows_numbers_names_text_and_addresses() {
    let b = policy(json!({
        "verdict": "VERDICT_DROP", "port": 8080, "flags": 2, "level": 31, "tag": "ab",
        "via": {"ifindex": 7}, "cookie_hi": 1, "weight": -2, "seq": 5, "bias": -1,
    }));
    let d = decode(types(), value("rules"), &b);
    assert_eq!(d["verdict"], "VERDICT_DROP");
    assert_eq!(d["port"], 8080, "network order shown as a host value");
    assert_eq!(
        (d["flags"].clone(), d["level"].clone(), d["bias"].clone()),
        (json!(2), json!(31), json!(-1))
    );
    assert_eq!(d["tag"], "ab");
    assert_eq!(d["via"], json!({"ifindex": 7}));
    assert_eq!(
        d["cookie"],
        1u64 << 32,
        "an anonymous union shows its largest member"
    );
    assert_eq!(d["weight"], -2);
    assert_eq!(d["seq"], 5);
    assert_eq!(d["ports"], json!([0, 0, 0, 0]));
    assert_eq!(d["range"], json!({"lo": 0, "hi": 0}));
    assert_eq!(
        decode(types(), key("by_v6"), &enc(key("by_v6"), json!("fe80::2"))),
        "fe80::2"
    );
    assert_eq!(
        decode(types(), key("rules"), &[32, 0, 0, 0, 10, 0, 0, 1]),
        json!({"prefixlen": 32, "addr": 0x0a000001})
    );
    assert_eq!(
        decode(types(), global("name"), b"ab\0c\0\0\0\0"),
        json!([97, 98, 0, 99, 0, 0, 0, 0]),
        "not text: bytes after the NUL"
    );
    assert_eq!(
        decode(types(), global("y"), &[1, 2]),
        "0102",
        "wrong size: hex"
    );
}

#[test]
fn encode_decode_round_trips() {
    let cases = [
        (
            value("rules"),
            json!({"verdict": 7, "mark": 9, "port": 443, "flags": 7, "level": 1, "range": {"lo": 2, "hi": 3},
            "ports": [1, 2, 3, 4], "via": {"gateway": "1.2.3.4"}, "cookie": 99, "weight": -7, "mac": "0102030405ff",
            "tag": "tag", "csum": 0xffff, "seq": "0xffffffffffffffff", "bias": -8}),
        ),
        (
            value("stats"),
            json!({"by_verdict": [{"packets": 1, "bytes": 2}, {}, {"bytes": u64::MAX}], "label": "abcdef", "delta": -5}),
        ),
        (key("by_v6"), json!("::ffff:10.0.0.1")),
        (global("grid"), json!([[1, 2, 3], [4, 5, 6]])),
        (global("mode"), json!("VERDICT_REDIRECT")),
    ];
    for (ty, v) in cases {
        let bytes = enc(ty, v.clone());
        let back = encode(types(), ty, &decode(types(), ty, &bytes));
        assert_eq!(
            back.as_ref(),
            Ok(&bytes),
            "{v} → {}",
            decode(types(), ty, &bytes)
        );
    }
}

/// The mismatches by field name (the order of a JSON object's keys depends
/// on serde_json's `preserve_order` feature).
fn mismatches(ty: TypeRef, expected: Value, actual: &[u8]) -> Vec<(String, String, String)> {
    let mut found: Vec<_> = compare(types(), ty, &expected, actual)
        .into_iter()
        .map(|m| (m.field, m.expected, m.actual))
        .collect();
    found.sort();
    found
}

fn m(field: &str, expected: &str, actual: &str) -> (String, String, String) {
    (field.into(), expected.into(), actual.into())
}

#[test]
fn compare_checks_only_what_is_written() {
    let actual = policy(
        json!({"verdict": "VERDICT_DROP", "mark": 0x11, "level": 17, "tag": "ax", "weight": -1,
        "via": {"gateway": "10.0.0.2"}, "ports": [1, 2, 3]}),
    );
    let ty = value("rules");
    assert_eq!(
        mismatches(
            ty,
            json!({"mark": 17, "verdict": "VERDICT_DROP", "ports": [1, 2]}),
            &actual
        ),
        []
    );
    assert_eq!(
        mismatches(
            ty,
            json!({"mark": 16, "verdict": "VERDICT_PASS", "level": 3, "tag": "ab", "weight": -2}),
            &actual
        ),
        [
            m("level", "3", "17"),
            m("mark", "16", "17"),
            m("tag", "ab", "ax"),
            m("verdict", "VERDICT_PASS", "VERDICT_DROP"),
            m("weight", "-2", "-1")
        ]
    );
    assert_eq!(
        mismatches(
            ty,
            json!({"via": {"gateway": "10.0.0.1"}, "ports": [1, 5]}),
            &actual
        ),
        [
            m("ports[1]", "5", "2"),
            m("via.gateway", "10.0.0.1", "10.0.0.2")
        ]
    );
    assert_eq!(
        mismatches(ty, json!({"verdict": 0}), &actual),
        [m("verdict", "0", "1")]
    );
    let past = mismatches(ty, json!({"ports": [1, 2, 3, 0, 9]}), &actual);
    assert_eq!(past, [m("ports[4]", "9", "(beyond the end of __u32[4])")]);
    let bad = mismatches(ty, json!({"mark": "many", "nope": 1}), &actual);
    assert_eq!((bad[0].0.as_str(), bad[1].0.as_str()), ("mark", "nope"));
    assert_has(&bad[0].2, "not comparable: `mark`: expected");
    assert_has(&bad[1].2, "no such member of struct policy");
}

#[test]
fn compare_leaves_in_the_notation_written() {
    let k = enc(key("rules"), json!({"prefixlen": 24, "addr": "10.0.0.2"}));
    assert_eq!(
        mismatches(
            key("rules"),
            json!({"addr": "10.0.0.1", "prefixlen": 32}),
            &k
        ),
        [
            m("addr", "10.0.0.1", "10.0.0.2"),
            m("prefixlen", "32", "24")
        ]
    );
    assert_eq!(
        mismatches(key("rules"), json!({"addr": "10.0.0.2"}), &k),
        [],
        "prefixlen is not compared"
    );
    // Hex compares every byte, shown as the user wrote hex.
    assert_eq!(
        mismatches(key("rules"), json!("18:00:00:00:0a:00:00:01"), &k),
        [m("", "18:00:00:00:0a:00:00:01", "18:00:00:00:0a:00:00:02")]
    );
    assert_eq!(
        mismatches(key("by_v6"), json!("::1"), &enc(key("by_v6"), json!("::2"))),
        [m("", "::1", "::2")]
    );
    let s = enc(value("stats"), json!({"by_verdict": [{}, {"bytes": 6}]}));
    assert_eq!(
        mismatches(
            value("stats"),
            json!({"by_verdict": [{}, {"bytes": 5}]}),
            &s
        ),
        [m("by_verdict[1].bytes", "5", "6")]
    );
    assert_eq!(
        mismatches(global("name"), json!("dsrlab"), b"dsr\0\0\0\0\0"),
        [m("", "dsrlab", "dsr")]
    );
    assert_eq!(
        mismatches(global("y"), json!(1), &[1, 0]),
        [m("", "8 bytes", "2 bytes")]
    );
}

#[test]
fn per_cpu_values_sum_integers_and_keep_the_rest_of_cpu_0() {
    let cpus = [
        enc(
            value("stats"),
            json!({"by_verdict": [{"packets": 1, "bytes": 100}], "last": "VERDICT_DROP", "label": "cpu0", "delta": -5}),
        ),
        enc(
            value("stats"),
            json!({"by_verdict": [{"packets": 2, "bytes": 200}, {"packets": 1}], "last": "VERDICT_PASS", "label": "cpu1", "delta": 3}),
        ),
        enc(
            value("stats"),
            json!({"by_verdict": [{"packets": 3, "bytes": 300}], "last": 7, "label": "cpu2", "delta": -1}),
        ),
    ];
    let per_cpu: Vec<&[u8]> = cpus.iter().map(Vec::as_slice).collect();
    let total = decode(
        types(),
        value("stats"),
        &sum_per_cpu(types(), value("stats"), &per_cpu),
    );
    assert_eq!(total["by_verdict"][0], json!({"packets": 6, "bytes": 600}));
    assert_eq!(total["by_verdict"][1], json!({"packets": 1, "bytes": 0}));
    assert_eq!(
        (
            total["last"].clone(),
            total["label"].clone(),
            total["delta"].clone()
        ),
        (json!("VERDICT_DROP"), json!("cpu0"), json!(-3))
    );
    let max = enc(value("tallies"), json!({"packets": u64::MAX, "bytes": 1}));
    let one = enc(value("tallies"), json!({"packets": 2, "bytes": 1}));
    let sum = sum_per_cpu(types(), value("tallies"), &[&max, &one, &[0; 3]]);
    assert_eq!(
        decode(types(), value("tallies"), &sum),
        json!({"packets": 1, "bytes": 2}),
        "wraps; wrong-size CPUs skipped"
    );
    assert_eq!(sum_per_cpu(types(), value("tallies"), &[]), [0; 16]);
}

#[test]
fn bitfields_sum_within_their_width() {
    let a = policy(json!({"level": 30, "flags": 1, "mark": 1}));
    let b = policy(json!({"level": 3, "flags": 2, "mark": 2}));
    let d = decode(
        types(),
        value("rules"),
        &sum_per_cpu(types(), value("rules"), &[&a, &b]),
    );
    assert_eq!(
        (d["level"].clone(), d["flags"].clone(), d["mark"].clone()),
        (json!(1), json!(3), json!(3))
    );
}

#[test]
fn hex_separators() {
    assert_eq!(hex("0x0a 00:00 01"), Ok(vec![10, 0, 0, 1]));
    assert_eq!(hex("0100 0000"), Ok(vec![1, 0, 0, 0]));
    assert_has(
        &hex("1:2").expect_err("one digit"),
        "`1:2` is not hex bytes",
    );
    assert!(hex("zz").is_err());
}

#[test]
fn hex_forms() {
    assert_eq!(hex("01000000"), Ok(vec![1, 0, 0, 0]));
    assert_eq!(hex("01 00:00 00"), Ok(vec![1, 0, 0, 0]));
    assert_eq!(hex("0xdead"), Ok(vec![0xde, 0xad]));
    assert!(hex("abc").unwrap_err().contains("odd number"));
    assert!(hex("zz").unwrap_err().contains("`z` is not a hex digit"));
    assert!(hex("+1").unwrap_err().contains("`+` is not a hex digit"));
    assert!(hex(" ").unwrap_err().contains("is empty"));
}
