//! Live mode: topologies are built and removed without a trace, the root
//! namespace never changes, a killed run's namespaces are reaped by the
//! next one, and a program that behaves differently live than under
//! BPF_PROG_TEST_RUN fails the scenario with both sides shown.

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, UdpSocket},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use dsrlab::{
    datapath,
    formats::scenario::load::load,
    live::{
        attach::Hook,
        netns::{self, Namespace},
        replay::Replay,
        topology::{EndSpec, LinkSpec, NodeSpec, RouteSpec, Topology, TopologySpec},
    },
    load::{LoadOptions, LoadedProgram},
    oracles::Finding,
    runner::scenario::{self as runner, RunOptions, RunOutcome},
};

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// client — router — server, the server with a VIP on `lo`.
fn three_nodes() -> TopologySpec {
    let node = |name: &str, routes: Vec<RouteSpec>, forwarding: bool| NodeSpec {
        name: name.into(),
        sysctls: vec![(
            "ipv4.ip_forward".into(),
            if forwarding { "1" } else { "0" }.into(),
        )],
        loopback: if name == "server" {
            vec![(addr("198.18.100.1"), 32)]
        } else {
            vec![]
        },
        routes,
        local_routes: vec![],
    };
    let end = |node: &str, name: &str, a: &str| EndSpec {
        node: node.into(),
        name: name.into(),
        addresses: vec![(addr(a), 24)],
        ..Default::default()
    };
    let route = |dst: &str, prefix, via: &str, dev: &str| RouteSpec {
        dst: addr(dst),
        prefix,
        via: Some(addr(via)),
        dev: dev.into(),
    };
    TopologySpec {
        nodes: vec![
            node(
                "client",
                vec![route("198.18.100.0", 24, "198.18.1.2", "c0")],
                false,
            ),
            node(
                "router",
                vec![route("198.18.100.0", 24, "198.18.2.2", "r1")],
                true,
            ),
            node(
                "server",
                vec![route("198.18.1.0", 24, "198.18.2.1", "s0")],
                false,
            ),
        ],
        links: vec![
            LinkSpec {
                a: end("client", "c0", "198.18.1.1"),
                b: end("router", "r0", "198.18.1.2"),
            },
            LinkSpec {
                a: end("router", "r1", "198.18.2.1"),
                b: end("server", "s0", "198.18.2.2"),
            },
        ],
    }
}

#[test]
fn a_topology_carries_real_traffic_and_leaves_nothing_behind() {
    let topology = Topology::build(&three_nodes()).unwrap_or_else(|e| panic!("{e}"));
    let names = topology.namespace_names();
    assert_eq!(names.len(), 3);
    for name in &names {
        assert!(
            netns::list().contains(name),
            "{name} is not under /var/run/netns"
        );
    }
    // A UDP datagram from the client to the server's VIP crosses the router.
    let server = topology.node("server").unwrap();
    let client = topology.node("client").unwrap();
    // Should it get lost, the kernel says where and why.
    let mut watches: Vec<_> = ["client", "router", "server"]
        .iter()
        .map(|n| {
            dsrlab::instruments::drop_watch::DropWatch::attach(topology.node(n).unwrap()).unwrap()
        })
        .collect();
    let listener = server
        .run(|| UdpSocket::bind("198.18.100.1:7000"))
        .unwrap()
        .unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sender = client
        .run(|| UdpSocket::bind("198.18.1.1:0"))
        .unwrap()
        .unwrap();
    sender
        .send_to(b"through the router", "198.18.100.1:7000")
        .unwrap();
    let mut buf = [0; 64];
    let (n, from) = listener.recv_from(&mut buf).unwrap_or_else(|e| {
        let drops: Vec<_> = watches.iter_mut().map(|w| w.take().unwrap()).collect();
        panic!("the datagram did not arrive ({e}); drops in client, router, server: {drops:?}")
    });
    assert_eq!(&buf[..n], b"through the router");
    assert_eq!(from.ip(), addr("198.18.1.1"));
    drop((listener, sender));
    drop(topology);
    for name in &names {
        assert!(!netns::list().contains(name), "{name} survived the drop");
    }
}

/// `spec` with every node renamed `prefix-NAME`, so that parallel tests can
/// tell their namespaces apart.
fn renamed(mut spec: TopologySpec, prefix: &str) -> TopologySpec {
    let name = |n: &mut String| *n = format!("{prefix}-{n}");
    spec.nodes.iter_mut().for_each(|n| name(&mut n.name));
    for link in &mut spec.links {
        name(&mut link.a.node);
        name(&mut link.b.node);
    }
    spec
}

