//! The archiver against a real S3 API: moto's server (from the venv `scripts/lake_venv.sh` makes)
//! on loopback, path-style requests, dummy keys. The data file is larger than the multipart part
//! size, so it goes up as a multipart upload with equal parts; the table is then read back through
//! S3 by the iceberg scan, a rerun adds nothing and a fresh archiver finds its position in the
//! metadata on S3.
//!
//! Runs when `.venv/bin/moto_server` exists; with `WALDEN_REQUIRE_LAKE_VENV=1` a missing server
//! fails the test instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::Int64Array;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use walden_archive::{Archiver, LakeConfig, S3Options};
use walden_engine::{Config, Database, EngineRecord, Lsn, SyncMode, WalConfig};

const BUCKET: &str = "walden-lake";
const PART_BYTES: usize = 5 << 20;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    path.exists().then_some(path)
}

fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn start(binary: &PathBuf) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = http(
        port,
        &format!("PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    assert!(created.starts_with("HTTP/1.1 200"), "bucket creation failed: {created}");
    server
}

/// Incompressible bytes (xorshift), so the Parquet file stays larger than one part.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn archives_to_s3_with_multipart_uploads() {
    let Some(binary) = moto_server() else {
        assert!(
            std::env::var("WALDEN_REQUIRE_LAKE_VENV").is_err(),
            "WALDEN_REQUIRE_LAKE_VENV is set but there is no moto_server: run scripts/lake_venv.sh"
        );
        eprintln!("S3 test skipped: no .venv/bin/moto_server (run scripts/lake_venv.sh)");
        return;
    };
    let server = start(&binary);
    let dir = tempfile::tempdir().unwrap();
    let config = Config { wal: WalConfig { sync_mode: SyncMode::None, ..WalConfig::default() }, ..Config::default() };
    let db = Arc::new(Database::open(dir.path().join("db"), config).unwrap());
    for i in 0..200u64 {
        let mut t = db.begin();
        t.insert("blobs", &i.to_be_bytes(), &noise(i + 1, 64 << 10)).unwrap();
        t.commit().unwrap();
    }
    db.wal().seal_active_segment().unwrap();
    let end = db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().unwrap();

    let lake = LakeConfig {
        s3: S3Options {
            endpoint: Some(format!("http://127.0.0.1:{}", server.port)),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
            path_style: true,
            ..S3Options::default()
        },
        multipart_part_bytes: PART_BYTES,
        catalog_path: Some(dir.path().join("catalog.db")),
        ..LakeConfig::new(format!("s3://{BUCKET}/lake"))
    };
    let archiver = Archiver::open(db.clone(), lake.clone()).unwrap();
    let report = archiver.archive_sealed().unwrap();
    assert_eq!(report.last_archived_lsn, Some(end));
    assert_eq!(report.rows(), 200);
    let batch = &report.batches[0];
    assert!(batch.data_bytes > PART_BYTES as u64, "{} bytes: too small for a multipart upload", batch.data_bytes);
    assert_eq!(batch.data_files.len(), 1);
    let file = &batch.data_files[0];
    assert!(file.starts_with(&format!("s3://{BUCKET}/lake/walden/events/data/")), "{file}");
    // S3 gives multipart objects an ETag ending in "-<part count>".
    let meta = archiver.block_on(archiver.lake().store().head(&archiver.lake().storage().key(file).unwrap())).unwrap();
    let parts = (batch.data_bytes as usize).div_ceil(PART_BYTES);
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with(&format!("-{parts}")), "ETag {etag} of a {parts}-part upload");

    // Read back through S3 with the iceberg scan.
    let scanned = |archiver: &Archiver| -> Vec<Lsn> {
        archiver.block_on(async {
            let table = archiver.lake().load_table().await.unwrap();
            let batches: Vec<_> =
                table.scan().select_all().build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
            let mut lsns: Vec<Lsn> = batches
                .iter()
                .flat_map(|b| {
                    let col = b.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
                    col.values().iter().map(|&v| v as Lsn).collect::<Vec<_>>()
                })
                .collect();
            lsns.sort_unstable();
            lsns
        })
    };
    let expected: Vec<Lsn> = db
        .read_log(1)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| matches!(e.record, EngineRecord::Change(_)))
        .map(|e| e.lsn)
        .collect();
    assert_eq!(scanned(&archiver), expected);
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());

    // A fresh archiver reads its position back from the metadata on S3.
    drop(archiver);
    let archiver = Archiver::open(db.clone(), lake).unwrap();
    assert_eq!(archiver.last_archived_lsn().unwrap(), Some(end));
    assert!(archiver.archive_sealed().unwrap().batches.is_empty());
    assert_eq!(scanned(&archiver), expected);
}
