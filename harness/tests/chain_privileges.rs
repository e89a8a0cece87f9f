//! What a slot owner needs, measured (the talk's security point). A thread
//! with CAP_BPF alone — no CAP_NET_ADMIN, no CAP_SYS_ADMIN:
//! - cannot load an XDP program (the kernel asks CAP_NET_ADMIN for that):
//!   a privileged loader loads slot programs and hands their fds over;
//! - puts such a program into a chain's slot (a program-array update);
//! - could attach it to a device by a BPF link just as well (the kernel
//!   asks no more for that), but not to the host's device, which the
//!   chain's root holds by its link (EBUSY): the host's owner keeps the
//!   device, and the slots are what others get.

use aya::programs::{Program, XdpMode};
use dsrlab::{
    chain::{Backend, Chain},
    datapath,
    live::topology::{EndSpec, LinkSpec, NodeSpec, Topology, TopologySpec},
    load::{LoadOptions, LoadedProgram},
    testrun::{self, Quirks},
    verdict::Verdict,
};

const CAP_BPF: u32 = 39;
const CAP_PERFMON: u32 = 38;

/// Keeps only `caps` in the calling thread's effective set.
fn keep_only(caps: &[u32]) {
    dsrlab::kernel::restrict_thread_capabilities(|cap| caps.contains(&cap)).unwrap();
}

#[test]
fn cap_bpf_alone_fills_a_slot_while_the_device_stays_the_roots() {
    let end = |node: &str| EndSpec {
        node: node.to_owned(),
        name: "eth0".to_owned(),
        ..EndSpec::default()
    };
    let topology = Topology::build(&TopologySpec {
        nodes: ["wire", "host"]
            .map(|name| NodeSpec {
                name: name.to_owned(),
                ..NodeSpec::default()
            })
            .to_vec(),
        links: vec![LinkSpec {
            a: end("wire"),
            b: end("host"),
        }],
    })
    .unwrap();
    let host = topology.node("host").unwrap();
    let ifindex = topology.interface("host", "eth0").unwrap().index;

    let mut chain = Chain::new(Backend::TailCall).unwrap();
    // Loaded by a privileged loader (loading an XDP program takes
    // CAP_NET_ADMIN), handed to the slot's owner.
    let slot_program = chain
        .load_slot_builtin(
            datapath::CHAIN_PROBE,
            3,
            &LoadOptions {
                globals: vec![("PROBE_VERDICT", &1u32.to_le_bytes())],
                ..LoadOptions::default()
            },
        )
        .unwrap();
    let mut other = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default()).unwrap();

    chain.attach_root(host, ifindex, XdpMode::Skb).unwrap();

    let (loaded, filled, device) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Into the host's namespace for good (this thread ends
                // there), then down to CAP_BPF.
                std::mem::forget(host.enter().unwrap());
                keep_only(&[CAP_BPF, CAP_PERFMON]);
                let loaded = aya::EbpfLoader::new()
                    .load(datapath::XDP_PASS.elf)
                    .map_err(|e| e.to_string())
                    .and_then(|mut ebpf| {
                        let Some(Program::Xdp(xdp)) = ebpf.program_mut("xdp_pass") else {
                            unreachable!()
                        };
                        xdp.load()
                            .map_err(|e| errno_of(&e).map_or(e.to_string(), |n| n.to_string()))
                    });
                let filled = chain.attach(3, slot_program).map(drop);
                let Program::Xdp(xdp) = other.program_mut() else {
                    unreachable!()
                };
                let device = xdp.attach(ifindex, XdpMode::Skb).map(drop);
                (loaded, filled, device.map_err(|e| errno_of(&e)))
            })
            .join()
            .unwrap()
    });
    assert_eq!(
        loaded,
        Err(libc::EPERM.to_string()),
        "loading XDP needs CAP_NET_ADMIN"
    );
    assert!(filled.is_ok(), "CAP_BPF fills a slot: {filled:?}");
    assert_eq!(
        device,
        Err(Some(libc::EBUSY)),
        "the device is the root's: its link holds it"
    );
    // The slot program runs in the chain.
    let result = testrun::run(chain.root(), &[0u8; 64], Quirks::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Xdp(1));
}

/// The kernel's errno somewhere in `error`'s chain of sources.
fn errno_of(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(n) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(n);
        }
        source = e.source();
    }
    None
}