#[test]
fn bad_specs_are_refused_and_a_half_built_topology_is_removed() {
    let ours = |prefix: &str| -> Vec<String> {
        netns::list()
            .into_iter()
            .filter(|n| n.contains(&format!("-{prefix}-")))
            .collect()
    };
    let mut spec = renamed(three_nodes(), "badaddr");
    spec.links[1].b.addresses.push((addr("10.1.2.3"), 8));
    let err = Topology::build(&spec).unwrap_err().to_string();
    assert!(
        err.contains("badaddr-server/s0: address 10.1.2.3 is outside"),
        "{err}"
    );
    assert!(ours("badaddr").is_empty());
    // Refused half-way, after the namespaces and links exist.
    let mut spec = renamed(three_nodes(), "badroute");
    spec.nodes[0].routes[0].dev = "nope0".into();
    let err = Topology::build(&spec).unwrap_err().to_string();
    assert!(err.contains("unknown link nope0"), "{err}");
    assert!(
        ours("badroute").is_empty(),
        "left behind: {:?}",
        ours("badroute")
    );
    // The kernel's own refusal names the request and the reason.
    let mut spec = renamed(three_nodes(), "badmtu");
    spec.links[0].a.mtu = Some(70_000);
    let err = Topology::build(&spec).unwrap_err().to_string();
    assert!(
        err.contains("node badmtu-client: netlink link set ifindex")
            && err.contains("mtu 70000")
            && err.contains("Invalid argument"),
        "{err}"
    );
    assert!(
        err.contains("link set") && err.contains("c0") || err.contains("mtu"),
        "{err}"
    );
    assert!(
        ours("badmtu").is_empty(),
        "left behind: {:?}",
        ours("badmtu")
    );
}

/// What of the root namespace a run could change: links, addresses,
/// routes, forwarding.
fn root_namespace_state() -> String {
    let mut state = String::new();
    for file in [
        "/proc/net/dev",
        "/proc/net/route",
        "/proc/net/ipv6_route",
        "/proc/net/if_inet6",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Interface counters move with any traffic; keep names only.
        let text = if file == "/proc/net/dev" {
            text.lines()
                .filter_map(|l| l.split(':').next())
                .map(|n| n.trim().to_owned() + "\n")
                .collect()
        } else {
            text
        };
        state.push_str(&format!("== {file}\n{text}"));
    }
    state
}

#[test]
fn live_runs_never_change_the_root_namespace() {
    let before = root_namespace_state();
    // A replayed fixture set, and a whole reference topology with sockets.
    for file in ["decap-tunnels.yaml", "talk-same-vip-tc-decap.yaml"] {
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(file);
        let loaded = load(&scenario).unwrap_or_else(|e| panic!("{e}"));
        let options = RunOptions {
            modes: Some(vec![dsrlab::formats::scenario::model::Mode::Netns]),
            ..Default::default()
        };
        let report = runner::run(&loaded, &options, &mut || {});
        assert!(report.ok() && report.passed() > 0, "{report:?}");
    }
    assert_eq!(before, root_namespace_state());
}

#[test]
fn link_end_offloads_are_set_as_asked() {
    use dsrlab::live::ethtool::{Feature, feature};
    let mut spec = renamed(three_nodes(), "ofl");
    spec.links[0].a.features = vec![
        (Feature::Gro, true),
        (Feature::TxChecksum, false),
        (Feature::RxChecksum, false),
    ];
    let end = spec.links[0].a.clone();
    let topology = Topology::build(&spec).unwrap_or_else(|e| panic!("{e}"));
    let read = |f| {
        topology
            .node(&end.node)
            .unwrap()
            .run(|| feature(&end.name, f))
            .unwrap()
            .unwrap()
    };
    assert!(read(Feature::Gro));
    assert!(!read(Feature::TxChecksum));
    assert!(!read(Feature::RxChecksum));
    // The other end keeps veth's defaults: GRO off, checksums on.
    let peer = spec.links[0].b.clone();
    let ns = topology.node(&peer.node).unwrap();
    assert!(
        !ns.run(|| feature(&peer.name, Feature::Gro))
            .unwrap()
            .unwrap()
    );
    assert!(
        ns.run(|| feature(&peer.name, Feature::TxChecksum))
            .unwrap()
            .unwrap()
    );
}

/// Loads `text` as a scenario file in a temporary directory and runs it.
fn run_text(text: &str) -> runner::ScenarioReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    runner::run(&loaded, &RunOptions::default(), &mut || {})
}

