//! Runs every benchmark body once on tiny data (the smoke mode), so the benchmarks cannot rot:
//! each workload checks its own results (record counts, LSNs, event order, what recovery
//! truncated), and here we check the figures they produce make sense.

use walden_benches::{
    ARCHIVE_ROW_MAX_BYTES, ARCHIVE_ROW_MIN_BYTES, ArchiveRows, BenchRoot, CommitSync, Machine, Recorder, Row, Scale,
    Suite, Workload, archive_row_image, run_once, run_suite_once, suite_summary, summary,
};

fn smoke_run() -> (Recorder, Scale, BenchRoot) {
    smoke_run_suite(None)
}

/// Runs `suite` (`None`: the WAL through `run_once`) in a fresh directory and checks that
/// every temporary directory was removed.
fn smoke_run_suite(suite: Option<Suite>) -> (Recorder, Scale, BenchRoot) {
    let scale = Scale::smoke();
    let dir = tempfile::tempdir().expect("temp dir");
    // The test may run on tmpfs: the smoke run checks behaviour, not disk speed.
    let root = BenchRoot::at(dir.path().to_path_buf(), "test temp dir").expect("bench root");
    let rec = match suite {
        None => run_once(&scale, &root),
        Some(suite) => run_suite_once(suite, &scale, &root),
    }
    .expect("every benchmark body runs and passes its checks");
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

fn value(rows: &[Row], workload: &str, figure: &str) -> f64 {
    rows.iter()
        .find(|r| r.workload.contains(workload) && r.figure == figure)
        .unwrap_or_else(|| panic!("no row {workload:?} / {figure:?}"))
        .value
}

#[test]
fn engine_benchmark_bodies_run_once_and_report_sane_figures() {
    let (rec, scale, root) = smoke_run_suite(Some(Suite::Engine));
    let mut expected: Vec<Workload> = [CommitSync::Always, CommitSync::Group]
        .into_iter()
        .flat_map(|sync| {
            scale.engine_threads.iter().map(move |&threads| Workload::EngineCommit { sync, threads, row_bytes: 100 })
        })
        .collect();
    assert_eq!(scale.engine_threads, [1, 8, 64]);
    let raw = rec.workloads().into_iter().find(|w| matches!(w, Workload::RawSyncLoop { .. }));
    expected.extend(raw);
    expected.sort();
    assert_eq!(rec.workloads(), expected, "the six engine workloads and the raw loop beside them");
    for sync in [CommitSync::Always, CommitSync::Group] {
        let w = Workload::EngineCommit { sync, threads: 64, row_bytes: 100 };
        assert_eq!(rec.ops(w), 64 * scale.once_engine_commits_per_thread);
    }
    let rows = rec.rows();
    for r in &rows {
        assert!(r.value.is_finite() && r.value >= 0.0, "{r:?}");
    }
    for threads in [1, 8, 64] {
        let plural = if threads == 1 { "" } else { "s" };
        let always = format!("SyncMode::Always, {threads} thread{plural}");
        let group = format!("SyncMode::Group, {threads} thread{plural}");
        // Always: one fdatasync per commit whatever the concurrency; Group at most one.
        assert_eq!(value(&rows, &always, "fsyncs per commit"), 1.0);
        let per_commit = value(&rows, &group, "fsyncs per commit");
        assert!(per_commit > 0.0 && per_commit <= 1.0, "{group}: {per_commit}");
        for name in [&always, &group] {
            assert!(value(&rows, name, "commits/s") > 0.0);
            assert!(value(&rows, name, "p99 commit latency") >= value(&rows, name, "p50 commit latency"));
        }
    }
    let text = suite_summary(Suite::Engine, &Machine::detect(), &root, &scale, &rec);
    assert!(text.contains("engine one-row txn (100 B row), SyncMode::Group, 64 threads"), "{text}");
    assert!(text.contains("raw pwrite+fdatasync loop"), "{text}");
}

#[test]
fn cdc_benchmark_bodies_run_once_and_report_sane_figures() {
    let (rec, scale, root) = smoke_run_suite(Some(Suite::Cdc));
    let expected =
        vec![Workload::CdcDecode, Workload::CdcFilteredReplay { tables: 4 }, Workload::CdcCommitToSubscriber];
    assert_eq!(rec.workloads(), expected);
    // The workloads counted exactly the events they were meant to deliver.
    assert_eq!(rec.ops(Workload::CdcDecode), scale.cdc_changes);
    assert_eq!(rec.ops(Workload::CdcFilteredReplay { tables: 4 }), scale.cdc_changes / 4);
    assert_eq!(rec.ops(Workload::CdcCommitToSubscriber), scale.once_cdc_latency_commits);
    let rows = rec.rows();
    for r in &rows {
        assert!(r.value.is_finite() && r.value >= 0.0, "{r:?}");
    }
    assert!(value(&rows, "CDC decode", "events/s") > 0.0);
    assert!(value(&rows, "CDC decode", "events per CPU-second") > 0.0);
    assert!(value(&rows, "CDC filtered replay", "delivered events/s") > 0.0);
    let p50 = value(&rows, "CDC commit → subscriber", "p50 latency");
    let p99 = value(&rows, "CDC commit → subscriber", "p99 latency");
    assert!(p50 > 0.0 && p99 >= p50, "p50 {p50} µs, p99 {p99} µs");
    let text = suite_summary(Suite::Cdc, &Machine::detect(), &root, &scale, &rec);
    assert!(text.contains("CDC commit → subscriber, live tail, SyncMode::None"), "{text}");
}

#[test]
fn archive_benchmark_bodies_run_once_and_report_sane_figures() {
    let (rec, scale, root) = smoke_run_suite(Some(Suite::Archive));
    let mut expected = vec![
        Workload::ArchiveThroughput { rows: ArchiveRows::Json },
        Workload::ArchiveThroughput { rows: ArchiveRows::Incompressible },
        Workload::ArchiveColdReplay,
        Workload::ArchiveHotReplay,
    ];
    expected.sort();
    assert_eq!(rec.workloads(), expected);
    // Every workload archived or replayed exactly the log's changes.
    for w in expected {
        assert_eq!(rec.ops(w), scale.archive_changes, "{w:?}");
    }
    let rows = rec.rows();
    for r in &rows {
        assert!(r.value.is_finite() && r.value >= 0.0, "{r:?}");
    }
    let json = ArchiveRows::Json.describe();
    let random = ArchiveRows::Incompressible.describe();
    for kind in [json, random] {
        assert!(value(&rows, kind, "events/s") > 0.0);
        assert!(value(&rows, kind, "events per CPU-second (process)") > 0.0);
        let data = value(&rows, kind, "lake data files ÷ WAL bytes");
        let with_metadata = value(&rows, kind, "lake data + metadata ÷ WAL bytes");
        assert!(data > 0.0 && with_metadata > data, "{kind}: {data} / {with_metadata}");
    }
    // JSON compresses; random bytes do not (Parquet adds keys, LSNs and framing to them).
    assert!(value(&rows, json, "lake data files ÷ WAL bytes") < value(&rows, random, "lake data files ÷ WAL bytes"));
    assert!(value(&rows, random, "lake data files ÷ WAL bytes") > 0.5);
    assert!(value(&rows, "cold replay", "events/s") > 0.0);
    assert!(value(&rows, "hot replay", "events/s") > 0.0);
    let cold = rows.iter().find(|r| r.workload.contains("cold replay") && r.figure == "events/s").unwrap();
    assert!(cold.ratio.contains("× hot"), "{cold:?}");
    let text = suite_summary(Suite::Archive, &Machine::detect(), &root, &scale, &rec);
    assert!(text.contains("archive sealed segments → Parquet"), "{text}");
    assert!(text.contains("lake data files ÷ WAL bytes"), "{text}");
}

#[test]
fn archive_row_images_are_deterministic_and_sized_like_a_web_apps_rows() {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..2_000 {
        for version in [0, 1] {
            archive_row_image(ArchiveRows::Json, i, version, &mut a);
            archive_row_image(ArchiveRows::Json, i, version, &mut b);
            assert_eq!(a, b);
            assert!(
                (ARCHIVE_ROW_MIN_BYTES..=ARCHIVE_ROW_MAX_BYTES).contains(&a.len()),
                "{}",
                String::from_utf8_lossy(&a)
            );
            let text = std::str::from_utf8(&a).expect("UTF-8");
            assert!(text.starts_with(&format!("{{\"id\":{i},")) && text.ends_with('}'), "{text}");
            archive_row_image(ArchiveRows::Incompressible, i, version, &mut a);
            assert!((ARCHIVE_ROW_MIN_BYTES..=ARCHIVE_ROW_MAX_BYTES).contains(&a.len()));
        }
        // An update changes the row.
        archive_row_image(ArchiveRows::Json, i, 0, &mut a);
        archive_row_image(ArchiveRows::Json, i, 1, &mut b);
        assert_ne!(a, b);
    }
}
