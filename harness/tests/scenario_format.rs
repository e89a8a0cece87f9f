//! Tests of the scenario format: loading and checking scenario files (every
//! error with its `file:line:column` and what was expected), expansion into
//! packets with merged quirks and expectations, the scaffold, and the JSON
//! Schema (shipped file current, shipped scenarios valid against it).
//!
//! Scenario text is given inline and loaded as if it were
//! `tests/data/scenarios/t.yaml` (cargo runs integration tests in
//! `harness/`), so that relative paths reach the small files there.

use std::path::{Path, PathBuf};

use dsrlab::{
    datapath,
    formats::{
        fixture::Quirks,
        scenario::{
            load::{
                self, EntryValue, LbOp, ProgramSource, ResolvedProgram, ScenarioError, load_str,
            },
            model::{Builtin, ChainBackend, Contract, OutputExpect},
            scaffold::scaffold,
            schema::{SHIPPED_PATH, schema_json},
        },
    },
};
use dsrlab_abi::{
    decap::Counter,
    lb::{Counter as LbCounter, vip_flags},
};
use rstest::rstest;

const DATA: &str = "tests/data/scenarios";

fn data(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The error of loading `text` as `tests/data/scenarios/t.yaml`.
fn error(text: &str) -> String {
    match load_str(text, &data("t.yaml")) {
        Ok(_) => panic!("loaded without error:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A valid scenario's first lines; cases append to or replace them.
const HEAD: &str = "version: 1\nprograms:\n  - builtin: xdp_decap\n";

#[rstest]
#[case::broken_yaml(
    "version: 1\nprograms: [{builtin: xdp_decap}\ntraffic: []\n",
    "t.yaml:3:8: invalid YAML: illegal placement of ':' indicator"
)]
#[case::empty_file(
    "# nothing yet\n",
    "t.yaml: the file is empty; expected a scenario (`version: 1`, `programs:`, `traffic:`)"
)]
#[case::not_a_mapping(
    "- version: 1\n",
    "t.yaml:1:1: expected a mapping with `version: 1`, `programs:` and `traffic:`"
)]
#[case::unknown_key(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    expct: {verdict: pass}\n",
    "t.yaml:6:5: unknown key `expct` in a stream; expected one of name, fixture, pcap, generate, inline, quirks, ctx, expect, packets, lb_changes, chain_changes"
)]
#[case::unknown_top_level_key(
    "version: 1\nprogram: []\n",
    "t.yaml:2:1: unknown key `program` in the scenario; expected one of version, name, description, programs, modes, traffic, topology, services, clients, captures, quirks, ctx, expect, after, snapshot"
)]
#[case::wrong_type(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {flows: many}\n",
    "t.yaml:5:23: `traffic[0].generate.flows`: expected a whole number from 0 to 4294967295, found `many`"
)]
#[case::unknown_value(
    "version: 1\nprograms:\n  - builtin: xdp_decapp\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:3:14: unknown value `xdp_decapp` for `programs[0].builtin`; expected one of xdp_decap, tc_decap, xdp_pass, tc_pass, xdp_lb"
)]
#[case::missing_version(
    "programs:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:1:1: missing key `version`; expected `version: 1`"
)]
#[case::version_2(
    "version: 2\nprograms: []\n",
    "t.yaml:1:10: version 2 is not supported; this dsrlab reads version 1 only"
)]
#[case::missing_traffic(
    "version: 1\nprograms:\n  - builtin: xdp_decap\n",
    "t.yaml:1:1: `traffic` is empty or missing; expected at least one stream (or a `topology:` with `clients:`)"
)]
#[case::missing_key_in_item(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\nafter:\n  maps:\n    - {key: '00', value: '00'}\n",
    "t.yaml:8:7: missing key `map` in a map check"
)]
#[case::missing_key_in_generator(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {tunnel: ip4_in_ip4}\n",
    "t.yaml:5:15: missing key `flows` in a generator"
)]
#[case::unknown_key_in_generator(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate:\n      flows: 2\n      sports: 1-2\n",
    "t.yaml:7:7: unknown key `sports` in a generator; expected one of flows, packets_per_flow, tunnel, outer_src, outer_dst, protocols, src, dst, sport, dport, payload, ip_len_around, seed, headers"
)]
#[case::packet_number_not_a_number(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    packets:\n      first: {}\n",
    "t.yaml:7:7: key of `traffic[0].packets`: expected a whole number from 0 to 4294967295, found `first`"
)]
#[case::missing_pcap(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: nope.pcap\n",
    "t.yaml:5:11: cannot use pcap: tests/data/scenarios/nope.pcap: cannot read: No such file or directory (os error 2)"
)]
#[case::pcap_bad_magic(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: bad-magic.pcap\n",
    "t.yaml:5:11: cannot use pcap: tests/data/scenarios/bad-magic.pcap: not a pcapng file: Invalid field value: SectionHeaderBlock: invalid magic number"
)]
#[case::pcap_truncated_record(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: truncated.pcap\n",
    "t.yaml:5:11: cannot use pcap: tests/data/scenarios/truncated.pcap: packet 2: truncated packet data (10 of 60 bytes)"
)]
#[case::fixture_stale(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - fixture: stale.yaml\n",
    "t.yaml:5:14: cannot use fixture set: tests/data/scenarios/stale.pcap is stale: packet 1 (`udp`: ipv4.ttl: expected 10, actual 64) differs from tests/data/scenarios/stale.yaml (run `dsrlab fixtures gen`)"
)]
#[case::fixture_missing(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - fixture: ../../../../fixtures/nope.yaml\n",
    "t.yaml:5:14: cannot use fixture set: ../fixtures/nope.yaml: No such file or directory (os error 2)"
)]
#[case::no_source(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - name: empty\n",
    "t.yaml:5:5: a stream needs one of `fixture`, `pcap`, `generate` or `inline`"
)]
#[case::two_sources(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    generate: {flows: 1}\n",
    "t.yaml:6:5: a stream has both `pcap` and `generate`; give exactly one of `fixture`, `pcap`, `generate`, `inline`"
)]
#[case::builtin_and_object(
    "version: 1\nprograms:\n  - builtin: xdp_decap\n    object: prog.o\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:5: a program has both `builtin` and `object`; give one: `builtin` for one of dsrlab's programs, or `object` and `program` for your own"
)]
#[case::no_program_source(
    "version: 1\nprograms:\n  - gue_port: 6080\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:3:5: a program needs `builtin` (one of xdp_decap, tc_decap, xdp_pass, tc_pass, xdp_lb), `object` and `program`, or `chain`"
)]
#[case::gue_port_on_pass(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    gue_port: 7000\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:5: `gue_port` applies only to the decap builtins (xdp_decap, tc_decap), not to built-in xdp_pass"
)]
#[case::unknown_counter(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    expect: {counter: decap_ip5}\n",
    "t.yaml:6:23: unknown counter `decap_ip5` of the decap contract; expected one of decap_ip4_in_ip4, decap_ip6_in_ip4, decap_ip4_in_ip6, decap_ip6_in_ip6, decap_gue4_in_ip4, decap_gue6_in_ip4, decap_gue4_in_ip6, decap_gue6_in_ip6, pass_not_tunnel, pass_fragment, pass_extension_header, pass_non_linear, pass_malformed, drop_malformed_tunnel, drop_helper_error"
)]
#[case::counter_without_contract(
    "version: 1\nprograms:\n  - builtin: xdp_decap\n  - builtin: xdp_pass\ntraffic:\n  - pcap: two.pcap\n    expect: {counter: pass_not_tunnel}\n",
    "t.yaml:7:23: counter `pass_not_tunnel` needs programs with a contract; program `xdp_pass` has none"
)]
#[case::after_counter_without_contract(
    "version: 1\nprograms:\n  - builtin: tc_pass\ntraffic:\n  - pcap: two.pcap\nafter:\n  counters:\n    pass_not_tunnel: 2\n",
    "t.yaml:8:5: counter `pass_not_tunnel` needs programs with a contract; program `tc_pass` has none"
)]
#[case::contract_a_builtin_lacks(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    contract: decap\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:15: built-in xdp_pass does not implement the decap contract"
)]
#[case::generator_bad_range(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate:\n      flows: 2\n      src: 198.18.5.0-198.18.1.0\n",
    "t.yaml:7:12: `src` in a generator: 198.18.5.0-198.18.1.0 is empty: its first address comes after its last"
)]
#[case::override_of_missing_packet(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    packets:\n      3: {expect: {verdict: drop}}\n",
    "t.yaml:7:7: packet 3 does not exist: stream `two` has 2 packets, numbered from 1"
)]
#[case::equals_too_short(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {flows: 3}\n    expect: {equals: two.pcap}\n",
    "t.yaml:6:22: tests/data/scenarios/two.pcap has 2 packets; stream `generated` needs 3 (its packet N is compared with packet N)"
)]
#[case::field_path(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    expect:\n      fields: {ipv4.tll: \"64\"}\n",
    "t.yaml:7:16: field `ipv4.tll`: ipv4 has no field `tll`; expected one of csum, csum_status, dst, flags, frag, id, ihl, len, opts, proto, src, tos, ttl, ver"
)]
#[case::verdict_of_another_program_type(
    "version: 1\nprograms:\n  - builtin: xdp_decap\n  - builtin: tc_decap\ntraffic:\n  - pcap: two.pcap\nexpect: {verdict: XDP_PASS}\n",
    "t.yaml:7:19: verdict XDP_PASS cannot come from program `tc_decap`, a TC program; a class (pass, drop, tx, redirect) fits every program type"
)]
#[case::duplicate_stream_name(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n  - name: two\n    generate: {flows: 1}\n",
    "t.yaml:6:11: stream name `two` is taken by traffic[0]; give each stream its own `name:`"
)]
#[case::topology_in_test_run_mode(
    "version: 1\nprograms:\n  - builtin: tc_decap\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:1:1: a scenario with a `topology:` runs in netns mode only: `modes: [netns]`"
)]
#[case::unknown_client_node(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: clinet, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:7:12: unknown node `clinet`; the topology's nodes are client, router, lb, host, c1"
)]
#[case::vip_outside_the_ranges(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    containers: [{name: a, vips: [10.0.0.1]}]\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:7:35: 10.0.0.1 is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
)]
#[case::unknown_capture_interface(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\ncaptures:\n  - {name: x, node: router, interface: eth0}\n",
    "t.yaml:9:40: node `router` has no interface `eth0`; it has to-client, to-lb, to-host"
)]
#[case::capture_field_path(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\ncaptures:\n  - {name: x, node: lb, interface: eth0, expect: [{match: {tcp.sprot: \"80\"}, none: true}]}\n",
    "t.yaml:9:60: field `tcp.sprot`: tcp has no field `sprot`; expected one of ack, csum, csum_status, dport, flags, off, opts, res, seq, sport, urg, win"
)]
#[case::clients_expect_nothing(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}}\n",
    "t.yaml:7:5: clients `clients-1` expect nothing, so their flows would check nothing: give `expect:` (outcome, served_by, reply)"
)]
#[case::program_without_a_place(
    "version: 1\nprograms:\n  - builtin: tc_pass\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:3:5: program `tc_pass`: say where it goes in the topology with `attach: {node, interface, hook}` (the reference topology places lb and decap programs itself, nothing else)"
)]
#[case::xdp_program_on_a_tc_hook(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: host, interface: eth0, hook: tc_ingress}\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:4:49: program `xdp_pass` is an XDP program and cannot go on hook tc_ingress"
)]
#[case::services_without_topology(
    "version: 1\nprograms:\n  - builtin: tc_decap\ntraffic:\n  - pcap: two.pcap\nservices:\n  - {node: a, proto: tcp, listen: 198.18.100.1:80}\n",
    "t.yaml:6:1: `services` needs a `topology:` to run in"
)]
#[case::bad_listen_address(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nservices:\n  - {node: c1, proto: tcp, listen: 198.18.100.1}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:7:36: `198.18.100.1` is not ADDRESS:PORT (198.18.100.1:80, 0.0.0.0:80, \"[::]:8080\")"
)]
#[case::custom_link_to_unknown_node(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\nmodes: [netns]\ntopology:\n  nodes: [{name: a}]\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1/24]}\n      b: {node: b, name: b0}\nclients:\n  - {node: a, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:10:17: unknown node `b`; the topology's nodes are a"
)]
#[case::custom_address_without_prefix(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\nmodes: [netns]\ntopology:\n  nodes: [{name: a}]\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1]}\n      b: {node: a, name: b0}\nclients:\n  - {node: a, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:9:42: `198.18.0.1` is not an address with a prefix (198.18.3.1/24, 2001:db8:3::1/64)"
)]
#[case::overlapping_networks_in_a_node(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\nmodes: [netns]\ntopology:\n  nodes: [{name: a}, {name: b}]\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1/24]}\n      b: {node: b, name: b0}\n    - a: {node: a, name: a1, addresses: [198.18.0.2/24]}\n      b: {node: b, name: b1}\nclients:\n  - {node: a, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:6:1: topology: node a: 198.18.0.1/24 on a0 overlaps 198.18.0.2/24 on a1"
)]
#[case::client_source_the_node_does_not_own(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology: {reference: {}}\nclients:\n  - {node: client, generate: {flows: 1, src: 198.18.7.1}, expect: {outcome: reply}}\n",
    "t.yaml:7:46: flow 1 would send from 198.18.7.1, which node `client` does not own: give `src:` addresses of the node (its links, its lo, or a local route)"
)]
#[case::client_group_name_taken(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {vips: [{vip: 198.18.100.1:80/tcp}]}\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    containers: [{name: a, vips: [198.18.100.1]}]\nclients:\n  - {name: x, node: client, generate: {flows: 1}, expect: {outcome: reply}}\n  - {name: x, node: client, generate: {flows: 1, seed: 2}, expect: {outcome: reply}}\n",
    "t.yaml:12:12: client group name `x` is taken; each group needs its own"
)]
#[case::the_same_flow_in_two_groups(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {vips: [{vip: 198.18.100.1:80/tcp}]}\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    containers: [{name: a, vips: [198.18.100.1]}]\nclients:\n  - {name: x, node: client, generate: {flows: 1}, expect: {outcome: reply}}\n  - {name: y, node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:12:39: flow 1 (tcp from 198.18.1.127:5912 to port 80) is also a flow of `x`: give the groups different `seed:`, `src:` or `sport:`"
)]
#[case::service_on_an_address_its_node_does_not_own(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {vips: [{vip: 198.18.100.1:80/tcp}]}\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    containers: [{name: a, vips: [198.18.100.1]}]\nservices:\n  - {node: host, proto: tcp, listen: 198.18.100.1:80}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:11:38: node `host` does not own 198.18.100.1: a service binds an address of its node (its links, its lo), 0.0.0.0 or [::]"
)]
#[case::two_services_on_one_port(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {vips: [{vip: 198.18.100.1:80/tcp}]}\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    containers: [{name: a, vips: [198.18.100.1]}]\nservices:\n  - {node: a, proto: udp, listen: 198.18.100.1:53}\n  - {node: a, proto: udp, listen: \"[::]:53\"}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:12:35: services[0] already listens on udp 198.18.100.1:53 in node `a`: which of the two answers would be the kernel's choice"
)]
#[case::generic_xdp_facing_native_xdp(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\n  - builtin: xdp_pass\n    attach: {node: b, interface: b0, hook: xdp_generic}\nmodes: [netns]\ntopology:\n  nodes: [{name: a, loopback: [198.18.1.1]}, {name: b}]\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1/24]}\n      b: {node: b, name: b0, addresses: [198.18.0.2/24]}\nclients:\n  - {node: a, generate: {flows: 1, src: 198.18.0.1, dst: 198.18.0.2}, expect: {outcome: reply}}\n",
    "t.yaml:6:13: generic XDP on b/b0 cannot be: its veth peer a/a0 runs native XDP, whose XDP_TX frames need native XDP here (make this one `xdp`)"
)]
#[case::route_with_host_bits(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\nmodes: [netns]\ntopology:\n  nodes:\n    - {name: a, routes: [{to: 198.18.9.1/24, dev: a0}]}\n    - {name: b}\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1/24]}\n      b: {node: b, name: b0}\nclients:\n  - {node: a, generate: {flows: 1, src: 198.18.0.1}, expect: {outcome: reply}}\n",
    "t.yaml:8:31: 198.18.9.1/24 has host bits set: the network is 198.18.9.0/24"
)]
#[case::drop_reason_in_test_run_mode(
    "version: 1\nprograms:\n  - builtin: tc_decap\ntraffic:\n  - pcap: two.pcap\nexpect: {drop_reason: UDP_CSUM}\n",
    "t.yaml:6:10: `drop_reason` is what the live stack behind an emulated NIC did: it needs `modes:` with netns, and no `topology:`"
)]
#[case::drop_reason_for_an_xdp_program(
    "version: 1\nprograms:\n  - builtin: xdp_decap\nmodes: [netns]\ntraffic:\n  - pcap: two.pcap\nexpect: {drop_reason: UDP_CSUM}\n",
    "t.yaml:7:10: `drop_reason` needs TC programs, which run behind an emulated NIC and its stack; `xdp_decap` is not one"
)]
#[case::snmp_for_an_xdp_program(
    "version: 1\nprograms:\n  - builtin: xdp_decap\nmodes: [netns]\ntraffic:\n  - pcap: two.pcap\nafter:\n  snmp: {UdpInCsumErrors: 1}\n",
    "t.yaml:8:3: `after.snmp` needs TC programs, which run behind the TAP NIC and its stack; `xdp_decap` is not one (XDP runs on the inert veth rig)"
)]
#[case::complete_at_a_link_end(
    "version: 1\nprograms:\n  - builtin: tc_decap\nmodes: [netns]\ntopology:\n  reference:\n    container_nic: {checksum: complete}\nclients:\n  - {node: client, generate: {flows: 1}, expect: {outcome: reply}}\n",
    "t.yaml:7:31: a link end's NIC is the TAP NIC: unpulled headers and `unnecessary`; `complete` (the VXLAN NIC) is not available at a link end yet"
)]
#[case::nic_linear_below_the_ethernet_header(
    "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {node: a, interface: a0}\nmodes: [netns]\ntopology:\n  nodes: [{name: a, loopback: [198.18.1.1]}, {name: b}]\n  links:\n    - a: {node: a, name: a0, addresses: [198.18.0.1/24]}\n      b: {node: b, name: b0, nic: {linear: 8}}\nclients:\n  - {node: a, generate: {flows: 1, src: 198.18.0.1}, expect: {outcome: reply}}\n",
    "t.yaml:10:44: linear: 8: at least 14, the stack pulls the Ethernet header"
)]
#[case::checksum_quirk_for_xdp(
    "version: 1\nprograms:\n  - builtin: xdp_decap\nmodes: [test-run, netns]\ntraffic:\n  - pcap: two.pcap\n    quirks: {checksum: complete}\n",
    "t.yaml:7:5: these quirks reach no program in modes test-run, netns: `xdp_decap`: checksum state is an skb property; XDP runs before the skb exists"
)]
#[case::linear_for_tc_in_test_runs(
    "version: 1\nprograms:\n  - builtin: tc_decap\ntraffic:\n  - pcap: two.pcap\nquirks: {linear: 34}\n",
    "t.yaml:6:1: these quirks reach no program in modes test-run: `tc_decap`: TC programs get linear: N and checksum: unnecessary live only, behind the TAP NIC (skb test runs are linear and unvalidated): add netns to `modes`"
)]
#[case::linear_for_xdp_live_only(
    "version: 1\nprograms:\n  - builtin: xdp_decap\nmodes: [netns]\ntraffic:\n  - pcap: two.pcap\n    packets:\n      1: {quirks: {linear: 20}}\n",
    "t.yaml:8:11: these quirks reach no program in modes netns: `xdp_decap`: XDP gets linear: N in test runs only (live, generic XDP lays non-linear skbs out again): add test-run to `modes`"
)]
fn load_errors(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(error(text), format!("{DATA}/{expected}"));
}

