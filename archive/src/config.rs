//! Where the lake lives and how to reach it.

use std::collections::BTreeMap;
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
/// Default of [`LakeConfig::write_threads`]: the machine's cores, at most this many.
pub const MAX_DEFAULT_WRITE_THREADS: usize = 4;
/// Default of [`LakeConfig::min_part_bytes`]: 32 MiB of WAL.
pub const DEFAULT_MIN_PART_BYTES: u64 = 32 << 20;
/// Default of [`LakeConfig::chunk_rows`].
pub const DEFAULT_CHUNK_ROWS: usize = 8192;
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

/// Environment variable choosing the catalog: `embedded` or `rest` (see [`CatalogConfig::from_env`]).
pub const ENV_CATALOG: &str = "WALDEN_CATALOG";
/// Environment variable: base URI of the Iceberg REST catalog (the part before `/v1/...`).
pub const ENV_CATALOG_URI: &str = "WALDEN_CATALOG_URI";
/// Environment variable: warehouse of the REST catalog (R2 Data Catalog: `<account-id>_<bucket>`).
pub const ENV_CATALOG_WAREHOUSE: &str = "WALDEN_CATALOG_WAREHOUSE";
/// Environment variable: bearer token of the REST catalog (R2: an API token with R2 Data Catalog
/// permissions).
pub const ENV_CATALOG_TOKEN: &str = "WALDEN_CATALOG_TOKEN";
/// Environment variable: OAuth2 client credential of the REST catalog, `client_id:client_secret`
/// (or just the secret), exchanged for a token at open.
pub const ENV_CATALOG_CREDENTIAL: &str = "WALDEN_CATALOG_CREDENTIAL";
/// Environment variable: extra REST catalog properties, `key=value` pairs separated by commas
/// (e.g. `prefix=p,header.X-Custom=v`).
pub const ENV_CATALOG_PROPS: &str = "WALDEN_CATALOG_PROPS";

/// Which Iceberg catalog holds the events table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CatalogConfig {
    /// The embedded SQL catalog on a sqlite file (see [`LakeConfig::catalog_path`]), which Walden
    /// owns: it may compact, expire snapshots and delete unreferenced files. The default.
    #[default]
    Embedded,
    /// An Iceberg REST catalog (Cloudflare R2 Data Catalog, Polaris, Lakekeeper, ...), which owns
    /// the table: Walden only appends and evolves the schema, and never deletes a file the
    /// catalog may know about.
    Rest(RestCatalogOptions),
}

impl CatalogConfig {
    /// The catalog the environment names, `None` if it names none: [`ENV_CATALOG`] =
    /// `embedded` or `rest`; when it is unset, `rest` if [`ENV_CATALOG_URI`] is set. A REST
    /// catalog takes its settings from [`ENV_CATALOG_URI`], [`ENV_CATALOG_WAREHOUSE`],
    /// [`ENV_CATALOG_TOKEN`], [`ENV_CATALOG_CREDENTIAL`] and [`ENV_CATALOG_PROPS`].
    pub fn from_env() -> Result<Option<CatalogConfig>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`CatalogConfig::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<CatalogConfig>> {
        let var = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let uri = var(ENV_CATALOG_URI);
        let kind = var(ENV_CATALOG).map(|k| k.to_ascii_lowercase());
        match (kind.as_deref(), uri) {
            (None, None) => Ok(None),
            (Some("embedded"), _) => Ok(Some(CatalogConfig::Embedded)),
            (None | Some("rest"), Some(uri)) => {
                let mut props = BTreeMap::new();
                for pair in var(ENV_CATALOG_PROPS).iter().flat_map(|p| p.split(',')) {
                    let pair = pair.trim();
                    if pair.is_empty() {
                        continue;
                    }
                    // The entry is not echoed: it may be a misplaced secret.
                    let (key, value) = pair.split_once('=').ok_or_else(|| {
                        ArchiveError::Config(format!("{ENV_CATALOG_PROPS}: an entry is not key=value"))
                    })?;
                    props.insert(key.trim().to_string(), value.trim().to_string());
                }
                let options = RestCatalogOptions {
                    uri,
                    warehouse: var(ENV_CATALOG_WAREHOUSE),
                    token: var(ENV_CATALOG_TOKEN),
                    credential: var(ENV_CATALOG_CREDENTIAL),
                    props,
                };
                options.validate()?;
                Ok(Some(CatalogConfig::Rest(options)))
            }
            (Some("rest"), None) => Err(ArchiveError::Config(format!("{ENV_CATALOG}=rest needs {ENV_CATALOG_URI}"))),
            (Some(other), _) => {
                Err(ArchiveError::Config(format!("{ENV_CATALOG}={other:?}: expected \"embedded\" or \"rest\"")))
            }
        }
    }

    /// Whether this is [`CatalogConfig::Embedded`].
    pub fn is_embedded(&self) -> bool {
        matches!(self, CatalogConfig::Embedded)
    }
}

/// Connection settings of an Iceberg REST catalog. `Debug` never prints the token, the
/// credential or a property value whose key looks secret.
///
/// For Cloudflare R2 Data Catalog: `uri` is the catalog URI shown in the bucket's settings
/// (`https://catalog.cloudflarestorage.com/<account-id>/<bucket>`), `warehouse` the warehouse
/// name (`<account-id>_<bucket>`), `token` an API token allowed to use R2 Data Catalog and R2
/// storage. The data files still go through the lake's own object store (an `s3://<bucket>`
/// lake URL with R2's S3 endpoint and keys in [`S3Options`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestCatalogOptions {
    /// Base URI (the REST paths `/v1/...` go below it), `http://` or `https://`.
    pub uri: String,
    /// Warehouse sent to the catalog's `/v1/config` (which catalogs use to pick the tables'
    /// storage); `None` if the catalog needs none.
    pub warehouse: Option<String>,
    /// Bearer token sent on every request.
    pub token: Option<String>,
    /// OAuth2 client credential, `client_id:client_secret` (or just the secret), exchanged once
    /// at open for a bearer token at `<uri>/v1/oauth/tokens` (or the `oauth2-server-uri`
    /// property; `scope` defaults to `catalog`, `audience` and `resource` are passed on). At
    /// most one of `token` and `credential`.
    pub credential: Option<String>,
    /// Further catalog properties, passed to the iceberg REST client as they are: `prefix`,
    /// `header.<Name>` (an extra HTTP header), `oauth2-server-uri`, `scope`, `audience`,
    /// `resource`. Secrets belong in `token` / `credential`, not here.
    pub props: BTreeMap<String, String>,
}

