//! Runs every benchmark body once on tiny data (the smoke mode), so the benchmarks cannot rot:
//! each workload checks its own results (record counts, LSNs, what recovery truncated), and here
//! we check the figures they produce make sense.

use walden_benches::{BenchRoot, Machine, Recorder, Scale, Workload, run_once, summary};

fn smoke_run() -> (Recorder, Scale, BenchRoot) {
    let scale = Scale::smoke();
    let dir = tempfile::tempdir().expect("temp dir");
    // The test may run on tmpfs: the smoke run checks behaviour, not disk speed.
    let root = BenchRoot::at(dir.path().to_path_buf(), "test temp dir").expect("bench root");
    let rec = run_once(&scale, &root).expect("every benchmark body runs and passes its checks");
    // Every temporary directory the workloads made has been removed.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "leftover bench dirs: {leftovers:?}");
    (rec, scale, root)
}

#[test]
fn every_benchmark_body_runs_once_and_reports_sane_figures() {
    let (rec, scale, root) = smoke_run();
    let expected: Vec<Workload> = {
        let mut w = vec![
            Workload::RawSyncLoop { payload_bytes: 100 },
            Workload::RawSyncLoop { payload_bytes: 4096 },
            Workload::RawSeqWrite { synced: true },
            Workload::RawSeqWrite { synced: false },
            Workload::BufferedAppend { payload_bytes: 100 },
            Workload::DurableAlways { payload_bytes: 100 },
            Workload::DurableAlways { payload_bytes: 4096 },
            Workload::Scan,
            Workload::Seek,
            Workload::OpenAfterCrash { cold_cache: false },
            Workload::OpenAfterCrash { cold_cache: true },
        ];
        w.extend([1, 4, 16, 64].map(|threads| Workload::GroupCommit { threads, payload_bytes: 100 }));
        w.sort();
        w
    };
    assert_eq!(rec.workloads(), expected);
    assert_eq!(rec.ops(Workload::BufferedAppend { payload_bytes: 100 }), scale.once_buffered_records);
    assert_eq!(
        rec.ops(Workload::GroupCommit { threads: 64, payload_bytes: 100 }),
        64 * scale.once_group_appends_per_thread
    );
    assert_eq!(rec.ops(Workload::Seek), scale.once_seeks);
    // The raw loop ran standalone and beside every durable run (one writer's worth of ops).
    let group_pairs: u64 = scale.group_threads.iter().map(|_| scale.once_group_appends_per_thread).sum();
    assert_eq!(rec.ops(Workload::RawSyncLoop { payload_bytes: 100 }), 2 * scale.once_sync_ops + group_pairs);
    assert_eq!(rec.ops(Workload::RawSyncLoop { payload_bytes: 4096 }), 2 * scale.once_sync_ops);

    let rows = rec.rows();
    let value = |workload: &str, figure: &str| {
        rows.iter()
            .find(|r| r.workload.contains(workload) && r.figure == figure)
            .unwrap_or_else(|| panic!("no row {workload:?} / {figure:?}"))
            .value
    };
    for r in &rows {
        assert!(r.value.is_finite() && r.value >= 0.0, "{r:?}");
    }
    // Always: exactly one fdatasync per append.
    assert_eq!(value("SyncMode::Always, 1 thread", "fsyncs per append"), 1.0);
    // Group commit never syncs more than once per append, and one writer syncs every append.
    assert_eq!(value("SyncMode::Group, 1 thread", "fsyncs per append"), 1.0);
    for threads in [4, 16, 64] {
        let per_append = value(&format!("SyncMode::Group, {threads} threads"), "fsyncs per append");
        assert!(per_append > 0.0 && per_append <= 1.0, "{threads} threads: {per_append} fsyncs per append");
    }
    assert!(value("scan", "throughput") > 0.0);
    // The CPU-bound workloads also report their rate per CPU-second of the measuring thread.
    assert!(value("buffered append", "records per CPU-second") > 0.0);
    assert!(value("scan", "per CPU-second") > 0.0);
    assert!(value("seek", "mean CPU per lookup") > 0.0);
    assert!(value("seek", "p99 latency") >= value("seek", "p50 latency"));
    assert!(value("open after crash", "mean open time") > 0.0);

    let text = summary(&Machine::detect(), &root, &scale, &rec);
    assert!(text.contains("| workload | figure |"), "{text}");
    assert!(text.contains("group commit 100 B, SyncMode::Group, 64 threads"), "{text}");
}
