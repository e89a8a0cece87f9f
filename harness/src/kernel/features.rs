//! What the running kernel can do, probed once per process at run time:
//! every test and scenario that needs a feature asks here, and what needs
//! an absent one is skipped (or expected otherwise) with the reason, never
//! silently. Probes do the thing — load the program, make the link, run
//! the test — rather than read a version number, because vendor kernels
//! backport and refuse (the host of these machines refuses trampolines,
//! which its version would promise).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::{
    datapath,
    instruments::{self, libbpf},
    load::{LoadOptions, LoadedProgram},
    testrun::{self, Quirks},
};

/// Whether a feature is there, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Available.
    Yes,
    /// Absent, with what the probe saw.
    No(String),
}

impl Feature {
    /// Whether it is available.
    pub const fn ok(&self) -> bool {
        matches!(self, Self::Yes)
    }

    /// Why it is absent (`None`: it is there).
    pub fn missing(&self) -> Option<&str> {
        match self {
            Self::Yes => None,
            Self::No(why) => Some(why),
        }
    }

    fn from<E: fmt::Display>(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self::Yes,
            Err(e) => Self::No(e.to_string()),
        }
    }
}

/// The features dsrlab's tests and scenarios depend on.
#[derive(Clone, Debug)]
pub struct Features {
    /// EXT (freplace) programs load against a dispatcher's global slot:
    /// the chainer's mechanism; needs a BPF trampoline.
    pub ext: Feature,
    /// fentry programs load on a BPF program; needs a BPF trampoline.
    pub fentry: Feature,
    /// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE` in skb test runs (`checksum:
    /// complete`).
    pub test_run_checksum_complete: Feature,
    /// XDP test runs with a linear part shorter than the frame (`linear:
    /// N`), for frags-aware programs.
    pub test_run_xdp_linear: Feature,
    /// `bpf_skb_adjust_room` with `BPF_F_ADJ_ROOM_DECAP_L3_*` (6.3+): a TC
    /// decapsulation that changes the family sets `skb->protocol`.
    pub adjust_room_decap_l3: Feature,
    /// TCX links (6.6+): ordered TC attachment without a qdisc; before
    /// it, TC programs go in clsact filters.
    pub tcx: Feature,
    /// netkit devices (6.7+), whose peer runs a BPF program in place of a
    /// qdisc.
    pub netkit: Feature,
    /// BPF netfilter programs and `bpf_dynptr_from_skb` (6.4+): the
    /// checksum auditor behind the emulated NICs.
    pub netfilter_programs: Feature,
    /// The kernel's own tunnel drivers, the reference decapsulators:
    /// `ipip`, `sit` and `ip6_tunnel` (built in or as modules) and `fou`
    /// for GUE (loaded).
    pub tunnel_drivers: Feature,
}

impl Features {
    /// The features of the running kernel, probed on first use.
    pub fn get() -> &'static Self {
        static FEATURES: OnceLock<Features> = OnceLock::new();
        FEATURES.get_or_init(Self::probe)
    }

    fn probe() -> Self {
        let btf = KernelBtf::read();
        Self {
            ext: Feature::from(probe_trampoline(
                "probe_ext",
                instruments::PROBE_EXT_ELF,
                "replacement",
                "slot",
            )),
            fentry: Feature::from(probe_trampoline(
                "probe_fentry",
                instruments::PROBE_FENTRY_ELF,
                "watch",
                "dispatcher",
            )),
            test_run_checksum_complete: Feature::from(probe_test_run(
                datapath::TC_PASS,
                Quirks {
                    checksum_complete: true,
                    ..Quirks::default()
                },
            )),
            test_run_xdp_linear: Feature::from(probe_test_run(
                datapath::XDP_PASS_FRAGS,
                Quirks {
                    linear: Some(64),
                    ..Quirks::default()
                },
            )),
            adjust_room_decap_l3: Feature::from(probe_decap_l3()),
            tcx: Feature::from(btf.knows("tcx_link_attach", "TCX links (Linux 6.6)")),
            netkit: Feature::from(btf.knows(
                "netkit_link_attach",
                "netkit driver (Linux 6.7, CONFIG_NETKIT)",
            )),
            netfilter_programs: Feature::from(
                btf.knows("bpf_nf_link_attach", "BPF netfilter programs (Linux 6.4)")
                    .and_then(|()| {
                        btf.knows("bpf_dynptr_from_skb", "bpf_dynptr_from_skb (Linux 6.4)")
                    }),
            ),
            tunnel_drivers: Feature::from(
                ["ipip", "sit", "ip6_tunnel"]
                    .into_iter()
                    .try_for_each(module_available)
                    .and_then(|()| module_loaded("fou")),
            ),
        }
    }

    /// Every feature by name, for `dsrlab features` and test logs.
    pub fn table(&self) -> Vec<(&'static str, &Feature)> {
        vec![
            ("ext (freplace)", &self.ext),
            ("fentry", &self.fentry),
            (
                "test run: checksum complete",
                &self.test_run_checksum_complete,
            ),
            ("test run: xdp linear", &self.test_run_xdp_linear),
            ("adjust_room decap_l3 flags", &self.adjust_room_decap_l3),
            ("tcx", &self.tcx),
            ("netkit", &self.netkit),
            ("netfilter programs", &self.netfilter_programs),
            ("tunnel drivers", &self.tunnel_drivers),
        ]
    }
}

