//! The guest's initramfs: busybox (static), the modules that mount the host
//! over 9p, and an init that mounts the host's `/` read-only and the
//! workspace read-write at their own paths, mounts proc, sys, dev, bpffs
//! and tmpfs on /tmp and /run, binds the guest kernel's modules where the
//! host's `modprobe` looks for them, runs the command chrooted into the host
//! filesystem (so host-built binaries run unchanged), prints its exit
//! status on a marker line and powers off.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use cpio::newc::{Builder, trailer};

use super::{VmError, kernel::Kernel};

/// The marker line the init prints with the command's exit status.
pub const EXIT_MARKER: &str = "DSRLAB-VM-EXIT";

/// The line the guest prints as it starts the command: boot ends there.
pub const START_MARKER: &str = "DSRLAB-VM-START";

/// The variable that tells the command where the guest kernel's modules
/// are (`/lib/modules/<release>` of the fetched package), for hosts
/// without a /lib/modules to mount them over.
pub const MODULES_ENV: &str = "DSRLAB_KERNEL_MODULES";

/// Where the host's busybox-static is (Debian's `busybox-static`).
const BUSYBOX: &str = "/bin/busybox";

/// The modules the init loads before it can mount the host, with their
/// dependencies (from the kernel's modules.dep): the virtio PCI transport
/// (built in on 6.12, a module on 6.1, so optional), then 9p over virtio.
const ROOT_MODULES: [(&str, bool); 3] = [
    ("kernel/drivers/virtio/virtio_pci", false),
    ("kernel/net/9p/9pnet_virtio", true),
    ("kernel/fs/9p/9p", true),
];

/// Writes the initramfs for `kernel` to `path`; the command to run is read
/// at boot from the kernel command line (`dsrlab.run=`), so one initramfs
/// serves every run of that kernel.
pub fn build(kernel: &Kernel, path: &Path) -> Result<(), VmError> {
    let err = |why: String| VmError::Initramfs {
        path: path.to_owned(),
        why,
    };
    let busybox = fs::read(BUSYBOX)
        .map_err(|e| err(format!("cannot read {BUSYBOX} (busybox-static): {e}")))?;
    let modules = module_order(kernel).map_err(err)?;
    let mut out = io::BufWriter::new(
        fs::File::create(path).map_err(|e| err(format!("cannot create it: {e}")))?,
    );
    let write = |out: &mut io::BufWriter<fs::File>| -> io::Result<()> {
        for dir in ["bin", "proc", "sys", "dev", "host", "tmp", "mods"] {
            dir_entry(out, dir)?;
        }
        file_entry(out, "bin/busybox", 0o755, &busybox)?;
        file_entry(out, "init", 0o755, init_script(kernel, &modules).as_bytes())?;
        file_entry(out, "modprobe", 0o755, modprobe_helper(kernel).as_bytes())?;
        for (name, bytes) in &modules {
            file_entry(out, &format!("mods/{name}"), 0o644, bytes)?;
        }
        trailer(&mut *out)?;
        out.flush()
    };
    write(&mut out).map_err(|e| err(e.to_string()))
}

/// The root modules and their dependencies, dependencies first, as
/// (file name, compressed bytes).
fn module_order(kernel: &Kernel) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dep_file = kernel.modules().join("modules.dep");
    let deps = fs::read_to_string(&dep_file)
        .map_err(|e| format!("cannot read {}: {e}", dep_file.display()))?;
    let mut order: Vec<String> = Vec::new();
    for (root, required) in ROOT_MODULES {
        let found = deps
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(p, _)| p.starts_with(&format!("{root}.ko")));
        let Some((path, needs)) = found else {
            if required {
                return Err(format!("the kernel has no module {root} (9p over virtio)"));
            }
            continue;
        };
        // modules.dep lists what a module needs, the deepest last.
        for m in needs.split_whitespace().rev().chain([path]) {
            if !order.iter().any(|o| o == m) {
                order.push(m.to_owned());
            }
        }
    }
    order
        .into_iter()
        .map(|m| {
            let file = kernel.modules().join(&m);
            let name = Path::new(&m)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            fs::read(&file)
                .map(|bytes| (name, bytes))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
        })
        .collect()
}

