//! `dsrlab chain …`: pinned XDP chains (`dsrlab::chain::pinned`), one
//! command per process, as `dsrlab lb` drives pinned load balancers.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use dsrlab::{
    chain::{
        Backend, SlotSource,
        pinned::{self, PinnedChain, continue_names},
    },
    datapath::{self, Object},
    formats::typed,
    load::LoadOptions,
    verdict::XDP_NAMES,
};
use dsrlab_abi::chain::{SLOT_GLOBAL, TAIL_CALL_GLOBAL};

/// How the chain's root runs its slots.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum BackendArg {
    /// A program array and tail calls (the rootlet).
    TailCall,
    /// Slot functions replaced by extension programs (needs trampolines).
    Ext,
}

/// dsrlab's programs as slot programs (their chain builds).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub(super) enum SlotBuiltin {
    /// Passes everything on (`chain_pass`).
    XdpPass,
    /// The decap, without frags like the root (`xdp_decap_slot`).
    XdpDecap,
}

impl SlotBuiltin {
    const fn object(self) -> Object {
        match self {
            Self::XdpPass => datapath::CHAIN_PASS,
            Self::XdpDecap => datapath::XDP_DECAP_SLOT,
        }
    }
}

#[derive(Subcommand)]
pub(super) enum ChainCommand {
    /// Make chain NAME with every slot empty and pin it.
    Create {
        /// Chain name (A-Z a-z 0-9 _ -).
        name: String,
        /// How the root runs its slots.
        #[arg(long, value_enum, default_value = "tail-call")]
        backend: BackendArg,
    },
    /// Load a program for SLOT and put it there, replacing what was there
    /// in one step.
    Attach {
        /// Chain name.
        name: String,
        /// The slot, 0 to 19.
        slot: u32,
        /// One of dsrlab's programs.
        #[arg(long, value_enum, conflicts_with_all = ["object", "program"])]
        builtin: Option<SlotBuiltin>,
        /// A BPF ELF object (C: include dsrlab_chain.h for tail-call).
        #[arg(long, requires = "program")]
        object: Option<PathBuf>,
        /// The program's name in --object.
        #[arg(long)]
        program: Option<String>,
        /// A global to set before loading, NAME=VALUE, typed by the
        /// object's BTF (`blocked_port=23`), or hex bytes of its size.
        #[arg(long = "global", value_name = "NAME=VALUE")]
        globals: Vec<String>,
        /// Act as this owner (a reserved slot refuses anyone else).
        #[arg(long = "as", value_name = "OWNER")]
        owner: Option<String>,
    },
    /// Empty SLOT.
    Detach {
        /// Chain name.
        name: String,
        /// The slot.
        slot: u32,
        /// Act as this owner.
        #[arg(long = "as", value_name = "OWNER")]
        owner: Option<String>,
    },
    /// Reserve SLOT for OWNER: from then on only OWNER fills or empties it.
    Reserve {
        /// Chain name.
        name: String,
        /// The slot.
        slot: u32,
        /// Who it is for (a team, a service).
        owner: String,
    },
    /// Set which verdicts of SLOT go on to the next slot.
    Continue {
        /// Chain name.
        name: String,
        /// The slot.
        slot: u32,
        /// XDP verdicts, comma-separated (XDP_PASS,XDP_TX).
        verdicts: String,
    },
    /// The root, and per slot its owner, program, continue set and counters.
    Show {
        /// Chain name.
        name: String,
    },
    /// Run the frames of a pcap through the chain (BPF_PROG_TEST_RUN):
    /// verdicts, and the output frames as a pcap with --out.
    TestRun(super::TestRunArgs),
    /// Chains with pins or state on this machine.
    List,
    /// Remove the chain's pins and state (the pins even without state).
    Destroy {
        /// Chain name.
        name: String,
    },
}

/// `NAME=VALUE` as the bytes of global NAME of `elf`.
fn global(elf: &[u8], object: &str, arg: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let Some((name, text)) = arg.split_once('=') else {
        bail!("--global {arg}: expected NAME=VALUE");
    };
    let chains = [SLOT_GLOBAL, TAIL_CALL_GLOBAL];
    if chains.contains(&name) {
        bail!("--global {name}: the chain sets it (the slot, the backend)");
    }
    let types = typed::ObjectTypes::parse(elf)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--global {name}: {object}"))?;
    let Some(types) = types else {
        return Ok((
            name.to_owned(),
            typed::hex(text).map_err(|e| {
                anyhow::anyhow!(
                    "--global {name}: {object} has no BTF, so the value is hex bytes: {e}"
                )
            })?,
        ));
    };
    let Some(g) = types.global(name) else {
        let names: Vec<&str> = types
            .globals()
            .map(|(n, _)| n)
            .filter(|n| !chains.contains(n))
            .collect();
        bail!(
            "--global {name}: {object} has no such global; it has: {}",
            names.join(", ")
        );
    };
    // A number, or text (an address, hex bytes) as it is.
    let value = serde_json::from_str(text).unwrap_or_else(|_| text.into());
    let bytes = typed::encode(&types, g.ty, &value)
        .map_err(|e| anyhow::anyhow!("--global {name}={text}: {e}"))?;
    Ok((name.to_owned(), bytes))
}

