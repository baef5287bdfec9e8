//! The lake: object store + embedded Iceberg catalog + the `events` table.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use iceberg::spec::{FormatVersion, SnapshotRef, TableProperties};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalog,
    SqlCatalogBuilder,
};
use object_store::{ObjectStore, ObjectStoreExt};
use walden_engine::Lsn;

use crate::config::{CATALOG_FILE_NAME, DEFAULT_CATALOG_NAME, LakeConfig, LakeLocation};
use crate::error::{ArchiveError, Result};
use crate::events::{events_partition_spec, events_schema};
use crate::storage::{ObjectStoreStorage, ObjectStoreStorageFactory};

/// Snapshot summary property: first LSN the snapshot's append covers.
pub const FIRST_LSN_PROPERTY: &str = "walden.first-lsn";
/// Snapshot summary property: last LSN the snapshot's append covers (everything up to it is archived).
pub const LAST_LSN_PROPERTY: &str = "walden.last-lsn";

/// The LSN range one archive snapshot covers (every LSN in it, including BEGIN/COMMIT records,
/// whose information is folded into the rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivedRange {
    /// First LSN.
    pub first_lsn: Lsn,
    /// Last LSN.
    pub last_lsn: Lsn,
}

impl ArchivedRange {
    /// The range recorded in `snapshot`'s summary, if it carries one.
    pub fn of_snapshot(snapshot: &SnapshotRef) -> Result<Option<ArchivedRange>> {
        let props = &snapshot.summary().additional_properties;
        let parse = |key: &str| -> Result<Option<Lsn>> {
            props
                .get(key)
                .map(|v| {
                    v.parse::<Lsn>().map_err(|_| {
                        ArchiveError::Inconsistent(format!(
                            "snapshot {} has {key} = {v:?}, not an LSN",
                            snapshot.snapshot_id()
                        ))
                    })
                })
                .transpose()
        };
        match (parse(FIRST_LSN_PROPERTY)?, parse(LAST_LSN_PROPERTY)?) {
            (Some(first_lsn), Some(last_lsn)) if first_lsn <= last_lsn => {
                Ok(Some(ArchivedRange { first_lsn, last_lsn }))
            }
            (None, None) => Ok(None),
            (first, last) => Err(ArchiveError::Inconsistent(format!(
                "snapshot {} has an invalid LSN range {first:?}..={last:?}",
                snapshot.snapshot_id()
            ))),
        }
    }
}

static MEMORY_CATALOGS: AtomicU64 = AtomicU64::new(0);

/// An open lake with its events table (created on first open).
pub struct Lake {
    config: LakeConfig,
    location: LakeLocation,
    store: Arc<dyn ObjectStore>,
    storage: ObjectStoreStorage,
    catalog: SqlCatalog,
    ident: TableIdent,
    catalog_uri: String,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("url", &self.config.url).field("table", &self.ident).finish()
    }
}

impl Lake {
    /// Opens the lake described by `config` (connecting the embedded catalog and creating the
    /// namespace and events table if missing). Must run inside a tokio runtime.
    pub async fn open(config: LakeConfig) -> Result<Lake> {
        let store = config.location()?.build_store(&config.s3)?;
        Self::open_with_store(config, store).await
    }

