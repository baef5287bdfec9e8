//! `walden-peers`: runs the side-by-side comparison and prints one table (see `BENCHMARKS.md`).
//!
//! ```text
//! walden-peers [--smoke] [--only rates|replay|reopen] [--filter TEXT] [--peers a,b] [--out FILE]
//! ```
//! `--filter` keeps the rate workloads whose label contains TEXT; `--peers` keeps only the named
//! contenders (`walden` included), e.g. to profile one of them.
//! Environment: `WALDEN_BENCH_DIR` (where to write; a real disk, not tmpfs),
//! `WALDEN_PEERS_SLICE_MS`, `WALDEN_PEERS_ROUNDS`, `WALDEN_PEERS_REPLAY_RECORDS`,
//! `WALDEN_PEERS_REOPEN_MIB`; `WALDEN_PEERS_PREALLOCATE_BYTES` sets Walden's
//! `WalConfig::preallocate_bytes` (default: the WAL default, 4 MiB; 0 = off);
//! `WALDEN_PEERS_FLUSHER=0` turns Walden's group-commit flusher thread off.

use std::process::ExitCode;

use walden_benches::{BenchRoot, Machine};
use walden_peers::{Scale, Selection, contenders, run, summary};

fn main() -> ExitCode {
    let mut scale = Scale::full();
    let mut selection = Selection::default();
    let mut out_file = None;
    let mut only_peers: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => scale = Scale::smoke(),
            "--only" => {
                let what = args.next().unwrap_or_default();
                selection.rates = what == "rates";
                selection.replay = what == "replay";
                selection.reopen = what == "reopen";
                if !(selection.rates || selection.replay || selection.reopen) {
                    eprintln!("--only takes rates, replay or reopen");
                    return ExitCode::from(2);
                }
            }
            "--out" => out_file = args.next(),
            "--filter" => selection.rate_filter = args.next(),
            "--peers" => only_peers = args.next().map(|l| l.split(',').map(str::to_string).collect()),
            "-h" | "--help" => {
                println!(
                    "walden-peers [--smoke] [--only rates|replay|reopen] [--filter TEXT] [--peers a,b] [--out FILE]"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let scale = scale.with_env_overrides();
    let root = match BenchRoot::choose() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("bench dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    let machine = Machine::detect();
    let mut all = contenders();
    if let Some(keep) = &only_peers {
        all.retain(|p| keep.iter().any(|k| k == p.name()));
    }
    let names: Vec<_> = all.iter().map(|p| p.name()).collect();
    eprintln!("contenders: {}; bench dir: {}", names.join(", "), root.describe());
    let started = std::time::Instant::now();
    let mut progress = |what: &str| eprintln!("[{:>5.0} s] {what}", started.elapsed().as_secs_f64());
    let result = match run(&scale, &root, &all, &selection, &mut progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = summary(&result, &machine, &root, &all);
    print!("{text}");
    if let Some(path) = out_file
        && let Err(e) = std::fs::write(&path, &text)
    {
        eprintln!("write {path}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("finished in {:.0} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
