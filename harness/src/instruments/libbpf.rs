//! The few libbpf calls the instruments need, behind owning types: an
//! object opened from memory and loaded (CO-RE relocations and kfunc calls
//! resolved against the running kernel's BTF), a TCX link, and a ring
//! buffer drained into byte records.
//!
//! Why libbpf and not aya for these: the instruments read `struct sk_buff`
//! fields (bitfields among them) through `bpf_cast_to_kern_ctx`, which takes
//! a kfunc call and CO-RE bitfield relocations; libbpf resolves both, and
//! is already linked for `bpf_prog_test_run_opts`.

use std::{
    ffi::{CString, c_int, c_void},
    io,
    os::fd::{AsRawFd, RawFd},
    ptr::NonNull,
};

/// A loaded BPF object; closing it (on drop) unloads what no link holds.
#[derive(Debug)]
pub struct Object {
    obj: NonNull<libbpf_sys::bpf_object>,
    name: String,
}

// SAFETY: the object is only used through &self/&mut self of this owner;
// libbpf objects have no thread affinity.
unsafe impl Send for Object {}

/// Runs `f` with libbpf's own messages silenced: for calls whose failure
/// is an expected answer (a feature probe, TCX on a kernel without it, a
/// qdisc that exists), reported by the caller if it matters.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: setting and restoring libbpf's print callback; no other
    // libbpf call of this process is expected to report meanwhile (its
    // print hook is process-wide).
    let previous = unsafe { libbpf_sys::libbpf_set_print(None) };
    let result = f();
    // SAFETY: as above.
    unsafe { libbpf_sys::libbpf_set_print(previous) };
    result
}

/// libbpf's error convention: a null pointer with errno, or a negative
/// errno.
fn errno(what: String) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn rc(what: impl FnOnce() -> String, rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        let e = io::Error::from_raw_os_error(-rc);
        return Err(io::Error::new(e.kind(), format!("{}: {e}", what())));
    }
    Ok(rc)
}

impl Object {
    /// Opens the ELF `elf` (named `name` in messages) and loads every
    /// program and map in it.
    pub fn load(name: &str, elf: &[u8]) -> io::Result<Self> {
        Self::load_prepared(name, elf, |_| Ok(()))
    }

    /// Loads `elf` whose program `program` attaches to the function `func`
    /// of the loaded BPF program `target_fd` (EXT, fentry on a program).
    pub fn load_targeting(
        name: &str,
        elf: &[u8],
        program: &str,
        target_fd: RawFd,
        func: &str,
    ) -> io::Result<Self> {
        let cprog = CString::new(program).map_err(io::Error::other)?;
        let cfunc = CString::new(func).map_err(io::Error::other)?;
        Self::load_prepared(name, elf, |obj| {
            // SAFETY: a valid, opened object and NUL-terminated names.
            let p = unsafe {
                libbpf_sys::bpf_object__find_program_by_name(obj.as_ptr(), cprog.as_ptr())
            };
            if p.is_null() {
                return Err(io::Error::other(format!(
                    "instrument {name}: no program {program}"
                )));
            }
            // SAFETY: a program of the object; the target fd is open.
            rc(
                || format!("instrument {name}: attach target {func}"),
                unsafe { libbpf_sys::bpf_program__set_attach_target(p, target_fd, cfunc.as_ptr()) },
            )
            .map(drop)
        })
    }

