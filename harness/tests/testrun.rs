//! The test-run engine against the trivial floor program: verdicts, output,
//! quirk validation.

use dsrlab::{
    datapath,
    load::{LoadOptions, LoadedProgram, ProgramKind},
    testrun::{self, Quirks, RunError, Verdict},
};

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[12] = 0x08; // EtherType IPv4: the content is irrelevant to xdp_pass
    f
}

#[test]
fn xdp_pass_returns_pass_and_the_packet_unchanged() {
    let prog = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default()).unwrap();
    assert_eq!(prog.kind(), ProgramKind::Xdp);
    let packet = frame(64);
    let result = testrun::run(&prog, &packet, Quirks::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Xdp(2));
    assert_eq!(result.verdict.name(), "XDP_PASS");
    assert_eq!(result.output, packet);
}

#[test]
fn checksum_complete_is_refused_for_xdp_with_the_reason() {
    let prog = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default()).unwrap();
    let quirks = Quirks {
        checksum_complete: true,
        ..Quirks::default()
    };
    let err = testrun::run(&prog, &frame(64), quirks).unwrap_err();
    assert!(matches!(err, RunError::QuirkUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("checksum: complete"), "{err}");
}

#[test]
fn a_missing_program_names_the_ones_there() {
    let err = LoadedProgram::from_file(
        std::path::Path::new("/nonexistent/dsrlab.o"),
        "prog",
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dsrlab.o"), "{err}");
}

/// Capabilities are per thread: drop the BPF ones from this thread's
/// effective set and loading must name what is missing instead of failing
/// with a bare EPERM.
#[test]
fn missing_capabilities_are_named() {
    std::thread::spawn(|| {
        // NET_ADMIN, SYS_ADMIN, BPF.
        dsrlab::kernel::restrict_thread_capabilities(|cap| ![12, 21, 39].contains(&cap)).unwrap();
        let err = LoadedProgram::builtin(datapath::XDP_PASS, &LoadOptions::default()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("CAP_BPF"), "{message}");
        assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
    })
    .join()
    .unwrap();
}

/// A user's own object, loaded from a file by path and program name, runs
/// like a built-in one.
#[test]
fn a_users_object_runs_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.o");
    std::fs::write(&path, datapath::TC_PASS.elf).unwrap();
    let prog = LoadedProgram::from_file(&path, "tc_pass", &LoadOptions::default()).unwrap();
    assert_eq!(prog.kind(), ProgramKind::SchedCls);
    assert_eq!(prog.object(), path.display().to_string());
    let mut packet = frame(64);
    packet[14] = 0x45; // an skb run needs a plausible IPv4 header
    let result = testrun::run(&prog, &packet, Quirks::default()).unwrap();
    assert_eq!(result.verdict.name(), "TC_ACT_OK");
    assert_eq!(result.output, packet);
}

/// Asking for a program the object doesn't have lists the ones it has.
#[test]
fn a_wrong_program_name_lists_the_programs_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.o");
    std::fs::write(&path, datapath::XDP_DECAP.elf).unwrap();
    let err = LoadedProgram::from_file(&path, "xdp_decapp", &LoadOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("no program named `xdp_decapp`"),
        "{message}"
    );
    assert!(message.contains("it has: xdp_decap"), "{message}");
}

/// A file that is not an ELF object is refused with its path.
#[test]
fn a_file_that_is_not_an_object_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"not an ELF file").unwrap();
    let err = LoadedProgram::from_file(&path, "prog", &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
}

#[test]
fn frames_beyond_the_kernels_limits_are_explained_with_the_limit() {
    for (object, len, kind) in [
        (datapath::TC_PASS, 64 * 1024, "sched_cls"),
        (datapath::XDP_PASS_FRAGS, 200 * 1024, "xdp"),
    ] {
        let prog = LoadedProgram::builtin(object, &LoadOptions::default()).unwrap();
        let err = testrun::run(&prog, &frame(len), Quirks::default()).unwrap_err();
        let RunError::TooLarge { limit, .. } = err else {
            panic!("{err}");
        };
        assert!(limit < len && limit > 1500, "{limit}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "a {len}-byte frame is larger than BPF_PROG_TEST_RUN takes for {kind} programs"
            )) && text.contains(&format!("at most {limit} bytes")),
            "{text}"
        );
        // The limit is the limit: one byte less runs.
        assert!(testrun::run(&prog, &frame(limit), Quirks::default()).is_ok());
    }
}
