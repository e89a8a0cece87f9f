//! Attaching a loaded program at a link end: XDP (native or generic) or TC
//! (TCX where the kernel has it, else a clsact filter), through aya.
//!
//! Attachment is by interface index, resolved inside the link end's
//! namespace; the link that aya keeps lives as long as the program, and the
//! kernel detaches it when the interface (or its namespace) goes away.

use std::sync::atomic::{AtomicU16, Ordering};

use aya::programs::{
    Program, ProgramError, TcAttachType, XdpMode,
    tc::{NlOptions, TcAttach, TcHandle},
};

use super::netns::Namespace;
use crate::{kernel::features::Features, load::LoadedProgram};

/// Where on a link end a program sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// XDP in the driver (veth has a native XDP path).
    XdpNative,
    /// XDP in the stack (generic XDP), for any device.
    XdpGeneric,
    /// TC on ingress (clsact / TCX).
    TcIngress,
    /// TC on egress.
    TcEgress,
}

impl Hook {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::XdpNative => "xdp (native)",
            Self::XdpGeneric => "xdp (generic)",
            Self::TcIngress => "tc ingress",
            Self::TcEgress => "tc egress",
        }
    }
}

/// A program the kernel would not attach.
#[derive(Debug, thiserror::Error)]
#[error("attaching `{program}` at {} of {interface} in {namespace}: {source}{hint}", hook.name())]
pub struct AttachError {
    /// The program.
    pub program: String,
    /// The hook.
    pub hook: Hook,
    /// The interface.
    pub interface: String,
    /// Its namespace.
    pub namespace: String,
    /// aya's error (the kernel's errno inside).
    #[source]
    pub source: Box<ProgramError>,
    /// What the errno usually means here.
    pub hint: String,
}

/// Attaches `program` at `hook` of interface `ifindex` (named `interface`,
/// for messages) in `ns`.
pub fn attach(
    program: &mut LoadedProgram,
    ns: &Namespace,
    interface: &str,
    ifindex: u32,
    hook: Hook,
) -> Result<(), AttachError> {
    let name = program.name().to_owned();
    let fail = |source: ProgramError| AttachError {
        hint: hint(&source, hook),
        program: name.clone(),
        hook,
        interface: interface.to_owned(),
        namespace: ns.name().to_owned(),
        source: Box::new(source),
    };
    let entered = ns.enter().map_err(|e| fail(ProgramError::IOError(e)))?;
    let result = match (program.program_mut(), hook) {
        (Program::Xdp(xdp), Hook::XdpNative) => xdp.attach(ifindex, XdpMode::Driver).map(drop),
        (Program::Xdp(xdp), Hook::XdpGeneric) => xdp.attach(ifindex, XdpMode::Skb).map(drop),
        (Program::SchedClassifier(cls), Hook::TcIngress | Hook::TcEgress) => {
            let at = if hook == Hook::TcIngress {
                TcAttachType::Ingress
            } else {
                TcAttachType::Egress
            };
            if Features::get().tcx.ok() {
                cls.attach(ifindex, at).map(drop)
            } else {
                // A clsact filter, which needs the qdisc: add it and retry.
                // Each with a handle of its own: aya tells a program's
                // filters apart by interface index, priority and handle,
                // and the same program may sit on `eth0` (index 2) of
                // several namespaces.
                static HANDLES: AtomicU16 = AtomicU16::new(1);
                let handle = HANDLES.fetch_add(1, Ordering::Relaxed);
                let filter = || TcAttach::Netlink {
                    parent: at.into(),
                    options: NlOptions {
                        handle: TcHandle::new(0, handle),
                        ..NlOptions::default()
                    },
                };
                cls.attach(ifindex, filter())
                    .map(drop)
                    .or_else(|e| match e {
                        ProgramError::TcError(_) => {
                            aya::programs::tc::qdisc_add_clsact(ifindex)?;
                            cls.attach(ifindex, filter()).map(drop)
                        }
                        e => Err(e),
                    })
            }
        }
        _ => Err(ProgramError::UnexpectedProgramType),
    };
    drop(entered);
    result.map_err(fail)
}

fn hint(error: &ProgramError, hook: Hook) -> String {
    let xdp = matches!(hook, Hook::XdpNative | Hook::XdpGeneric);
    if xdp && errno(error) == Some(libc::ERANGE) {
        return "; a non-frags XDP program cannot attach where the veth peer's MTU is above about 3.5 KB (use an xdp.frags program or a smaller MTU)".to_owned();
    }
    if matches!(error, ProgramError::UnexpectedProgramType) {
        return format!("; the program's type does not fit the {} hook", hook.name());
    }
    String::new()
}

/// The kernel's errno somewhere in `error`'s chain of sources.
fn errno(error: &ProgramError) -> Option<i32> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Some(code);
        }
        source = e.source();
    }
    None
}
