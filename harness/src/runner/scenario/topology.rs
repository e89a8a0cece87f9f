//! Topology scenarios: the programs attached in a built topology, socket
//! services started, captures opened, every client flow made, and then
//! what the flows saw, what the captures hold and what the counters say
//! judged.
//!
//! The order makes the reading exact without any waiting on time: flows
//! run one after another; each service reports a connection served only
//! after the client's last segment reached it (see [`crate::live::service`]);
//! the run waits for those reports, and only then reads the counters and
//! drains the captures.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use super::{RunOutcome, after_checks, after_state, set_up, set_up_lb};
use crate::{
    datapath,
    formats::scenario::{
        load::{LiveSetup, LoadedScenario},
        model::Contract,
    },
    lb::control::Lb,
    live::{
        attach::{self, Hook},
        capture::Capture,
        client::{self, FlowOutcome, FlowSpec},
        netns,
        netns::Namespace,
        service::{Proto, Reply, ServiceEvent, Services},
        topology::{Topology, TopologySpec},
    },
    load::{LoadOptions, LoadedProgram},
    oracles::{Finding, capture, flows},
    runner::execution::MarkerCost,
};

/// What a topology run found.
#[derive(Debug)]
pub struct TopologyReport {
    /// Every flow, in client-group and flow order.
    pub flows: Vec<FlowReport>,
    /// Every capture, in file order.
    pub captures: Vec<CaptureReport>,
    /// Findings of the `after:` checks (counters, maps) and of the run
    /// itself (a flow no service reported).
    pub after: Vec<Finding>,
    /// Wall-clock time of the flows alone (set-up excluded).
    pub traffic: Duration,
}

impl TopologyReport {
    /// Flows and capture checks that passed.
    pub fn passed(&self) -> usize {
        self.flows.iter().filter(|f| f.findings.is_empty()).count()
            + self
                .captures
                .iter()
                .map(|c| c.checks.saturating_sub(c.failed))
                .sum::<usize>()
    }

    /// Flows and capture checks that failed, and failed after-checks.
    pub fn failed(&self) -> usize {
        self.flows.iter().filter(|f| !f.findings.is_empty()).count()
            + self
                .captures
                .iter()
                .map(|c| c.findings.len())
                .sum::<usize>()
            + self.after.len()
    }

    /// Flows and capture checks made.
    pub fn checks(&self) -> usize {
        self.flows.len() + self.captures.iter().map(|c| c.checks).sum::<usize>()
    }
}

/// One flow's result.
#[derive(Debug)]
pub struct FlowReport {
    /// Its client group.
    pub group: String,
    /// The flow.
    pub flow: FlowSpec,
    /// How it ended.
    pub outcome: FlowOutcome,
    /// The node whose service reported serving it.
    pub served_by: Option<String>,
    /// The node owning the real the load balancer chose for it.
    pub lb_choice: Option<String>,
    /// What its group's `expect:` found wrong.
    pub findings: Vec<Finding>,
}

/// One capture's frames and findings.
#[derive(Debug)]
pub struct CaptureReport {
    /// Its name.
    pub name: String,
    /// Where: `node/interface`.
    pub at: String,
    /// Every frame, in order.
    pub frames: Vec<Vec<u8>>,
    /// Expectations checked.
    pub checks: usize,
    /// Expectations that failed (and 1 if the capture itself failed).
    pub failed: usize,
    /// What they found wrong.
    pub findings: Vec<Finding>,
}

/// A program set up for the topology.
enum Program {
    Plain(LoadedProgram, Option<Contract>),
    Lb(Box<Lb>),
}

impl Program {
    fn loaded_mut(&mut self) -> &mut LoadedProgram {
        match self {
            Self::Plain(p, _) => p,
            Self::Lb(lb) => lb.program_mut(),
        }
    }
}

/// Runs `scenario`'s topology once, with all its programs.
pub(super) fn run(
    scenario: &LoadedScenario,
    live: &LiveSetup,
    tick: &mut dyn FnMut(),
) -> RunOutcome {
    match run_inner(scenario, live, tick) {
        Ok(report) => RunOutcome::Topology(report),
        Err(why) => RunOutcome::SetupFailed(why),
    }
}