/// A load balancer with one VIP and `lb` settings, then `rest` (starting
/// at line 9, column 1).
fn lb_error(rest: &str) -> String {
    error(&format!(
        "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb:\n      ring_size: 13\n      vips:\n        - vip: 198.18.0.10:80/tcp\n          reals: [198.18.10.1]\n{rest}"
    ))
}

#[rstest]
#[case::lb_on_a_decap(
    "version: 1\nprograms:\n  - builtin: xdp_decap\n    lb: {ring_size: 13}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:5: `lb` configures a load balancer: it goes with `builtin: xdp_lb` or an object with `contract: lb`, not with built-in xdp_decap"
)]
#[case::ring_size_not_prime(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {ring_size: 100}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:21: ring size 100 is not prime; Maglev needs a prime (13, 251, 65537)"
)]
#[case::mtu_out_of_range(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {mtu: 100}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:15: mtu 100 is out of range 116..=65535 (68 plus the largest encapsulation overhead, 48, up to the largest IP packet)"
)]
#[case::bad_gateway_mac(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {gateway_mac: \"02:00:00:00:fe\"}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:23: `02:00:00:00:fe` is not a MAC address: it needs six bytes"
)]
#[case::src_prefix_outside_ranges(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {src_v6_prefix: \"2001:db9::\"}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:25: src_v6_prefix 2001:db9:: is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
)]
#[case::src_prefix_of_other_family(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {src_v4_prefix: \"2001:db8::\"}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:25: src_v4_prefix must be an IPv4 address"
)]
#[case::unknown_key_in_lb(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb: {rings: 13}\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:10: unknown key `rings` in a load balancer's `lb`; expected one of ring_size, hash_seed, gateway_mac, mtu, gue_port, icmp_echo, send_too_big, gue_v6_zero_checksum, src_v4_prefix, src_v6_prefix, vips"
)]
#[case::gue_port_on_lb(
    "version: 1\nprograms:\n  - builtin: xdp_lb\n    gue_port: 6081\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:5: `gue_port` applies only to the decap builtins (xdp_decap, tc_decap), not to built-in xdp_lb (the load balancer's GUE port is `lb.gue_port`)"
)]
#[case::contract_lb_on_a_decap(
    "version: 1\nprograms:\n  - builtin: tc_decap\n    contract: lb\ntraffic:\n  - pcap: two.pcap\n",
    "t.yaml:4:15: built-in tc_decap does not implement the lb contract"
)]
#[case::mtu_lengths_without_lb(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - generate: {flows: 3, ip_len_around: mtu}\n",
    "t.yaml:5:41: `mtu` takes the thresholds of the scenario's load balancer, and it has no xdp_lb program (with `lb:`)"
)]
#[case::lb_changes_without_lb(
    "version: 1\nprograms:\n  - builtin: xdp_decap\ntraffic:\n  - pcap: two.pcap\n    lb_changes: [{remove_real: {vip: 198.18.0.10:80/tcp, addr: 198.18.10.1}}]\n",
    "t.yaml:6:5: `lb_changes` changes load balancers, and no program here is one (`builtin: xdp_lb` or `contract: lb`)"
)]
fn lb_load_errors(#[case] text: &str, #[case] expected: &str) {
    assert_eq!(error(text), format!("{DATA}/{expected}"));
}

