//! A new scenario file to start from: valid as written, with each key
//! explained in a comment, so an author edits rather than reads a manual.

/// The text of a new scenario called `name`, meant for
/// `scenarios/NAME.yaml`: it runs `xdp_decap` and `tc_decap` over the
/// `decap-tunnels` fixture set and a small generated stream with an
/// expectation, and loads without error from there.
pub fn scaffold(name: &str) -> String {
    TEMPLATE.replace("{name}", &yaml_string(name))
}

/// `name` as a YAML scalar: plain when that reads back as the same string,
/// else double-quoted (JSON's escaping is valid YAML).
fn yaml_string(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null"
        );
    if plain {
        name.to_owned()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| "\"scenario\"".to_owned())
    }
}

const TEMPLATE: &str = r#"# yaml-language-server: $schema=scenario.schema.json
#
# A dsrlab scenario: programs under test, the traffic sent through them, the
# NIC quirks to emulate and what must happen. `dsrlab check` validates it
# without the kernel; every scenarios/*.yaml is also a `cargo test` case.
# Paths are relative to this file.

# Format version; this dsrlab reads version 1.
version: 1
# Name in reports and test names (default: the file name without .yaml).
name: {name}
# What the scenario proves, for humans.
description: >
  xdp_decap and tc_decap over every tunnel kind, plus generated GUE flows.

# The programs under test: every packet runs through each of them, each
# with its own maps. `builtin:` is one of dsrlab's programs (xdp_decap,
# tc_decap, xdp_lb with an `lb:` section, xdp_pass, tc_pass); your own BPF
# object is `object: path/to/prog.o` with `program: NAME` (add
# `contract: decap` if it implements dsrlab's decap counters, and `maps:` to
# fill its maps).
programs:
  - builtin: xdp_decap
  - builtin: tc_decap
    # UDP port of GUE tunnels (decap builtins only; default 6080).
    gue_port: 6080

# How to run: test-run (BPF_PROG_TEST_RUN, one packet per syscall).
modes: [test-run]

# The packets, in order: fixture sets, pcap files (`pcap: FILE`) and
# generated flows. Each stream has exactly one of fixture, pcap, generate.
traffic:
  # A fixture set brings its packets, each with its own expected verdict,
  # counter and output (the decap contract), and its own quirks.
  - fixture: ../fixtures/decap-tunnels.yaml
    # NIC quirks for this stream; `checksum: complete` delivers
    # CHECKSUM_COMPLETE skbs as mlx5 does (TC programs; XDP runs of such
    # packets are reported as skipped, with the reason).
    # quirks: {checksum: complete}
    # Per-packet overrides by 1-based number: quirks and/or expect.
    # packets:
    #   3: {quirks: {linear: 34}}

  # Generated flows: `flows` distinct 5-tuples from the ranges (addresses
  # in 198.18.0.0/15 or 2001:db8::/32), the same bytes for the same seed.
  - name: gue-flows
    generate:
      flows: 4
      packets_per_flow: 2
      tunnel: gue4_in_ip4
      protocols: [tcp, udp]
      src: 198.18.1.0/24
      dst: 198.18.2.1
      dport: 80
      seed: 1
    # What must happen to each packet of this stream (every key optional):
    # verdict (a class: pass, drop, tx, redirect, or a kernel name such as
    # XDP_PASS), output (unchanged or decapsulated), fields of the output by
    # dissection path (`ipv4.ttl: "64"`), equals (a pcap to compare with)
    # and the one contract counter the packet increments.
    expect:
      verdict: pass
      output: decapsulated
      counter: decap_gue4_in_ip4

# NIC quirks for every packet (a stream or packet may add its own).
# quirks: {linear: 64}

# Expectation for every packet of a stream that has none of its own.
# expect: {verdict: pass}

# State after all the traffic: contract counters summed over CPUs (only
# the ones listed are checked; here: no helper ever failed), and raw map
# values of your own objects (`maps: [{map: NAME, key: HEX, value: HEX}]`).
after:
  counters:
    drop_helper_error: 0

# Keep insta snapshots of each program's run (text dissection and .pcap);
# `cargo insta review` shows changes.
snapshot: false
"#;

#[cfg(test)]
mod tests {
    use super::yaml_string;

    #[test]
    fn names_are_quoted_when_needed() {
        assert_eq!(yaml_string("decap-gue"), "decap-gue");
        assert_eq!(yaml_string("yes"), "\"yes\"");
        assert_eq!(yaml_string("a: b"), "\"a: b\"");
        assert_eq!(yaml_string("1x"), "\"1x\"");
    }
}
