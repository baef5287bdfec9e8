//! `walden demo` end to end, its pyiceberg and DuckDB snippets included.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use walden_engine::{Config, Database};

use common::*;

#[test]
fn demo_runs_end_to_end_and_can_be_run_again() {
    let t = tmp();
    let dir = t.path().join("demo");
    let d = dir.to_str().expect("utf-8");
    let o = run(&["demo", "--data-dir", d, "--transactions", "300", "--threads", "3", "--segment-kib", "16"]);
    expect(&o, OK);
    let text = out(&o);
    for needle in [
        "commits/s",
        "events delivered",
        "slot lag now 0 LSNs",
        "slot audit",
        "segments",
        "rolled back",
        "Parquet file",
        "removed",
        "query the lake with pyiceberg",
        "from pyiceberg.catalog.sql import SqlCatalog",
        "INSTALL iceberg; LOAD iceberg;",
        "iceberg_scan(",
        "walden replay",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(err(&o).contains(&format!("creating {d}")), "{}", err(&o));
    let lake = lake_of(&dir);
    assert!(err(&o).contains(&format!("creating its lake {}", lake.display())), "{}", err(&o));
    assert!(lake.join("catalog.db").is_file() && lake.join(".walden-demo").is_file());
    // Every path the summary prints is real: the data files, the catalog and metadata in the snippets.
    let printed_files: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("file://")).collect();
    assert!(!printed_files.is_empty(), "{text}");
    for f in &printed_files {
        assert!(f.ends_with(".parquet") && Path::new(f).is_file(), "{f}");
    }
    assert!(text.contains(&format!("uri=\"sqlite:///{}\"", lake.join("catalog.db").display())), "{text}");
    let metadata = text
        .split("iceberg_scan('")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a metadata path in the DuckDB snippet");
    assert!(metadata.ends_with(".metadata.json") && Path::new(metadata).is_file(), "{metadata}");
    // The log it leaves is consistent, and the tools see it.
    expect(&walden(&dir, &["verify"]), OK);
    let slots = json(&walden(&dir, &["slots", "list", "--json"]));
    let demo = slot_row(&slots, "demo");
    let audit = slot_row(&slots, "audit");
    assert_eq!(demo["lag_lsns"], 0);
    assert!(audit["lag_lsns"].as_u64().expect("lag") > 0);
    // The unconsumed slot no longer pins the archived WAL: its consumer reads it from the lake.
    assert_eq!(audit["reads_archive"], true);
    assert_eq!(audit["pinned_bytes"], 0);
    let status = json(&walden(&dir, &["status", "--json"]));
    assert!(status["archived_lsn"].as_u64().expect("archived") > 0, "{status}");
    assert_eq!(status["sealed_segment_count"], 0, "the archived segments left the WAL: {status}");
    // The whole history, from the lake and then the WAL.
    let events = replay(&dir, &[]);
    let count = |table: &str, ty: &str| events.iter().filter(|e| e["table"] == table && e["type"] == ty).count();
    assert!(count("payments", "insert") > 0);
    assert!(count("orders", "delete") > 0);
    assert_eq!(count("users", "schema"), 2); // CREATE TABLE, ADD COLUMN
    let o = walden(&dir, &["tail", "--slot", "audit", "--drain"]);
    expect(&o, OK);
    assert_eq!(json_lines(&o).len(), count("payments", "insert"), "the audit slot reads its backlog from the lake");

    // Again, as JSON: it says it resets the directory it left.
    let o = run(&["demo", "--json", "--data-dir", d, "--transactions", "200", "--threads", "2", "--segment-kib", "16"]);
    expect(&o, OK);
    let s = json(&o);
    assert!(s["prepared"].as_str().expect("text").starts_with("resetting"), "{s}");
    assert!(s["prepared"].as_str().expect("text").contains("resetting its lake"), "{s}");
    let a = &s["archive"];
    assert_eq!(a["lake"]["dir"], lake.to_str().expect("utf-8"));
    assert_eq!(a["first_lsn"], 1);
    assert_eq!(a["table"]["snapshots"], 1, "the reset lake holds only this run: {a}");
    assert_eq!(a["table"]["records"], a["rows"]);
    assert_eq!(a["checkpoint"]["removed_segments"].as_u64(), a["segments"].as_u64());
    assert_eq!(s["checkpoint_removed_segments"].as_u64(), a["segments"].as_u64());
    assert!(Path::new(a["lake"]["catalog"].as_str().expect("path")).is_file());
    let metadata = a["table"]["metadata_location"].as_str().expect("metadata");
    assert!(Path::new(metadata.strip_prefix("file://").expect("file URL")).is_file(), "{metadata}");
    assert!(a["pyiceberg"].as_str().expect("code").contains(lake.join("catalog.db").to_str().expect("utf-8")));
    assert!(a["duckdb_sql"].as_str().expect("sql").contains(metadata.strip_prefix("file://").expect("file URL")));
    check_demo_snippets(a);
    let sub = &s["subscriber"];
    assert_eq!(
        sub["events"].as_u64(),
        Some(
            s["inserts"].as_u64().expect("n")
                + s["updates"].as_u64().expect("n")
                + s["deletes"].as_u64().expect("n")
                + s["schema_changes"].as_u64().expect("n")
        ),
        "the subscriber saw every change: {s}"
    );
    assert_eq!(sub["transactions"], s["transactions_committed"]);
    assert_eq!(sub["acknowledged_lsn"], s["last_lsn"]);
    assert_eq!(s["slot_demo_lag_lsns"], 0);
    assert!(s["transactions_rolled_back"].as_u64().expect("n") > 0);
    assert_eq!(
        s["transactions_committed"].as_u64().expect("n") + s["transactions_rolled_back"].as_u64().expect("n"),
        201
    );
    assert!(s["segments"].as_u64().expect("n") > 1);
    assert!(s["commits_per_second"].as_f64().expect("rate") > 0.0);
    let o = run(&["demo", "--data-dir", d, "--transactions", "20"]);
    expect(&o, OK);
    assert!(err(&o).contains("resetting"), "{}", err(&o));

    // Locked while another process has it open.
    let db = Database::open(&dir, Config::default()).expect("open");
    let o = run(&["demo", "--data-dir", d, "--transactions", "20"]);
    expect(&o, LOCKED);
    db.close().expect("close");

    // A directory the demo did not create is never reset.
    let other = t.path().join("mine");
    fixture(&other);
    let before = snapshot(&other);
    let o = run(&["demo", "--data-dir", other.to_str().expect("utf-8"), "--transactions", "20"]);
    expect(&o, FOREIGN);
    assert!(err(&o).contains("refusing to reset"), "{}", err(&o));
    assert_eq!(before, snapshot(&other));
    // Nor a lake directory it did not create: refused before either directory is touched.
    let fresh = t.path().join("fresh");
    fs::create_dir(lake_of(&fresh)).expect("mkdir");
    fs::write(lake_of(&fresh).join("mine.parquet"), "x").expect("write");
    let o = run(&["demo", "--data-dir", fresh.to_str().expect("utf-8"), "--transactions", "20"]);
    expect(&o, FOREIGN);
    assert!(err(&o).contains("refusing to reset"), "{}", err(&o));
    assert!(!fresh.exists());
    assert_eq!(fs::read_dir(lake_of(&fresh)).expect("list").count(), 1);
    expect(&run(&["demo", "--data-dir", d, "--threads", "0"]), USAGE);
}