/// Namespaces of this process whose node label is `label`.
fn namespaces_labelled(label: &str) -> Vec<String> {
    netns::list()
        .into_iter()
        .filter(|n| n.ends_with(&format!("-{label}")))
        .collect()
}

#[test]
fn a_topology_flow_that_contradicts_its_expectation_fails_and_says_why() {
    // The host-side decap cannot honour the load balancer's choice: the
    // flows it sent to b fail `served_by: lb_choice`, each saying so.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/talk-same-vip-xdp-decap.yaml"),
    )
    .unwrap()
    .replace("served_by: a, reply: a", "served_by: lb_choice")
    .replace("captures:", "unused:")
    .split("unused:")
    .next()
    .unwrap()
    .to_owned();
    let report = run_text(&text);
    assert!(!report.ok(), "a wrong expectation passed");
    let RunOutcome::Topology(topology) = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    let sent_to_b: Vec<_> = topology
        .flows
        .iter()
        .filter(|f| f.lb_choice.as_deref() == Some("b"))
        .collect();
    assert!(
        !sent_to_b.is_empty(),
        "the load balancer chose b for no flow"
    );
    for flow in &topology.flows {
        let to_b = flow.lb_choice.as_deref() == Some("b");
        assert_eq!(flow.served_by.as_deref(), Some("a"));
        assert_eq!(!flow.findings.is_empty(), to_b, "{flow:?}");
        if to_b {
            assert_eq!(
                flow.findings[0].to_string(),
                "served by: expected b, the load balancer's choice, actual a (outcome reply)"
            );
        }
    }
    assert_eq!(report.failed(), sent_to_b.len());
}

#[test]
fn topology_set_up_failures_name_their_cause_and_leave_nothing() {
    let topology = |mtu: u32, listen: &str| {
        format!(
            "version: 1\nprograms:\n  - builtin: xdp_pass\n    attach: {{node: fail-srv, interface: eth0}}\n\
             modes: [netns]\ntopology:\n  nodes: [{{name: fail-cli}}, {{name: fail-srv}}]\n  links:\n\
             \x20   - a: {{node: fail-cli, name: eth0, addresses: [198.18.6.1/24], mtu: {mtu}}}\n\
             \x20     b: {{node: fail-srv, name: eth0, addresses: [198.18.6.2/24], mtu: {mtu}}}\n\
             services:\n  - {{node: fail-srv, proto: udp, listen: \"{listen}\"}}\n\
             clients:\n  - {{node: fail-cli, generate: {{flows: 1, protocols: [udp], src: 198.18.6.1, dst: 198.18.6.2}}, expect: {{outcome: reply}}}}\n"
        )
    };
    // It works as written ...
    let report = run_text(&topology(1500, "198.18.6.2:80"));
    assert!(report.ok() && report.passed() > 0, "{report:?}");
    // ... a kernel refusal is a set-up failure with the kernel's reason ...
    let report = run_text(&topology(9000, "198.18.6.2:80"));
    let RunOutcome::SetupFailed(why) = &report.runs[0].outcome else {
        panic!("{:?}", report.runs[0].outcome);
    };
    assert!(
        why.contains("xdp_pass") && why.contains("above about 3.5 KB"),
        "{why}"
    );
    // ... and a service on an address its node lacks is refused before
    // anything is built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, topology(1500, "198.18.6.9:80")).unwrap();
    let err = load(&path).expect_err("loaded").to_string();
    assert!(
        err.contains("node `fail-srv` does not own 198.18.6.9"),
        "{err}"
    );
    for label in ["fail-cli", "fail-srv"] {
        assert_eq!(namespaces_labelled(label), Vec::<String>::new());
    }
}

/// Not a test of its own: the child process of the reaper test, which
/// makes a namespace, says its name and waits to be killed.
#[test]
#[ignore = "helper process of the reaper test, run by it"]
fn helper_holds_a_namespace_until_killed() {
    if std::env::var_os("DSRLAB_REAPER_HELPER").is_none() {
        return;
    }
    let ns = Namespace::create("reaper-victim").unwrap();
    println!("NAMESPACE {}", ns.name());
    std::io::stdin().read_line(&mut String::new()).ok();
    drop(ns);
}

#[test]
fn a_killed_runs_namespaces_are_reaped_by_the_next() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_holds_a_namespace_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("DSRLAB_REAPER_HELPER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let name = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("NAMESPACE ").map(str::to_owned))
        .expect("the helper names its namespace");
    assert!(netns::list().contains(&name));
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(
        netns::list().contains(&name),
        "SIGKILL removed nothing by itself"
    );
    // Another test of this process may run its once-per-process reap in
    // between; either way a reap removed it (nothing else removes a dead
    // owner's namespace).
    let reaped = netns::reap();
    assert!(
        !netns::list().contains(&name),
        "{name} survived the reap (it reaped {reaped:?})"
    );
}

