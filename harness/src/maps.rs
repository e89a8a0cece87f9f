//! Raw, byte-level access to the maps a loaded program uses: scenarios fill
//! a user's maps from hex and check them after the run without knowing their
//! types. Per-CPU maps are written with the same value on every CPU and read
//! back summed, since the CPU a test run lands on is not part of what a
//! scenario asserts.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use aya::maps::{Map, MapData, MapFd, MapInfo, MapType};

use crate::load::LoadedProgram;

/// Kernel map names are cut to this many bytes (BPF_OBJ_NAME_LEN - 1).
const KERNEL_NAME_LEN: usize = 15;

/// A map used by a loaded program, addressed by bytes.
pub struct RawMap {
    name: String,
    fd: MapFd,
    map_type: MapType,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

/// What can go wrong reading or writing a map.
#[derive(Debug, thiserror::Error)]
pub enum MapAccessError {
    /// The program uses no map of that name.
    #[error("program `{program}` uses no map named {map} (it uses: {available})")]
    NoSuchMap {
        /// The program.
        program: String,
        /// The map asked for.
        map: String,
        /// The maps it does use.
        available: String,
    },
    /// Key or value of the wrong size.
    #[error("map {map}: {what} is {given} bytes, the map's {what} size is {size}")]
    Size {
        /// The map.
        map: String,
        /// `key` or `value`.
        what: &'static str,
        /// Bytes given.
        given: usize,
        /// Bytes the map has.
        size: usize,
    },
    /// Per-CPU values can only be summed as u64 words.
    #[error("map {map}: per-CPU values of {size} bytes cannot be summed as u64 words")]
    NotSummable {
        /// The map.
        map: String,
        /// Its value size.
        size: usize,
    },
    /// A syscall failed.
    #[error("map {map}: {op} failed: {source}")]
    Syscall {
        /// The map.
        map: String,
        /// `update`, `lookup`, ...
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// aya could not describe the map.
    #[error("cannot inspect the maps of `{program}`: {source}")]
    Info {
        /// The program.
        program: String,
        /// aya's error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

/// The kernel map behind any of aya's typed variants: aya has no
/// variant-independent accessor, and `RawMap` works below the types.
fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(data)
        | Map::ArrayOfMaps(data)
        | Map::BloomFilter(data)
        | Map::CgroupArray(data)
        | Map::CgroupStorage(data)
        | Map::CgrpStorage(data)
        | Map::CpuMap(data)
        | Map::DevMap(data)
        | Map::DevMapHash(data)
        | Map::HashMap(data)
        | Map::HashOfMaps(data)
        | Map::InodeStorage(data)
        | Map::LpmTrie(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuCgroupStorage(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::PerfEventArray(data)
        | Map::ProgramArray(data)
        | Map::Queue(data)
        | Map::ReusePortSockArray(data)
        | Map::RingBuf(data)
        | Map::SockHash(data)
        | Map::SockMap(data)
        | Map::SkStorage(data)
        | Map::Stack(data)
        | Map::StackTraceMap(data)
        | Map::Unsupported(data)
        | Map::XskMap(data) => data,
    }
}

impl RawMap {
    /// The map called `name` among those `program` uses.
    pub fn find(program: &LoadedProgram, name: &str) -> Result<Self, MapAccessError> {
        let info_err = |source| MapAccessError::Info {
            program: program.name().to_owned(),
            source: Box::new(source),
        };
        // The object's own maps by their full name first: that covers maps
        // the program does not reference itself (inner maps of a map of
        // maps) and global data (`.bss`, `.data`).
        let described = |info: MapInfo| -> Result<Self, aya::maps::MapError> {
            Ok(Self {
                name: name.to_owned(),
                fd: info.fd()?,
                map_type: info.map_type()?,
                key_size: info.key_size() as usize,
                value_size: info.value_size() as usize,
                max_entries: info.max_entries(),
            })
        };
        if let Some(map) = program.map(name) {
            return map_data(map).info().and_then(described).map_err(info_err);
        }
        let wanted = &name[..name.len().min(KERNEL_NAME_LEN)];
        let mut available = Vec::new();
        for id in program.map_ids() {
            let info = MapInfo::from_id(id).map_err(info_err)?;
            let kernel_name = info.name_as_str().unwrap_or_default().to_owned();
            if kernel_name == wanted {
                return described(info).map_err(info_err);
            }
            available.push(kernel_name);
        }
        Err(MapAccessError::NoSuchMap {
            program: program.name().to_owned(),
            map: name.to_owned(),
            available: available.join(", "),
        })
    }

    fn per_cpu(&self) -> bool {
        matches!(
            self.map_type,
            MapType::PerCpuArray | MapType::PerCpuHash | MapType::LruPerCpuHash
        )
    }

    fn check(&self, what: &'static str, given: usize, size: usize) -> Result<(), MapAccessError> {
        if given == size {
            return Ok(());
        }
        Err(MapAccessError::Size {
            map: self.name.clone(),
            what,
            given,
            size,
        })
    }

    fn syscall(&self, op: &'static str, rc: i32) -> Result<(), MapAccessError> {
        if rc == 0 {
            return Ok(());
        }
        Err(MapAccessError::Syscall {
            map: self.name.clone(),
            op,
            source: std::io::Error::from_raw_os_error(-rc),
        })
    }

    /// The map's file descriptor, to store it in a map of maps.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes `value` at `key` (on every CPU for per-CPU maps).
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<(), MapAccessError> {
        self.check("key", key.len(), self.key_size)?;
        self.check("value", value.len(), self.value_size)?;
        let buffer = if self.per_cpu() {
            let stride = self.value_size.next_multiple_of(8);
            let mut all = vec![0u8; stride * possible_cpus()];
            for slot in all.chunks_mut(stride) {
                slot[..value.len()].copy_from_slice(value);
            }
            all
        } else {
            value.to_vec()
        };
        // SAFETY: key and buffer are live and of the sizes the map expects.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                self.fd.as_fd().as_raw_fd(),
                key.as_ptr().cast(),
                buffer.as_ptr().cast(),
                0,
            )
        };
        self.syscall("update", rc)
    }

    /// Reads the value at `key`: one value, or one per possible CPU for
    /// per-CPU maps; `None` if the key is absent.
    pub fn lookup_per_cpu(&self, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, MapAccessError> {
        self.check("key", key.len(), self.key_size)?;
        let stride = self.value_size.next_multiple_of(8);
        let cpus = if self.per_cpu() { possible_cpus() } else { 1 };
        let mut buffer = vec![0u8; stride * cpus];
        // SAFETY: buffer holds a value for every possible CPU.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                self.fd.as_fd().as_raw_fd(),
                key.as_ptr().cast(),
                buffer.as_mut_ptr().cast(),
            )
        };
        if rc == -libc::ENOENT {
            return Ok(None);
        }
        self.syscall("lookup", rc)?;
        if !self.per_cpu() {
            buffer.truncate(self.value_size);
            return Ok(Some(vec![buffer]));
        }
        Ok(Some(
            buffer
                .chunks(stride)
                .map(|slot| slot[..self.value_size].to_vec())
                .collect(),
        ))
    }