impl RestCatalogOptions {
    /// A REST catalog at `uri` authenticated by the bearer `token` (R2 Data Catalog's way).
    pub fn with_token(uri: impl Into<String>, warehouse: impl Into<String>, token: impl Into<String>) -> Self {
        RestCatalogOptions {
            uri: uri.into(),
            warehouse: Some(warehouse.into()),
            token: Some(token.into()),
            ..RestCatalogOptions::default()
        }
    }

    /// The URI without trailing slashes (how it is used and shown).
    pub fn base_uri(&self) -> &str {
        self.uri.trim_end_matches('/')
    }

    /// Checks the settings: an `http(s)` URI, not both a token and a credential, no secret in
    /// `props`. Errors name the URI, never a secret.
    pub fn validate(&self) -> Result<()> {
        let parsed = url::Url::parse(self.base_uri());
        // Shown without user info, which could be a secret.
        let shown = match &parsed {
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                format!("{}://<redacted>@{}", url.scheme(), url.host_str().unwrap_or_default())
            }
            Ok(_) => self.base_uri().to_string(),
            Err(_) => "<not a URL>".to_string(),
        };
        let bad = |why: String| ArchiveError::Config(format!("REST catalog {shown:?}: {why}"));
        let parsed = parsed.map_err(|e| bad(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!("scheme {:?} (use http:// or https://)", parsed.scheme())));
        }
        if parsed.password().is_some() || !parsed.username().is_empty() {
            return Err(bad("credentials in the URI (use `token` or `credential`)".into()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query or fragment in the URI".into()));
        }
        if self.token.is_some() && self.credential.is_some() {
            return Err(bad("both a token and a credential are set; use one".into()));
        }
        for key in self.props.keys() {
            let lower = key.to_ascii_lowercase();
            if matches!(lower.as_str(), "uri" | "warehouse" | "token" | "credential" | "header.authorization") {
                return Err(bad(format!("property {key:?} belongs in the options' own fields")));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RestCatalogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        let props: BTreeMap<&str, &str> = self
            .props
            .iter()
            .map(|(k, v)| (k.as_str(), if looks_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("RestCatalogOptions")
            .field("uri", &self.uri)
            .field("warehouse", &self.warehouse)
            .field("token", &redact(&self.token))
            .field("credential", &redact(&self.credential))
            .field("props", &props)
            .finish()
    }
}

/// Whether a property key names something secret (its value is never shown).
pub(crate) fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "secret", "credential", "password", "key", "authorization", "signature", "sas"]
        .iter()
        .any(|word| key.contains(word))
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
    /// snapshot with one Parquet file per `commit_ts` day and part (see `write_threads`).
    pub target_batch_bytes: u64,
    /// Most threads one archive batch is decoded and encoded on (default: the machine's cores,
    /// at most [`MAX_DEFAULT_WRITE_THREADS`]; 0 counts as 1). A batch of several segments is
    /// split at segment boundaries into up to this many contiguous parts of about equal size,
    /// none smaller than `min_part_bytes`; each part is read from the WAL and written on its own
    /// thread into its own data files (LSN ranges that do not overlap), all committed in the
    /// batch's one snapshot. 1: one data file per day per batch.
    pub write_threads: usize,
    /// Fewest WAL bytes a part of a batch needs to get its own thread and files (default
    /// 32 MiB), so that parallel writing never fills the lake with small files.
    pub min_part_bytes: u64,
    /// Rows per Arrow batch a part's WAL reader hands to its Parquet writer (default 8192; 0
    /// counts as 1). A part is read and encoded on two threads at once, with at most four
    /// chunks between them, so this (times the row size) bounds a part's memory, not the
    /// batch size; it does not change the files (row groups have their own bounds).
    pub chunk_rows: usize,
    /// Part size of multipart uploads (default 8 MiB; S3 needs at least 5 MiB).
    pub multipart_part_bytes: usize,
    /// The embedded (sqlite) catalog file. Default: `catalog.db` inside a `file://` lake, an
    /// in-process database for `memory://`; required for `s3://` lakes with the embedded
    /// catalog; must be unset with a REST catalog.
    pub catalog_path: Option<PathBuf>,
    /// The catalog (default: embedded). With [`CatalogConfig::Rest`] the catalog decides where
    /// the table lives: `url` must name the same store (for R2 `s3://<bucket>`), whose prefix is
    /// then not used; `memory://` cannot be shared with a catalog server and is refused.
    pub catalog: CatalogConfig,
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
            write_threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WRITE_THREADS),
            min_part_bytes: DEFAULT_MIN_PART_BYTES,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            multipart_part_bytes: DEFAULT_MULTIPART_PART_BYTES,
            catalog_path: None,
            catalog: CatalogConfig::Embedded,
        }
    }

    /// This configuration with the catalog the environment names ([`CatalogConfig::from_env`]);
    /// unchanged when the environment names none.
    pub fn with_catalog_from_env(mut self) -> Result<LakeConfig> {
        if let Some(catalog) = CatalogConfig::from_env()? {
            self.catalog = catalog;
        }
        Ok(self)
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
    fn catalog_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(CatalogConfig::from_vars(vars(&[])).unwrap(), None);
        assert_eq!(
            CatalogConfig::from_vars(vars(&[(ENV_CATALOG, "embedded"), (ENV_CATALOG_URI, "http://x")])).unwrap(),
            Some(CatalogConfig::Embedded)
        );
        let rest = CatalogConfig::from_vars(vars(&[
            (ENV_CATALOG_URI, "https://catalog.cloudflarestorage.com/acct/bkt/"),
            (ENV_CATALOG_WAREHOUSE, "acct_bkt"),
            (ENV_CATALOG_TOKEN, "r2-token-value"),
            (ENV_CATALOG_PROPS, "prefix=p, header.X-Trace=1,"),
        ]))
        .unwrap()
        .unwrap();
        let CatalogConfig::Rest(options) = &rest else { panic!("{rest:?}") };
        assert_eq!(options.base_uri(), "https://catalog.cloudflarestorage.com/acct/bkt");
        assert_eq!(options.warehouse.as_deref(), Some("acct_bkt"));
        assert_eq!(options.token.as_deref(), Some("r2-token-value"));
        assert_eq!(options.props.get("prefix").map(String::as_str), Some("p"));
        assert_eq!(options.props.get("header.X-Trace").map(String::as_str), Some("1"));
        assert!(!format!("{rest:?}").contains("r2-token-value"));

        for bad in [
            &[(ENV_CATALOG, "rest")][..],
            &[(ENV_CATALOG, "glue"), (ENV_CATALOG_URI, "http://x")],
            &[(ENV_CATALOG_URI, "ftp://x")],
            &[(ENV_CATALOG_URI, "http://x"), (ENV_CATALOG_TOKEN, "t"), (ENV_CATALOG_CREDENTIAL, "a:b")],
            &[(ENV_CATALOG_URI, "http://x"), (ENV_CATALOG_PROPS, "token=leaked")],
            &[(ENV_CATALOG_URI, "http://x"), (ENV_CATALOG_PROPS, "just-a-secret-value")],
            &[(ENV_CATALOG_URI, "http://user:pw@x")],
        ] {
            let leaked = |s: &str| s.contains("leaked") || s.contains("just-a-secret-value") || s.contains(":pw");
            match CatalogConfig::from_vars(vars(bad)) {
                Err(ArchiveError::Config(msg)) => assert!(!leaked(&msg), "{msg}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn rest_options_debug_redacts_secrets() {
        let mut options = RestCatalogOptions::with_token("http://127.0.0.1:1", "wh", "bearer-secret");
        options.credential = Some("client:client-secret".into());
        options.props.insert("s3.secret-access-key".into(), "s3-secret".into());
        options.props.insert("prefix".into(), "visible".into());
        let shown = format!("{:?}", LakeConfig { catalog: CatalogConfig::Rest(options), ..LakeConfig::new("s3://b") });
        for secret in ["bearer-secret", "client-secret", "s3-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("visible") && shown.contains("127.0.0.1:1"), "{shown}");
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