#[rstest]
#[case::vip_without_proto(
    "        - vip: 198.18.0.11:80\n",
    "9:16: VIP `198.18.0.11:80` has no `/proto`; expected `address:port/proto` (198.18.0.10:80/tcp, \"[2001:db8::10]:443/udp\"; port 0 for all ports)"
)]
#[case::vip_without_port(
    "        - vip: 198.18.0.11/tcp\n",
    "9:16: VIP `198.18.0.11/tcp`: expected `address:port/proto` (198.18.0.10:80/tcp, \"[2001:db8::10]:443/udp\"; port 0 for all ports)"
)]
#[case::vip_protocol(
    "        - vip: 198.18.0.11:80/sctp\n",
    "9:16: VIP `198.18.0.11:80/sctp`: protocol `sctp` is not balanced; expected tcp or udp"
)]
#[case::vip_ipv6_without_brackets(
    "        - vip: \"2001:db8::10:80/tcp\"\n",
    "9:16: VIP `2001:db8::10:80/tcp`: an IPv6 VIP is written in brackets, `[address]:port/proto`"
)]
#[case::vip_ipv6_unquoted(
    "        - vip: [2001:db8::10]:80/tcp\n",
    "9:30: invalid YAML: while parsing a block mapping, did not find expected key; quote an IPv6 VIP, \"[2001:db8::10]:80/tcp\" (YAML reads `[` as the start of a list)"
)]
#[case::vip_ipv6_unquoted_without_port(
    "        - vip: [2001:db8::10]\n",
    "9:16: `programs[0].lb.vips[1].vip`: expected string scalar: quote an IPv6 VIP, \"[2001:db8::10]:80/tcp\" (YAML reads `[` as the start of a list)"
)]
#[case::vip_outside_ranges(
    "        - vip: 10.0.0.1:80/tcp\n",
    "9:16: VIP 10.0.0.1 is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
)]
#[case::vip_twice(
    "        - vip: 198.18.0.10:80/tcp\n",
    "9:16: VIP 198.18.0.10:80/tcp is listed twice (first as lb.vips[0])"
)]
#[case::unknown_flag(
    "        - vip: 198.18.0.11:80/tcp\n          flags: [gue, no_sprot]\n",
    "10:24: unknown value `no_sprot` for `programs[0].lb.vips[1].flags[1]`; expected one of no_sport, no_lru, dport_only, gue"
)]
#[case::flag_twice(
    "        - vip: 198.18.0.11:80/tcp\n          flags: [gue, gue]\n",
    "10:24: flag gue is given twice"
)]
#[case::real_outside_ranges(
    "        - vip: 198.18.0.11:80/tcp\n          reals: [198.18.10.1, 192.0.2.1]\n",
    "10:32: real 192.0.2.1 is outside 198.18.0.0/15 and 2001:db8::/32, the only ranges dsrlab uses"
)]
#[case::real_not_an_address(
    "        - vip: 198.18.0.11:80/tcp\n          reals: [{addr: backend-1, weight: 2}]\n",
    "10:26: real `backend-1` is not an IPv4 or IPv6 address"
)]
#[case::real_twice(
    "        - vip: 198.18.0.11:80/tcp\n          reals: [198.18.10.1, {addr: 198.18.10.1, weight: 2}]\n",
    "10:39: real 198.18.10.1 is listed twice in VIP 198.18.0.11:80/tcp"
)]
#[case::real_of_another_shape(
    "        - vip: 198.18.0.11:80/tcp\n          reals: [{address: 198.18.10.1}]\n",
    "10:19: `programs[0].lb.vips[1].reals[0]`: expected an address or `{addr: ADDRESS, weight: N}`"
)]
#[case::per_packet_counter(
    "traffic:\n  - pcap: two.pcap\n    expect: {counter: tx}\n",
    "11:23: `counter` is the one counter a decap packet moves; program `xdp_lb` is a load balancer, whose packets move several counters (tx and lru_miss, ...), all of which the reference model checks for every packet; check totals with `after.counters`"
)]
#[case::unknown_lb_counter(
    "traffic:\n  - pcap: two.pcap\nafter:\n  counters: {tx: 2, decap_ip4_in_ip4: 0}\n",
    "12:21: unknown counter `decap_ip4_in_ip4` of the lb contract; expected one of tx, pass_not_vip, lru_hit, lru_miss, icmp_echo_reply, icmp_error_to_real, too_big_sent, drop_too_big, drop_fragment, pass_ip_options, drop_no_real, drop_encap, pass_malformed"
)]
#[case::change_to_unknown_vip(
    "traffic:\n  - pcap: two.pcap\n    lb_changes:\n      - add_real: {vip: 198.18.0.11:80/tcp, addr: 198.18.10.2}\n",
    "12:25: program `xdp_lb` has no VIP 198.18.0.11:80/tcp (see its lb.vips)"
)]
#[case::change_removes_a_missing_real(
    "traffic:\n  - pcap: two.pcap\n    lb_changes:\n      - remove_real: {vip: 198.18.0.10:80/tcp, addr: 198.18.10.2}\n",
    "12:54: program `xdp_lb`: real 198.18.10.2 is not a backend of VIP 198.18.0.10:80/tcp"
)]
#[case::change_adds_a_real_twice(
    "traffic:\n  - pcap: two.pcap\n    lb_changes:\n      - add_real: {vip: 198.18.0.10:80/tcp, addr: 198.18.10.2}\n  - name: again\n    generate: {flows: 1}\n    lb_changes:\n      - add_real: {vip: 198.18.0.10:80/tcp, addr: 198.18.10.2}\n",
    "16:51: program `xdp_lb`: real 198.18.10.2 is already a backend of VIP 198.18.0.10:80/tcp"
)]
#[case::change_of_unknown_kind(
    "traffic:\n  - pcap: two.pcap\n    lb_changes:\n      - drain_real: {vip: 198.18.0.10:80/tcp, addr: 198.18.10.1}\n",
    "12:9: unknown value `drain_real` for `traffic[0].lb_changes[0]`; expected one of add_real, remove_real, set_weight"
)]
#[case::aimed_at_no_vip(
    "traffic:\n  - generate: {flows: 3, dst: 198.18.0.11, ip_len_around: mtu}\n",
    "10:59: `mtu`: no VIP of the load balancer is among the generator's dst, protocols and dport with a real that can carry its packets"
)]
#[case::aimed_through_a_tunnel(
    "traffic:\n  - generate: {flows: 3, tunnel: ip4_in_ip4, dst: 198.18.0.10, ip_len_around: mtu}\n",
    "10:79: `mtu` aims plain packets at the load balancer's VIPs; a tunnelled stream takes lengths"
)]
#[case::aimed_at_another_protocol(
    "traffic:\n  - generate: {flows: 3, protocols: [udp], dst: 198.18.0.10, ip_len_around: mtu}\n",
    "10:77: `mtu`: no VIP of the load balancer is among the generator's dst, protocols and dport with a real that can carry its packets"
)]
fn lb_config_errors(#[case] rest: &str, #[case] expected: &str) {
    let rest = if rest.starts_with("traffic:") {
        rest.to_owned()
    } else {
        format!("{rest}traffic:\n  - pcap: two.pcap\n")
    };
    assert_eq!(lb_error(&rest), format!("{DATA}/t.yaml:{expected}"));
}

