//! The lake: object store + Iceberg catalog (embedded sqlite or REST) + the `events` table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use iceberg::spec::{FormatVersion, Operation, Snapshot, SnapshotRef, TableProperties};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, Namespace, NamespaceIdent, TableCommit, TableCreation, TableIdent};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalogBuilder,
};
use object_store::ObjectStore;
use walden_engine::Lsn;

use crate::config::{
    CATALOG_FILE_NAME, CatalogConfig, DEFAULT_CATALOG_NAME, LakeConfig, LakeLocation, RestCatalogOptions,
};
use crate::error::{ArchiveError, Result};
use crate::events::{events_partition_spec, events_schema};
use crate::storage::{ObjectStoreStorage, ObjectStoreStorageFactory};

/// Snapshot summary property: first LSN the snapshot's append covers.
pub const FIRST_LSN_PROPERTY: &str = "walden.first-lsn";
/// Snapshot summary property: last LSN the snapshot's append covers (everything up to it is archived).
pub const LAST_LSN_PROPERTY: &str = "walden.last-lsn";
/// Snapshot summary property: the first LSN of the whole archive (carried by every snapshot, so
/// it survives snapshot expiry).
pub const ARCHIVE_FIRST_LSN_PROPERTY: &str = "walden.archive-first-lsn";
/// Snapshot summary property: what made the snapshot ([`OPERATION_ARCHIVE`] or
/// [`OPERATION_COMPACT`]).
pub const OPERATION_PROPERTY: &str = "walden.operation";
/// [`OPERATION_PROPERTY`] of an archive append.
pub const OPERATION_ARCHIVE: &str = "archive";
/// [`OPERATION_PROPERTY`] of a compaction (a replace snapshot: same rows, fewer files).
pub const OPERATION_COMPACT: &str = "compact";

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
    /// Compaction snapshots append nothing: `None`.
    pub fn of_snapshot(snapshot: &SnapshotRef) -> Result<Option<ArchivedRange>> {
        let props = &snapshot.summary().additional_properties;
        if props.get(OPERATION_PROPERTY).map(String::as_str) == Some(OPERATION_COMPACT) {
            return Ok(None);
        }
        let parse = |key: &str| lsn_property(snapshot, key, || format!("snapshot {}", snapshot.snapshot_id()));
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

/// Which kind of catalog a lake uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// The embedded SQL catalog on sqlite, owned by Walden.
    Embedded,
    /// An Iceberg REST catalog (e.g. R2 Data Catalog), which owns and maintains the table.
    Rest,
}

impl std::fmt::Display for CatalogKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CatalogKind::Embedded => "embedded",
            CatalogKind::Rest => "REST",
        })
    }
}

/// A lake's catalog behind the iceberg [`Catalog`] trait: the embedded SQL catalog or a REST
/// catalog. Every error it returns carries a `catalog` context naming the kind and URI (never a
/// secret), and `Debug` shows only those, so a token cannot leak through it.
pub struct LakeCatalog {
    kind: CatalogKind,
    /// The sqlx URI of the embedded catalog, or the REST catalog's base URI.
    uri: String,
    inner: Arc<dyn Catalog>,
    /// The embedded catalog's own connection, for commits the iceberg crate has no action for.
    embedded: Option<EmbeddedCatalog>,
}

/// The embedded catalog's own connection, for commits the iceberg crate has no action for.
#[derive(Default)]
struct EmbeddedCatalog {
    pool: tokio::sync::OnceCell<sqlx::SqlitePool>,
}

impl std::fmt::Debug for LakeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeCatalog").field("kind", &self.kind).field("uri", &self.uri).finish()
    }
}

impl LakeCatalog {
    /// The kind of catalog.
    pub fn kind(&self) -> CatalogKind {
        self.kind
    }

    /// The sqlx URI of the embedded catalog (`sqlite:<path>?mode=rwc` for file catalogs), or the
    /// REST catalog's base URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `e` with the catalog named in its context.
    fn named(&self, e: iceberg::Error) -> iceberg::Error {
        e.with_context("catalog", format!("{} {}", self.kind, self.uri))
    }
}