/// An XDP program that passes IPv4 on the loopback device and drops it
/// everywhere else: BPF_PROG_TEST_RUN runs XDP on `lo` (ifindex 1), a live
/// run on a veth. The two modes must disagree about every IPv4 packet.
/// (Other frames pass, as the live rig's fences need.)
const LO_ONLY: &str = r#"
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int xdp_lo_only(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return ctx->ingress_ifindex == 1 ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
"#;

#[test]
fn modes_that_disagree_fail_the_scenario_and_show_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("lo_only.c");
    let object = dir.path().join("lo_only.bpf.o");
    std::fs::write(&source, LO_ONLY).unwrap();
    let include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &include, "-c"])
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .status()
        .expect("clang (installed by ci/setup)");
    assert!(status.success());
    let scenario = dir.path().join("disagree.yaml");
    std::fs::write(
        &scenario,
        "version: 1\nprograms:\n  - object: lo_only.bpf.o\n    program: xdp_lo_only\n\
         modes: [test-run, netns]\ntraffic:\n  - generate: {flows: 3, protocols: [udp]}\n",
    )
    .unwrap();
    let loaded = load(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let report = runner::run(&loaded, &RunOptions::default(), &mut || {});
    assert!(!report.ok(), "disagreeing modes passed");
    let live = report
        .runs
        .iter()
        .find(|r| r.mode == dsrlab::formats::scenario::model::Mode::Netns)
        .unwrap();
    let RunOutcome::Ran { report: suite, .. } = &live.outcome else {
        panic!("live run did not run: {:?}", live.outcome);
    };
    assert_eq!(suite.packets.len(), 3);
    for packet in &suite.packets {
        let disagreements: Vec<_> = packet
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::ModesDisagree(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            disagreements,
            ["verdict: test-run XDP_PASS (pass), netns XDP_DROP (drop)"],
            "packet {}",
            packet.number
        );
    }
}

#[test]
fn jumbo_frames_need_frags_programs_and_the_refusal_says_so() {
    let mut plain = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default()).unwrap();
    let err = Replay::new(&mut plain, Hook::XdpNative, 9000)
        .err()
        .expect("a non-frags XDP program attaches at MTU 9000")
        .to_string();
    assert!(
        err.contains("xdp_pass") && err.contains("above about 3.5 KB"),
        "{err}"
    );
    // A frags program attaches, and a 5000-byte frame goes through the rig
    // (whose own wire end must take jumbo frames too).
    let mut frags = LoadedProgram::builtin(datapath::XDP_DECAP, &LoadOptions::default()).unwrap();
    let mut replay =
        Replay::new(&mut frags, Hook::XdpNative, 9000).unwrap_or_else(|e| panic!("{e}"));
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb6];
    frame.resize(5000, 0xab);
    let seen = replay.replay(&frame).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen.delivered, vec![frame]);
    assert!(seen.sent_back.is_empty());
}

/// Blocks until a namespace whose name starts with `prefix` appears under
/// /var/run/netns (inotify: an event, not a poll), or 60 s pass.
fn await_namespace(prefix: &str) -> Option<String> {
    std::fs::create_dir_all(netns::NETNS_DIR).unwrap();
    // SAFETY: plain syscalls on an fd this function owns and closes.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_CLOEXEC);
        assert!(fd >= 0);
        let dir = std::ffi::CString::new(netns::NETNS_DIR).unwrap();
        assert!(libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_CREATE) >= 0);
        let mut buf = [0u8; 4096];
        let found = loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&raw mut pfd, 1, 60_000) <= 0 {
                break None;
            }
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            let mut at = 0;
            let mut hit = None;
            while n > 0 && at + 16 <= n as usize {
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = &buf[at + 16..at + 16 + len];
                let name = String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap());
                if name.starts_with(prefix) {
                    hit = Some(name.into_owned());
                }
                at += 16 + len;
            }
            if hit.is_some() {
                break hit;
            }
        };
        libc::close(fd);
        found
    }
}

#[test]
fn sigint_removes_the_runs_namespaces_before_it_exits() {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsrlab"))
        .args(["run", "--mode", "netns"])
        .arg(&scenarios)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("{}{}-", netns::PREFIX, child.id());
    let name = await_namespace(&prefix).expect("the run makes a namespace");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGINT),
        "not ended by the signal"
    );
    let left: Vec<_> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{name} was seen; left behind: {left:?}");
}