#[test]
fn a_missing_file_is_named() {
    let e = load::load(&data("nope.yaml")).unwrap_err();
    assert!(matches!(e, ScenarioError::Read { .. }));
    assert_eq!(
        e.to_string(),
        "tests/data/scenarios/nope.yaml: cannot read: No such file or directory (os error 2)"
    );
}

/// User objects: the built-in `xdp_decap` written to a temporary file
/// (map `DECAP_COUNTERS`: per-CPU array, 4-byte keys, 8-byte values), and
/// the built-in `xdp_lb` (the lb contract's maps).
struct UserObject {
    dir: tempfile::TempDir,
}

impl UserObject {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("decap.o"), datapath::XDP_DECAP.elf).unwrap();
        std::fs::write(dir.path().join("lb.o"), datapath::XDP_LB.elf).unwrap();
        std::fs::write(dir.path().join("junk.o"), b"#!/bin/sh\n").unwrap();
        std::fs::copy(data("two.pcap"), dir.path().join("two.pcap")).unwrap();
        Self { dir }
    }

    fn scenario(&self) -> PathBuf {
        self.dir.path().join("t.yaml")
    }

    fn object(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn load(&self, program: &str) -> Result<load::LoadedScenario, ScenarioError> {
        let text = format!("version: 1\nprograms:\n{program}traffic:\n  - pcap: two.pcap\n");
        load_str(&text, &self.scenario())
    }

    fn error(&self, program: &str) -> String {
        let e = self.load(program).unwrap_err().to_string();
        let prefix = format!("{}:", self.scenario().display());
        e.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("`{e}` does not start with {prefix}"))
            .to_owned()
    }
}

