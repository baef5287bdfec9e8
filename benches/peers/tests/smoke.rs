//! The side-by-side harness at tiny sizes, as an ordinary test so that it cannot rot: every
//! workload runs for Walden, the raw-disk limits and whichever peers are compiled in (none by
//! default; `--features all-peers` for all), and checks its own result.

use walden_benches::{BenchRoot, Machine};
use walden_peers::{Scale, Selection, contenders, run, summary};

#[test]
fn every_workload_runs_at_tiny_sizes_and_reports_sane_figures() {
    let scale = Scale::smoke();
    let dir = tempfile::tempdir().expect("temp dir");
    // The test may run on tmpfs: the smoke run checks behaviour, not disk speed.
    let root = BenchRoot::at(dir.path().to_path_buf(), "test temp dir").expect("bench root");
    let all = contenders();
    assert_eq!(all[0].name(), "walden");
    let result = run(&scale, &root, &all, &Selection::default(), &mut |_| {})
        .expect("every workload runs and passes its checks");

    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "leftover bench dirs: {leftovers:?}");

    // 4 single-writer rows, 3 committer counts, 4 transaction rows (+1 rows/s row per 100-row
    // one), 2 replay rows, 2 reopen rows.
    let rows = result.rows();
    assert_eq!(rows.len(), 4 + 3 + 4 + 2 + 2 + 2, "{rows:#?}");
    for row in &rows {
        let w = row.walden.unwrap_or_else(|| panic!("no Walden figure in {row:?}"));
        assert!(w.is_finite() && w > 0.0, "{row:?}");
        assert_eq!(row.peers.len(), all.len() - 1);
        for p in row.peers.iter().flatten() {
            assert!(p.is_finite() && *p > 0.0, "{row:?}");
        }
        if !row.workload.starts_with("5. reopen") {
            let limit = row.limit.unwrap_or_else(|| panic!("no limit in {row:?}"));
            assert!(limit.is_finite() && limit > 0.0, "{row:?}");
        }
    }
    let replay = result.replay.as_ref().expect("replay ran");
    let walden = replay.results.iter().find(|r| r.name == "walden").expect("walden replayed");
    assert_eq!(walden.log.map(|r| r.records), Some(scale.replay_records));
    assert_eq!(walden.rows.map(|r| r.records), Some(scale.replay_records));
    assert_eq!(walden.log.map(|r| r.bytes), Some(scale.replay_records * scale.small_record_bytes as u64));

    let text = summary(&result, &Machine::detect(), &root, &all);
    assert!(text.contains("| workload | unit | walden |"), "{text}");
    assert!(text.contains("2. 64 concurrent committers"), "{text}");
    assert!(text.contains("targets:"), "{text}");
}
