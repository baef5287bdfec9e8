//! Where the lake lives and how to reach it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

use crate::error::{ArchiveError, Result};

/// Default Iceberg namespace of the events table.
pub const DEFAULT_NAMESPACE: &str = "walden";
/// Default name of the events table.
pub const DEFAULT_TABLE: &str = "events";
/// Name of the embedded catalog (the `catalog_name` column of the SQL catalog tables).
pub const DEFAULT_CATALOG_NAME: &str = "walden";
/// File name of the embedded sqlite catalog inside a `file://` lake directory.
pub const CATALOG_FILE_NAME: &str = "catalog.db";
/// Default WAL bytes gathered into one archive batch (one snapshot, one data file per day).
pub const DEFAULT_TARGET_BATCH_BYTES: u64 = 128 << 20;
/// Default part size of multipart uploads (all non-final parts have exactly this size, as R2 requires).
pub const DEFAULT_MULTIPART_PART_BYTES: usize = 8 << 20;

/// S3 (or S3-compatible: R2, MinIO, moto) connection settings. Unset fields fall back to the usual
/// AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`). `Debug` never prints secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint URL, e.g. `https://<account>.r2.cloudflarestorage.com` or `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Region (`auto` for R2).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints (local test servers).
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style; needed by most
    /// local S3 servers. Default false (virtual-hosted, as AWS prefers).
    pub path_style: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redact(&self.access_key_id))
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// The lake: where data and metadata files go, and the events table's identity.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// Lake URL: `file:///abs/dir` (default: a directory beside the data dir),
    /// `s3://bucket/prefix`, or `memory://` (tests; lives as long as the process).
    pub url: String,
    /// S3 settings, used when `url` is `s3://`.
    pub s3: S3Options,
    /// Iceberg namespace of the events table (default `walden`).
    pub namespace: String,
    /// Table name (default `events`).
    pub table: String,
    /// Sealed-segment bytes gathered into one archive batch (default 128 MiB). A batch is one
    /// snapshot with one Parquet file per `commit_ts` day.
    pub target_batch_bytes: u64,
    /// Part size of multipart uploads (default 8 MiB; S3 needs at least 5 MiB).
    pub multipart_part_bytes: usize,
    /// The embedded (sqlite) catalog file. Default: `catalog.db` inside a `file://` lake, an
    /// in-process database for `memory://`; required for `s3://` lakes.
    pub catalog_path: Option<PathBuf>,
}

impl LakeConfig {
    /// A lake at `url` with the defaults for everything else.
    pub fn new(url: impl Into<String>) -> LakeConfig {
        LakeConfig {
            url: url.into(),
            s3: S3Options::default(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            table: DEFAULT_TABLE.to_string(),
            target_batch_bytes: DEFAULT_TARGET_BATCH_BYTES,
            multipart_part_bytes: DEFAULT_MULTIPART_PART_BYTES,
            catalog_path: None,
        }
    }

    /// The default lake of a database: the directory `<data_dir>.lake` beside it.
    pub fn beside_data_dir(data_dir: impl AsRef<Path>) -> Result<LakeConfig> {
        let data_dir = data_dir.as_ref();
        let name = data_dir
            .file_name()
            .ok_or_else(|| ArchiveError::Config(format!("data dir {} has no file name", data_dir.display())))?;
        let mut lake_name = name.to_os_string();
        lake_name.push(".lake");
        Self::local_dir(data_dir.with_file_name(lake_name))
    }

    /// A lake in the local directory `dir` (made absolute).
    pub fn local_dir(dir: impl AsRef<Path>) -> Result<LakeConfig> {
        let dir = std::path::absolute(dir.as_ref())?;
        let url = url::Url::from_directory_path(&dir)
            .map_err(|()| ArchiveError::Config(format!("cannot turn {} into a file URL", dir.display())))?;
        Ok(LakeConfig::new(url.as_str().trim_end_matches('/')))
    }

    /// The lake location parsed.
    pub fn location(&self) -> Result<LakeLocation> {
        LakeLocation::parse(&self.url)
    }
}

/// A parsed lake URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A local directory (absolute path).
    Local(std::path::PathBuf),
    /// An S3 bucket and key prefix (no leading or trailing `/`, may be empty).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// In-process memory; the name keeps several memory lakes apart.
    Memory(String),
}