#[async_trait]
impl Catalog for LakeCatalog {
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await.map_err(|e| self.named(e))
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await.map_err(|e| self.named(e))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(namespace).await.map_err(|e| self.named(e))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(namespace).await.map_err(|e| self.named(e))
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(namespace, properties).await.map_err(|e| self.named(e))
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(namespace).await.map_err(|e| self.named(e))
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await.map_err(|e| self.named(e))
    }

    async fn create_table(&self, namespace: &NamespaceIdent, creation: TableCreation) -> iceberg::Result<Table> {
        self.inner.create_table(namespace, creation).await.map_err(|e| self.named(e))
    }

    async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        self.inner.load_table(table).await.map_err(|e| self.named(e))
    }

    async fn drop_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(table).await.map_err(|e| self.named(e))
    }

    async fn purge_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(table).await.map_err(|e| self.named(e))
    }

    async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(table).await.map_err(|e| self.named(e))
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(src, dest).await.map_err(|e| self.named(e))
    }

    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> iceberg::Result<Table> {
        self.inner.register_table(table, metadata_location).await.map_err(|e| self.named(e))
    }

    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        self.inner.update_table(commit).await.map_err(|e| self.named(e))
    }
}

/// An open lake with its events table (created on first open).
pub struct Lake {
    config: LakeConfig,
    location: LakeLocation,
    store: Arc<dyn ObjectStore>,
    storage: ObjectStoreStorage,
    catalog: LakeCatalog,
    ident: TableIdent,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("url", &self.config.url)
            .field("catalog", &self.catalog)
            .field("table", &self.ident)
            .finish()
    }
}

impl Lake {
    /// Opens the lake described by `config` (connecting its catalog and creating the namespace
    /// and events table if missing). Must run inside a tokio runtime.
    pub async fn open(config: LakeConfig) -> Result<Lake> {
        let store = config.location()?.build_store(&config.s3)?;
        Self::open_with_store(config, store).await
    }

    /// Like [`Lake::open`] over a given object store (which must address the objects of
    /// `config.url` as [`LakeLocation::store_root`] does; e.g. a wrapper injecting faults).
    pub async fn open_with_store(config: LakeConfig, store: Arc<dyn ObjectStore>) -> Result<Lake> {
        let location = config.location()?;
        let storage = ObjectStoreStorage::new(store.clone(), location.store_root(), config.multipart_part_bytes);
        let catalog = match &config.catalog {
            CatalogConfig::Embedded => Self::connect_embedded(&config, &location, &storage).await?,
            CatalogConfig::Rest(options) => Self::connect_rest(&config, options, &location, &storage).await?,
        };
        let namespace = NamespaceIdent::new(config.namespace.clone());
        let ident = TableIdent::new(namespace.clone(), config.table.clone());
        if !catalog.namespace_exists(&namespace).await? {
            catalog.create_namespace(&namespace, HashMap::new()).await?;
        }
        let table = if catalog.table_exists(&ident).await? {
            catalog.load_table(&ident).await?
        } else {
            Self::create_table(&catalog, &config, &ident).await?
        };
        check_table(&table, &catalog, &ident, &storage, &location)?;
        Ok(Lake { config, location, store, storage, catalog, ident })
    }

    /// The REST catalog of `options`, for a lake that can be shared with its server.
    async fn connect_rest(
        config: &LakeConfig,
        options: &RestCatalogOptions,
        location: &LakeLocation,
        storage: &ObjectStoreStorage,
    ) -> Result<LakeCatalog> {
        let refuse = |why: &str| {
            ArchiveError::Config(format!("lake {:?} with the REST catalog {}: {why}", config.url, options.base_uri()))
        };
        if config.catalog_path.is_some() {
            return Err(refuse("`catalog_path` is for the embedded catalog; leave it unset"));
        }
        if let LakeLocation::Memory(_) = location {
            return Err(refuse("a memory:// lake cannot be shared with a catalog server"));
        }
        let rest = crate::rest::connect(DEFAULT_CATALOG_NAME, options, storage.clone()).await?;
        Ok(LakeCatalog {
            kind: CatalogKind::Rest,
            uri: options.base_uri().to_string(),
            inner: Arc::new(rest),
            embedded: None,
        })
    }

    /// Creates the events table `ident` (Iceberg v2, Parquet with zstd).
    async fn create_table(catalog: &LakeCatalog, config: &LakeConfig, ident: &TableIdent) -> Result<Table> {
        let mut properties = vec![
            ("write.format.default".to_string(), "parquet".to_string()),
            ("write.parquet.compression-codec".to_string(), "zstd".to_string()),
            // A conflicting commit must fail, not be re-applied on top of the other
            // writer's snapshot (that would append the same LSNs twice).
            (TableProperties::PROPERTY_COMMIT_NUM_RETRIES.to_string(), "0".to_string()),
        ];
        if catalog.kind == CatalogKind::Rest {
            // The REST create request has no format-version field; this reserved property
            // asks the server for v2.
            properties.push(("format-version".to_string(), "2".to_string()));
        }
        let creation = TableCreation::builder()
            .name(config.table.clone())
            .schema(events_schema()?)
            .partition_spec(events_partition_spec()?)
            .format_version(FormatVersion::V2)
            .properties(properties)
            .build();
        let table = catalog.create_table(ident.namespace(), creation).await?;
        tracing::info!(table = %ident, catalog = %catalog.kind, "created the archive table");
        Ok(table)
    }