fn verdict_mask(text: &str) -> anyhow::Result<u32> {
    text.split(',').map(str::trim).try_fold(0u32, |mask, name| {
        let v = XDP_NAMES.iter().position(|n| *n == name).with_context(|| {
            format!(
                "`{name}` is not an XDP verdict; one of {}",
                XDP_NAMES.join(", ")
            )
        })?;
        Ok(mask | 1 << v)
    })
}

pub(super) fn chain_command(command: ChainCommand) -> anyhow::Result<ExitCode> {
    match command {
        ChainCommand::Create { name, backend } => {
            let backend = match backend {
                BackendArg::TailCall => Backend::TailCall,
                BackendArg::Ext => Backend::Ext,
            };
            let created = pinned::create(&name, backend)?;
            if let Some(m) = &created.mounted {
                println!("{m}");
            }
            println!(
                "chain {name}: {} root, program id {} ({} insns), pinned in {}",
                backend.name(),
                created.root_id,
                created
                    .instructions
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                created.paths.pins.display()
            );
        }
        ChainCommand::Attach {
            name,
            slot,
            builtin,
            object,
            program,
            globals,
            owner,
        } => {
            let (source, elf, shown) = match (builtin, &object, &program) {
                (Some(b), None, None) => {
                    let object = b.object();
                    (
                        SlotSource::Builtin(object),
                        object.elf.to_vec(),
                        object.program.to_owned(),
                    )
                }
                (None, Some(path), Some(program)) => {
                    let elf = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    (
                        SlotSource::File { path, program },
                        elf,
                        path.display().to_string(),
                    )
                }
                _ => bail!("give --builtin, or --object and --program"),
            };
            let globals = globals
                .iter()
                .map(|g| global(&elf, &shown, g))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let options = LoadOptions {
                globals: globals
                    .iter()
                    .map(|(n, b)| (n.as_str(), b.as_slice()))
                    .collect(),
                ..LoadOptions::default()
            };
            let mut chain = PinnedChain::open(&name)?;
            let old = chain.attach(slot, source, &options, owner.as_deref())?;
            let now = &chain.state().slots[&slot];
            match old {
                Some(old) => println!(
                    "slot {slot}: {} (id {}) replaces {} (id {})",
                    now.program, now.id, old.program, old.id
                ),
                None => println!("slot {slot}: {} (id {})", now.program, now.id),
            }
        }
        ChainCommand::Detach { name, slot, owner } => {
            let mut chain = PinnedChain::open(&name)?;
            match chain.detach(slot, owner.as_deref())? {
                Some(old) => println!("slot {slot}: {} (id {}) detached", old.program, old.id),
                None => println!("slot {slot} was empty"),
            }
        }
        ChainCommand::Reserve { name, slot, owner } => {
            PinnedChain::open(&name)?.reserve(slot, &owner)?;
            println!("slot {slot} reserved for {owner}");
        }
        ChainCommand::Continue {
            name,
            slot,
            verdicts,
        } => {
            let mask = verdict_mask(&verdicts)?;
            PinnedChain::open(&name)?.set_continue(slot, mask)?;
            println!("slot {slot} goes on after {}", continue_names(mask));
        }
        ChainCommand::Show { name } => print!("{}", PinnedChain::open(&name)?.describe()?),
        ChainCommand::TestRun(args) => {
            let chain = PinnedChain::open(&args.name)?;
            args.run(|n, frame| {
                let result = chain
                    .test_run(frame)?
                    .with_context(|| format!("frame {n}"))?;
                Ok((result.verdict, result.output))
            })?;
        }
        ChainCommand::List => {
            let all = pinned::list();
            if all.is_empty() {
                println!("no pinned chains");
            }
            for (name, pins, state) in all {
                let what = match (pins, state) {
                    (true, true) => "pinned",
                    (true, false) => "pins without state (dsrlab chain destroy removes them)",
                    (false, true) => "state without pins (dsrlab chain destroy removes it)",
                    (false, false) => continue,
                };
                println!("{name}: {what}");
            }
        }
        ChainCommand::Destroy { name } => {
            let gone = pinned::destroy(&name)?;
            for path in gone.pins.iter().chain(&gone.state) {
                println!("removed {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
