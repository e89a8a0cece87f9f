//! The XDP chainer in test runs, under both backends (the same tests, the
//! same slot program objects): slots run in order, empty slots are
//! skipped, a stop verdict ends the chain (per-slot counters say who ran),
//! continue sets, atomic replacement, and refusals that leave the chain as
//! it was. The EXT backend needs BPF trampolines: here its cases print why
//! they are skipped; ci/test runs this binary in the 6.1 and 6.12 VMs.

use std::{io::Write as _, path::PathBuf};

use aya::maps::{MapData, PerCpuArray, PerCpuValues};
use dsrlab::{
    chain::{Backend, Chain, ChainError, SlotProgram},
    datapath,
    kernel::features::Features,
    load::{LoadOptions, LoadedProgram},
    runner::cpu_pin::CpuPin,
    testrun::{self, Quirks},
    verdict::Verdict,
};
use dsrlab_abi::chain::SLOTS;
use rstest::rstest;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// A chain of `backend`, or `None` (saying why) where this kernel has no
/// BPF trampolines for the EXT backend.
fn chain(test: &str, backend: Backend) -> Option<Chain> {
    if backend == Backend::Ext
        && let Some(why) = Features::get().ext.missing()
    {
        let _ = writeln!(std::io::stderr(), "skipped {test} (ext): {why}");
        return None;
    }
    Some(Chain::new(backend).unwrap())
}

/// Load options setting the global `name` to `value`.
fn global<'a>(name: &'a str, value: &'a [u8]) -> LoadOptions<'a> {
    LoadOptions {
        globals: vec![(name, value)],
        ..LoadOptions::default()
    }
}

/// A probe for `slot` returning `verdict`, put into the chain.
fn probe(chain: &mut Chain, slot: u32, verdict: u32) {
    let program = chain
        .load_slot_builtin(
            datapath::CHAIN_PROBE,
            slot,
            &global("PROBE_VERDICT", &verdict.to_le_bytes()),
        )
        .unwrap();
    assert!(chain.attach(slot, program).unwrap().is_none());
}

fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// The probes' trace on this CPU: the slots that ran, in order; cleared.
fn trace(chain: &Chain, pin: &CpuPin) -> Vec<u32> {
    let path: PathBuf = chain.pin_directory().join("CHAIN_PROBE_TRACE");
    let data = MapData::from_pin(&path).unwrap();
    let mut map: PerCpuArray<MapData, u32> =
        PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).unwrap();
    let here = |i: u32| map.get(&i, 0).unwrap()[pin.cpu];
    let n = here(0);
    let slots = (1..=n).map(here).collect();
    let cpus = aya::util::nr_cpus().unwrap().get() as usize;
    map.set(0, PerCpuValues::try_from(vec![0u32; cpus]).unwrap(), 0)
        .unwrap();
    slots
}

fn run(chain: &Chain) -> u32 {
    match testrun::run(chain.root(), &frame(), Quirks::default())
        .unwrap()
        .verdict
    {
        Verdict::Xdp(v) => v,
        other => panic!("{other:?}"),
    }
}

#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn slots_run_in_order_empty_ones_are_skipped_and_a_stop_verdict_ends_the_chain(
    #[case] backend: Backend,
) {
    let pin = CpuPin::here().unwrap();
    let Some(mut chain) = chain("order", backend) else {
        return;
    };
    probe(&mut chain, 2, XDP_PASS);
    probe(&mut chain, 5, XDP_PASS);
    probe(&mut chain, 9, XDP_DROP);
    probe(&mut chain, 13, XDP_PASS);
    assert_eq!(run(&chain), XDP_DROP);
    assert_eq!(trace(&chain, &pin), [2, 5, 9]);
    let stats = chain.stats().unwrap();
    let ran: Vec<u32> = (0..SLOTS)
        .filter(|&s| stats[s as usize].packets > 0)
        .collect();
    assert_eq!(ran, [2, 5, 9], "slot 13 never saw the packet");
    assert_eq!(stats[5].verdicts[XDP_PASS as usize], 1);
    assert_eq!(stats[9].verdicts[XDP_DROP as usize], 1);
}

#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn an_empty_chain_passes_and_a_chain_run_off_its_end_passes(#[case] backend: Backend) {
    let pin = CpuPin::here().unwrap();
    let Some(mut chain) = chain("empty", backend) else {
        return;
    };
    assert_eq!(run(&chain), XDP_PASS);
    assert!(chain.stats().unwrap().iter().all(|s| s.packets == 0));
    probe(&mut chain, 0, XDP_PASS);
    probe(&mut chain, SLOTS - 1, XDP_PASS);
    assert_eq!(run(&chain), XDP_PASS);
    assert_eq!(trace(&chain, &pin), [0, SLOTS - 1]);
}