    /// The embedded sqlite catalog of `config` (file, or in-process for `memory://`).
    async fn connect_embedded(
        config: &LakeConfig,
        location: &LakeLocation,
        storage: &ObjectStoreStorage,
    ) -> Result<LakeCatalog> {
        if let LakeLocation::Local(dir) = location {
            std::fs::create_dir_all(dir)?;
        }
        let catalog_uri = match (&config.catalog_path, location) {
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
                    "an s3:// lake needs `catalog_path` (a local sqlite file) for the embedded catalog, \
                     or a REST catalog"
                        .into(),
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
        let sql = SqlCatalogBuilder::default()
            .with_storage_factory(Arc::new(ObjectStoreStorageFactory::new(storage.clone())))
            .load(DEFAULT_CATALOG_NAME, props)
            .await
            .map_err(|e| e.with_context("catalog", format!("embedded {catalog_uri}")))?;
        Ok(LakeCatalog {
            kind: CatalogKind::Embedded,
            uri: catalog_uri,
            inner: Arc::new(sql),
            embedded: Some(EmbeddedCatalog::default()),
        })
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

    /// The catalog (embedded or REST), usable wherever the iceberg crate wants a
    /// [`Catalog`] (e.g. `Transaction::commit`).
    pub fn catalog(&self) -> &LakeCatalog {
        &self.catalog
    }

    /// The kind of catalog.
    pub fn catalog_kind(&self) -> CatalogKind {
        self.catalog.kind
    }

    /// The sqlx URI of the embedded catalog (`sqlite:<path>?mode=rwc` for file catalogs), or the
    /// REST catalog's base URI.
    pub fn catalog_uri(&self) -> &str {
        &self.catalog.uri
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
        Ok(self.archived_range().await?.map(|r| r.last_lsn))
    }

    /// The LSN range the whole archive covers, from the current snapshot's summary
    /// ([`ARCHIVE_FIRST_LSN_PROPERTY`] and [`LAST_LSN_PROPERTY`]); `None` when nothing has been
    /// archived.
    pub async fn archived_range(&self) -> Result<Option<walden_cdc::ColdRange>> {
        let table = self.load_table().await?;
        archived_range_of(&table, &self.ident)
    }
}

impl Lake {
    /// Whether the catalog is the embedded one (a sqlite file, or in-process for `memory://`),
    /// which Walden owns: only then may it delete lake files and compact.
    pub fn is_embedded(&self) -> bool {
        self.catalog.kind == CatalogKind::Embedded
    }

    /// Fails with [`ArchiveError::ExternalCatalog`] unless the catalog is embedded (see
    /// [`Lake::is_embedded`]).
    pub(crate) fn ensure_embedded(&self, operation: &str) -> Result<()> {
        if self.is_embedded() {
            return Ok(());
        }
        Err(ArchiveError::ExternalCatalog { operation: operation.to_string(), catalog: self.catalog.uri.clone() })
    }

    /// Compare-and-swap of the events table's metadata location in the embedded catalog (what
    /// the SQL catalog's own commit does): `true` if the table pointed at `expected` and now
    /// points at `new`, `false` if another commit moved it first.
    pub(crate) async fn swap_metadata_location(&self, expected: &str, new: &str) -> Result<bool> {
        self.ensure_embedded("a metadata swap")?;
        let embedded = self
            .catalog
            .embedded
            .as_ref()
            .ok_or_else(|| ArchiveError::Config("no embedded catalog to commit to".into()))?;
        let pool = embedded
            .pool
            .get_or_try_init(|| async {
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .connect(&self.catalog.uri)
                    .await
            })
            .await
            .map_err(|e| ArchiveError::Catalog(format!("connecting to the embedded catalog: {e}")))?;
        let result = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?",
        )
        .bind(new)
        .bind(expected)
        .bind(DEFAULT_CATALOG_NAME)
        .bind(self.ident.namespace().join("."))
        .bind(self.ident.name())
        .bind(expected)
        .execute(pool)
        .await
        .map_err(|e| ArchiveError::Catalog(format!("committing to the embedded catalog: {e}")))?;
        Ok(result.rows_affected() == 1)
    }
}

/// Refuses a table the archive cannot write: not Iceberg v2, or (a REST catalog chooses the
/// table location) outside the lake's store.
fn check_table(
    table: &Table,
    catalog: &LakeCatalog,
    ident: &TableIdent,
    storage: &ObjectStoreStorage,
    location: &LakeLocation,
) -> Result<()> {
    if table.metadata().format_version() != FormatVersion::V2 {
        return Err(ArchiveError::Inconsistent(format!(
            "table {ident} in the {} catalog {} is Iceberg format {:?}; the archive writes v2",
            catalog.kind,
            catalog.uri,
            table.metadata().format_version()
        )));
    }
    let table_location = table.metadata().location();
    if storage.key(table_location).is_err() {
        return Err(ArchiveError::Config(format!(
            "table {ident} in the {} catalog {} lives at {table_location}, outside the lake's store {} \
             (point the lake URL at the catalog's bucket)",
            catalog.kind,
            catalog.uri,
            location.store_root()
        )));
    }
    Ok(())
}

/// See [`Lake::archived_range`].
pub(crate) fn archived_range_of(table: &Table, ident: &TableIdent) -> Result<Option<walden_cdc::ColdRange>> {
    let metadata = table.metadata();
    let Some(current) = metadata.current_snapshot() else { return Ok(None) };
    // The position is on the newest snapshot Walden made. Replace snapshots keep the rows as they
    // are, so one another writer made (R2 Data Catalog's managed compaction) is passed over to its
    // parent; any other snapshot without the property means someone else changed the rows.
    let mut snapshot = current;
    for _ in 0..metadata.snapshots().len() {
        let props = &snapshot.summary().additional_properties;
        if props.contains_key(LAST_LSN_PROPERTY) || snapshot.summary().operation != Operation::Replace {
            break;
        }
        let parent = snapshot.parent_snapshot_id().and_then(|id| metadata.snapshot_by_id(id));
        snapshot = parent.ok_or_else(|| {
            ArchiveError::Inconsistent(format!(
                "current snapshot {} of {ident} has no {LAST_LSN_PROPERTY}, nor has any snapshot still \
                 in its history",
                current.snapshot_id()
            ))
        })?;
    }
    let lsn = |key: &str| lsn_property(snapshot, key, || format!("snapshot {} of {ident}", snapshot.snapshot_id()));
    let last_lsn = lsn(LAST_LSN_PROPERTY)?.ok_or_else(|| {
        ArchiveError::Inconsistent(format!(
            "snapshot {} ({}) of {ident} has no {LAST_LSN_PROPERTY}: rows written by another writer?",
            snapshot.snapshot_id(),
            snapshot.summary().operation.as_str()
        ))
    })?;
    let first_lsn = match lsn(ARCHIVE_FIRST_LSN_PROPERTY)? {
        Some(first) => first,
        // Written before the property existed: the oldest snapshot still recorded says it.
        None => {
            let mut first = None;
            for s in metadata.snapshots() {
                if let Some(range) = ArchivedRange::of_snapshot(s)? {
                    first = Some(first.map_or(range.first_lsn, |f: Lsn| f.min(range.first_lsn)));
                }
            }
            first.unwrap_or(last_lsn)
        }
    };
    if first_lsn > last_lsn.saturating_add(1) {
        return Err(ArchiveError::Inconsistent(format!(
            "current snapshot {} of {ident} says the archive runs from LSN {first_lsn} to {last_lsn}",
            snapshot.snapshot_id()
        )));
    }
    Ok(Some(walden_cdc::ColdRange { first_lsn, last_lsn }))
}

/// The LSN `snapshot`'s summary property `key` holds (`None`: absent); an error naming the
/// snapshot as `named()` says if it is not an LSN.
fn lsn_property(snapshot: &Snapshot, key: &str, named: impl Fn() -> String) -> Result<Option<Lsn>> {
    let Some(value) = snapshot.summary().additional_properties.get(key) else { return Ok(None) };
    value
        .parse::<Lsn>()
        .map(Some)
        .map_err(|_| ArchiveError::Inconsistent(format!("{} has {key} = {value:?}, not an LSN", named())))
}

fn sqlite_uri(path: PathBuf) -> String {
    format!("sqlite:{}?mode=rwc", path.display())
}