/// The lake venv's python (`scripts/lake_venv.sh`, as the archive's reader tests find it), if
/// there is one with pyiceberg and DuckDB.
fn lake_python() -> Option<PathBuf> {
    walden_archive::testing::lake_python_candidates().into_iter().find(|p| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import duckdb, pyiceberg.catalog.sql"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// Runs the demo's pyiceberg snippet as printed, and its DuckDB query (with the iceberg
/// extension loaded from the venv's wheels instead of `INSTALL iceberg`, which needs the
/// network): both must see every archived row. Skipped without the lake venv unless
/// `WALDEN_REQUIRE_LAKE_VENV` is set (as the test command sets it).
fn check_demo_snippets(archive: &Value) {
    let required = std::env::var("WALDEN_REQUIRE_LAKE_VENV").is_ok_and(|v| !v.is_empty() && v != "0");
    let Some(python) = lake_python() else {
        assert!(!required, "WALDEN_REQUIRE_LAKE_VENV is set but there is no lake venv with pyiceberg and duckdb");
        eprintln!("skipping the pyiceberg / DuckDB run of the demo's snippets: no lake venv (scripts/lake_venv.sh)");
        return;
    };
    let records = archive["table"]["records"].as_u64().expect("records");
    let o = Command::new(&python).args(["-c", archive["pyiceberg"].as_str().expect("code")]).output().expect("python");
    assert!(
        o.status.success(),
        "the pyiceberg snippet failed:
{}",
        err(&o)
    );
    let text = out(&o);
    assert!(
        text.starts_with(&format!(
            "{records} events
"
        )),
        "{text}"
    );
    let per_group: u64 =
        text.lines().skip(1).map(|l| l.split_whitespace().last().expect("a count").parse::<u64>().expect("n")).sum();
    assert_eq!(per_group, records, "{text}");
    assert!(text.lines().any(|l| l.starts_with("payments  insert")), "{text}");
    let duck = r#"
import glob, os, sys, sysconfig
import duckdb
root = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions", "v" + duckdb.__version__)
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
for name in ("parquet", "avro", "iceberg"):
    (path,) = glob.glob(os.path.join(root, "*", name + ".duckdb_extension"))
    con.execute("LOAD '" + path + "'")
print(sum(row[2] for row in con.execute(sys.argv[1]).fetchall()))
"#;
    let o = Command::new(&python)
        .args(["-c", duck, archive["duckdb_sql"].as_str().expect("sql")])
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "the DuckDB query failed:
{}",
        err(&o)
    );
    assert_eq!(out(&o).trim(), records.to_string());
}