#[rstest]
#[case::program_not_in_object(
    "  - object: decap.o\n    program: xdp_decapp\n",
    "4:14: program `xdp_decapp` is not in {decap.o}; it has: xdp_decap"
)]
#[case::object_without_program(
    "  - object: decap.o\n",
    "3:5: `object` needs `program`, the name of a program in it; {decap.o} has: xdp_decap"
)]
#[case::object_missing(
    "  - object: nope.o\n    program: p\n",
    "3:13: cannot read object {nope.o}: No such file or directory (os error 2)"
)]
#[case::object_not_elf(
    "  - object: junk.o\n    program: p\n",
    "3:13: object {junk.o}: not an ELF file"
)]
#[case::map_not_in_object(
    "  - object: decap.o\n    program: xdp_decap\n    maps:\n      BLOCKLIST: [{key: '01000000', value: '00'}]\n",
    "6:7: map `BLOCKLIST` is not in {decap.o}; it has: DECAP_COUNTERS"
)]
#[case::map_key_size(
    "  - object: decap.o\n    program: xdp_decap\n    maps:\n      DECAP_COUNTERS:\n        - {key: '01 00 00', value: '0000000000000000'}\n",
    "7:17: map DECAP_COUNTERS: key: expected an IPv4 address, a number or 4 hex bytes for u32, got `01 00 00` (3 hex bytes; a quoted value is bytes, an unquoted one a number)"
)]
#[case::map_value_size(
    "  - object: decap.o\n    program: xdp_decap\n    maps:\n      DECAP_COUNTERS:\n        - key: '01:00:00:00'\n          value: '00'\n",
    "8:18: map DECAP_COUNTERS: value: expected a number or 8 hex bytes for u64, got `00` (1 hex byte; a quoted value is bytes, an unquoted one a number)"
)]
#[case::map_key_not_hex(
    "  - object: decap.o\n    program: xdp_decap\n    maps:\n      DECAP_COUNTERS: [{key: '0x01zz', value: '00'}]\n",
    "6:30: map DECAP_COUNTERS: key: expected an IPv4 address, a number or 4 hex bytes for u32, got `0x01zz`"
)]
#[case::lb_contract_without_its_maps(
    "  - object: decap.o\n    program: xdp_decap\n    contract: lb\n",
    "5:15: the lb contract (dsrlab_abi::lb) needs a map `LB_VIPS` with 20-byte keys and 8-byte values; {decap.o} has maps: DECAP_COUNTERS"
)]
#[case::lb_config_without_the_contract(
    "  - object: lb.o\n    program: xdp_lb\n    lb: {ring_size: 13}\n",
    "5:5: `lb` configures a load balancer: it goes with `builtin: xdp_lb` or an object with `contract: lb`, not with {lb.o} (give it `contract: lb` if it implements the lb contract)"
)]
fn user_object_errors(#[case] program: &str, #[case] expected: &str) {
    let o = UserObject::new();
    let mut want = format!(":{expected}");
    for name in ["decap.o", "nope.o", "junk.o", "lb.o"] {
        want = want.replace(&format!("{{{name}}}"), &o.object(name));
    }
    assert_eq!(format!(":{}", o.error(program)), want);
}

#[test]
fn a_user_object_without_a_contract_has_no_counters() {
    let o = UserObject::new();
    let program = "  - object: decap.o\n    program: xdp_decap\n";
    let s = o.load(program).unwrap();
    assert_eq!(s.programs[0].contract, None);
    let text = format!(
        "version: 1\nprograms:\n{program}traffic:\n  - pcap: two.pcap\n    expect: {{counter: pass_not_tunnel}}\n"
    );
    let e = load_str(&text, &o.scenario()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:7:23: counter `pass_not_tunnel` needs programs with a contract; program \
             `xdp_decap` has none (give it `contract: decap` or `contract: lb` if it implements one)",
            o.scenario().display()
        )
    );
}

