//! Walden against an Iceberg REST catalog: `tests/py/rest_catalog.py` (pyiceberg's SqlCatalog
//! behind the REST protocol, with a bearer token, an OAuth2 token endpoint and a path prefix, as
//! R2 Data Catalog has) on a free loopback port. The archiver creates the table through it,
//! archives in several snapshots, reads everything back through the iceberg scan, replays
//! hot + cold after the WAL was trimmed, refuses maintenance, keeps the data files of a commit
//! whose answer was lost and removes those of a refused one, evolves the schema, and pyiceberg's
//! own REST client reads the result. Secrets never appear in `Debug` output or errors.
//!
//! Runs when the venv of `scripts/lake_venv.sh` exists (found as the other lake tests find it;
//! `WALDEN_LAKE_PYTHON` names another interpreter with pyiceberg 0.12); with
//! `WALDEN_REQUIRE_LAKE_VENV=1` a missing venv fails the test instead of skipping it. The server is killed when the test ends, also on failure (and
//! exits by itself when its standard input closes, should the test process die).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use walden_archive::{
    ArchiveError, Archiver, CatalogConfig, CatalogKind, CompactOptions, ExpireOptions, LakeConfig, RestCatalogOptions,
    S3Options,
};
use walden_cdc::{Cdc, CdcError, Event, SubscriptionOptions};
use walden_engine::{Column, Database, Lsn};

mod common;
use common::{
    Fixture, begin_with_metadata, change_lsns, collect, first_line, fixture, parquet_files, scanned_lsns,
    small_db_config,
};

const TOKEN: &str = "test-bearer-token-4b1d";
const CREDENTIAL: &str = "walden-client:test-client-secret-9c2e";
const PREFIX: &str = "acct_bucket";
/// What R2 Data Catalog's warehouse looks like (a name, not a URL).
const WAREHOUSE: &str = "acct_bucket";

/// The lake venv's python ([`walden_archive::testing::lake_python`]).
fn python() -> Option<PathBuf> {
    walden_archive::testing::lake_python()
}

/// The interpreter, or `None` (skip) when there is none and the test command does not require
/// one (`WALDEN_REQUIRE_LAKE_VENV` set to anything but `0`).
fn python_or_skip() -> Option<PathBuf> {
    let found = python();
    if found.is_none() {
        let required = std::env::var("WALDEN_REQUIRE_LAKE_VENV").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(!required, "WALDEN_REQUIRE_LAKE_VENV is set but there is no lake venv: run scripts/lake_venv.sh");
        eprintln!("REST catalog test skipped: no lake venv (run scripts/lake_venv.sh, or set WALDEN_LAKE_PYTHON)");
    }
    found
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/rest_catalog.py")
}

/// The catalog server; killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(python: &Path, dir: &Path, warehouse_url: &str) -> Server {
        let log = dir.join("rest-catalog.log");
        let mut child = Command::new(python)
            .arg(script())
            .arg("serve")
            .arg("--db")
            .arg(dir.join("rest-catalog.db"))
            .args(["--warehouse", warehouse_url, "--token", TOKEN, "--credential", CREDENTIAL, "--prefix", PREFIX])
            // Vended credentials in every table config, as some catalogs send: Walden ignores them.
            .args(["--table-config", "s3.access-key-id=vended-key-id"])
            .args(["--table-config", "s3.secret-access-key=vended-secret"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut server = Server { child, port: 0, log };
        let line = first_line(stdout, Duration::from_secs(60));
        server.port = match line.trim().strip_prefix("LISTENING ").and_then(|p| p.parse().ok()) {
            Some(port) => port,
            None => panic!("rest_catalog.py did not start ({line:?}): {}", server.log_text()),
        };
        server
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request to the server's own test hooks (`_test/...`), returns the response.
    fn hook(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request = format!(
            "{method} /v1/{PREFIX}/_test/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 2"), "{method} {path}: {response}");
        response
    }

    fn fail_next_commit(&self, mode: &str) {
        self.hook("POST", "fail-next-commit", &format!("{{\"mode\":\"{mode}\"}}"));
    }
}

