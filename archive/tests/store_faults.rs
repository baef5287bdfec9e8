//! Real I/O failures under the archiver: an object store wrapper fails the next write of a data
//! file, of a manifest / manifest list, or of the new table metadata. Each failure leaves the
//! table, the engine's horizon and the lake directory as they were (no orphaned data file), and
//! the rerun archives every change exactly once.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};
use walden_archive::{ArchiveError, Archiver, LakeConfig};
use walden_engine::{Config, Database, SyncMode, WalConfig};

mod common;
use common::{parquet_files, row_change_lsns, scanned_lsns};

/// Picks the object keys whose next write fails.
type KeyMatcher = fn(&str) -> bool;

/// Fails the next put (single or multipart) whose key matches, once.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    fail_next: Mutex<Option<KeyMatcher>>,
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

impl FailingStore {
    fn check(&self, location: &ObjectPath) -> object_store::Result<()> {
        let mut armed = self.fail_next.lock().unwrap();
        if armed.is_some_and(|matches| matches(location.as_ref())) {
            *armed = None;
            return Err(object_store::Error::Generic {
                store: "FailingStore",
                source: format!("injected write failure for {location}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &ObjectPath, to: &ObjectPath, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn is_data_file(key: &str) -> bool {
    key.contains("/data/") && key.ends_with(".parquet")
}

fn is_manifest(key: &str) -> bool {
    key.contains("/metadata/") && key.ends_with(".avro")
}

fn is_table_metadata(key: &str) -> bool {
    key.ends_with(".metadata.json")
}

#[test]
fn write_failures_leave_nothing_behind_and_the_rerun_archives_once() {
    let cases: [(&str, KeyMatcher); 3] =
        [("data file", is_data_file), ("manifest", is_manifest), ("table metadata", is_table_metadata)];
    for (what, matcher) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            wal: WalConfig { target_segment_size_bytes: 4096, sync_mode: SyncMode::None, ..WalConfig::default() },
            ..Config::default()
        };
        let db = Arc::new(Database::open(dir.path().join("db"), config).unwrap());
        for i in 0..60u32 {
            let mut t = db.begin();
            t.insert("t", &i.to_be_bytes(), format!("{{\"i\":{i}}}").as_bytes()).unwrap();
            t.commit().unwrap();
        }
        db.wal().seal_active_segment().unwrap();
        let end = db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().unwrap();
        let expected = row_change_lsns(&db);

        let lake_dir = dir.path().join("lake");
        let store = Arc::new(FailingStore { inner: Arc::new(LocalFileSystem::new()), fail_next: Mutex::new(None) });
        let lake = LakeConfig::local_dir(&lake_dir).unwrap();
        let archiver = Archiver::open_with_store(db.clone(), lake, store.clone()).unwrap();
        *store.fail_next.lock().unwrap() = Some(matcher);
        let err = archiver.archive_sealed().unwrap_err();
        assert!(matches!(err, ArchiveError::Iceberg(_) | ArchiveError::ObjectStore(_)), "{what}: {err}");
        assert!(store.fail_next.lock().unwrap().is_none(), "{what}: the failure was not hit");
        assert_eq!(archiver.last_archived_lsn().unwrap(), None, "{what}");
        assert_eq!(db.retain_from(), Some(1), "{what}");
        assert!(parquet_files(&lake_dir).is_empty(), "{what}: orphaned data files {:?}", parquet_files(&lake_dir));

        let report = archiver.archive_sealed().unwrap();
        assert_eq!(report.last_archived_lsn, Some(end), "{what}");
        assert_eq!(scanned_lsns(&archiver), expected, "{what}");
        assert_eq!(parquet_files(&lake_dir).len(), report.batches.iter().map(|b| b.data_files.len()).sum::<usize>());
    }
}
