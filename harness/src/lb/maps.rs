//! Writing the control plane's [`Write`]s into `xdp_lb`'s maps, wherever
//! they are: a program loaded by this process ([`super::control::Lb`]) or
//! the pins of a CLI instance ([`super::instance`]). One implementation, so
//! both apply changes in the same order and with the same batching.

use std::fmt;
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapError, PerCpuArray, PerCpuValues};
use dsrlab_abi::lb::{
    ADDRS_MAP, AddrEntry, CONFIG_MAP, LbConfig, REAL_STATS_MAP, REALS_MAP, RING_MAP, RealDef,
    Traffic, VIP_STATS_MAP, VIPS_MAP, VipKey, VipMeta,
};

use super::control::Write;
use crate::load::LoadedProgram;

/// Where `xdp_lb`'s maps are: a loaded program's, or an instance's pins.
/// [`apply`] and the instance's readers work on either.
pub trait LbMaps {
    /// The map called `name`, or why it is not there.
    fn lb_map(&self, name: &'static str) -> Result<&Map, String>;
    /// The same, mutable.
    fn lb_map_mut(&mut self, name: &'static str) -> Result<&mut Map, String>;
}

impl LbMaps for LoadedProgram {
    fn lb_map(&self, name: &'static str) -> Result<&Map, String> {
        self.map(name)
            .ok_or_else(|| format!("the program has no map {name}: is it xdp_lb?"))
    }
    fn lb_map_mut(&mut self, name: &'static str) -> Result<&mut Map, String> {
        self.map_mut(name)
            .ok_or_else(|| format!("the program has no map {name}: is it xdp_lb?"))
    }
}

pub(crate) fn map_op(map: &str, op: impl fmt::Display) -> impl FnOnce(MapError) -> String {
    let prefix = format!("map {map}: {op}");
    move |e| format!("{prefix}: {e}")
}

/// Ring slots written per `BPF_MAP_UPDATE_BATCH` call.
const RING_BATCH: usize = 8192;

/// Applies the control plane's writes in order. Consecutive ring-slot
/// writes go in batched updates, which the kernel applies element by
/// element in the order given: the same sequence of atomic 4-byte stores
/// as one update per slot, in a few syscalls instead of up to a ring's
/// worth (65 537 by default).
pub fn apply(maps: &mut impl LbMaps, writes: Vec<Write>) -> Result<(), String> {
    let cpus = aya::util::nr_cpus()
        .map_err(|(_, e)| format!("cannot read the possible CPUs: {e}"))?
        .get() as usize;
    let mut writes = writes.into_iter().peekable();
    while let Some(w) = writes.next() {
        match w {
            Write::Config(config) => {
                Array::<_, LbConfig>::try_from(maps.lb_map_mut(CONFIG_MAP)?)
                    .and_then(|mut m| m.set(0, &config, 0))
                    .map_err(map_op(CONFIG_MAP, "write entry 0"))?;
            }
            Write::Vip { key, meta } => {
                BpfHashMap::<_, VipKey, VipMeta>::try_from(maps.lb_map_mut(VIPS_MAP)?)
                    .and_then(|mut m| match meta {
                        Some(meta) => m.insert(&key, &meta, 0),
                        None => m.remove(&key),
                    })
                    .map_err(map_op(VIPS_MAP, "write"))?;
            }
            Write::Addr { slot, entry } => {
                Array::<_, AddrEntry>::try_from(maps.lb_map_mut(ADDRS_MAP)?)
                    .and_then(|mut m| m.set(slot, &entry, 0))
                    .map_err(map_op(ADDRS_MAP, format!("write slot {slot}")))?;
            }
            Write::Real { id, def } => {
                Array::<_, RealDef>::try_from(maps.lb_map_mut(REALS_MAP)?)
                    .and_then(|mut m| m.set(id, &def, 0))
                    .map_err(map_op(REALS_MAP, format!("write entry {id}")))?;
            }
            Write::RingSlot { index, real } => {
                let mut keys = vec![index];
                let mut values = vec![real];
                while keys.len() < RING_BATCH
                    && let Some(Write::RingSlot { index, real }) = writes.peek()
                {
                    keys.push(*index);
                    values.push(*real);
                    writes.next();
                }
                let Map::Array(data) = maps.lb_map(RING_MAP)? else {
                    return Err(format!("map {RING_MAP} is not an array"));
                };
                update_batch(data.fd().as_fd(), &keys, &values).map_err(|e| {
                    format!(
                        "map {RING_MAP}: batched write of {} slots from {}: {e}",
                        keys.len(),
                        keys[0]
                    )
                })?;
            }
            Write::ResetVipStats(index) | Write::ResetRealStats(index) => {
                let map = if matches!(w, Write::ResetVipStats(_)) {
                    VIP_STATS_MAP
                } else {
                    REAL_STATS_MAP
                };
                let zeroes = PerCpuValues::try_from(vec![Traffic::default(); cpus])
                    .map_err(|e| format!("{e}"))?;
                PerCpuArray::<_, Traffic>::try_from(maps.lb_map_mut(map)?)
                    .and_then(|mut m| m.set(index, zeroes, 0))
                    .map_err(map_op(map, format!("zero entry {index}")))?;
            }
        }
    }
    Ok(())
}

/// `BPF_MAP_UPDATE_BATCH` of `u32` keys and values, all of them.
fn update_batch(
    fd: std::os::fd::BorrowedFd<'_>,
    keys: &[u32],
    values: &[u32],
) -> std::io::Result<()> {
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        ..Default::default()
    };
    let mut done = 0;
    while done < keys.len() {
        let mut count = (keys.len() - done) as u32;
        // SAFETY: keys and values hold `count` 4-byte elements from `done`,
        // the key and value size of the map.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_batch(
                fd.as_raw_fd(),
                keys[done..].as_ptr().cast(),
                values[done..].as_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(-rc));
        }
        done += count as usize;
    }
    Ok(())
}