/// Mixed transactions (JSON and binary images, deletes, metadata, schema changes, empty ones);
/// seals the active segment at the end. Returns the last LSN.
fn workload(db: &Database, start: u32, n: u32) -> Lsn {
    for i in start..start + n {
        if i % 11 == 5 {
            db.begin().commit().unwrap();
            continue;
        }
        let mut t = begin_with_metadata(db, i);
        let key = i.to_be_bytes();
        let json = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize % 40));
        t.insert("users", &key, json.as_bytes()).unwrap();
        if i % 3 == 0 {
            t.update("blobs", &key, &[0xff, 0x00, i as u8], &[1, 2]).unwrap();
        }
        if i % 5 == 0 {
            t.delete("users", &key, json.as_bytes()).unwrap();
        }
        if i % 50 == 9 {
            t.create_table(&format!("t{i}"), 1, &[Column::new("id", "int", false)]).unwrap();
        }
        t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
    db.wal().next_lsn() - 1
}

fn rest_lake(server: &Server, lake_dir: &Path) -> LakeConfig {
    LakeConfig {
        catalog: CatalogConfig::Rest(RestCatalogOptions::with_token(server.uri(), WAREHOUSE, TOKEN)),
        ..LakeConfig::local_dir(lake_dir).unwrap()
    }
}

