//! The EXT backend's slot programs: an XDP program loaded as an extension
//! (freplace) of one of the root's slot functions and attached by a BPF
//! link. The kernel cannot swap the program of such a link
//! (`BPF_LINK_UPDATE` is refused for tracing links, EINVAL), so a slot is
//! replaced as libxdp replaces a dispatcher: a new root with every slot's
//! program attached to it too (an extension attaches to any root whose
//! function has the same type), swapped for the old one in one step
//! (`Chain::attach`). Needs BPF trampolines, which these machines refuse;
//! the VMs have them.

use std::path::Path;

use aya::programs::{Extension, Program, ProgramFd, extension::ExtensionLinkId, links::FdLink};
use dsrlab_abi::chain::SLOT_FUNCTION_PREFIX;

use super::ChainError;
use crate::load::{LoadOptions, LoadedProgram, Origin};

/// A program loaded as the extension of a root's slot function.
pub struct ExtProgram {
    program: LoadedProgram,
    link: Option<ExtensionLinkId>,
}

impl ExtProgram {
    /// Loads `program` of the ELF `elf` (named `object` in messages) as the
    /// extension of `slot`'s function in the root `root`.
    pub fn load(
        (object, origin): (&str, Origin),
        elf: &[u8],
        program: &str,
        options: &LoadOptions<'_>,
        root: &ProgramFd,
        slot: u32,
    ) -> Result<Self, ChainError> {
        let program = LoadedProgram::extension(
            elf,
            object,
            origin,
            program,
            options,
            owned(root)?,
            &format!("{SLOT_FUNCTION_PREFIX}{slot}"),
        )?;
        Ok(Self {
            program,
            link: None,
        })
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        self.program.name()
    }

    /// The loaded program: its maps, its counters.
    pub const fn loaded(&self) -> &LoadedProgram {
        &self.program
    }

    /// The loaded program, for writing its maps.
    pub fn loaded_mut(&mut self) -> &mut LoadedProgram {
        &mut self.program
    }

    /// The loaded program alone (for a program not in a chain: a link it
    /// has stays with the program, which can no longer detach it by
    /// itself, only by going).
    pub fn into_loaded(self) -> LoadedProgram {
        self.program
    }

    /// Takes back a program [`ExtProgram::into_loaded`] gave out.
    pub const fn from_loaded(program: LoadedProgram) -> Self {
        Self {
            program,
            link: None,
        }
    }

    fn extension(&mut self) -> &mut Extension {
        match self.program.program_mut() {
            Program::Extension(ext) => ext,
            _ => unreachable!("loaded as an extension"),
        }
    }

    /// Attaches it in place of `slot`'s function in `root` (the root it
    /// was loaded against, or another of the same kind); returns the link
    /// it had, which is still attached.
    pub fn attach_to(
        &mut self,
        root: &LoadedProgram,
        slot: u32,
    ) -> Result<Option<ExtensionLinkId>, ChainError> {
        let root = root_fd(root)?;
        self.attach_to_fd(&root, slot)
    }

    /// [`ExtProgram::attach_to`] the root whose descriptor is `root`.
    pub fn attach_to_fd(
        &mut self,
        root: &ProgramFd,
        slot: u32,
    ) -> Result<Option<ExtensionLinkId>, ChainError> {
        let name = self.program.name().to_owned();
        let id = attach(self.extension(), &name, root, slot)?;
        Ok(self.link.replace(id))
    }

    /// Pins its current link at `path`: the link, and so the program in
    /// its slot, outlives this process until the pin is removed.
    pub fn pin_link(&mut self, path: &Path) -> Result<(), ChainError> {
        let name = self.program.name().to_owned();
        let id = self
            .link
            .take()
            .ok_or_else(|| io_error(format!("`{name}` is not attached")))?;
        pin_link(self.extension(), id, path)
    }

    /// Detaches link `id` (one `attach_to` returned).
    pub fn detach_link(&mut self, id: ExtensionLinkId) -> Result<(), ChainError> {
        let name = self.program.name().to_owned();
        self.extension()
            .detach(id)
            .map_err(|e| io_error(format!("detaching `{name}`: {e}")))
    }

    /// Makes `link` its current link again (undoing an `attach_to` whose
    /// new link was detached).
    pub fn restore_link(&mut self, link: Option<ExtensionLinkId>) {
        self.link = link;
    }

    /// Detaches its current link: the slot's own function is back.
    pub fn detach(&mut self) -> Result<(), ChainError> {
        match self.link.take() {
            Some(id) => self.detach_link(id),
            None => Ok(()),
        }
    }
}

/// Attaches `ext` (named `name`) in place of `slot`'s function of the
/// root `root`.
pub(super) fn attach(
    ext: &mut Extension,
    name: &str,
    root: &ProgramFd,
    slot: u32,
) -> Result<ExtensionLinkId, ChainError> {
    ext.attach_to_program(root, &format!("{SLOT_FUNCTION_PREFIX}{slot}"))
        .map_err(|e| ChainError::NotChainable {
            program: name.to_owned(),
            why: format!("the kernel would not attach it in slot {slot}: {e}"),
        })
}

/// Takes link `id` of `ext` out of it and pins it at `path`.
pub(super) fn pin_link(
    ext: &mut Extension,
    id: ExtensionLinkId,
    path: &Path,
) -> Result<(), ChainError> {
    let link = ext
        .take_link(id)
        .map_err(|e| io_error(format!("taking the link to pin it: {e}")))?;
    FdLink::from(link).pin(path).map(drop).map_err(|e| {
        let why = std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
        io_error(format!("pinning the link at {}: {e}{why}", path.display()))
    })
}

/// The root's program fd, owned.
pub(super) fn root_fd(root: &LoadedProgram) -> Result<ProgramFd, ChainError> {
    let fd = root
        .program()
        .fd()
        .map_err(|e| io_error(format!("the root's fd: {e}")))?;
    owned(fd)
}

fn owned(fd: &ProgramFd) -> Result<ProgramFd, ChainError> {
    fd.try_clone()
        .map_err(|e| io_error(format!("the root's fd: {e}")))
}

fn io_error(what: String) -> ChainError {
    ChainError::Failed(what)
}
