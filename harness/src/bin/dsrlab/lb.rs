//! `dsrlab lb …` (pinned load-balancer instances) and `dsrlab fuzz lb`.

use std::path::Path;
use std::process::ExitCode;

use dsrlab::lb::{LbSettings, fuzz, instance};
use indicatif::{ProgressBar, ProgressStyle};

use super::{LbCommand, LbRealCommand, LbVipCommand};

pub(super) fn fuzz_lb(options: &fuzz::FuzzOptions, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let progress = ProgressBar::new(options.packets).with_style(
        ProgressStyle::with_template("xdp_lb vs model [{bar:40}] {pos}/{len} frames {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let report = fuzz::run(options, &mut |p| progress.set_position(p.compared))?;
    progress.finish_and_clear();
    println!("{report}");
    let Some(mismatch) = &report.mismatch else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(dir) = out {
        for path in mismatch.write_pcaps(dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::FAILURE)
}

pub(super) fn lb_command(command: LbCommand) -> anyhow::Result<ExitCode> {
    let vip_of = |s: &str| instance::parse_vip(s).map_err(anyhow::Error::msg);
    match command {
        LbCommand::Load {
            name,
            ring_size,
            seed,
            gateway_mac,
            mtu,
            gue_port,
            no_icmp_echo,
            no_send_too_big,
            gue_v6_zero_checksum,
            src_v4_prefix,
            src_v6_prefix,
        } => {
            let settings = LbSettings {
                ring_size,
                hash_seed: seed,
                gateway_mac: instance::parse_mac(&gateway_mac).map_err(anyhow::Error::msg)?,
                mtu,
                gue_port,
                icmp_echo: !no_icmp_echo,
                send_too_big: !no_send_too_big,
                gue_v6_zero_checksum,
                src_v4_prefix,
                src_v6_prefix,
            };
            let loaded = instance::load(&name, settings)?;
            if let Some(m) = &loaded.mounted {
                println!("{m}");
            }
            println!(
                "loaded xdp_lb as instance {name}: program id {}{}, ring size {ring_size}",
                loaded.program_id,
                loaded
                    .instructions
                    .map_or(String::new(), |n| format!(" ({n} insns)")),
            );
            println!("pinned in {}", loaded.paths.pins.display());
            println!("state in {}", loaded.paths.state.display());
        }
        LbCommand::Vip {
            command: LbVipCommand::Add { name, vip, flags },
        } => {
            let vip = vip_of(&vip)?;
            let flags = instance::parse_vip_flags(&flags).map_err(anyhow::Error::msg)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::AddVip {
                vip: vip.to_string(),
                flags,
            })?;
            println!(
                "{name}: added VIP {vip} (#{}), flags {}",
                inst.plane().vip_num(&vip).unwrap_or_default(),
                instance::format_vip_flags(flags)
            );
        }
        LbCommand::Vip {
            command: LbVipCommand::Remove { name, vip },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::RemoveVip {
                vip: vip.to_string(),
            })?;
            println!("{name}: removed VIP {vip}");
        }
        LbCommand::Real {
            command:
                LbRealCommand::Add {
                    name,
                    vip,
                    real,
                    weight,
                },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            let slots = ring_slots(&inst, &vip, real);
            inst.apply(instance::Op::AddReal {
                vip: vip.to_string(),
                real,
                weight,
            })?;
            println!(
                "{name}: added real {real} (id {}) to VIP {vip} with weight {weight}: {} → {} ring slots",
                inst.plane().real_id(real).unwrap_or_default(),
                slots,
                ring_slots(&inst, &vip, real)
            );
        }
        LbCommand::Real {
            command: LbRealCommand::Remove { name, vip, real },
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            inst.apply(instance::Op::RemoveReal {
                vip: vip.to_string(),
                real,
            })?;
            println!("{name}: removed real {real} from VIP {vip}");
        }
        LbCommand::Weight {
            name,
            vip,
            real,
            weight,
        } => {
            let vip = vip_of(&vip)?;
            let mut inst = instance::Instance::open(&name)?;
            let slots = ring_slots(&inst, &vip, real);
            inst.apply(instance::Op::SetWeight {
                vip: vip.to_string(),
                real,
                weight,
            })?;
            println!(
                "{name}: real {real} of VIP {vip} now has weight {weight}: {} → {} ring slots",
                slots,
                ring_slots(&inst, &vip, real)
            );
        }
        LbCommand::Show { name } => {
            print!("{}", instance::Instance::open(&name)?.describe()?);
        }
        LbCommand::Counters { name } => {
            print!("{}", instance::Instance::open(&name)?.describe_counters()?);
        }
        LbCommand::TestRun(args) => {
            let inst = instance::Instance::open(&args.name)?;
            args.run(|n, frame| Ok(inst.test_run(frame, n)?))?;
        }
        LbCommand::List => {
            let all = instance::list()?;
            if all.is_empty() {
                println!("no xdp_lb instances");
            }
            for (name, pins, state) in all {
                let what = match (pins, state) {
                    (true, true) => "loaded",
                    (true, false) => "pins without state (dsrlab lb unload removes them)",
                    (false, true) => "state without pins (dsrlab lb unload removes it)",
                    (false, false) => continue,
                };
                println!("{name}: {what}");
            }
        }
        LbCommand::Unload { name } => {
            let gone = instance::unload(&name)?;
            match (&gone.pins, &gone.state) {
                (Some(p), Some(s)) => println!(
                    "{name}: removed the pins in {} and the state {}",
                    p.display(),
                    s.display()
                ),
                (Some(p), None) => println!(
                    "{name}: removed the pins in {} (there was no state file)",
                    p.display()
                ),
                (None, Some(s)) => println!(
                    "{name}: removed the state {} (there were no pins)",
                    s.display()
                ),
                (None, None) => unreachable!("unload fails when there is nothing"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ring slots of `real` in `vip` as the plane holds them.
fn ring_slots(inst: &instance::Instance, vip: &dsrlab::lb::Vip, real: std::net::IpAddr) -> usize {
    let plane = inst.plane();
    match (plane.ring(vip), plane.real_id(real)) {
        (Some(ring), Some(id)) => ring.iter().filter(|r| **r == id).count(),
        _ => 0,
    }
}