#[test]
fn a_user_object_with_a_contract_and_maps_resolves() {
    let o = UserObject::new();
    let s = o
        .load(
            "  - object: decap.o\n    program: xdp_decap\n    contract: decap\n    maps:\n      DECAP_COUNTERS:\n        - {key: '08000000', value: '0100000000000000'}\n",
        )
        .unwrap();
    let p = &s.programs[0];
    assert!(
        matches!(&p.source, ProgramSource::File { object, program }
            if *object == o.dir.path().join("decap.o") && program == "xdp_decap"),
        "{:?}",
        p.source
    );
    assert_eq!(p.name, "xdp_decap");
    assert_eq!(p.contract, Some(Contract::Decap));
    assert_eq!(
        p.maps,
        [(
            "DECAP_COUNTERS".to_owned(),
            vec![(
                vec![8, 0, 0, 0],
                EntryValue::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0])
            )]
        )]
    );
}

#[test]
fn a_user_object_with_the_lb_contract_resolves() {
    if datapath::XDP_LB.elf.is_empty() {
        return; // AYA_BUILD_SKIP=1: no object to parse
    }
    let o = UserObject::new();
    let s = o
        .load("  - object: lb.o\n    program: xdp_lb\n    contract: lb\n    lb:\n      vips: [{vip: 198.18.0.10:80/tcp, reals: [198.18.10.1]}]\n")
        .unwrap();
    let p = &s.programs[0];
    assert_eq!(p.contract, Some(Contract::Lb));
    let lb = p.lb.as_ref().unwrap();
    assert_eq!(lb.vips.len(), 1);
    assert_eq!(lb.settings.ring_size, 65537, "the default ring");
}