    fn load_prepared(
        name: &str,
        elf: &[u8],
        prepare: impl FnOnce(NonNull<libbpf_sys::bpf_object>) -> io::Result<()>,
    ) -> io::Result<Self> {
        if elf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("instrument {name} was not built (AYA_BUILD_SKIP was set at build time)"),
            ));
        }
        let cname = CString::new(name).map_err(io::Error::other)?;
        // SAFETY: zero is a valid value of this plain-data options struct.
        let mut opts: libbpf_sys::bpf_object_open_opts = unsafe { std::mem::zeroed() };
        opts.sz = size_of::<libbpf_sys::bpf_object_open_opts>() as _;
        opts.object_name = cname.as_ptr();
        // SAFETY: `elf` and `opts` outlive the call; libbpf copies the ELF.
        let obj =
            unsafe { libbpf_sys::bpf_object__open_mem(elf.as_ptr().cast(), elf.len() as _, &opts) };
        let obj = NonNull::new(obj).ok_or_else(|| errno(format!("instrument {name}: open")))?;
        let object = Self {
            obj,
            name: name.to_owned(),
        };
        prepare(object.obj)?;
        // SAFETY: a valid, opened object.
        rc(
            || {
                format!(
                    "instrument {name}: load (refused by the verifier or the kernel: libbpf's log above says why)"
                )
            },
            unsafe { libbpf_sys::bpf_object__load(object.obj.as_ptr()) },
        )?;
        Ok(object)
    }

    fn program(&self, program: &str) -> io::Result<*mut libbpf_sys::bpf_program> {
        let cname = CString::new(program).map_err(io::Error::other)?;
        // SAFETY: a valid object and a NUL-terminated name.
        let p = unsafe {
            libbpf_sys::bpf_object__find_program_by_name(self.obj.as_ptr(), cname.as_ptr())
        };
        if p.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("instrument {}: no program {program}", self.name),
            ));
        }
        Ok(p)
    }

    /// The fd of map `map`.
    pub fn map_fd(&self, map: &str) -> io::Result<RawFd> {
        let cname = CString::new(map).map_err(io::Error::other)?;
        // SAFETY: a valid object and a NUL-terminated name.
        let fd = unsafe {
            libbpf_sys::bpf_object__find_map_fd_by_name(self.obj.as_ptr(), cname.as_ptr())
        };
        rc(|| format!("instrument {}: map {map}", self.name), fd)
    }

    /// The fd of loaded program `program`.
    pub fn program_fd(&self, program: &str) -> io::Result<RawFd> {
        let prog = self.program(program)?;
        // SAFETY: a loaded program of this object.
        rc(
            || format!("instrument {}: program {program} fd", self.name),
            unsafe { libbpf_sys::bpf_program__fd(prog) },
        )
    }

    /// Attaches `program` at TCX ingress of interface `ifindex` in the
    /// calling thread's namespace, before every program already there.
    pub fn attach_tcx_ingress_first(&self, program: &str, ifindex: u32) -> io::Result<Link> {
        self.attach_tcx_ingress(program, ifindex, None)
    }

    /// Attaches `program` at TCX ingress of interface `ifindex` in the
    /// calling thread's namespace: right after the program `after` (an fd)
    /// or, without one, before every program already there.
    pub fn attach_tcx_ingress(
        &self,
        program: &str,
        ifindex: u32,
        after: Option<RawFd>,
    ) -> io::Result<Link> {
        let prog = self.program(program)?;
        // SAFETY: zero is a valid value of this plain-data options struct.
        let mut opts: libbpf_sys::bpf_tcx_opts = unsafe { std::mem::zeroed() };
        opts.sz = size_of::<libbpf_sys::bpf_tcx_opts>() as _;
        match after {
            Some(fd) => {
                opts.flags = libbpf_sys::BPF_F_AFTER;
                opts.relative_fd = fd as u32;
            }
            None => opts.flags = libbpf_sys::BPF_F_BEFORE,
        }
        // SAFETY: a loaded program and valid options.
        let (link, code) = quietly(|| {
            let link =
                unsafe { libbpf_sys::bpf_program__attach_tcx(prog, ifindex as c_int, &opts) };
            (link, io::Error::last_os_error().raw_os_error())
        });
        if let Some(link) = NonNull::new(link) {
            return Ok(Link::Bpf(link));
        }
        let tcx = errno(format!(
            "instrument {}: attach {program} (TCX) to ifindex {ifindex}",
            self.name
        ));
        // Kernels before 6.6 have no TCX (EINVAL): a clsact filter then,
        // ordered by priority.
        if code != Some(libc::EINVAL) {
            return Err(tcx);
        }
        let priority = match after {
            None => CLSACT_FIRST,
            Some(_) => CLSACT_FIRST + 1,
        };
        self.attach_clsact_ingress(program, ifindex, priority)
            .map_err(|e| io::Error::new(e.kind(), format!("{e} (after TCX: {tcx})")))
    }

    /// Attaches `program` as a clsact ingress filter (direct action) of
    /// interface `ifindex` in the calling thread's namespace, at
    /// `priority` (lower runs first), adding the qdisc if it is missing.
    fn attach_clsact_ingress(
        &self,
        program: &str,
        ifindex: u32,
        priority: u32,
    ) -> io::Result<Link> {
        let what = || {
            format!(
                "instrument {}: attach {program} (clsact filter) to ifindex {ifindex}",
                self.name
            )
        };
        let fd = self.program_fd(program)?;
        let hook = clsact_ingress(ifindex);
        // SAFETY: a valid hook; EEXIST means the qdisc is there already.
        let created =
            quietly(|| unsafe { libbpf_sys::bpf_tc_hook_create(&hook as *const _ as *mut _) });
        if created < 0 && created != -libc::EEXIST {
            rc(what, created)?;
        }
        let mut opts = libbpf_sys::bpf_tc_opts {
            sz: size_of::<libbpf_sys::bpf_tc_opts>() as _,
            prog_fd: fd,
            priority,
            ..Default::default()
        };
        // SAFETY: a valid hook and options.
        rc(what, unsafe { libbpf_sys::bpf_tc_attach(&hook, &mut opts) })?;
        let netns = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|e| io::Error::new(e.kind(), format!("{}: its namespace: {e}", what())))?;
        Ok(Link::Filter {
            netns: netns.into(),
            ifindex,
            handle: opts.handle,
            priority,
        })
    }
}