#[test]
fn archives_replays_and_reads_back_through_a_rest_catalog() {
    let Some(python) = python_or_skip() else { return };
    let Fixture { db, lake_dir, dir } = fixture();
    let lake_url = LakeConfig::local_dir(&lake_dir).unwrap().url;
    let server = Server::start(&python, dir.path(), &lake_url);
    let lake = rest_lake(&server, &lake_dir);
    assert!(!format!("{lake:?}").contains(TOKEN));

    // Open: namespace and table are created through the catalog, which chose the location.
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    assert_eq!(archiver.lake().catalog_kind(), CatalogKind::Rest);
    assert!(!archiver.lake().is_embedded());
    assert_eq!(archiver.lake().catalog_uri(), server.uri());
    let shown = format!("{archiver:?} {:?}", archiver.lake().catalog());
    assert!(shown.contains(&server.uri()) && !shown.contains(TOKEN), "{shown}");
    let location = archiver.block_on(archiver.lake().load_table()).unwrap().metadata().location().to_string();
    assert!(location.starts_with(&lake_url), "{location}");
    assert!(!lake_dir.join(walden_archive::config::CATALOG_FILE_NAME).exists(), "no embedded catalog");

    // Archive in two runs (several snapshots), read back through the iceberg scan.
    workload(&db, 0, 120);
    let first = archiver.archive_sealed().unwrap();
    assert!(!first.batches.is_empty());
    let end1 = workload(&db, 120, 80);
    let second = archiver.archive_sealed().unwrap();
    assert_eq!(second.last_archived_lsn, Some(end1));
    let expected = change_lsns(&db, 1, end1);
    assert_eq!(first.rows() + second.rows(), expected.len() as u64);
    assert_eq!(scanned_lsns(&archiver), expected);
    let batches: Vec<_> = first.batches.iter().chain(&second.batches).cloned().collect();
    for pair in batches.windows(2) {
        assert_eq!(pair[1].range.first_lsn, pair[0].range.last_lsn + 1, "contiguous snapshot ranges");
    }

    // Reruns add nothing; a fresh archiver finds its position in the catalog.
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end1));

    // Hot + cold replay: what a pure hot replay gave before the WAL was trimmed.
    let hot = Cdc::new(db.clone());
    let everything = SubscriptionOptions { from_lsn: 1, end_lsn: Some(end1), ..Default::default() };
    let with_control = everything.clone().with_transaction_control(true);
    let want_all = collect(&hot, everything.clone());
    let want_control = collect(&hot, with_control.clone());
    let checkpoint = db.checkpoint().unwrap();
    assert!(!checkpoint.removed_segments.is_empty());
    assert!(matches!(hot.subscribe(SubscriptionOptions::from_lsn(1)), Err(CdcError::LsnNotFound { .. })));
    let tiered = archiver.cdc();
    assert_eq!(collect(&tiered, everything), want_all);
    assert_eq!(collect(&tiered, with_control), want_control);
    drop(tiered);

    // Maintenance refuses (the catalog maintains the table); the error names the catalog.
    let before = parquet_files(&lake_dir);
    for (what, result) in [
        ("expire", archiver.expire_snapshots(ExpireOptions { retain_last: 1, older_than_ms: None }).map(|_| ())),
        ("compact", archiver.compact(CompactOptions::default()).map(|_| ())),
        ("remove unreferenced", archiver.remove_unreferenced_files().map(|_| ())),
    ] {
        match result {
            Err(ArchiveError::ExternalCatalog { catalog, .. }) => assert_eq!(catalog, server.uri(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // No orphan sweep at open either: a file the catalog does not reference stays.
    let stray = Path::new(&location["file://".len()..]).join("data/stray-from-another-writer.parquet");
    std::fs::write(&stray, b"not ours to delete").unwrap();
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    assert!(stray.exists(), "the orphan sweep ran on a REST catalog");
    std::fs::remove_file(&stray).unwrap();
    assert_eq!(parquet_files(&lake_dir), before);

    // A commit the catalog applied but whose answer was lost: the data files stay (they are
    // referenced), and the rerun finds the batch archived.
    let end2 = workload(&db, 200, 40);
    server.fail_next_commit("lost-answer");
    let err = archiver.archive_sealed().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&server.uri()) && !text.contains(TOKEN), "{text}");
    let rerun = archiver.archive_sealed().unwrap();
    assert!(rerun.batches.is_empty(), "{rerun:?}");
    assert_eq!(rerun.last_archived_lsn, Some(end2));

    // A commit the catalog refused: nothing changed, its files are removed, the rerun archives.
    let with_lost = parquet_files(&lake_dir);
    let end3 = workload(&db, 240, 40);
    server.fail_next_commit("conflict");
    match archiver.archive_sealed() {
        Err(ArchiveError::Iceberg(e)) => assert_eq!(e.kind(), iceberg::ErrorKind::CatalogCommitConflicts, "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(parquet_files(&lake_dir), with_lost, "the refused batch's files are removed");
    assert_eq!(archiver.archive_sealed().unwrap().last_archived_lsn, Some(end3));

    // Another writer's maintenance (R2 Data Catalog's compaction) leaves a replace snapshot
    // without Walden's properties: the position is still found and archiving goes on.
    server.hook("POST", "external-replace/walden/events", "");
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end3));
    let end4 = workload(&db, 280, 30);
    assert_eq!(archiver.archive_sealed().unwrap().last_archived_lsn, Some(end4));
    let mut all = expected.clone();
    all.extend(change_lsns(&db, end1 + 1, end4));
    assert_eq!(scanned_lsns(&archiver), all);
    let cold = collect(&archiver.cdc(), SubscriptionOptions { from_lsn: 1, end_lsn: Some(end4), ..Default::default() });
    let cold_lsns: Vec<Lsn> = cold.iter().map(Event::lsn).collect();
    assert_eq!(cold_lsns, all, "hot + cold replay over the replaced snapshot");

    // Schema evolution through the catalog.
    archiver.add_column("source", iceberg::spec::PrimitiveType::String, None).unwrap();

    // pyiceberg's own REST client reads the table through the server.
    let out =
        Command::new(&python).arg(script()).args(["check", "--uri", &server.uri(), "--token", TOKEN]).output().unwrap();
    assert!(out.status.success(), "check failed: {}\n{}", String::from_utf8_lossy(&out.stderr), server.log_text());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("pyiceberg via REST: {summary}");
    assert_eq!(summary["rows"], all.len());
    assert_eq!(summary["distinct_lsns"], all.len());
    assert_eq!(summary["min_lsn"], all[0]);
    assert_eq!(summary["max_lsn"], *all.last().unwrap());
    assert_eq!(summary["format_version"], 2);
    assert_eq!(summary["partition"], serde_json::json!(["day(commit_ts)"]));
    assert_eq!(summary["location"], location.as_str());
    let fields: Vec<&str> = summary["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(fields.first(), Some(&"lsn"));
    assert_eq!(fields.last(), Some(&"source"), "the added column: {fields:?}");
    let snapshots = summary["snapshots"].as_array().unwrap();
    // The external replace snapshot carries no range; every other one does.
    let ranges: Vec<(Lsn, Lsn)> =
        snapshots.iter().filter_map(|s| Some((s["first_lsn"].as_u64()?, s["last_lsn"].as_u64()?))).collect();
    assert_eq!(ranges.len(), snapshots.len() - 1, "{snapshots:?}");
    assert_eq!(ranges.first().unwrap().0, 1);
    assert_eq!(ranges.last().unwrap().1, end4);
    for pair in ranges.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "snapshot ranges seen by pyiceberg: {ranges:?}");
    }
    let rows_at: Vec<u64> = snapshots.iter().map(|s| s["rows_at"].as_u64().unwrap()).collect();
    assert!(rows_at.windows(2).all(|w| w[0] <= w[1]), "time travel: {rows_at:?}");
    assert_eq!(*rows_at.last().unwrap(), all.len() as u64);
    assert!(!server.log_text().contains(TOKEN), "the server log has no token");
}

