//! Criterion benchmarks of the archive (`walden-archive`): `Archiver::archive_sealed` of a
//! pre-written log into a fresh local `file://` lake per run (JSON and incompressible rows; the
//! lake's bytes against the WAL's), and a replay through `Archiver::cdc()` over a trimmed WAL —
//! every event from the lake — beside the same replay from the WAL; ends with a summary table.
//!
//! `cargo bench -p walden-benches --bench archive` (a few minutes on 2 cores after the build);
//! `-- --test` runs each body once on tiny data, and so does `WALDEN_BENCH_SMOKE=1`. See
//! BENCHMARKS.md.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use walden_benches::{ArchiveLog, ArchiveRows, BenchRoot, Recorder, ReplayLog, Scale, Suite, Workload};

mod common;
use common::{group, or_exit, timed, timed_each};

/// Samples per benchmark: one archive run of the full log takes about a second or more, plus
/// as long again for its untimed read-back check.
const SAMPLES: usize = 10;

fn main() {
    common::run(Suite::Archive, bench_all);
}

fn bench_all(c: &mut Criterion, rec: &mut Recorder, scale: &Scale, root: &BenchRoot) {
    // 1. Archive throughput: each iteration archives the whole pre-written log into a fresh
    // lake (opened untimed) and reads it back to check it (untimed).
    {
        let mut g = group(c, "archive");
        g.sample_size(SAMPLES);
        g.measurement_time(Duration::from_secs(10));
        g.throughput(Throughput::Elements(scale.archive_changes));
        for rows in ArchiveRows::ALL {
            let mut fixture: Option<ArchiveLog> = None;
            let name = match rows {
                ArchiveRows::Json => "json",
                ArchiveRows::Incompressible => "incompressible",
            };
            g.bench_function(format!("archive_sealed/{name}/{}_changes", scale.archive_changes), |b| {
                let log = fixture.get_or_insert_with(|| or_exit(ArchiveLog::build(root, scale, rows)));
                b.iter_custom(|iters| timed_each(rec, Workload::ArchiveThroughput { rows }, iters, || log.archive()));
            });
        }
        g.finish();
    }

    // 2. Cold replay from the lake against hot replay from the WAL, over the same JSON log
    // (built, archived, trimmed and checked cold = hot once, untimed). Each iteration runs both,
    // in alternating order, so the ratio sees the same machine; criterion's figure is the pair.
    {
        let mut fixture: Option<ReplayLog> = None;
        let mut g = group(c, "archive_replay");
        g.sample_size(SAMPLES);
        g.measurement_time(Duration::from_secs(10));
        g.throughput(Throughput::Elements(2 * scale.archive_changes));
        g.bench_function(format!("cold_and_hot/{}_changes", scale.archive_changes), |b| {
            let log = fixture.get_or_insert_with(|| or_exit(ReplayLog::build(root, scale)));
            let mut cold_first = true;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for cold in [cold_first, !cold_first] {
                        total += if cold {
                            timed(rec, Workload::ArchiveColdReplay, log.cold_replay())
                        } else {
                            timed(rec, Workload::ArchiveHotReplay, log.hot_replay())
                        };
                    }
                    cold_first = !cold_first;
                }
                total
            });
        });
        g.finish();
    }
}