impl Object {
    /// Attaches the EXT program `program` in place of `func` of the
    /// program `target_fd` (what it was loaded against): the target runs
    /// the replacement until the link is dropped.
    pub fn attach_freplace(&self, program: &str, target_fd: RawFd, func: &str) -> io::Result<Link> {
        let prog = self.program(program)?;
        let cfunc = CString::new(func).map_err(io::Error::other)?;
        // SAFETY: a loaded program, an open target fd, a NUL-terminated name.
        let link = unsafe {
            libbpf_sys::bpf_program__attach_freplace(prog, target_fd as c_int, cfunc.as_ptr())
        };
        NonNull::new(link).map(Link::Bpf).ok_or_else(|| {
            errno(format!(
                "instrument {}: attach {program} in place of {func}",
                self.name
            ))
        })
    }

    /// Attaches the tracing program `program` (`tp_btf`, or fentry/fexit
    /// on the target it was loaded against).
    pub fn attach_trace(&self, program: &str) -> io::Result<Link> {
        let prog = self.program(program)?;
        // SAFETY: a loaded program.
        let link = unsafe { libbpf_sys::bpf_program__attach_trace(prog) };
        NonNull::new(link)
            .map(Link::Bpf)
            .ok_or_else(|| errno(format!("instrument {}: attach {program}", self.name)))
    }

    /// The `u64` at `key` of array map `map`.
    pub fn array_u64(&self, map: &str, key: u32) -> io::Result<u64> {
        let fd = self.map_fd(map)?;
        let mut value = 0u64;
        // SAFETY: an array map of u32 keys and u64 values, valid pointers.
        let r = unsafe {
            libbpf_sys::bpf_map_lookup_elem(fd, (&raw const key).cast(), (&raw mut value).cast())
        };
        rc(
            || format!("instrument {}: map {map} key {key}", self.name),
            r,
        )?;
        Ok(value)
    }

    /// Runs `program` (XDP) on `frame` `repeat` times with
    /// `BPF_PROG_TEST_RUN`; its return value. For probes and harness
    /// self-tests; scenarios go through [`crate::testrun`].
    pub fn test_run_xdp(&self, program: &str, frame: &[u8], repeat: u32) -> io::Result<u32> {
        let fd = self.program_fd(program)?;
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            repeat: repeat as c_int,
            ..Default::default()
        };
        // SAFETY: a loaded program and options pointing at live buffers.
        let r = unsafe { libbpf_sys::bpf_prog_test_run_opts(fd, &mut opts) };
        rc(
            || format!("instrument {}: test run of {program}", self.name),
            r,
        )?;
        Ok(opts.retval)
    }
}

