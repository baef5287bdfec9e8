//! What the criterion targets (`wal`, `engine`, `cdc`, `archive`) share: the driver (smoke and test modes,
//! criterion settings, the summary file) and small helpers.

// Not every target uses every helper.
#![allow(dead_code)]

use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use walden_benches::{
    BenchError, BenchRoot, Machine, Recorder, Sample, Scale, Suite, Workload, run_suite_once, suite_summary, target_dir,
};

/// Measurement time of the fsync-bound groups (each sample also runs a raw-loop block beside the
/// measured work, so their wall time is about twice this).
pub const DURABLE_MEASUREMENT: Duration = Duration::from_secs(8);

/// Exits with the error: a benchmark that cannot do its work must not print a figure.
pub fn or_exit<T>(result: Result<T, BenchError>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1)
    })
}

/// Times one `iter_custom` batch and records its sample.
pub fn timed(rec: &mut Recorder, workload: Workload, sample: Result<Sample, BenchError>) -> Duration {
    let sample = or_exit(sample);
    let elapsed = sample.elapsed;
    rec.add(workload, sample);
    elapsed
}

/// Runs `run` once per criterion iteration, recording each sample as `workload`; returns their
/// total time (for workloads whose every iteration is one whole run: a file, a log, an open).
pub fn timed_each(
    rec: &mut Recorder,
    workload: Workload,
    iters: u64,
    mut run: impl FnMut() -> Result<Sample, BenchError>,
) -> Duration {
    (0..iters).map(|_| timed(rec, workload, run())).sum()
}

/// A group with flat sampling: fsync-bound and whole-log iterations take the same iteration
/// count in every sample.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g
}

/// The `main` of a criterion target: picks the scale (criterion's `--test` mode and
/// `cargo test --benches` get tiny data; `WALDEN_BENCH_SMOKE=1` runs each body once without
/// criterion), runs `bench_all` under criterion, then prints the suite's summary and writes it
/// to `<target dir>/walden-bench/` (unless no benchmark of the suite ran, e.g. filtered out).
pub fn run(suite: Suite, bench_all: fn(&mut Criterion, &mut Recorder, &Scale, &BenchRoot)) {
    // Criterion's rule: `cargo bench -- --test` and `cargo test --benches` (no `--bench`) run
    // each benchmark once; give those runs tiny data too.
    let args: Vec<String> = std::env::args().collect();
    let test_mode = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let smoke = Scale::smoke_requested();
    let scale = or_exit(if smoke || test_mode { Scale::smoke() } else { Scale::full() }.with_env_overrides());
    let root = or_exit(BenchRoot::choose());
    let machine = Machine::detect();
    eprintln!("walden-benches {}: scale {}, bench dir {}", suite.name(), scale.name, root.describe());

    let rec = if smoke && !test_mode {
        or_exit(run_suite_once(suite, &scale, &root))
    } else {
        let mut c = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .without_plots()
            .configure_from_args();
        let mut rec = Recorder::new();
        bench_all(&mut c, &mut rec, &scale, &root);
        c.final_summary();
        rec
    };

    // Profiling (`--profile-time`) and listing runs measure nothing worth a summary.
    if args.iter().any(|a| a == "--profile-time" || a.starts_with("--profile-time=") || a == "--list") {
        return;
    }
    if rec.workloads().is_empty() {
        eprintln!("walden-benches {}: no benchmark ran (filtered out); no summary", suite.name());
        return;
    }
    let text = suite_summary(suite, &machine, &root, &scale, &rec);
    println!("\n{text}");
    let out_dir = target_dir().join("walden-bench");
    let out_file = out_dir.join(suite.summary_file_name(scale.name));
    match std::fs::create_dir_all(&out_dir).and_then(|()| std::fs::write(&out_file, &text)) {
        Ok(()) => eprintln!("summary written to {}", out_file.display()),
        Err(e) => eprintln!("could not write {}: {e}", out_file.display()),
    }
}