impl LakeLocation {
    /// Parses `file:///dir`, `s3://bucket/prefix` or `memory://name`.
    pub fn parse(url: &str) -> Result<LakeLocation> {
        let bad = |why: &str| ArchiveError::Config(format!("lake URL {url:?}: {why}"));
        if let Some(rest) = url.strip_prefix("memory://") {
            let name = rest.trim_matches('/');
            if name.contains('/') {
                return Err(bad("a memory lake is named by one path segment"));
            }
            return Ok(LakeLocation::Memory(name.to_string()));
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|()| bad("not an absolute local path"))?;
                Ok(LakeLocation::Local(path))
            }
            "s3" | "s3a" => {
                let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("no bucket"))?;
                let prefix = parsed.path().trim_matches('/').to_string();
                Ok(LakeLocation::S3 { bucket: bucket.to_string(), prefix })
            }
            other => Err(bad(&format!("unsupported scheme {other:?} (use file://, s3:// or memory://)"))),
        }
    }

    /// The warehouse URL the catalog stores (table locations are below it), without a trailing `/`.
    pub fn warehouse_url(&self) -> String {
        match self {
            LakeLocation::Local(dir) => {
                let dir = dir.to_string_lossy();
                format!("file://{}", dir.trim_end_matches('/'))
            }
            LakeLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            LakeLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            LakeLocation::Memory(name) => format!("memory://{name}"),
        }
    }

    /// The URL prefix every object of this lake's store starts with; the rest of a URL is the
    /// object key: `file:///` (keys are absolute paths without the leading `/`), `s3://bucket/`,
    /// `memory://`.
    pub fn store_root(&self) -> String {
        match self {
            LakeLocation::Local(_) => "file:///".to_string(),
            LakeLocation::S3 { bucket, .. } => format!("s3://{bucket}/"),
            LakeLocation::Memory(_) => "memory://".to_string(),
        }
    }

    /// Builds the object store for this location. Secrets come from `s3` or the environment and
    /// are never logged.
    pub fn build_store(&self, s3: &S3Options) -> Result<Arc<dyn ObjectStore>> {
        match self {
            LakeLocation::Local(_) => Ok(Arc::new(LocalFileSystem::new())),
            LakeLocation::Memory(_) => Ok(Arc::new(InMemory::new())),
            LakeLocation::S3 { bucket, .. } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                if let Some(token) = &s3.session_token {
                    builder = builder.with_token(token);
                }
                if s3.allow_http {
                    builder = builder.with_allow_http(true);
                }
                if s3.path_style {
                    builder = builder.with_virtual_hosted_style_request(false);
                }
                tracing::info!(bucket = %bucket, endpoint = ?s3.endpoint, region = ?s3.region, "opening S3 lake");
                Ok(Arc::new(builder.build()?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(LakeLocation::parse("file:///tmp/x").unwrap(), LakeLocation::Local("/tmp/x".into()));
        assert_eq!(
            LakeLocation::parse("s3://bkt/a/b/").unwrap(),
            LakeLocation::S3 { bucket: "bkt".into(), prefix: "a/b".into() }
        );
        assert_eq!(LakeLocation::parse("memory://").unwrap(), LakeLocation::Memory(String::new()));
        assert!(matches!(LakeLocation::parse("gs://x"), Err(ArchiveError::Config(_))));
        assert!(matches!(LakeLocation::parse("s3:///nobucket"), Err(ArchiveError::Config(_))));
        assert!(matches!(LakeLocation::parse("not a url"), Err(ArchiveError::Config(_))));
    }

    #[test]
    fn warehouse_and_root() {
        let s3 = LakeLocation::parse("s3://bkt/lake").unwrap();
        assert_eq!(s3.warehouse_url(), "s3://bkt/lake");
        assert_eq!(s3.store_root(), "s3://bkt/");
        let local = LakeLocation::parse("file:///tmp/lake/").unwrap();
        assert_eq!(local.warehouse_url(), "file:///tmp/lake");
    }

    #[test]
    fn beside_data_dir_names_a_sibling() {
        let cfg = LakeConfig::beside_data_dir("/var/lib/walden/db").unwrap();
        assert_eq!(cfg.url, "file:///var/lib/walden/db.lake");
    }

    #[test]
    fn builds_an_s3_store_from_options_without_network() {
        let s3 = S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("auto".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: true,
            path_style: true,
            ..S3Options::default()
        };
        let store = LakeLocation::parse("s3://bkt/p").unwrap().build_store(&s3).unwrap();
        assert!(store.to_string().contains("bkt"), "{store}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let s3 = S3Options {
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("very-secret".into()),
            session_token: Some("tok".into()),
            ..S3Options::default()
        };
        let shown = format!("{:?}", LakeConfig { s3, ..LakeConfig::new("s3://b") });
        assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("very-secret") && !shown.contains("tok\""));
        assert!(shown.contains("<redacted>"));
    }
}
