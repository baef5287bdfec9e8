//! `walden-archive`: Walden's cold tier. Sealed WAL segments become Parquet files in an Apache
//! Iceberg table (`events`, format v2) on object storage, so Spark, DuckDB, pyiceberg or R2 SQL
//! can query every committed change, and the engine may then delete the local segments.
//!
//! ```text
//! engine WAL ── sealed segments ──► Archiver ── Parquet (zstd, LSN order) ──► object store
//!      ▲                                 └── one snapshot per batch ──► catalog (embedded sqlite / REST)
//!      └──────── retain_from = last archived LSN + 1 ◄───────────────────────┘
//! ```
//!
//! - [`LakeConfig`]: where the lake is (`file://`, `s3://bucket/prefix`, `memory://`) and which
//!   catalog holds the table ([`CatalogConfig`]: embedded sqlite, or an Iceberg REST catalog such
//!   as Cloudflare R2 Data Catalog, see [`rest`]).
//! - [`storage`]: the iceberg crate's storage traits over [`object_store`].
//! - [`events`]: the table layout.
//! - [`Lake`]: the catalog and table; [`Archiver`]: the archiving loop; [`AutoArchive`]: archiving
//!   driven by the engine's sealed-segment hook.
//!
//! Every snapshot the archiver makes carries [`FIRST_LSN_PROPERTY`] and [`LAST_LSN_PROPERTY`];
//! the current snapshot's last LSN is the archive position, re-read before every run, so a crash
//! at any step neither loses nor duplicates an LSN.
#![deny(missing_docs)]

pub mod archiver;
pub mod auto;
pub mod cold;
pub mod config;
mod error;
pub mod events;
mod json_check;
pub mod lake;
pub mod maintenance;
pub mod rest;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use archiver::{ArchiveReport, Archiver, BatchReport};
pub use auto::{AutoArchive, AutoArchiveOptions, AutoArchiveStatus};
pub use cold::LakeColdSource;
pub use config::{CatalogConfig, LakeConfig, LakeLocation, RestCatalogOptions, S3Options};
pub use error::{ArchiveError, Result};
pub use lake::{
    ARCHIVE_FIRST_LSN_PROPERTY, ArchivedRange, CatalogKind, FIRST_LSN_PROPERTY, LAST_LSN_PROPERTY, Lake, LakeCatalog,
    OPERATION_ARCHIVE, OPERATION_COMPACT, OPERATION_PROPERTY,
};
pub use maintenance::{CompactOptions, CompactReport, ExpireOptions, ExpireReport};
#[cfg(feature = "testing")]
pub use testing::fault::{Fault, FaultPoint};
