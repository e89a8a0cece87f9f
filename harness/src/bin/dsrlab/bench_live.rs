//! `dsrlab bench-live`: the live mode measured — the DSR reference topology
//! up and down, by dsrlab and by the equivalent `ip` script; real TCP and
//! UDP exchanges through it; and the talk's UDP cross-impact.
//!
//! The `ip` script is the baseline being compared with, so this is the one
//! place that runs `ip`: generated from the same [`TopologySpec`] as
//! dsrlab's build, one command per step as a shell script would run them.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use dsrlab::{
    bench::live::{self, UpDown},
    formats::scenario::load::load_str,
    live::{
        ethtool::Feature,
        netns,
        reference::{Container, Reference},
        topology::TopologySpec,
    },
    runner::scenario::{self as runner, RunOptions, RunOutcome},
};
use serde_json::json;

use super::Format;

/// What to measure.
pub(super) struct Options {
    pub rounds: u32,
    pub flows: u32,
    pub held: usize,
    pub binds: usize,
    pub format: Format,
}

fn reference() -> Reference {
    let vip = "198.18.100.1".parse().expect("an address");
    Reference {
        containers: ["a", "b"]
            .into_iter()
            .map(|name| Container {
                name: name.into(),
                vips: vec![vip],
            })
            .collect(),
        host_loopback: Vec::new(),
        lb_vips: vec![vip],
        sysctls: Vec::new(),
        container_nic: None,
    }
}

/// The `ip` commands that build `spec`, in dsrlab's order, with the
/// namespaces' real names; and the commands that remove it.
fn ip_script(spec: &TopologySpec) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let names: Vec<(String, String)> = spec
        .nodes
        .iter()
        .map(|n| (n.name.clone(), netns::owned_name(&format!("ip-{}", n.name))))
        .collect();
    let ns = |node: &str| {
        names
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, real)| real.clone())
            .expect("a node of the spec")
    };
    let words = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut up = Vec::new();
    let ethtool = Command::new("ethtool").arg("--version").output().is_ok();
    for node in &spec.nodes {
        let n = ns(&node.name);
        up.push(words(format!("ip netns add {n}")));
        for (k, v) in &node.sysctls {
            up.push(words(format!("ip netns exec {n} sysctl -qw net.{k}={v}")));
        }
    }
    for (i, link) in spec.links.iter().enumerate() {
        let (a, b) = (&link.a, &link.b);
        up.push(words(format!(
            "ip -n {} link add {} type veth peer name {} netns {}",
            ns(&a.node),
            a.name,
            b.name,
            ns(&b.node)
        )));
        for (end, e) in [(a, 0u8), (b, 1u8)] {
            let mac = end
                .mac
                .unwrap_or(dsrlab::live::topology::default_mac(i, e))
                .map(|x| format!("{x:02x}"))
                .join(":");
            let n = ns(&end.node);
            up.push(words(format!(
                "ip -n {n} link set dev {} address {mac} up",
                end.name
            )));
            for (addr, prefix) in &end.addresses {
                let nodad = if addr.is_ipv6() { " nodad" } else { "" };
                up.push(words(format!(
                    "ip -n {n} addr add {addr}/{prefix} dev {}{nodad}",
                    end.name
                )));
            }
            for (feature, on) in &end.features {
                if ethtool && *feature == Feature::TxChecksum {
                    let on = if *on { "on" } else { "off" };
                    up.push(words(format!(
                        "ip netns exec {n} ethtool -K {} tx {on}",
                        end.name
                    )));
                }
            }
        }
    }
    for node in &spec.nodes {
        let n = ns(&node.name);
        up.push(words(format!("ip -n {n} link set dev lo up")));
        for (addr, prefix) in &node.loopback {
            up.push(words(format!("ip -n {n} addr add {addr}/{prefix} dev lo")));
        }
        for (addr, prefix) in &node.local_routes {
            up.push(words(format!(
                "ip -n {n} route add local {addr}/{prefix} dev lo"
            )));
        }
        for r in &node.routes {
            let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
            up.push(words(format!(
                "ip -n {n} route add {}/{}{via} dev {}",
                r.dst, r.prefix, r.dev
            )));
        }
    }
    for (i, link) in spec.links.iter().enumerate() {
        for ((here, there), e) in [((&link.a, &link.b), 1u8), ((&link.b, &link.a), 0u8)] {
            let mac = there
                .mac
                .unwrap_or(dsrlab::live::topology::default_mac(i, e))
                .map(|x| format!("{x:02x}"))
                .join(":");
            for (addr, _) in &there.addresses {
                up.push(words(format!(
                    "ip -n {} neigh add {addr} lladdr {mac} dev {} nud permanent",
                    ns(&here.node),
                    here.name
                )));
            }
        }
    }
    let down = names
        .iter()
        .map(|(_, n)| words(format!("ip netns del {n}")))
        .collect();
    (up, down)
}