impl Object {
    /// Attaches `program` at netfilter hook `hooknum` of protocol family
    /// `pf` (`NFPROTO_IPV4` 2, `NFPROTO_IPV6` 10) in the calling thread's
    /// namespace, at `priority`.
    pub fn attach_netfilter(
        &self,
        program: &str,
        pf: u32,
        hooknum: u32,
        priority: i32,
    ) -> io::Result<Link> {
        let prog = self.program(program)?;
        let opts = libbpf_sys::bpf_netfilter_opts {
            sz: size_of::<libbpf_sys::bpf_netfilter_opts>() as _,
            pf,
            hooknum,
            priority,
            flags: 0,
        };
        // SAFETY: a loaded program and valid options.
        let link = unsafe { libbpf_sys::bpf_program__attach_netfilter(prog, &opts) };
        NonNull::new(link).map(Link::Bpf).ok_or_else(|| {
            errno(format!(
                "instrument {}: attach {program} (netfilter pf {pf} hook {hooknum})",
                self.name
            ))
        })
    }
}

/// The names of the values of the running kernel's enum `name`, by value,
/// from its BTF (parsed once per enum and process: it does not change).
pub fn kernel_enum(name: &str) -> io::Result<std::collections::BTreeMap<i64, String>> {
    use std::{
        collections::HashMap,
        sync::{Mutex, OnceLock},
    };
    type Cache = Mutex<HashMap<String, std::collections::BTreeMap<i64, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(values) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return Ok(values.clone());
    }
    let values = read_kernel_enum(name)?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), values.clone());
    Ok(values)
}

fn read_kernel_enum(name: &str) -> io::Result<std::collections::BTreeMap<i64, String>> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: libbpf allocates the BTF; freed below.
    let btf = unsafe { libbpf_sys::btf__load_vmlinux_btf() };
    if btf.is_null() {
        return Err(errno("loading the kernel's BTF".to_owned()));
    }
    let mut values = std::collections::BTreeMap::new();
    // SAFETY: `btf` is valid until freed; type ids and offsets come from it;
    // an enum's `vlen` btf_enum entries follow its btf_type.
    unsafe {
        let id = libbpf_sys::btf__find_by_name_kind(btf, cname.as_ptr(), libbpf_sys::BTF_KIND_ENUM);
        if id > 0 {
            let t = libbpf_sys::btf__type_by_id(btf, id as u32);
            let vlen = ((*t).info & 0xffff) as usize;
            let entries = t.add(1).cast::<libbpf_sys::btf_enum>();
            for i in 0..vlen {
                let e = &*entries.add(i);
                let s = libbpf_sys::btf__name_by_offset(btf, e.name_off);
                if !s.is_null() {
                    let name = std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned();
                    values.insert(i64::from(e.val), name);
                }
            }
        }
        libbpf_sys::btf__free(btf);
    }
    if values.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the kernel's BTF has no enum {name}"),
        ));
    }
    Ok(values)
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: the object is valid and closed once.
        unsafe { libbpf_sys::bpf_object__close(self.obj.as_ptr()) };
    }
}

/// The priority of a clsact filter attached first; instruments attached
/// after another go right behind it. Programs under test attached through
/// aya get priorities the kernel numbers from 49152 down, so they run
/// after both.
const CLSACT_FIRST: u32 = 1;

/// The ingress clsact hook of interface `ifindex`.
fn clsact_ingress(ifindex: u32) -> libbpf_sys::bpf_tc_hook {
    libbpf_sys::bpf_tc_hook {
        sz: size_of::<libbpf_sys::bpf_tc_hook>() as _,
        ifindex: ifindex as c_int,
        attach_point: libbpf_sys::BPF_TC_INGRESS,
        ..Default::default()
    }
}

/// An attachment; detached on drop.
#[derive(Debug)]
pub enum Link {
    /// A BPF link (TCX, netfilter, tracing).
    Bpf(NonNull<libbpf_sys::bpf_link>),
    /// A clsact filter (kernels without TCX), in the namespace `netns`.
    Filter {
        /// The namespace of the interface, entered to remove the filter.
        netns: std::os::fd::OwnedFd,
        /// The interface.
        ifindex: u32,
        /// The filter's handle.
        handle: u32,
        /// The filter's priority.
        priority: u32,
    },
}

// SAFETY: as for `Object`.
unsafe impl Send for Link {}