    /// Like [`Lake::open`] over a given object store (which must address the objects of
    /// `config.url` as [`LakeLocation::store_root`] does; e.g. a wrapper injecting faults).
    pub async fn open_with_store(config: LakeConfig, store: Arc<dyn ObjectStore>) -> Result<Lake> {
        let location = config.location()?;
        let storage = ObjectStoreStorage::new(store.clone(), location.store_root(), config.multipart_part_bytes);
        if let LakeLocation::Local(dir) = &location {
            std::fs::create_dir_all(dir)?;
        }
        let catalog_uri = match (&config.catalog_path, &location) {
            (Some(path), _) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                sqlite_uri(path.clone())
            }
            (None, LakeLocation::Local(dir)) => sqlite_uri(dir.join(CATALOG_FILE_NAME)),
            (None, LakeLocation::Memory(_)) => {
                let n = MEMORY_CATALOGS.fetch_add(1, Ordering::Relaxed);
                format!("sqlite:file:walden-lake-{}-{n}?mode=memory&cache=shared", std::process::id())
            }
            (None, LakeLocation::S3 { .. }) => {
                return Err(ArchiveError::Config(
                    "an s3:// lake needs `catalog_path` (a local sqlite file) for the embedded catalog".into(),
                ));
            }
        };
        let props = HashMap::from([
            (SQL_CATALOG_PROP_URI.to_string(), catalog_uri.clone()),
            (SQL_CATALOG_PROP_WAREHOUSE.to_string(), location.warehouse_url()),
            (SQL_CATALOG_PROP_BIND_STYLE.to_string(), SqlBindStyle::QMark.to_string()),
            // Keep idle connections: an in-memory sqlite catalog lives only while one is open.
            ("pool.idle-timeout".to_string(), (365 * 24 * 3600).to_string()),
        ]);
        let catalog = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(ObjectStoreStorageFactory::new(storage.clone())))
            .load(DEFAULT_CATALOG_NAME, props)
            .await?;
        let namespace = NamespaceIdent::new(config.namespace.clone());
        let ident = TableIdent::new(namespace.clone(), config.table.clone());
        if !catalog.namespace_exists(&namespace).await? {
            catalog.create_namespace(&namespace, HashMap::new()).await?;
        }
        if !catalog.table_exists(&ident).await? {
            let creation = TableCreation::builder()
                .name(config.table.clone())
                .schema(events_schema()?)
                .partition_spec(events_partition_spec()?)
                .format_version(FormatVersion::V2)
                .properties([
                    ("write.format.default".to_string(), "parquet".to_string()),
                    ("write.parquet.compression-codec".to_string(), "zstd".to_string()),
                    // A conflicting commit must fail, not be re-applied on top of the other
                    // writer's snapshot (that would append the same LSNs twice).
                    (TableProperties::PROPERTY_COMMIT_NUM_RETRIES.to_string(), "0".to_string()),
                ])
                .build();
            catalog.create_table(&namespace, creation).await?;
            tracing::info!(table = %ident, "created the archive table");
        }
        Ok(Lake { config, location, store, storage, catalog, ident, catalog_uri })
    }

    /// The configuration.
    pub fn config(&self) -> &LakeConfig {
        &self.config
    }

    /// The parsed lake location.
    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The object store every lake file goes through.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The iceberg storage over [`Lake::store`].
    pub fn storage(&self) -> &ObjectStoreStorage {
        &self.storage
    }

    /// The embedded catalog.
    pub fn catalog(&self) -> &SqlCatalog {
        &self.catalog
    }

    /// The sqlx URI of the embedded catalog (`sqlite:<path>?mode=rwc` for file catalogs).
    pub fn catalog_uri(&self) -> &str {
        &self.catalog_uri
    }

    /// The events table's identifier.
    pub fn table_ident(&self) -> &TableIdent {
        &self.ident
    }

    /// Loads the events table's current metadata from the catalog.
    pub async fn load_table(&self) -> Result<Table> {
        Ok(self.catalog.load_table(&self.ident).await?)
    }

    /// The last archived LSN, read from the current snapshot's summary; `None` when nothing has
    /// been archived.
    pub async fn last_archived_lsn(&self) -> Result<Option<Lsn>> {
        let table = self.load_table().await?;
        let Some(snapshot) = table.metadata().current_snapshot() else { return Ok(None) };
        match ArchivedRange::of_snapshot(snapshot)? {
            Some(range) => Ok(Some(range.last_lsn)),
            None => Err(ArchiveError::Inconsistent(format!(
                "current snapshot {} of {} has no {LAST_LSN_PROPERTY}",
                snapshot.snapshot_id(),
                self.ident
            ))),
        }
    }
}

impl Lake {
    /// Every data file any snapshot of the table references.
    pub async fn referenced_data_files(&self) -> Result<HashSet<String>> {
        let table = self.load_table().await?;
        let mut referenced = HashSet::new();
        for snapshot in table.metadata().snapshots() {
            let list = table.manifest_list_reader(snapshot).load().await?;
            for manifest_file in list.entries() {
                let manifest = manifest_file.load_manifest(table.file_io()).await?;
                referenced.extend(manifest.entries().iter().map(|e| e.file_path().to_string()));
            }
        }
        Ok(referenced)
    }

    /// Deletes the files under the table's `data/` directory that no snapshot references: what an
    /// archive batch wrote before a crash kept it from committing. Safe because the archiver is
    /// the table's only writer (embedded catalog); returns the deleted locations.
    pub async fn remove_orphan_data_files(&self) -> Result<Vec<String>> {
        let referenced = self.referenced_data_files().await?;
        let table = self.load_table().await?;
        let data_dir = format!("{}/data", table.metadata().location().trim_end_matches('/'));
        let prefix = self.storage.key(&data_dir)?;
        let root = self.location.store_root();
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut removed = Vec::new();
        for object in objects {
            let location = format!("{root}{}", object.location);
            if referenced.contains(&location) {
                continue;
            }
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(file = %location, "removed an orphaned archive data file");
            removed.push(location);
        }
        Ok(removed)
    }
}

fn sqlite_uri(path: PathBuf) -> String {
    format!("sqlite:{}?mode=rwc", path.display())
}
