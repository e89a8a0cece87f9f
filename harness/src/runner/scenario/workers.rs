//! A decap run over several CPUs: one worker thread pinned to each, every
//! flow always on the same worker, each worker's counters read on its own
//! CPU, the reports merged in packet order.
//!
//! Test runs execute on the calling CPU, so workers pinned to different
//! CPUs run the same loaded program in parallel, each updating its CPU's
//! share of every per-CPU map: a worker's counter batches are checked
//! against its CPU's counters alone ([`Judging::cpu`]), and the after-run
//! totals are the sums over CPUs as in a single-CPU run. Only programs of
//! the decap contract run this way: their verdicts depend on the packet
//! alone. (A load balancer runs on lanes of its own, one model per CPU:
//! `lb::lanes`.)

use std::hash::{BuildHasher as _, Hasher as _};

use super::{
    Judging, RunOutcome,
    ledger::BATCH,
    packet::{Batched, run_batched},
};
use crate::{
    formats::scenario::traffic::Traffic,
    load::LoadedProgram,
    runner::{PacketLog, SuiteError, cpu_pin::CpuPin, execution::TestRun},
};

/// The worker of a packet: a hash of its addresses and ports, so that
/// every packet of a flow goes to the same worker. Through IP-in-IP and
/// IPv6-in-IP the inner addresses and ports count too: a tunnel between
/// two hosts carries many flows, and hashing its outer header alone sent
/// all of a capture's packets to one worker.
pub fn worker_of(packet: &[u8], workers: usize) -> usize {
    let mut hasher = foldhash::fast::FixedState::with_seed(0).build_hasher();
    let ether = packet.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
    let mut v6 = match ether {
        Some(0x0800) => false,
        Some(0x86dd) => true,
        _ => {
            hasher.write(packet.get(..14).unwrap_or(packet));
            return (hasher.finish() % workers as u64) as usize;
        }
    };
    let mut at = 14;
    // The outer header and at most one inner one.
    for _ in 0..2 {
        let (addresses, proto, next) = if v6 {
            (packet.get(at + 8..at + 40), packet.get(at + 6), at + 40)
        } else {
            let ihl = packet.get(at).map_or(20, |b| usize::from(b & 0x0f) * 4);
            (packet.get(at + 12..at + 20), packet.get(at + 9), at + ihl)
        };
        let Some(addresses) = addresses else { break };
        hasher.write(addresses);
        at = next;
        match proto {
            Some(4) => v6 = false,
            Some(41) => v6 = true,
            _ => break,
        }
    }
    if let Some(ports) = packet.get(at..at + 4) {
        hasher.write(ports);
    }
    (hasher.finish() % workers as u64) as usize
}

/// Runs `packets` of a decap-contract `program` on the CPUs `cpus`, one
/// worker each; returns the merged log and what the batches found.
pub(crate) fn run(
    program: &LoadedProgram,
    judging: &Judging<'_>,
    cpus: &[usize],
    traffic: &Traffic,
    mut log: PacketLog,
) -> Result<(PacketLog, Batched), RunOutcome> {
    let workers = cpus.len();
    let results: Vec<Result<(PacketLog, Batched), SuiteError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .iter()
            .enumerate()
            .map(|(w, &cpu)| {
                let mut share = log.empty_like();
                scope.spawn(move || {
                    let _pin = CpuPin::to(cpu).map_err(|e| {
                        SuiteError::Unsupported(format!("cannot pin to CPU {cpu}: {e}"))
                    })?;
                    let judging = Judging {
                        cpu: Some(cpu),
                        ..*judging
                    };
                    // Each worker reads the traffic (a replay: its own
                    // stream of the pcap) and takes its flows, expanding
                    // no other packet.
                    let keep = move |bytes: &[u8]| worker_of(bytes, workers) == w;
                    let mine = traffic.select(&keep).map(|(i, p)| (i + 1, p));
                    let batched = run_batched(
                        program,
                        &mut TestRun,
                        &judging,
                        BATCH,
                        mine,
                        (&mut share, &mut || {}),
                    )?;
                    Ok((share, batched))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect()
    });
    let mut batched = Batched::default();
    for result in results {
        let (share, found) = result.map_err(|e| RunOutcome::SetupFailed(e.to_string()))?;
        log.merge(share);
        batched.absorb(found);
    }
    Ok((log, batched))
}