#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn a_continue_set_lets_a_verdict_go_on(#[case] backend: Backend) {
    let pin = CpuPin::here().unwrap();
    let Some(mut chain) = chain("continue", backend) else {
        return;
    };
    probe(&mut chain, 1, XDP_DROP);
    probe(&mut chain, 4, XDP_TX);
    chain.set_continue(1, 1 << XDP_DROP).unwrap();
    assert_eq!(run(&chain), XDP_TX, "slot 1's drop went on to slot 4");
    assert_eq!(trace(&chain, &pin), [1, 4]);
}

#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn a_slot_is_replaced_in_one_step_and_detached(#[case] backend: Backend) {
    let Some(mut chain) = chain("replace", backend) else {
        return;
    };
    probe(&mut chain, 3, XDP_PASS);
    assert_eq!(run(&chain), XDP_PASS);
    let drop = chain
        .load_slot_builtin(
            datapath::CHAIN_PROBE,
            3,
            &global("PROBE_VERDICT", &XDP_DROP.to_le_bytes()),
        )
        .unwrap();
    let old = chain.attach(3, drop).unwrap();
    assert!(old.is_some(), "the replaced program comes back");
    assert_eq!(run(&chain), XDP_DROP);
    assert!(chain.detach(3).unwrap().is_some());
    assert_eq!(run(&chain), XDP_PASS);
    assert!(chain.detach(3).unwrap().is_none(), "already empty");
}

#[test]
fn what_cannot_go_into_a_chain_is_refused_and_leaves_it_as_it_was() {
    let mut chain = Chain::new(Backend::TailCall).unwrap();
    probe(&mut chain, 0, XDP_PASS);
    assert!(matches!(
        chain.load_slot_builtin(datapath::CHAIN_PROBE, SLOTS, &LoadOptions::default()),
        Err(ChainError::SlotOutOfRange { slot }) if slot == SLOTS
    ));
    // A program that does not know the chain cannot go on by itself.
    let err = chain
        .load_slot_builtin(datapath::XDP_PASS, 1, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("it has no CHAIN_SLOT global: a tail-call slot program goes on"),
        "{err}"
    );
    let tc = LoadedProgram::builtin(datapath::TC_PASS, &Default::default()).unwrap();
    let err = chain.attach(1, tc).unwrap_err();
    assert!(
        err.to_string()
            .contains("it is a sched_cls program; a chain holds XDP programs"),
        "{err}"
    );
    // A frags program: the root's program array takes only programs like
    // the root.
    let frags = LoadedProgram::builtin(datapath::XDP_PASS_FRAGS, &Default::default()).unwrap();
    let err = chain.attach(2, frags).unwrap_err();
    assert!(
        err.to_string().contains("without frags, like the root"),
        "{err}"
    );
    assert_eq!(run(&chain), XDP_PASS);
    let stats = chain.stats().unwrap();
    assert_eq!(stats[0].packets, 1);
    assert!(stats[1..].iter().all(|s| s.packets == 0));
}

#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn a_dropped_chain_leaves_no_pins(#[case] backend: Backend) {
    let Some(mut chain) = chain("pins", backend) else {
        return;
    };
    probe(&mut chain, 6, XDP_PASS);
    let dir = chain.pin_directory().to_owned();
    assert!(dir.exists());
    drop(chain);
    assert!(!dir.exists(), "{} is left", dir.display());
}

/// The chain's maps are pinned by name, so they must be in chain programs
/// only: any other object declaring them would pin them in the root of
/// the BPF filesystem when loaded.
#[test]
fn programs_outside_a_chain_pin_nothing() {
    let stray = || -> Vec<String> {
        std::fs::read_dir("/sys/fs/bpf")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("CHAIN_"))
            .collect()
    };
    for object in [
        datapath::XDP_PASS,
        datapath::XDP_PASS_FRAGS,
        datapath::TC_PASS,
        datapath::XDP_DECAP,
        datapath::TC_DECAP,
        datapath::XDP_LB,
    ] {
        let _loaded = LoadedProgram::builtin(object, &Default::default()).unwrap();
        assert!(
            stray().is_empty(),
            "{} pinned {:?}",
            object.program,
            stray()
        );
    }
}

