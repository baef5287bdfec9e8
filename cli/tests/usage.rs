//! `walden --help`, the subcommands' help and usage errors (exit code 2).

mod common;

use common::*;

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    let o = run(&["--help"]);
    expect(&o, OK);
    let help = out(&o);
    for cmd in ["demo", "dump", "tail", "slots", "status", "verify", "recover", "archive", "replay", "bench"] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
    assert!(help.contains("Exit codes:"), "{help}");
    for code in 0..=11 {
        assert!(help.contains(&format!("\n  {code:>2}  ")), "exit code {code} undocumented:\n{help}");
    }
    assert!(help.contains("\n 130  interrupted"), "{help}");
    // The README's CLI tour documents the same codes.
    let readme = include_str!("../../README.md");
    let tour = &readme[readme.find("## CLI tour").expect("a CLI tour section")..];
    for code in (0..=11).chain([130]) {
        assert!(tour.contains(&format!("\n| {code} | ")), "exit code {code} missing from the README's CLI tour");
    }
    assert!(!help.contains("Not in this build"), "{help}");
    assert!(help.contains("<data-dir>.lake"), "{help}");
    for sub in [
        &["demo", "--help"][..],
        &["dump", "--help"],
        &["tail", "--help"],
        &["slots", "--help"],
        &["slots", "list", "--help"],
        &["slots", "create", "--help"],
        &["slots", "drop", "--help"],
        &["slots", "advance", "--help"],
        &["status", "--help"],
        &["verify", "--help"],
        &["recover", "--help"],
        &["archive", "--help"],
        &["archive", "compact", "--help"],
        &["archive", "expire", "--help"],
        &["replay", "--help"],
        &["bench", "--help"],
    ] {
        let o = run(sub);
        expect(&o, OK);
        assert!(out(&o).contains("--data-dir"), "{sub:?}");
    }
    expect(&run(&["--version"]), OK);
    expect(&run(&[]), USAGE);
    let archive_help = out(&run(&["archive", "--help"]));
    for needle in ["--once", "--follow", "--lake", "--catalog-path", "compact", "expire"] {
        assert!(archive_help.contains(needle), "{needle} missing from archive --help:\n{archive_help}");
    }
    let expire_help = out(&run(&["archive", "expire", "--help"]));
    assert!(expire_help.contains("--retain-last") && expire_help.contains("--older-than"), "{expire_help}");
    let replay_help = out(&run(&["replay", "--help"]));
    for needle in ["--from-lsn", "--end-lsn", "--format", "--table", "--lake"] {
        assert!(replay_help.contains(needle), "{needle} missing from replay --help:\n{replay_help}");
    }
    expect(&run(&["archive", "--once", "--follow"]), USAGE);
    expect(&run(&["archive", "--follow", "compact"]), USAGE);
    expect(&run(&["archive", "expire"]), USAGE); // --retain-last is required
    expect(&run(&["archive", "expire", "--retain-last", "0"]), USAGE);
    expect(&run(&["archive", "expire", "--retain-last", "1", "--older-than", "soon"]), USAGE);
    expect(&run(&["archive", "--max-age", "5"]), USAGE); // --max-age needs --follow
    expect(&run(&["replay"]), USAGE); // --from-lsn is required
    expect(&run(&["replay", "--from-lsn", "0"]), USAGE);
    expect(&run(&["frobnicate"]), USAGE);
}
