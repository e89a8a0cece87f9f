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
