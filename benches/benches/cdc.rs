//! Criterion benchmarks of CDC change streams: decode throughput and table-filtered replay over
//! a pre-written log, and commit → subscriber latency on a live tail (`SyncMode::None`); ends
//! with a summary table.
//!
//! `cargo bench -p walden-benches --bench cdc` (about a minute on 2 cores after the build);
//! `-- --test` runs each body once on tiny data, and so does `WALDEN_BENCH_SMOKE=1`. See
//! BENCHMARKS.md.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use walden_benches::{BenchRoot, CDC_TABLES, CdcLog, Recorder, Scale, Suite, Workload, commit_to_subscriber_latency};

mod common;
use common::{group, or_exit, timed, timed_each};

fn main() {
    common::run(Suite::Cdc, bench_all);
}

fn bench_all(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    // 1 + 2. Replays of one pre-written log (built once, untimed; read once untimed so every
    // sample sees the mappings faulted in).
    {
        let mut fixture: Option<CdcLog> = None;
        let mut build = || {
            let log = or_exit(CdcLog::build(root, scale));
            or_exit(log.decode());
            log
        };
        let mut g = group(c, "cdc");
        g.throughput(Throughput::Elements(scale.cdc_changes));
        g.bench_function(format!("decode/{}_changes", scale.cdc_changes), |b| {
            let log = fixture.get_or_insert_with(&mut build);
            b.iter_custom(|iters| timed_each(rec, Workload::CdcDecode, iters, || log.decode()));
        });
        let tables = CDC_TABLES.len();
        g.throughput(Throughput::Elements(scale.cdc_changes / tables as u64));
        g.bench_function(format!("filtered_replay/1_of_{tables}_tables"), |b| {
            let log = fixture.get_or_insert_with(&mut build);
            let w = Workload::CdcFilteredReplay { tables };
            b.iter_custom(|iters| timed_each(rec, w, iters, || log.filtered_replay()));
        });
        g.finish();
    }

    // 3. Commit → subscriber latency. Criterion's time per iteration is the writer's pace (one
    // commit per `cdc_commit_interval_us`); the latencies are in the summary.
    {
        let mut g = group(c, "cdc_live");
        g.throughput(Throughput::Elements(1));
        let interval = Duration::from_micros(scale.cdc_commit_interval_us);
        g.bench_function(format!("commit_to_subscriber/paced_{}us", scale.cdc_commit_interval_us), |b| {
            b.iter_custom(|iters| {
                let sample = commit_to_subscriber_latency(root, iters, scale.cdc_row_bytes, interval);
                timed(rec, Workload::CdcCommitToSubscriber, sample)
            });
        });
        g.finish();
    }
}