#[test]
fn rest_catalog_authentication_and_misconfiguration() {
    let Some(python) = python_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_url = LakeConfig::local_dir(&lake_dir).unwrap().url;
    let server = Server::start(&python, dir.path(), &lake_url);
    let open = |lake: LakeConfig| {
        let db = Arc::new(
            Database::open(dir.path().join(format!("db-{}", uuid::Uuid::new_v4())), small_db_config()).unwrap(),
        );
        Archiver::open(db, lake)
    };
    let with = |options: RestCatalogOptions| LakeConfig {
        catalog: CatalogConfig::Rest(options),
        ..LakeConfig::local_dir(&lake_dir).unwrap()
    };

    // A wrong token: refused, the error names the catalog and not the token.
    let wrong = "wrong-token-77e1";
    let err = open(with(RestCatalogOptions::with_token(server.uri(), WAREHOUSE, wrong))).unwrap_err().to_string();
    assert!(err.contains(&server.uri()) && err.contains("401") && !err.contains(wrong), "{err}");

    // The OAuth2 client-credentials flow: the credential is exchanged for a token.
    let oauth = RestCatalogOptions {
        uri: format!("{}/", server.uri()),
        warehouse: Some(WAREHOUSE.into()),
        credential: Some(CREDENTIAL.into()),
        ..RestCatalogOptions::default()
    };
    let archiver = open(with(oauth.clone())).unwrap();
    assert_eq!(archiver.lake().catalog_uri(), server.uri());
    assert_eq!(archiver.last_archived_lsn().unwrap(), None);
    let bad_secret = "walden-client:not-the-secret-31f0";
    let err = open(with(RestCatalogOptions { credential: Some(bad_secret.into()), ..oauth })).unwrap_err().to_string();
    assert!(err.contains("oauth/tokens") && err.contains("401") && !err.contains("not-the-secret"), "{err}");

    // Configurations that cannot work are refused before any request.
    let rest = CatalogConfig::Rest(RestCatalogOptions::with_token(server.uri(), WAREHOUSE, TOKEN));
    let memory = LakeConfig { catalog: rest.clone(), ..LakeConfig::new("memory://rest") };
    let with_path = LakeConfig {
        catalog_path: Some(dir.path().join("c.db")),
        ..with(RestCatalogOptions::with_token(server.uri(), WAREHOUSE, TOKEN))
    };
    for (what, lake) in [("memory", memory), ("catalog_path", with_path)] {
        match open(lake) {
            Err(ArchiveError::Config(msg)) => assert!(msg.contains(&server.uri()) && !msg.contains(TOKEN), "{msg}"),
            other => panic!("{what}: {other:?}"),
        }
    }

    // A table the catalog keeps outside the lake's store: refused at open, naming both.
    let elsewhere = LakeConfig {
        catalog: rest,
        s3: S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("auto".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: true,
            path_style: true,
            ..S3Options::default()
        },
        ..LakeConfig::new("s3://other-bucket")
    };
    match open(elsewhere) {
        Err(ArchiveError::Config(msg)) => {
            assert!(msg.contains("outside the lake's store s3://other-bucket/") && msg.contains(&server.uri()), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}
