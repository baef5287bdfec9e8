//! Errors of the archive crate.

use walden_engine::Lsn;

/// Result type of this crate.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// Everything that can go wrong while archiving.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The lake configuration is unusable (bad URL, missing bucket, ...).
    #[error("invalid lake configuration: {0}")]
    Config(String),
    /// The Iceberg library (catalog, metadata, writers) failed.
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    /// The catalog (outside what the iceberg crate does) failed.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The object store failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Building Arrow data failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The engine failed (e.g. persisting the retain-from horizon).
    #[error("engine: {0}")]
    Engine(#[from] walden_engine::EngineError),
    /// Reading or decoding the log failed.
    #[error("change stream: {0}")]
    Cdc(#[from] walden_cdc::CdcError),
    /// The next LSN to archive is no longer in the local WAL: archiving would leave a hole.
    #[error("archive gap: LSN {next_lsn} is next to archive but the oldest local LSN is {oldest_available}")]
    Gap {
        /// First LSN not archived yet.
        next_lsn: Lsn,
        /// Oldest LSN still in the local WAL.
        oldest_available: Lsn,
    },
    /// The table's snapshots carry LSN-range properties that do not parse or do not follow.
    #[error("archive table is inconsistent: {0}")]
    Inconsistent(String),
    /// A maintenance operation (compaction, snapshot expiry, removal of unreferenced files) was
    /// asked of a lake whose table an external (REST) catalog owns, such as R2 Data Catalog: it
    /// maintains the table itself, and Walden never deletes files behind its back.
    #[error("{operation} runs only on the embedded catalog; the REST catalog {catalog} maintains its tables itself")]
    ExternalCatalog {
        /// What was refused.
        operation: String,
        /// The catalog's URI.
        catalog: String,
    },
    /// The async runtime or a worker thread could not be created.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}