impl Drop for Link {
    fn drop(&mut self) {
        match self {
            // SAFETY: the link is valid and destroyed once.
            Self::Bpf(link) => unsafe {
                libbpf_sys::bpf_link__destroy(link.as_ptr());
            },
            Self::Filter {
                netns,
                ifindex,
                handle,
                priority,
            } => {
                // Netlink talks to the calling thread's namespace: a thread
                // of its own enters the filter's. Nothing to do if it fails
                // (the interface, and its filters, are gone).
                let (ifindex, handle, priority) = (*ifindex, *handle, *priority);
                let netns = netns.as_raw_fd();
                std::thread::scope(|scope| {
                    scope.spawn(move || {
                        let hook = clsact_ingress(ifindex);
                        let opts = libbpf_sys::bpf_tc_opts {
                            sz: size_of::<libbpf_sys::bpf_tc_opts>() as _,
                            handle,
                            priority,
                            ..Default::default()
                        };
                        // SAFETY: setns on this thread only, with an fd we
                        // own; then a valid hook and options.
                        unsafe {
                            if libc::setns(netns, libc::CLONE_NEWNET) == 0 {
                                libbpf_sys::bpf_tc_detach(&hook, &opts);
                            }
                        }
                    });
                });
            }
        }
    }
}

/// A BPF ring buffer read into owned records.
#[derive(Debug)]
pub struct RingBuffer {
    rb: NonNull<libbpf_sys::ring_buffer>,
    // The records' sink, owned through this raw pointer alone (from
    // `Box::into_raw`): libbpf's callback writes through the same pointer,
    // so no Rust reference to it is ever alive while libbpf runs.
    sink: *mut Vec<Vec<u8>>,
}

// SAFETY: as for `Object`; the sink is only reached through `&mut self`.
unsafe impl Send for RingBuffer {}

unsafe extern "C" fn collect(
    ctx: *mut c_void,
    data: *mut c_void,
    size: libbpf_sys::size_t,
) -> c_int {
    // SAFETY: `ctx` is the `sink` of the RingBuffer being consumed, which
    // nothing else touches during the call, and `data` points at `size`
    // readable bytes of the record.
    unsafe {
        let record = std::slice::from_raw_parts(data.cast::<u8>(), size as usize).to_vec();
        (*ctx.cast::<Vec<Vec<u8>>>()).push(record);
    }
    0
}

impl RingBuffer {
    /// A reader of the ring buffer map `map_fd`.
    pub fn new(map_fd: RawFd) -> io::Result<Self> {
        let sink = Box::into_raw(Box::new(Vec::new()));
        // SAFETY: a valid ring-buffer map fd; `sink` lives until `drop`,
        // after `rb` is freed.
        let rb = unsafe {
            libbpf_sys::ring_buffer__new(map_fd, Some(collect), sink.cast(), std::ptr::null())
        };
        let Some(rb) = NonNull::new(rb) else {
            // SAFETY: from Box::into_raw above, not shared with anyone.
            drop(unsafe { Box::from_raw(sink) });
            return Err(errno("ring buffer".to_owned()));
        };
        Ok(Self { rb, sink })
    }

    /// Waits up to `timeout` for records to be written (an epoll wait on
    /// the ring), then returns every record written so far; empty on
    /// time-out.
    pub fn wait(&mut self, timeout: std::time::Duration) -> io::Result<Vec<Vec<u8>>> {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        loop {
            // SAFETY: a valid ring buffer; the callback writes into `sink`.
            let n = unsafe { libbpf_sys::ring_buffer__poll(self.rb.as_ptr(), ms) };
            if n == -libc::EINTR {
                continue;
            }
            rc(|| "ring buffer poll".to_owned(), n)?;
            return self.drain();
        }
    }

    /// Every record written so far, in order.
    pub fn drain(&mut self) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: a valid ring buffer; the callback writes into `sink`.
        rc(|| "ring buffer consume".to_owned(), unsafe {
            libbpf_sys::ring_buffer__consume(self.rb.as_ptr())
        })?;
        // SAFETY: libbpf is not running; `sink` is ours alone.
        Ok(std::mem::take(unsafe { &mut *self.sink }))
    }
}

impl Drop for RingBuffer {
    fn drop(&mut self) {
        // SAFETY: valid and freed once; then the sink, which only the
        // freed ring knew of.
        unsafe {
            libbpf_sys::ring_buffer__free(self.rb.as_ptr());
            drop(Box::from_raw(self.sink));
        }
    }
}