fn run_commands(commands: &[Vec<String>]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for c in commands {
        let status = Command::new(&c[0])
            .args(&c[1..])
            .status()
            .with_context(|| format!("cannot run {}", c.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed: {status}", c.join(" "));
        }
    }
    Ok(started.elapsed())
}

fn ip_up_down(spec: &TopologySpec) -> anyhow::Result<(UpDown, usize)> {
    let (up, down) = ip_script(spec);
    let create = run_commands(&up);
    // Whatever was made goes, also when a command failed: every deletion
    // is tried (the reaper of a later run would find the rest, as this
    // process's), and the first failure is reported.
    let delete = if create.is_ok() {
        run_commands(&down)
    } else {
        for c in &down {
            let _ = Command::new(&c[0]).args(&c[1..]).status();
        }
        Ok(Duration::ZERO)
    };
    Ok((
        UpDown {
            create: create?,
            delete: delete?,
        },
        up.len() + down.len(),
    ))
}

/// The traffic benchmark's scenario: the reference topology, xdp_lb and
/// tc_decap, one container with TCP and UDP services, `flows` flows of
/// `proto` (`tcp` to port 80, `udp` to port 53).
fn traffic_scenario(proto: &str, flows: u32) -> String {
    let port = if proto == "tcp" { 80 } else { 53 };
    format!(
        r#"version: 1
programs:
  - builtin: xdp_lb
    lb:
      vips: [{{vip: 198.18.100.1:80/tcp}}, {{vip: 198.18.100.1:53/udp}}]
  - builtin: tc_decap
modes: [netns]
topology:
  reference:
    containers: [{{name: a, vips: [198.18.100.1]}}]
services:
  - {{node: a, proto: tcp, listen: 198.18.100.1:80}}
  - {{node: a, proto: udp, listen: 198.18.100.1:53}}
clients:
  - name: {proto}
    node: client
    generate: {{flows: {flows}, protocols: [{proto}], dst: 198.18.100.1, dport: {port}, payload: 64}}
    expect: {{outcome: reply}}
captures:
  - {{name: lb-link, node: router, interface: to-lb}}
"#
    )
}

/// (flows/s, LB packets/s, flows) of one traffic run.
fn traffic(text: &str) -> anyhow::Result<(f64, f64, usize)> {
    let scenario = load_str(text, Path::new("bench-live.yaml"))?;
    let report = runner::run(&scenario, &RunOptions::default(), &mut || {});
    let Some(run) = report.runs.first() else {
        bail!("the traffic scenario did not run");
    };
    let topology = match &run.outcome {
        RunOutcome::Topology(t) => t,
        RunOutcome::SetupFailed(why) | RunOutcome::Skipped(why) => bail!("{why}"),
        RunOutcome::Ran { .. } => bail!("the traffic scenario ran without its topology"),
    };
    if topology.failed() > 0 {
        bail!(
            "{} of {} flows failed: the benchmark only counts working exchanges",
            topology.failed(),
            topology.flows.len()
        );
    }
    let secs = topology.traffic.as_secs_f64();
    // Every frame to a VIP crosses the load balancer's link twice: in,
    // and back out encapsulated.
    let lb_frames = topology.captures.first().map_or(0, |c| c.frames.len() / 2);
    Ok((
        topology.flows.len() as f64 / secs,
        lb_frames as f64 / secs,
        topology.flows.len(),
    ))
}

/// Makes room for `n` open files (root may raise the hard limit too).
fn raise_file_limit(n: usize) -> anyhow::Result<()> {
    let n = n as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill and then to set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if limit.rlim_cur >= n {
            return Ok(());
        }
        limit.rlim_cur = n;
        limit.rlim_max = limit.rlim_max.max(n);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
            bail!(
                "cannot allow {n} open files for the UDP cross-impact benchmark: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

pub(super) fn run(options: &Options) -> anyhow::Result<()> {
    if options.format == Format::Junit {
        bail!("bench-live reports figures, not test cases: use --format human or json");
    }
    netns::reap_once();
    let spec = reference().spec();
    let rounds = options.rounds.max(1);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut commands = 0;
    for _ in 0..rounds {
        ours.push(live::topology_up_down(&spec)?);
        let (t, n) = ip_up_down(&spec)?;
        theirs.push(t);
        commands = n;
    }
    let mean = |v: &[UpDown], f: fn(&UpDown) -> Duration| {
        v.iter().map(f).sum::<Duration>().as_secs_f64() * 1000.0 / v.len() as f64
    };
    let (our_up, our_down) = (mean(&ours, |t| t.create), mean(&ours, |t| t.delete));
    let (ip_up, ip_down) = (mean(&theirs, |t| t.create), mean(&theirs, |t| t.delete));
    let ratio = (our_up + our_down) / (ip_up + ip_down);

    let (tcp_rate, tcp_pps, tcp_flows) = traffic(&traffic_scenario("tcp", options.flows))?;
    let (udp_rate, udp_pps, udp_flows) = traffic(&traffic_scenario("udp", options.flows))?;
    raise_file_limit(options.held + 256)?;
    let udp = live::udp_cross_impact(options.held, options.binds)?;

    match options.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "topology": {
                    "nodes": spec.nodes.len(),
                    "links": spec.links.len(),
                    "rounds": rounds,
                    "dsrlab_ms": {"create": our_up, "delete": our_down},
                    "ip_script_ms": {"create": ip_up, "delete": ip_down, "commands": commands},
                    "ratio": ratio,
                },
                "traffic": {
                    "tcp": {"flows": tcp_flows, "connections_per_s": tcp_rate, "lb_packets_per_s": tcp_pps},
                    "udp": {"flows": udp_flows, "exchanges_per_s": udp_rate, "lb_packets_per_s": udp_pps},
                },
                "udp_cross_impact": {
                    "held_sockets": udp.held,
                    "port_range": [live::PORT_RANGE.0, live::PORT_RANGE.1],
                    "binds": udp.binds,
                    "alone_us_per_bind": udp.alone.per_bind.as_secs_f64() * 1e6,
                    "shared_namespace_us_per_bind": udp.shared.per_bind.as_secs_f64() * 1e6,
                    "separate_namespaces_us_per_bind": udp.separate.per_bind.as_secs_f64() * 1e6,
                    "shared_failed_binds": udp.shared.failed,
                    "separate_failed_binds": udp.separate.failed,
                },
            }))?
        ),
        _ => {
            println!(
                "topology up+down: the DSR reference topology ({} nodes, {} links), mean of {rounds} rounds",
                spec.nodes.len(),
                spec.links.len()
            );
            println!(
                "  dsrlab     {our_up:8.1} ms create {our_down:8.1} ms delete {:8.1} ms total",
                our_up + our_down
            );
            println!(
                "  ip script  {ip_up:8.1} ms create {ip_down:8.1} ms delete {:8.1} ms total ({commands} commands)",
                ip_up + ip_down
            );
            println!("  dsrlab ÷ ip script: {ratio:.3}");
            println!(
                "traffic through the reference topology (xdp_lb → tc_decap), one flow at a time"
            );
            println!(
                "  tcp  {tcp_flows} connections: {tcp_rate:8.0} connections/s, {tcp_pps:8.0} packets/s through the load balancer"
            );
            println!(
                "  udp  {udp_flows} exchanges:   {udp_rate:8.0} exchanges/s,   {udp_pps:8.0} packets/s through the load balancer"
            );
            println!(
                "udp cross-impact: service B binds {} UDP sockets to port 0 while service A holds {} (ephemeral range {}-{})",
                udp.binds,
                udp.held,
                live::PORT_RANGE.0,
                live::PORT_RANGE.1
            );
            for (what, p) in [
                ("B alone", udp.alone),
                ("A and B in one namespace", udp.shared),
                ("A and B in separate namespaces", udp.separate),
            ] {
                println!(
                    "  {what:<32} {:8.2} µs per bind, {} failed",
                    p.per_bind.as_secs_f64() * 1e6,
                    p.failed
                );
            }
        }
    }
    Ok(())
}