#[test]
fn a_load_balancer_resolves_with_its_changes_and_counters() {
    let text = "version: 1
programs:
  - builtin: xdp_lb
    lb:
      ring_size: 251
      hash_seed: 7
      gateway_mac: 02:00:00:00:00:aa
      mtu: 9000
      gue_port: 6081
      icmp_echo: false
      send_too_big: false
      src_v4_prefix: 198.18.200.0
      src_v6_prefix: \"2001:db8:ffff::\"
      vips:
        - vip: 198.18.0.10:0/udp
          flags: [no_sport, gue]
          reals: [198.18.10.1, {addr: \"2001:db8:10::1\", weight: 3}]
        - vip: \"[2001:db8::10]:443/tcp\"
          flags: [no_lru, dport_only]
          reals: [198.18.10.2]
traffic:
  - generate: {flows: 2}
  - name: after-change
    generate: {flows: 3}
    lb_changes:
      - set_weight: {vip: 198.18.0.10:0/udp, addr: 198.18.10.1, weight: 0}
      - remove_real: {vip: \"[2001:db8::10]:443/tcp\", addr: 198.18.10.2}
      - add_real: {vip: \"[2001:db8::10]:443/tcp\", addr: \"2001:db8:10::9\"}
after:
  counters: {tx: 5, drop_encap: 0}
";
    let s = load_str(text, &data("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let p = &s.programs[0];
    assert!(matches!(p.source, ProgramSource::Builtin(Builtin::XdpLb)));
    assert_eq!(p.contract, Some(Contract::Lb));
    let lb = p.lb.as_ref().unwrap();
    let st = lb.settings;
    assert_eq!(
        (st.ring_size, st.hash_seed, st.mtu, st.gue_port),
        (251, 7, 9000, 6081)
    );
    assert_eq!(st.gateway_mac, [2, 0, 0, 0, 0, 0xaa]);
    assert!(!st.icmp_echo && !st.send_too_big);
    assert_eq!(st.src_v4_prefix.to_string(), "198.18.200.0");
    assert_eq!(st.src_v6_prefix.to_string(), "2001:db8:ffff::");
    let (udp, reals) = &lb.vips[0];
    assert_eq!(udp.vip().to_string(), "198.18.0.10:0/udp");
    assert_eq!(udp.flags, vip_flags::NO_SPORT | vip_flags::GUE);
    assert_eq!(
        reals,
        &[
            ("198.18.10.1".parse().unwrap(), 1),
            ("2001:db8:10::1".parse().unwrap(), 3)
        ]
    );
    // An IPv6 VIP with an IPv4 real loads: its packets are dropped
    // (drop_encap), which the reference model expects too.
    let (tcp6, reals) = &lb.vips[1];
    assert_eq!(tcp6.vip().to_string(), "[2001:db8::10]:443/tcp");
    assert_eq!(tcp6.flags, vip_flags::NO_LRU | vip_flags::DPORT_ONLY);
    assert_eq!(reals, &[("198.18.10.2".parse().unwrap(), 1)]);
    assert_eq!(s.lb_changes.len(), 1);
    let c = &s.lb_changes[0];
    assert_eq!(
        (c.stream.as_str(), c.before, c.ops.len()),
        ("after-change", 2, 3)
    );
    assert_eq!(
        c.ops[0],
        LbOp::SetWeight {
            vip: udp.vip(),
            real: "198.18.10.1".parse().unwrap(),
            weight: 0
        }
    );
    assert_eq!(
        s.after_lb_counters,
        [(LbCounter::DropEncap, 0), (LbCounter::Tx, 5)]
    );
    assert!(s.after_counters.is_empty());
}

#[test]
fn a_good_scenario_expands_with_merged_quirks_and_expectations() {
    let s = load::load(&data("good.yaml")).unwrap();
    assert_eq!(s.name, "good");
    assert!(
        matches!(
            s.programs.iter().map(|p| &p.source).collect::<Vec<_>>()[..],
            [
                ProgramSource::Builtin(Builtin::XdpDecap),
                ProgramSource::Builtin(Builtin::TcDecap)
            ]
        ),
        "{:?}",
        s.programs
    );
    assert_eq!(
        s.programs[1].globals,
        [("GUE_PORT".to_owned(), 6080u16.to_ne_bytes().to_vec())]
    );
    assert!(
        s.programs
            .iter()
            .all(|p| p.contract == Some(Contract::Decap))
    );
    assert_eq!(s.after_counters, [(Counter::DropHelperError, 0)]);
    assert_eq!(s.packets.len(), 34 + 2 + 3);

    let fixture: Vec<_> = s
        .packets
        .iter()
        .filter(|p| &*p.stream == "decap-tunnels")
        .collect();
    assert_eq!(fixture.len(), 34);
    // Scenario linear 64, stream 96: the stream's wins.
    let first = &fixture[0];
    assert_eq!((first.number, first.name.as_str()), (1, "ip4in4-tcp"));
    assert_eq!(
        first.quirks,
        Quirks {
            checksum_complete: false,
            checksum_unnecessary: false,
            linear: Some(96),
            ..Quirks::default()
        }
    );
    assert_eq!(
        first.expect.as_ref().unwrap().verdict.as_deref(),
        Some("pass")
    );
    assert_eq!(first.fixture.unwrap().counter, Counter::DecapIp4InIp4);
    assert!(first.expected_output.is_some());
    // The packet's override wins for quirks and expectation.
    let second = &fixture[1];
    assert_eq!(second.quirks.linear, Some(20));
    let e = second.expect.as_ref().unwrap();
    assert_eq!(
        (e.verdict.as_deref(), e.counter.as_deref()),
        (None, Some("decap_ip4_in_ip4"))
    );
    // A fixture packet's own quirk adds to the stream's.
    let complete = fixture
        .iter()
        .find(|p| p.name == "ip4in4-tcp-csum-complete")
        .unwrap();
    assert_eq!(
        complete.quirks,
        Quirks {
            checksum_complete: true,
            checksum_unnecessary: false,
            linear: Some(96),
            ..Quirks::default()
        }
    );

    let two = pcap_packets(&data("two.pcap"));
    let plain: Vec<_> = s.packets.iter().filter(|p| &*p.stream == "plain").collect();
    assert_eq!(
        plain.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["#1", "#2"]
    );
    assert_eq!(
        plain[0].quirks,
        Quirks {
            checksum_complete: true,
            checksum_unnecessary: false,
            linear: Some(64),
            ..Quirks::default()
        }
    );
    let e = plain[0].expect.as_ref().unwrap();
    assert_eq!(e.output, Some(OutputExpect::Unchanged));
    assert_eq!(plain[0].expected_output.as_deref(), Some(two[0].as_slice()));
    assert_eq!(plain[0].fixture, None);
    // Packet 2's own expectation has no `equals`.
    assert_eq!(plain[1].expect.as_ref().unwrap().fields["ipv4.ttl"], "63");
    assert_eq!(plain[1].expected_output, None);

    let generated: Vec<_> = s
        .packets
        .iter()
        .filter(|p| &*p.stream == "generated")
        .collect();
    assert_eq!(
        generated
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["flow-1", "flow-2", "flow-3"]
    );
    assert_eq!(generated[2].number, 3);
    assert_eq!(
        generated[0].expect.as_ref().unwrap().verdict.as_deref(),
        Some("pass")
    );
    assert_eq!(generated[0].quirks.linear, Some(64));

    assert_eq!(
        s.summary().to_string(),
        "tests/data/scenarios/good.yaml: ok: `good`: 2 programs (xdp_decap, tc_decap), \
         39 packets (decap-tunnels 34, plain 2, generated 3), modes test-run"
    );
}

fn pcap_packets(path: &Path) -> Vec<Vec<u8>> {
    dsrlab::formats::pcap::read_file(path).unwrap()
}

#[test]
fn the_scaffold_loads_from_scenarios() {
    let text = scaffold("new-scenario");
    assert!(text.starts_with("# yaml-language-server: $schema=scenario.schema.json\n"));
    let s = load_str(&text, &repo_root().join("scenarios/new-scenario.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.name, "new-scenario");
    let names: Vec<_> = s.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["xdp_decap", "tc_decap"]);
    let streams = s.summary().streams;
    assert_eq!(
        streams,
        [
            ("decap-tunnels".to_owned(), 34),
            ("gue-flows".to_owned(), 8)
        ]
    );
    assert!(s.packets.iter().any(|p| p.expect.is_some()));
}

/// `dsrlab check` on every shipped scenario: no kernel needed, so a broken
/// scenario is found here with its line and column even where nothing can
/// run.
#[test]
fn every_shipped_scenario_checks() {
    let dir = repo_root().join("scenarios");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let summary = load::check(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(summary.to_string().contains(": ok: "), "{summary}");
        }
    }
}

/// Set to write `scenarios/scenario.schema.json` instead of comparing it.
const UPDATE_SCHEMA: &str = "DSRLAB_UPDATE_SCHEMA";

#[test]
fn the_shipped_schema_is_current() {
    let path = repo_root().join(SHIPPED_PATH);
    let schema = schema_json();
    if std::env::var_os(UPDATE_SCHEMA).is_some() {
        std::fs::write(&path, &schema).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == schema,
        "{SHIPPED_PATH} differs from schema_json(); regenerate it with \
         `{UPDATE_SCHEMA}=1 cargo test -p dsrlab --test scenario_format the_shipped_schema_is_current`"
    );
}

/// YAML as JSON, the way editors validate it.
fn as_json(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_errors(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    let instance = as_json(text);
    v.iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn scenarios_validate_against_the_schema() {
    let v = validator();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [repo_root().join("scenarios"), PathBuf::from(DATA)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                files.push(path);
            }
        }
    }
    // Test inputs that are not scenarios.
    files.retain(|p| !p.ends_with("stale.yaml"));
    assert!(files.iter().any(|p| p.ends_with("good.yaml")));
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let errors = schema_errors(&v, &text);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    let errors = schema_errors(&v, &scaffold("x"));
    assert!(errors.is_empty(), "scaffold: {errors:#?}");
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let v = validator();
    for (text, why) in [
        (
            "version: 2\nprograms: [{builtin: xdp_decap}]\ntraffic: [{pcap: a.pcap}]\n",
            "version 2",
        ),
        (
            "version: 1\nprograms: [{builtin: xdp_decap}]\ntraffic: [{pcap: a.pcap, expct: {}}]\n",
            "unknown key",
        ),
        (
            "version: 1\nprograms: []\ntraffic: [{pcap: a.pcap}]\n",
            "no programs",
        ),
        (
            "version: 1\nprograms: [{builtin: xdp}]\ntraffic: [{pcap: a.pcap}]\n",
            "unknown builtin",
        ),
        (
            "version: 1\nprograms: [{builtin: xdp_decap}]\ntraffic: [{generate: {flows: many}}]\n",
            "wrong type",
        ),
    ] {
        assert!(!schema_errors(&v, text).is_empty(), "{why}: valid:\n{text}");
    }
    let ok =
        format!("{HEAD}traffic: [{{pcap: a.pcap, packets: {{2: {{quirks: {{linear: 20}}}}}}}}]\n");
    assert_eq!(schema_errors(&v, &ok), Vec::<String>::new());
}

/// The error of a scenario with `programs` (after `programs:`) and one
/// inline stream followed by `rest`.
fn chain_error(programs: &str, rest: &str) -> String {
    error(&format!(
        "version: 1\nprograms:\n{programs}traffic:\n  - inline: [{{layers: [eth, ipv4, udp]}}]\n    expect: {{verdict: pass}}\n{rest}"
    ))
}

#[rstest]
#[case::slot_out_of_range(
    "  - chain: {slots: {20: {builtin: xdp_pass}}}\n",
    "",
    "t.yaml:3:21: slot 20 is out of range: a chain has slots 0 to 19"
)]
#[case::tc_program_in_a_slot(
    "  - chain: {slots: {3: {builtin: tc_decap}}}\n",
    "",
    "t.yaml:3:24: slot 3: built-in tc_decap is not an XDP program; a chain holds XDP programs"
)]
#[case::builtin_beside_the_chain(
    "  - builtin: xdp_pass\n    chain: {slots: {3: {builtin: xdp_pass}}}\n",
    "",
    "t.yaml:3:5: `builtin` does not go with `chain:`: a chain's programs, with their maps, globals and configuration, are its `slots:`; a chain takes `label` beside it"
)]
#[case::a_chain_in_a_slot(
    "  - chain: {slots: {3: {chain: {slots: {1: {builtin: xdp_pass}}}}}}\n",
    "",
    "t.yaml:3:25: a slot holds a program, not another chain"
)]
#[case::not_chain_compatible_under_tail_call(
    "  - chain:\n      slots:\n        1: {object: ../../../../examples/user-object/xdp_blocklist.bpf.o, program: xdp_blocklist}\n",
    "",
    "t.yaml:5:12: slot 1: `xdp_blocklist` in ../examples/user-object/xdp_blocklist.bpf.o has no CHAIN_SLOT global, so under the tail-call backend it cannot go on to the next slot: include dsrlab_chain.h and end with dsrlab_chain_finish(), or run the chain with `backends: [ext]`, which takes any XDP program"
)]
#[case::no_slots(
    "  - chain: {slots: {}}\n",
    "",
    "t.yaml:3:20: `slots` is empty: a chain under test needs at least one slot program"
)]
#[case::a_backend_twice(
    "  - chain: {backends: [ext, ext], slots: {1: {builtin: xdp_pass}}}\n",
    "",
    "t.yaml:3:29: backend ext is listed twice"
)]
#[case::unknown_backend(
    "  - chain: {backends: [rootlet], slots: {1: {builtin: xdp_pass}}}\n",
    "",
    "t.yaml:3:24: unknown value `rootlet` for `programs[0].chain.backends[0]`; expected one of tail-call, ext"
)]
#[case::not_a_verdict(
    "  - chain: {slots: {1: {builtin: xdp_pass}}, continue_on: {1: [XDP_PASS, TC_ACT_OK]}}\n",
    "",
    "t.yaml:3:74: `TC_ACT_OK` is not an XDP verdict; one of XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT"
)]
#[case::a_slot_reserved_twice(
    "  - chain: {slots: {1: {builtin: xdp_pass}}, owners: {a: [1], b: [1]}}\n",
    "",
    "t.yaml:3:67: slot 1 is reserved for `a` already"
)]
#[case::chain_changes_without_a_chain(
    "  - builtin: xdp_pass\n",
    "    chain_changes: {detach: [1]}\n",
    "t.yaml:7:5: `chain_changes` changes chains, and no program here is one (`chain:`)"
)]
#[case::chain_changes_that_change_nothing(
    "  - chain: {slots: {1: {builtin: xdp_pass}}}\n",
    "    chain_changes: {owner: a}\n",
    "t.yaml:7:20: `chain_changes` changes nothing: give `attach`, `detach` or both"
)]
#[case::after_slots_unknown_counter(
    "  - chain: {slots: {1: {builtin: xdp_pass}}}\n",
    "after: {slots: {1: {runs: 1}}}\n",
    "t.yaml:7:21: a slot counts `packets` and its verdicts (XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT); `runs` is neither"
)]
#[case::after_slots_without_a_chain(
    "  - builtin: xdp_pass\n",
    "after: {slots: {1: {packets: 1}}}\n",
    "t.yaml:7:9: `after.slots` checks a chain's slots, and no program here is a chain"
)]
fn chain_errors(#[case] programs: &str, #[case] rest: &str, #[case] expected: &str) {
    let got = chain_error(programs, rest);
    assert!(got.ends_with(expected), "got: {got}\nwant: {expected}");
}

