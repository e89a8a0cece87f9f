//! Builds the BPF programs of `datapath/ebpf` for `bpfel-unknown-none` and
//! leaves one ELF object per program in `OUT_DIR`, where `src/datapath.rs`
//! embeds them.

use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir.parent().expect("harness/ has a parent");
    let ebpf_dir = workspace.join("datapath/ebpf");
    let abi_dir = workspace.join("datapath/abi");
    println!("cargo::rerun-if-changed={}", abi_dir.display());
    println!(
        "cargo::rerun-if-changed={}",
        workspace.join("rust-toolchain.toml").display()
    );
    // tests/scenarios.rs and tests/decap.rs make one test per file of
    // scenarios/ and fixtures/ at compile time (rstest's #[files]): a new
    // file must rebuild them.
    for dir in ["scenarios", "fixtures"] {
        println!("cargo::rerun-if-changed={}", workspace.join(dir).display());
    }

    // aya-build runs `rustup run <toolchain> cargo build`; it must be the
    // pinned nightly, whose LLVM bpf-linker was built against.
    let toolchain_file = fs::read_to_string(workspace.join("rust-toolchain.toml"))?;
    let channel = toolchain_file
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .ok_or_else(|| anyhow::anyhow!("rust-toolchain.toml has no channel = \"...\""))?
        .to_owned();

    let defects = env::var_os("CARGO_FEATURE_DEFECTS").is_some();
    let features: &[&str] = if defects { &["defects"] } else { &[] };
    let ebpf_dir = ebpf_dir.to_str().expect("UTF-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "dsrlab-ebpf",
            root_dir: ebpf_dir,
            features,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&channel),
    )?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    build_instruments(&manifest_dir.join("src/instruments/bpf"), &out_dir)?;

    // With AYA_BUILD_SKIP=1 nothing was built; leave empty objects so the
    // library still compiles and loading reports what is missing.
    for object in dsrlab_objects(defects) {
        let path = out_dir.join(object);
        if !path.exists() {
            fs::write(&path, [])?;
        }
    }
    Ok(())
}

/// Compiles every `*.bpf.c` of `dir` with clang (installed by ci/setup)
/// into `out_dir`: the harness's instruments, which libbpf loads with CO-RE.
fn build_instruments(dir: &std::path::Path, out_dir: &std::path::Path) -> anyhow::Result<()> {
    println!("cargo::rerun-if-changed={}", dir.display());
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH")?
    );
    for entry in fs::read_dir(dir)? {
        let source = entry?.path();
        let Some(name) = source.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".bpf.c") else {
            continue;
        };
        let object = out_dir.join(format!("{stem}.bpf.o"));
        if env::var_os("AYA_BUILD_SKIP").is_some() {
            fs::write(&object, [])?;
            continue;
        }
        let status = std::process::Command::new("clang")
            .args([
                "-O2",
                "-g",
                "-Wall",
                "-Werror",
                "-target",
                "bpf",
                &arch_include,
                "-c",
            ])
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status()
            .map_err(|e| {
                anyhow::anyhow!("cannot run clang for {name} (ci/setup installs it): {e}")
            })?;
        anyhow::ensure!(status.success(), "clang failed on {name}: {status}");
    }
    Ok(())
}

fn dsrlab_objects(defects: bool) -> Vec<&'static str> {
    let mut objects = vec![
        "xdp_pass",
        "xdp_pass_frags",
        "tc_pass",
        "xdp_decap",
        "tc_decap",
        "xdp_lb",
        "xdp_chain_tail",
        "xdp_chain_ext",
        "chain_probe",
        "chain_pass",
        "xdp_lb_slot",
        "xdp_decap_slot",
    ];
    if defects {
        objects.extend(DEFECT_OBJECTS);
    }
    objects
}

/// Keep in sync with the `required-features = ["defects"]` bins of
/// datapath/ebpf/Cargo.toml.
const DEFECT_OBJECTS: [&str; 6] = [
    "defect_tc_gives_up_nonlinear",
    "defect_tc_keeps_csum_state",
    "defect_tc_no_csum_fixup",
    "defect_xdp_gives_up_nonlinear",
    "defect_xdp_off_by_one",
    "defect_xdp_lb_lru_no_update",
];