/// Loads `elf`'s `program` against `func` of the dispatcher target.
fn probe_trampoline(name: &str, elf: &[u8], program: &str, func: &str) -> Result<(), String> {
    let target = libbpf::Object::load("probe_target", instruments::PROBE_TARGET_ELF)
        .map_err(|e| format!("the probe's target does not load: {e}"))?;
    let fd = target.program_fd("dispatcher").map_err(|e| e.to_string())?;
    // An expected refusal is the answer, not news.
    let loaded = libbpf::quietly(|| libbpf::Object::load_targeting(name, elf, program, fd, func));
    loaded.map(drop).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            "the kernel refuses programs that need a BPF trampoline (EPERM before the \
             verifier runs)"
                .to_owned()
        } else {
            e.to_string()
        }
    })
}

/// One test run of a pass program with `quirks`.
fn probe_test_run(object: datapath::Object, quirks: Quirks) -> Result<(), String> {
    let program =
        LoadedProgram::builtin(object, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let mut frame = vec![0u8; 128];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    // A whole IPv4 header, so that skb runs take the frame.
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&114u16.to_be_bytes());
    testrun::run(&program, &frame, quirks)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// tc_decap on an IPv6-in-IPv4 packet: without the DECAP_L3 flags the
/// kernel refuses the family change and tc_decap counts a helper error.
fn probe_decap_l3() -> Result<(), String> {
    use dsrlab_abi::decap::{COUNTERS_MAP, Counter};

    let program = LoadedProgram::builtin(datapath::TC_DECAP, &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let spec: crate::formats::packet::PacketSpec =
        serde_saphyr::from_str("layers: [eth, ipv4, ipv6, udp]").map_err(|e| e.to_string())?;
    let frame = spec.build().map_err(|e| e.to_string())?;
    testrun::run(&program, &frame, Quirks::default()).map_err(|e| e.to_string())?;
    let counters = program
        .per_cpu_counters(COUNTERS_MAP)
        .map_err(|e| e.to_string())?;
    if counters.get(Counter::DropHelperError as usize).copied() == Some(0) {
        Ok(())
    } else {
        Err(
            "bpf_skb_adjust_room refuses BPF_F_ADJ_ROOM_DECAP_L3_* (Linux 6.3): a TC \
             decapsulation cannot change the family"
                .to_owned(),
        )
    }
}

/// The running kernel's BTF, read once for every feature looked up in it.
struct KernelBtf(Result<Vec<u8>, String>);

impl KernelBtf {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    fn read() -> Self {
        Self(
            std::fs::read(Self::VMLINUX).map_err(|e| format!("cannot read {}: {e}", Self::VMLINUX)),
        )
    }

    /// Whether the BTF names `name`: a function of the feature's own code,
    /// there only when it is built in (the UAPI's enum values are there
    /// whether or not the kernel was configured with the feature).
    fn knows(&self, name: &str, what: &str) -> Result<(), String> {
        let btf = self.0.as_ref().map_err(Clone::clone)?;
        let strings = btf_strings(btf).ok_or_else(|| format!("{} is not BTF", Self::VMLINUX))?;
        if strings.split(|&b| b == 0).any(|s| s == name.as_bytes()) {
            Ok(())
        } else {
            Err(format!("this kernel has no {what}: its BTF has no {name}"))
        }
    }
}

/// The string section of a raw BTF blob (`struct btf_header`, host order).
fn btf_strings(btf: &[u8]) -> Option<&[u8]> {
    let u32_at = |at: usize| Some(u32::from_ne_bytes(btf.get(at..at + 4)?.try_into().ok()?));
    let magic = u16::from_ne_bytes(btf.get(0..2)?.try_into().ok()?);
    if magic != 0xeb9f {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let str_off = u32_at(16)? as usize;
    let str_len = u32_at(20)? as usize;
    let start = hdr_len.checked_add(str_off)?;
    btf.get(start..start.checked_add(str_len)?)
}

/// Whether module `name` is loaded or built in: for drivers the kernel
/// cannot load on demand (`fou` has no generic netlink alias; `dsrlab vm`
/// guests load it at boot).
fn module_loaded(name: &str) -> Result<(), String> {
    if Path::new("/sys/module").join(name).exists() {
        Ok(())
    } else {
        Err(format!(
            "no {name} driver loaded (the kernel cannot load it on demand; `modprobe {name}`)"
        ))
    }
}

/// Whether module `name` is loaded, built in, or installed for the running
/// kernel (so that the kernel loads it on demand).
fn module_available(name: &str) -> Result<(), String> {
    if Path::new("/sys/module").join(name).exists() {
        return Ok(());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| format!("cannot read the kernel release: {e}"))?;
    // In a `dsrlab vm` guest on a host without /lib/modules, the fetched
    // kernel's modules are elsewhere (the guest's init says where).
    let dir = std::env::var_os(crate::vm::initramfs::MODULES_ENV).map_or_else(
        || Path::new("/lib/modules").join(release.trim()),
        PathBuf::from,
    );
    let file = format!("/{name}.ko");
    let listed = |list: &str| {
        std::fs::read_to_string(dir.join(list)).is_ok_and(|text| {
            text.lines().any(|line| {
                let path = line.split(':').next().unwrap_or_default();
                path.ends_with(&file) || path.contains(&format!("{file}."))
            })
        })
    };
    if listed("modules.builtin") || listed("modules.dep") {
        Ok(())
    } else {
        Err(format!(
            "no {name} driver: not loaded, not built in, and not among the modules in {}",
            dir.display()
        ))
    }
}