/// A chain resolves into one program per backend, named by backend, its
/// slots, continue sets, owners and the streams' changes in place.
#[test]
fn a_chain_resolves_per_backend_with_its_changes() {
    let s = load_str(
        "version: 1\nprograms:\n  - label: host\n    chain:\n      slots: {2: {builtin: xdp_pass}, 10: {builtin: xdp_lb}}\n      continue_on: {2: [XDP_PASS, XDP_TX]}\n      owners: {sec: [2]}\ntraffic:\n  - name: a\n    inline: [{layers: [eth, ipv4, udp]}]\n    expect: {verdict: pass}\n  - name: b\n    inline: [{layers: [eth, ipv4, tcp]}]\n    chain_changes: {owner: sec, detach: [10], attach: {2: {builtin: xdp_decap}}}\n    expect: {verdict: pass}\nafter: {slots: {2: {packets: 2, XDP_PASS: 2}}}\n",
        &data("t.yaml"),
    )
    .unwrap();
    let names: Vec<&str> = s.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["host@tail-call", "host@ext"]);
    let ProgramSource::Chain(chain) = &s.programs[1].source else {
        panic!("{:?}", s.programs[1].source);
    };
    assert_eq!(chain.backend, ChainBackend::Ext);
    let slots: Vec<u32> = chain.slots.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, [2, 10]);
    assert_eq!(chain.slots[1].1.contract, Some(Contract::Lb));
    assert_eq!(chain.continue_on, [(2, 0b1100)]);
    assert_eq!(chain.owner(2), Some("sec"));
    let [change] = &s.chain_changes[..] else {
        panic!("{:?}", s.chain_changes);
    };
    assert_eq!((change.before, change.detach.as_slice()), (1, &[10][..]));
    assert_eq!(change.owner.as_deref(), Some("sec"));
    assert!(matches!(
        change.attach[..],
        [(
            2,
            ResolvedProgram {
                source: ProgramSource::Builtin(Builtin::XdpDecap),
                ..
            }
        )]
    ));
    assert_eq!(s.after_slots.len(), 2);
}

/// `ip_len_around: mtu` resolves, per stream, to the thresholds of the VIPs
/// the stream reaches: the MTU less 20 for an IPv4 real, 40 for an IPv6
/// one, 8 more with GUE.
#[test]
fn a_generator_aims_at_the_mtu_thresholds_of_the_vips_it_reaches() {
    let text = "version: 1
programs:
  - builtin: xdp_lb
    lb:
      ring_size: 13
      mtu: 1400
      vips:
        - {vip: 198.18.0.10:80/tcp, reals: [198.18.10.1, \"2001:db8:10::1\"]}
        - {vip: 198.18.0.11:0/udp, flags: [gue], reals: [198.18.10.2]}
traffic:
  - name: both-reals
    generate: {flows: 6, dst: 198.18.0.10, ip_len_around: mtu}
  - name: gue
    generate: {flows: 3, protocols: [udp], dst: 198.18.0.11, dport: 53, ip_len_around: mtu}
";
    let s = load_str(text, &data("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let lens = |stream: &str| -> Vec<usize> {
        s.packets
            .iter()
            .filter(|p| &*p.stream == stream)
            .map(|p| p.bytes.len() - 14)
            .collect()
    };
    assert_eq!(lens("both-reals"), [1359, 1360, 1361, 1379, 1380, 1381]);
    assert_eq!(lens("gue"), [1371, 1372, 1373]);
}

/// One VIP more than the contract has numbers for (`MAX_VIPS`) is refused
/// at the VIP that does not fit.
#[test]
fn a_vip_beyond_the_last_number_is_refused_where_it_is_written() {
    let max = dsrlab_abi::lb::MAX_VIPS as usize;
    let vips: String = (1..=max + 1)
        .map(|port| {
            format!("        - {{vip: \"198.18.0.71:{port}/tcp\", reals: [198.18.10.1]}}\n")
        })
        .collect();
    let text = format!(
        "version: 1\nprograms:\n  - builtin: xdp_lb\n    lb:\n      ring_size: 13\n      vips:\n{vips}traffic:\n  - pcap: two.pcap\n"
    );
    let line = 7 + max;
    assert_eq!(
        error(&text),
        format!(
            "{DATA}/t.yaml:{line}:17: cannot add VIP 198.18.0.71:{}/tcp: all {max} VIP numbers are in use",
            max + 1
        )
    );
}