    /// Whether the map is an array (plain or per CPU) of at most
    /// `entries` values made of u64 words: the shape of a program's
    /// counters.
    pub fn is_small_counter_array(&self, entries: u32) -> bool {
        matches!(self.map_type, MapType::Array | MapType::PerCpuArray)
            && self.max_entries <= entries
            && self.key_size == 4
            && self.value_size % 8 == 0
            && self.value_size > 0
    }

    /// The map's `max_entries`.
    pub const fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// Whether the map holds a value per CPU.
    pub fn is_per_cpu(&self) -> bool {
        self.per_cpu()
    }

    /// Reads the value at `key`, per-CPU values summed as little-endian u64
    /// words; `None` if the key is absent.
    pub fn lookup_summed(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapAccessError> {
        if self.per_cpu() && self.value_size % 8 != 0 {
            return Err(MapAccessError::NotSummable {
                map: self.name.clone(),
                size: self.value_size,
            });
        }
        let Some(values) = self.lookup_per_cpu(key)? else {
            return Ok(None);
        };
        if !self.per_cpu() {
            return Ok(values.into_iter().next());
        }
        let mut sum = vec![0u64; self.value_size / 8];
        for slot in &values {
            let (words, _) = slot.as_chunks::<8>();
            for (word, bytes) in sum.iter_mut().zip(words) {
                *word = word.wrapping_add(u64::from_le_bytes(*bytes));
            }
        }
        Ok(Some(sum.iter().flat_map(|w| w.to_le_bytes()).collect()))
    }
}

fn possible_cpus() -> usize {
    aya::util::nr_cpus().map_or(1, |n| n.get() as usize)
}

/// Reads all `entries` of a per-CPU array of `u64` with one batched lookup
/// and sums each entry over the possible CPUs.
pub fn sum_per_cpu_u64(fd: BorrowedFd<'_>, entries: u32) -> std::io::Result<Vec<u64>> {
    sum_per_cpu_words(fd, entries, 1)
}

/// Reads all `entries` of a per-CPU array whose values are `words` `u64`s
/// (a struct of counters) with one batched lookup, and sums each word of
/// each entry over the possible CPUs: `entries * words` sums, entry by
/// entry.
pub fn sum_per_cpu_words(
    fd: BorrowedFd<'_>,
    entries: u32,
    words: usize,
) -> std::io::Result<Vec<u64>> {
    sum_per_cpu_words_on(fd, entries, words, None)
}

/// [`sum_per_cpu_words`] over the CPU `only` alone when given: what one
/// CPU counted, while other CPUs run the same program.
pub fn sum_per_cpu_words_on(
    fd: BorrowedFd<'_>,
    entries: u32,
    words: usize,
    only: Option<usize>,
) -> std::io::Result<Vec<u64>> {
    let cpus = possible_cpus();
    let mut keys = vec![0u32; entries as usize];
    let mut values = vec![0u64; entries as usize * cpus * words];
    let mut count = entries;
    let mut out_batch = 0u32;
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        ..Default::default()
    };
    // SAFETY: keys and values hold `entries` keys and `entries * cpus`
    // values of `words` u64s, the sizes the kernel writes for a per-CPU
    // array of such values (each 8-byte aligned already).
    let rc = unsafe {
        libbpf_sys::bpf_map_lookup_batch(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            (&raw mut out_batch).cast(),
            keys.as_mut_ptr().cast(),
            values.as_mut_ptr().cast(),
            &mut count,
            &opts,
        )
    };
    // ENOENT: the batch reached the end of the map, which is what we asked.
    if rc != 0 && rc != -libc::ENOENT {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    let mut sums = vec![0u64; entries as usize * words];
    for (key, per_cpu) in keys
        .iter()
        .zip(values.chunks(cpus * words))
        .take(count as usize)
    {
        let Some(sum) = sums.get_mut(*key as usize * words..(*key as usize + 1) * words) else {
            continue;
        };
        for (n, cpu) in per_cpu.chunks(words).enumerate() {
            if only.is_some_and(|only| only != n) {
                continue;
            }
            for (total, v) in sum.iter_mut().zip(cpu) {
                *total = total.wrapping_add(*v);
            }
        }
    }
    Ok(sums)
}

/// Every entry of a per-CPU hash map of `K` → `V` (each CPU's value), read
/// with batched lookups: a table of tens of thousands of flows read entry
/// by entry costs two syscalls per flow.
pub fn dump_per_cpu_hash<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
) -> std::io::Result<Vec<(K, Vec<V>)>> {
    let cpus = possible_cpus();
    // Per-CPU values are laid out 8-byte aligned, one per possible CPU.
    let stride = size_of::<V>().div_ceil(8) * 8;
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        ..Default::default()
    };
    let mut chunk = 4096usize;
    let mut entries = Vec::new();
    // The batch tokens are opaque to the caller (a bucket index for hash
    // maps); room for any key.
    let (mut token_in, mut token_out) = ([0u8; 64], [0u8; 64]);
    let mut first = true;
    loop {
        let mut keys = vec![0u8; chunk * size_of::<K>()];
        let mut values = vec![0u8; chunk * stride * cpus];
        let mut count = chunk as u32;
        // SAFETY: keys and values hold `chunk` keys and `chunk` per-CPU
        // values of the sizes the kernel writes for this map; the tokens
        // are larger than the kernel's batch token.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                fd.as_raw_fd(),
                if first {
                    std::ptr::null_mut()
                } else {
                    token_in.as_mut_ptr().cast()
                },
                token_out.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        if rc == -libc::ENOSPC && count == 0 {
            // One bucket holds more entries than the chunk.
            chunk *= 4;
            continue;
        }
        if rc != 0 && rc != -libc::ENOENT {
            return Err(std::io::Error::from_raw_os_error(-rc));
        }
        for i in 0..count as usize {
            // SAFETY: entry i's key and values lie within the buffers, and
            // K and V are plain data (Pod).
            let key = unsafe {
                keys.as_ptr()
                    .add(i * size_of::<K>())
                    .cast::<K>()
                    .read_unaligned()
            };
            let per_cpu = (0..cpus)
                .map(|c| unsafe {
                    values
                        .as_ptr()
                        .add((i * cpus + c) * stride)
                        .cast::<V>()
                        .read_unaligned()
                })
                .collect();
            entries.push((key, per_cpu));
        }
        if rc == -libc::ENOENT {
            return Ok(entries);
        }
        token_in = token_out;
        first = false;
    }
}