fn run_inner(
    scenario: &LoadedScenario,
    live: &LiveSetup,
    tick: &mut dyn FnMut(),
) -> Result<TopologyReport, String> {
    netns::reap_once();
    let mut programs = scenario
        .programs
        .iter()
        .map(|p| match (&p.contract, &p.lb) {
            (Some(Contract::Lb), Some(setup)) => {
                set_up_lb(p, setup).map(|lb| Program::Lb(Box::new(lb)))
            }
            _ => set_up(p).map(|loaded| Program::Plain(loaded, p.contract)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let topology = Topology::build(&live.topology).map_err(|e| e.to_string())?;
    for a in &live.attachments {
        let (ns, ifindex) = locate(&topology, &a.node, &a.interface)?;
        attach::attach(
            programs[a.program].loaded_mut(),
            ns,
            &a.interface,
            ifindex,
            a.hook,
        )
        .map_err(|e| e.to_string())?;
    }
    let _peer_helpers = attach_peer_helpers(&topology, live)?;
    let services =
        Services::start(&live.services, |node| topology.node(node)).map_err(|e| e.to_string())?;
    let captures = live
        .captures
        .iter()
        .map(|c| {
            let (ns, ifindex) = locate(&topology, &c.node, &c.interface)?;
            Capture::open(ns, ifindex)
                .map_err(|e| format!("capture {} at {}/{}: {e}", c.name, c.node, c.interface))
        })
        .collect::<Result<Vec<_>, String>>()?;

    let mut outcomes = Vec::new();
    let traffic_started = Instant::now();
    for group in &live.clients {
        let ns = topology
            .node(&group.node)
            .ok_or_else(|| format!("no node {}", group.node))?;
        let results = ns
            .run(|| {
                group
                    .flows
                    .iter()
                    .map(|(flow, _)| {
                        let outcome = client::run(flow, group.timeout);
                        tick();
                        outcome
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|e| format!("enter node {}: {e}", group.node))?;
        outcomes.push(results);
    }

    let mut after = Vec::new();
    let served = who_served(&services, &topology, live, &outcomes, &mut after);
    let traffic = traffic_started.elapsed();
    let owners = owners(&live.topology);
    let choices = lb_choices(&programs, live, &owners);
    let mut flows_report = Vec::new();
    for ((group, results), choices) in live.clients.iter().zip(outcomes).zip(choices) {
        for (((flow, _), outcome), lb_choice) in group.flows.iter().zip(results).zip(choices) {
            let served_id = served.get(&flow_key(flow)).copied();
            let served_by = served_id.map(|id| live.services[id].node.clone());
            let mut findings = flows::judge(
                &group.expect,
                flows::Observed {
                    outcome: &outcome,
                    served_by: served_by.as_deref(),
                    lb_choice: lb_choice.as_deref(),
                },
            );
            if let (Some(id), FlowOutcome::Reply { bytes, .. }) = (served_id, &outcome)
                && live.services[id].reply == Reply::Echo
            {
                findings.extend(flows::echo(&flow.request, bytes));
            }
            flows_report.push(FlowReport {
                group: group.name.clone(),
                flow: flow.clone(),
                outcome,
                served_by,
                lb_choice,
                findings,
            });
        }
    }
    for program in &programs {
        after.extend(program_after(scenario, program));
    }
    let mut captures_report = Vec::new();
    for (setup, capture) in live.captures.iter().zip(&captures) {
        let (frames, mut findings, mut failed) = match capture.drain() {
            Ok(frames) => (frames, Vec::new(), 0),
            Err(e) => (
                Vec::new(),
                vec![Finding::Capture(format!("capture {}: {e}", setup.name))],
                1,
            ),
        };
        for broken in capture::judge(&setup.name, &setup.expect, &frames) {
            failed += usize::from(!broken.is_empty());
            findings.extend(broken);
        }
        captures_report.push(CaptureReport {
            name: setup.name.clone(),
            at: format!("{}/{}", setup.node, setup.interface),
            frames,
            checks: setup.expect.len(),
            failed,
            findings,
        });
    }
    drop(services);
    drop(captures);
    drop(topology);
    Ok(TopologyReport {
        flows: flows_report,
        captures: captures_report,
        after,
        traffic,
    })
}

/// Puts `xdp_pass_frags` on the far end of every link end that carries a
/// native XDP program, unless that end has an XDP program of its own: a
/// veth delivers XDP_TX and redirected frames only into a peer that runs
/// XDP (its NAPI path). The helper passes everything and counts nothing.
fn attach_peer_helpers(
    topology: &Topology,
    live: &LiveSetup,
) -> Result<Vec<LoadedProgram>, String> {
    let xdp_at = |node: &str, interface: &str, hooks: &[Hook]| {
        live.attachments
            .iter()
            .any(|a| a.node == node && a.interface == interface && hooks.contains(&a.hook))
    };
    let mut helpers = Vec::new();
    for link in &live.topology.links {
        for (here, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
            // The loader refuses generic XDP at such a peer.
            if !xdp_at(&here.node, &here.name, &[Hook::XdpNative])
                || xdp_at(&peer.node, &peer.name, &[Hook::XdpNative])
            {
                continue;
            }
            let (ns, ifindex) = locate(topology, &peer.node, &peer.name)?;
            let mut helper =
                LoadedProgram::builtin(datapath::XDP_PASS_FRAGS, &LoadOptions::default())
                    .map_err(|e| format!("loading xdp_pass_frags: {e}"))?;
            attach::attach(&mut helper, ns, &peer.name, ifindex, Hook::XdpNative)
                .map_err(|e| e.to_string())?;
            helpers.push(helper);
        }
    }
    Ok(helpers)
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The namespace of `node` and the index of its `interface`.
fn locate<'t>(
    topology: &'t Topology,
    node: &str,
    interface: &str,
) -> Result<(&'t Namespace, u32), String> {
    let ns = topology
        .node(node)
        .ok_or_else(|| format!("no node {node}"))?;
    let ifindex = topology
        .interface(node, interface)
        .ok_or_else(|| format!("no interface {interface} in {node}"))?
        .index;
    Ok((ns, ifindex))
}

/// How a service report and a flow meet: protocol, the client's address
/// and port, the service's port.
type ServedKey = (Proto, SocketAddr, u16);

fn flow_key(flow: &FlowSpec) -> ServedKey {
    (flow.proto, canonical(flow.src), flow.dst.port())
}

/// Who served which flow, once every service has reported everything it
/// served ([`Services::flush`]). A flow that got a reply no service
/// reported, and a service's own failures, are findings.
fn who_served(
    services: &Services,
    topology: &Topology,
    live: &LiveSetup,
    outcomes: &[Vec<FlowOutcome>],
    findings: &mut Vec<Finding>,
) -> HashMap<ServedKey, usize> {
    let mut served = HashMap::new();
    match services.flush(|node| topology.node(node)) {
        Err(e) => findings.push(Finding::After(e.to_string())),
        Ok(events) => {
            for event in events {
                match event {
                    ServiceEvent::Served(s) => {
                        served.insert((s.proto, canonical(s.peer), s.local.port()), s.service);
                    }
                    ServiceEvent::Failed { service, error } => {
                        let spec = &live.services[service];
                        findings.push(Finding::After(format!(
                            "service {} {} in node {}: {error}",
                            spec.proto.name(),
                            spec.listen,
                            spec.node
                        )));
                    }
                }
            }
        }
    }
    for (group, results) in live.clients.iter().zip(outcomes) {
        for ((flow, _), outcome) in group.flows.iter().zip(results) {
            if matches!(outcome, FlowOutcome::Reply { .. }) && !served.contains_key(&flow_key(flow))
            {
                findings.push(Finding::After(format!(
                    "{} flow {} ({} from {}) got a reply that no service reports having sent",
                    group.name,
                    flow.number,
                    flow.proto.name(),
                    flow.src
                )));
            }
        }
    }
    served
}

/// Which node owns each address of the topology (link ends and `lo`).
fn owners(spec: &TopologySpec) -> HashMap<IpAddr, String> {
    let mut owners = HashMap::new();
    // A VIP on several nodes' `lo` names the first; link addresses, which
    // are unique, override.
    for node in spec.nodes.iter().rev() {
        for &(addr, _) in &node.loopback {
            owners.insert(addr, node.name.clone());
        }
    }
    for link in &spec.links {
        for end in [&link.a, &link.b] {
            for &(addr, _) in &end.addresses {
                owners.insert(addr, end.node.clone());
            }
        }
    }
    owners
}

/// For each client group and flow: the node owning the real that the (first)
/// load balancer's reference model chooses for the flow's first packet.
fn lb_choices(
    programs: &[Program],
    live: &LiveSetup,
    owners: &HashMap<IpAddr, String>,
) -> Vec<Vec<Option<String>>> {
    let lb = programs.iter().find_map(|p| match p {
        Program::Lb(lb) => Some(lb),
        Program::Plain(..) => None,
    });
    let Some(lb) = lb else {
        return live
            .clients
            .iter()
            .map(|g| vec![None; g.flows.len()])
            .collect();
    };
    let plane = lb.plane();
    let mut by_id = HashMap::new();
    for spec in plane.vips() {
        for &real in plane
            .reals_of(&spec.vip())
            .into_iter()
            .flat_map(|r| r.keys())
        {
            if let Some(id) = plane.real_id(real) {
                by_id.insert(id, real);
            }
        }
    }
    live.clients
        .iter()
        .map(|g| {
            g.flows
                .iter()
                .map(|(_, first)| {
                    // Each flow is new: the choice is the ring's, as a
                    // fresh model makes it.
                    let mut model = lb.model_state();
                    let real = model.process(first).real?;
                    owners.get(by_id.get(&real)?).cloned()
                })
                .collect()
        })
        .collect()
}

/// `after.counters` and `after.maps` of one program, read now that the
/// traffic is over.
fn program_after(scenario: &LoadedScenario, program: &Program) -> Vec<Finding> {
    let none = MarkerCost::default();
    match program {
        Program::Plain(loaded, contract) => {
            // A counter map that cannot be read is a finding there, not a
            // reason to skip the checks.
            after_checks(
                scenario,
                loaded,
                (*contract == Some(Contract::Decap), &[]),
                &none,
                0,
                &[],
            )
        }
        Program::Lb(lb) => {
            let mut findings = Vec::new();
            if !scenario.after_lb_counters.is_empty() {
                match lb.counters() {
                    Err(e) => findings.push(Finding::After(e.to_string())),
                    Ok(totals) => {
                        for &(counter, want) in &scenario.after_lb_counters {
                            let actual = totals.get(counter);
                            if actual != want {
                                findings.push(Finding::After(format!(
                                    "{}: counter {}: expected {want}, actual {actual}",
                                    lb.program().name(),
                                    counter.name()
                                )));
                            }
                        }
                    }
                }
            }
            findings.extend(after_state(scenario, lb.program(), &none, 0));
            findings
        }
    }
}
