//! What only some kernels allow: BPF trampolines (EXT/freplace, the
//! chainer's mechanism, and fentry), netkit, the kernel's tunnel drivers.
//! These machines refuse trampolines and have neither netkit nor tunnel
//! drivers, so here each test prints why it is skipped; `ci/test` runs
//! this binary again inside VMs with Debian's 6.1 and 6.12, where they run:
//!
//!   DSRLAB_VM_KERNEL=6.12 cargo test -p dsrlab --test kernels

use std::{io::Write as _, path::Path};

use dsrlab::{
    formats::fixture::FixtureSet,
    instruments::{self, libbpf::Object},
    kernel::features::{Feature, Features},
    live::kernel_decap::KernelDecap,
    oracles::reference::{self, Comparison},
    runner::cpu_pin::CpuPin,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// Whether `feature` is there; if not, says why the test is skipped —
/// on stderr itself, which the test harness does not capture.
fn available(test: &str, feature: &Feature) -> bool {
    if let Some(why) = feature.missing() {
        let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
        return false;
    }
    true
}

/// The dispatcher, and `program` of `elf` loaded against its `func`.
fn dispatcher_and(name: &str, elf: &[u8], program: &str, func: &str) -> (Object, Object) {
    let target = Object::load("probe_target", instruments::PROBE_TARGET_ELF).unwrap();
    let fd = target.program_fd("dispatcher").unwrap();
    let probe = Object::load_targeting(name, elf, program, fd, func).unwrap();
    (target, probe)
}

/// A frame the dispatcher accepts: any 64 bytes.
fn frame() -> Vec<u8> {
    vec![0u8; 64]
}

#[test]
fn an_ext_program_replaces_a_dispatcher_slot_until_its_link_is_dropped() {
    if !available("ext", &Features::get().ext) {
        return;
    }
    let (target, ext) = dispatcher_and(
        "probe_ext",
        instruments::PROBE_EXT_ELF,
        "replacement",
        "slot",
    );
    assert_eq!(
        target.test_run_xdp("dispatcher", &frame(), 1).unwrap(),
        XDP_PASS,
        "the slot's own code passes"
    );
    let fd = target.program_fd("dispatcher").unwrap();
    let link = ext.attach_freplace("replacement", fd, "slot").unwrap();
    assert_eq!(
        target.test_run_xdp("dispatcher", &frame(), 1).unwrap(),
        XDP_DROP,
        "the replacement runs in the slot"
    );
    drop(link);
    assert_eq!(
        target.test_run_xdp("dispatcher", &frame(), 1).unwrap(),
        XDP_PASS,
        "the slot is restored when the link goes"
    );
}

#[test]
fn fentry_counts_every_run_of_the_program_it_watches() {
    if !available("fentry", &Features::get().fentry) {
        return;
    }
    let (target, watch) = dispatcher_and(
        "probe_fentry",
        instruments::PROBE_FENTRY_ELF,
        "watch",
        "dispatcher",
    );
    let _link = watch.attach_trace("watch").unwrap();
    assert_eq!(watch.array_u64("runs", 0).unwrap(), 0);
    target.test_run_xdp("dispatcher", &frame(), 7).unwrap();
    assert_eq!(watch.array_u64("runs", 0).unwrap(), 7);
}

/// The decap fixtures through the kernel's ipip, sit, ip6_tunnel and fou
/// (GUE) drivers: what they deliver to the inner stack is what the decap
/// contract says (and so what xdp_decap and tc_decap deliver: the other
/// suites hold them to it), up to documented policy
/// (`oracles::reference`).
#[test]
fn the_kernels_tunnel_drivers_decapsulate_the_fixtures_as_the_contract_says() {
    if !available("kernel decap reference", &Features::get().tunnel_drivers) {
        return;
    }
    let _pin = CpuPin::here().unwrap();
    let mut reference = KernelDecap::new().unwrap();
    let (mut same, mut policy, mut differs) = (0, 0, Vec::new());
    for name in [
        "decap-tunnels",
        "decap-malformed",
        "decap-passthrough",
        "decap-validated",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(format!("{name}.yaml"));
        let set = FixtureSet::from_yaml_file(&path).unwrap();
        for packet in &set.packets {
            let delivered = if packet.bytes.len() < 14 {
                Vec::new()
            } else {
                reference.decapsulate(&packet.bytes).unwrap()
            };
            match reference::compare(packet, &delivered) {
                Comparison::Same => same += 1,
                Comparison::Policy(why) => {
                    policy += 1;
                    let _ = writeln!(std::io::stderr(), "policy {name}/{}: {why}", packet.name);
                }
                Comparison::NotCompared(why) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "not compared {name}/{}: {why}",
                        packet.name
                    );
                }
                Comparison::Differs(how) => differs.push(format!("{name}/{}: {how}", packet.name)),
            }
        }
    }
    assert!(
        differs.is_empty(),
        "{} differ:\n{}",
        differs.len(),
        differs.join("\n")
    );
    let _ = writeln!(
        std::io::stderr(),
        "the kernel agrees on {same} fixtures, differs by policy on {policy}"
    );
    assert!(same >= 60, "only {same} fixtures agreed");
    // The policies of `oracles::reference` are exercised by the fixtures.
    assert!(policy >= 4, "only {policy} fixtures differed by policy");
}
