//! The EXT backend's slot programs: an XDP program loaded as an extension
//! (freplace) of one of the root's slot functions and attached by a BPF
//! link. The kernel cannot swap the program of such a link
//! (`BPF_LINK_UPDATE` is refused for tracing links, EINVAL), so a slot is
//! replaced as libxdp replaces a dispatcher: a new root with every slot's
//! program attached to it too (an extension attaches to any root whose
//! function has the same type), swapped for the old one in one step
//! (`Chain::attach`). Needs BPF trampolines, which these machines refuse;
//! the VMs have them.

use aya::programs::{Extension, Program, extension::ExtensionLinkId};
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
        root: &LoadedProgram,
        slot: u32,
    ) -> Result<Self, ChainError> {
        let program = LoadedProgram::extension(
            elf,
            object,
            origin,
            program,
            options,
            root_fd(root)?,
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
        let name = self.program.name().to_owned();
        let target = root_fd(root)?;
        let id = self
            .extension()
            .attach_to_program(&target, &format!("{SLOT_FUNCTION_PREFIX}{slot}"))
            .map_err(|e| ChainError::NotChainable {
                program: name,
                why: format!("the kernel would not attach it in slot {slot}: {e}"),
            })?;
        Ok(self.link.replace(id))
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

/// An owned copy of the root's program fd.
fn root_fd(root: &LoadedProgram) -> Result<aya::programs::ProgramFd, ChainError> {
    root.program()
        .fd()
        .map_err(|e| io_error(format!("the root's fd: {e}")))?
        .try_clone()
        .map_err(|e| io_error(format!("the root's fd: {e}")))
}

fn io_error(what: String) -> ChainError {
    ChainError::Failed(what)
}