/// The kernel's usermode helper for module requests (`ip link add type
/// ipip` asks for `rtnl-link-ipip`): the host's modprobe, in the host
/// filesystem, told where the guest kernel's modules are.
fn modprobe_helper(kernel: &Kernel) -> String {
    format!(
        "#!/bin/busybox sh\nexec /bin/busybox chroot /host /sbin/modprobe -d {} \"$@\"\n",
        kernel.root.display()
    )
}

fn init_script(kernel: &Kernel, modules: &[(String, Vec<u8>)]) -> String {
    let load: String = modules
        .iter()
        .map(|(name, _)| {
            let plain = name
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".gz");
            let unpack = if name.ends_with(".xz") {
                format!("unxz -c /mods/{name} > /tmp/{plain}")
            } else if name.ends_with(".gz") {
                format!("gunzip -c /mods/{name} > /tmp/{plain}")
            } else {
                format!("cp /mods/{name} /tmp/{plain}")
            };
            format!("{unpack} && insmod /tmp/{plain} || fail \"loading {name}\"\n")
        })
        .collect();
    let modules = kernel.modules();
    let modules = modules.display();
    let release = &kernel.release;
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "dsrlab vm init: $1"; echo "{EXIT_MARKER} 125"; poweroff -f; }}
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
{load}arg() {{ tr ' ' '\n' < /proc/cmdline | sed -n "s/^dsrlab.$1=//p"; }}
WORKSPACE=$(arg workspace)
RUN=$(arg run)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /host || fail "mounting the host's /"
for fs in proc:/proc sysfs:/sys devtmpfs:/dev tmpfs:/tmp tmpfs:/run; do
  mount -t "${{fs%%:*}}" none "/host${{fs#*:}}" || fail "mounting ${{fs#*:}}"
done
# After the guest's own /tmp and /run: a workspace under one of them (a
# CI checkout in /tmp) is not hidden by it.
mkdir -p "/host$WORKSPACE" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 workspace "/host$WORKSPACE" || fail "mounting the workspace"
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs none /host/dev/shm
mount -t devpts none /host/dev/pts
mount -t bpf bpf /host/sys/fs/bpf
mount -t debugfs none /host/sys/kernel/debug 2>/dev/null
mount -t tracefs none /host/sys/kernel/tracing 2>/dev/null
# Where the host has /lib/modules, a plain `modprobe` finds the guest's.
if [ -d /host/lib/modules ]; then
  mount -t tmpfs none /host/lib/modules && mkdir -p /host/lib/modules/{release} &&
    mount --bind "/host{modules}" /host/lib/modules/{release}
fi
# Otherwise the guest's modules are found by this (kernel::features).
export {MODULES_ENV}={modules}
echo /modprobe > /proc/sys/kernel/modprobe
# /dev/net/tun appears only once tun is loaded (hosts make its node from
# the module's devname alias; here nothing does).
/modprobe -q tun
# fou has no generic netlink alias: nothing could load it on demand.
/modprobe -q fou
ip link set lo up
echo "{START_MARKER}"
chroot /host /bin/sh "$RUN"
echo "{EXIT_MARKER} $?"
poweroff -f
"#
    )
}

fn dir_entry(out: &mut impl Write, name: &str) -> io::Result<()> {
    Builder::new(name)
        .mode(0o040_755)
        .nlink(2)
        .write(&mut *out, 0)
        .finish()
        .map(drop)
}

fn file_entry(out: &mut impl Write, name: &str, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let size = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    let mut w = Builder::new(name)
        .mode(0o100_000 | mode)
        .nlink(1)
        .write(&mut *out, size);
    w.write_all(bytes)?;
    w.finish().map(drop)
}
