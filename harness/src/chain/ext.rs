//! The EXT backend's slot programs: an XDP program loaded as an extension
//! (freplace) of one of the root's slot functions and attached by a BPF
//! link. The kernel cannot swap the program of such a link
//! (`BPF_LINK_UPDATE` is refused for tracing links, EINVAL), so a slot is
//! replaced as libxdp replaces a dispatcher: a new root with every slot's
//! program attached to it too (an extension attaches to any root whose
//! function has the same type), swapped for the old one in one step
//! (`Chain::attach`). Needs BPF trampolines, which these machines refuse;
//! the VMs have them.

use aya::{
    Ebpf,
    programs::{Extension, Program, extension::ExtensionLinkId},
};
use dsrlab_abi::chain::SLOT_FUNCTION_PREFIX;

use super::ChainError;
use crate::load::{LoadError, LoadOptions, LoadedProgram, loader, sections};

/// A program loaded as the extension of a root's slot function.
pub struct ExtProgram {
    ebpf: Ebpf,
    program: String,
    link: Option<ExtensionLinkId>,
}

impl ExtProgram {
    /// Loads `program` of the ELF `elf` (named `object` in messages) as the
    /// extension of `slot`'s function in the root `root`.
    pub fn load(
        object: &str,
        elf: &[u8],
        program: &str,
        options: &LoadOptions<'_>,
        root: &LoadedProgram,
        slot: u32,
    ) -> Result<Self, ChainError> {
        let elf = sections::for_aya(elf).map_err(|reason| LoadError::Sections {
            object: object.to_owned(),
            reason,
        })?;
        let mut ebpf = loader(options)
            .extension(program)
            .load(&elf)
            .map_err(|source| LoadError::Object {
                object: object.to_owned(),
                source: Box::new(source),
            })?;
        let Some(Program::Extension(ext)) = ebpf.program_mut(program) else {
            return Err(ChainError::NotChainable {
                program: program.to_owned(),
                why: format!("{object} has no XDP program of that name"),
            });
        };
        let target = root_fd(root)?;
        ext.load(target, &format!("{SLOT_FUNCTION_PREFIX}{slot}"))
            .map_err(|source| LoadError::Verifier {
                object: object.to_owned(),
                program: program.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Self {
            ebpf,
            program: program.to_owned(),
            link: None,
        })
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        &self.program
    }

    fn extension(&mut self) -> &mut Extension {
        match self.ebpf.program_mut(&self.program) {
            Some(Program::Extension(ext)) => ext,
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
        let name = self.program.clone();
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
        let name = self.program.clone();
        self.extension()
            .detach(id)
            .map_err(|e| io_error(format!("detaching `{name}`: {e}")))
    }

    /// Takes map `name` out of the object (see `LoadedProgram::take_map`).
    pub fn take_map(&mut self, name: &str) -> Option<aya::maps::Map> {
        self.ebpf.take_map(name)
    }

    /// The sum over CPUs of entry 0 of its per-CPU `u64` array `map` (a
    /// program's own counter).
    pub fn per_cpu_sum(&self, map: &str) -> Result<u64, ChainError> {
        let data = self
            .ebpf
            .map(map)
            .ok_or_else(|| io_error(format!("`{}` has no map {map}", self.program)))?;
        let array: aya::maps::PerCpuArray<&aya::maps::MapData, u64> =
            aya::maps::PerCpuArray::try_from(data)
                .map_err(|e| io_error(format!("map {map}: {e}")))?;
        let values = array
            .get(&0, 0)
            .map_err(|e| io_error(format!("map {map}: {e}")))?;
        Ok(values.iter().sum())
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