/// A user's C slot program (examples/chain-slot, built with
/// `dsrlab_chain.h` by ci/setup) chains with dsrlab's own: it ends the
/// chain for its blocked port and lets other packets go on.
#[rstest]
#[case::tail_call(Backend::TailCall)]
#[case::ext(Backend::Ext)]
fn a_users_c_slot_program_chains_with_dsrlabs_own(#[case] backend: Backend) {
    let pin = CpuPin::here().unwrap();
    let object = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/chain-slot/xdp_port_filter.bpf.o");
    let Some(mut chain) = chain("user's C slot", backend) else {
        return;
    };
    probe(&mut chain, 1, XDP_PASS);
    let filter = chain
        .load_slot_file(
            &object,
            "xdp_port_filter",
            4,
            &global("blocked_port", &53u16.to_le_bytes()),
        )
        .unwrap();
    chain.attach(4, filter).unwrap();
    probe(&mut chain, 7, XDP_TX);
    let udp_to = |port: u16| {
        let mut f = vec![0u8; 64];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f
    };
    let verdict = |frame: &[u8]| match testrun::run(chain.root(), frame, Quirks::default())
        .unwrap()
        .verdict
    {
        Verdict::Xdp(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(verdict(&udp_to(53)), XDP_DROP, "the filter ends the chain");
    assert_eq!(trace(&chain, &pin), [1], "slot 7 never ran");
    assert_eq!(verdict(&udp_to(80)), XDP_TX, "other ports go on to slot 7");
    assert_eq!(trace(&chain, &pin), [1, 7]);
    let stats = chain.stats().unwrap();
    assert_eq!(stats[4].packets, 2);
    assert_eq!(stats[4].verdicts[XDP_DROP as usize], 1);
    assert_eq!(stats[4].verdicts[XDP_PASS as usize], 1);
}

/// The EXT backend asks nothing of a slot program: any XDP program goes
/// into a slot as it is (the root counts and goes on), and a program of
/// another type is refused when it is loaded for the slot.
#[test]
fn an_ext_slot_takes_any_xdp_program_as_it_is() {
    let pin = CpuPin::here().unwrap();
    let Some(mut chain) = chain("plain program", Backend::Ext) else {
        return;
    };
    let plain = chain
        .load_slot_builtin(datapath::XDP_PASS, 2, &LoadOptions::default())
        .unwrap();
    chain.attach(2, plain).unwrap();
    probe(&mut chain, 5, XDP_DROP);
    assert_eq!(run(&chain), XDP_DROP);
    assert_eq!(trace(&chain, &pin), [5]);
    let stats = chain.stats().unwrap();
    assert_eq!(
        stats[2].verdicts[XDP_PASS as usize], 1,
        "counted by the root"
    );
    let err = chain
        .load_slot_builtin(datapath::TC_PASS, 3, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tc_pass"), "{err}");
    assert_eq!(run(&chain), XDP_DROP, "the chain is as it was");
}

/// Slots reserved by owner (the talk's team → slot): only the owner fills
/// or empties its slot; anyone else is refused and the chain stays as it
/// was.
#[test]
fn a_reserved_slot_is_its_owners_alone() {
    let mut chain = Chain::new(Backend::TailCall).unwrap();
    chain.reserve(4, "firewall-team").unwrap();
    assert!(matches!(
        chain.reserve(4, "lb-team"),
        Err(ChainError::Reserved { slot: 4, ref owner }) if owner == "firewall-team"
    ));
    let load = |chain: &Chain, verdict: u32| {
        chain
            .load_slot_builtin(
                datapath::CHAIN_PROBE,
                4,
                &global("PROBE_VERDICT", &verdict.to_le_bytes()),
            )
            .unwrap()
    };
    let err = chain
        .attach_as("lb-team", 4, load(&chain, XDP_DROP))
        .unwrap_err();
    assert_eq!(err.to_string(), "slot 4 is reserved for `firewall-team`");
    let err = chain.attach(4, load(&chain, XDP_DROP)).unwrap_err();
    assert!(matches!(err, ChainError::Reserved { .. }), "{err}");
    assert_eq!(run(&chain), XDP_PASS, "nothing went in");
    chain
        .attach_as("firewall-team", 4, load(&chain, XDP_DROP))
        .unwrap();
    assert_eq!(run(&chain), XDP_DROP);
    assert!(chain.detach(4).is_err(), "only its owner empties it");
    assert!(chain.detach_as("lb-team", 4).is_err());
    assert_eq!(run(&chain), XDP_DROP);
    assert!(chain.detach_as("firewall-team", 4).unwrap().is_some());
    assert_eq!(run(&chain), XDP_PASS);
    assert_eq!(chain.owner(4), Some("firewall-team"));
    // Unreserved slots stay open to anyone.
    probe(&mut chain, 5, XDP_TX);
    assert_eq!(run(&chain), XDP_TX);
}

/// The talk's host chain under the tail-call backend: a firewall (a user's
/// C object) in an early slot, the load balancer in a middle one, the
/// decap after it; traffic that each one ends, and traffic that runs off
/// the chain's end.
#[test]
fn a_host_chain_of_firewall_load_balancer_and_decap_gives_each_its_traffic() {
    use dsrlab::{
        formats::packet::{PacketSpec, decapsulated},
        lb::{Lb, LbSettings, Proto, VipSpec},
    };
    let mut chain = Chain::new(Backend::TailCall).unwrap();
    let object = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/chain-slot/xdp_port_filter.bpf.o");
    let firewall = chain
        .load_slot_file(
            &object,
            "xdp_port_filter",
            2,
            &global("blocked_port", &23u16.to_le_bytes()),
        )
        .unwrap();
    chain.attach(2, firewall).unwrap();
    let SlotProgram::TailCall(lb) = chain
        .load_slot_builtin(datapath::XDP_LB_SLOT, 10, &LoadOptions::default())
        .unwrap()
    else {
        unreachable!("a tail-call chain");
    };
    let mut lb = Lb::new(lb, LbSettings::default()).unwrap();
    let vip = VipSpec {
        addr: "198.18.0.10".parse().unwrap(),
        port: 80,
        proto: Proto::Tcp,
        flags: 0,
    };
    lb.add_vip(vip).unwrap();
    lb.add_real(&vip.vip(), "198.18.1.1".parse().unwrap(), 1)
        .unwrap();
    chain.attach(10, lb.into_program()).unwrap();
    let decap = chain
        .load_slot_builtin(datapath::XDP_DECAP_SLOT, 12, &LoadOptions::default())
        .unwrap();
    chain.attach(12, decap).unwrap();

    let packet = |layers: &str| -> Vec<u8> {
        serde_saphyr::from_str::<PacketSpec>(&format!("layers: {layers}"))
            .unwrap()
            .build()
            .unwrap()
    };
    let through = |frame: &[u8]| {
        let result = testrun::run(chain.root(), frame, Quirks::default()).unwrap();
        let Verdict::Xdp(v) = result.verdict else {
            panic!("{:?}", result.verdict)
        };
        (v, result.output)
    };
    // The VIP: the load balancer encapsulates it to its real and sends it
    // back out, which ends the chain.
    let (v, out) = through(&packet(
        "[eth, {ipv4: {src: 198.18.2.1, dst: 198.18.0.10}}, {tcp: {dport: 80, flags: S}}]",
    ));
    assert_eq!(v, XDP_TX);
    assert_eq!(out[23], 4, "IPv4 in IPv4 to the real");
    assert_eq!(&out[30..34], &[198, 18, 1, 1]);
    // The firewall's port: dropped before the load balancer sees it.
    let (v, _) = through(&packet(
        "[eth, {ipv4: {dst: 198.18.0.10}}, {udp: {dport: 23}}]",
    ));
    assert_eq!(v, XDP_DROP);
    // A tunnel to this host: the load balancer passes it on, the decap
    // decapsulates it, the chain runs off its end.
    let tunnel = packet("[eth, ipv4, ipv4, {tcp: {flags: S}}]");
    let (v, out) = through(&tunnel);
    assert_eq!(v, XDP_PASS);
    assert_eq!(Some(out), decapsulated(&tunnel));
    // Anything else goes through untouched.
    let plain = packet("[eth, {ipv4: {dst: 198.18.0.99}}, {tcp: {dport: 443}}]");
    let (v, out) = through(&plain);
    assert_eq!(v, XDP_PASS);
    assert_eq!(out, plain);

    let stats = chain.stats().unwrap();
    let seen = |slot: usize| stats[slot].packets;
    assert_eq!((seen(2), seen(10), seen(12)), (4, 3, 2));
    assert_eq!(stats[10].verdicts[XDP_TX as usize], 1);
    assert_eq!(stats[12].verdicts[XDP_PASS as usize], 2);
}

/// A chain's pins outlive a process killed with SIGKILL; the next chain
/// removes those of processes that are gone, and only those.
#[test]
fn the_pins_of_a_killed_process_are_removed_by_the_next_chain() {
    // A process that has exited: its pid names no process.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let bpffs = std::path::Path::new("/sys/fs/bpf");
    let stale = bpffs.join(format!("dsrlab-chain-{dead}-0"));
    let alive = bpffs.join(format!("dsrlab-chain-{}-999999", std::process::id()));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::create_dir_all(&alive).unwrap();
    let chain = Chain::new(Backend::TailCall).unwrap();
    let stale_left = stale.exists();
    let alive_left = alive.exists();
    std::fs::remove_dir_all(&alive).unwrap();
    let _ = std::fs::remove_dir_all(&stale);
    drop(chain);
    assert!(!stale_left, "{} was not reaped", stale.display());
    assert!(alive_left, "a live process's pins were removed");
}
