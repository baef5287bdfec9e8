//! The archive lake as the CLI sees it: where it is (`--lake`, default the directory
//! `<data-dir>.lake` beside the data directory), whether one exists there, whether an S3 endpoint
//! answers at all, and opening the archiver on it.
//!
//! Nothing here creates a lake: only [`ResolvedLake::open_archiver`] does (through
//! [`Archiver::open`]), and the commands call it only where creating one is what was asked for
//! (`walden archive`, `walden demo`). Commands that merely read the archive (`replay`, `tail`)
//! use it only if it [`exists`](ResolvedLake::exists).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use walden_archive::config::CATALOG_FILE_NAME;
use walden_archive::{Archiver, LakeConfig, LakeLocation};
use walden_cdc::Cdc;
use walden_engine::{Database, Lsn};

use crate::exit::{CliError, CliResult, Code};

/// How long the reachability check of an S3 endpoint waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the archive lake is (shared by `archive`, `replay` and `tail`).
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// The archive lake: a local directory (a path or file:///abs/dir) or s3://bucket/prefix
    /// (endpoint, region and keys from the usual AWS_* environment variables; needs
    /// --catalog-path). Default: the directory <data-dir>.lake beside the data directory.
    #[arg(long, global = true, env = "WALDEN_LAKE", value_name = "URL")]
    pub lake: Option<String>,
    /// The lake's embedded Iceberg catalog, a local sqlite file. Default: catalog.db inside a
    /// local lake; required for an s3:// lake.
    #[arg(long, global = true, env = "WALDEN_LAKE_CATALOG", value_name = "PATH")]
    pub catalog_path: Option<PathBuf>,
}

/// A lake location checked for what can be checked without touching it.
#[derive(Debug, Clone)]
pub struct ResolvedLake {
    /// The configuration handed to the archiver.
    pub config: LakeConfig,
    /// The parsed location.
    pub location: LakeLocation,
    /// The embedded catalog's sqlite file.
    pub catalog_file: PathBuf,
    /// Whether `--lake` was given (otherwise: the default beside the data directory).
    pub explicit: bool,
}

/// The lake as commands print it.
#[derive(Debug, Clone, Serialize)]
pub struct LakeJson {
    /// The lake URL.
    pub url: String,
    /// The local directory of a file lake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The embedded catalog (sqlite file).
    pub catalog: PathBuf,
    /// The warehouse URL the catalog records (table locations are below it).
    pub warehouse: String,
    /// `namespace.table`.
    pub table: String,
}

impl LakeJson {
    /// The lake at `location` (parsed from `config`) whose catalog is the sqlite file `catalog`.
    pub fn new(config: &LakeConfig, location: &LakeLocation, catalog: PathBuf) -> LakeJson {
        LakeJson {
            url: config.url.clone(),
            dir: match location {
                LakeLocation::Local(dir) => Some(dir.clone()),
                _ => None,
            },
            catalog,
            warehouse: location.warehouse_url(),
            table: format!("{}.{}", config.namespace, config.table),
        }
    }
}

/// The default lake directory of a data directory: `<data-dir>.lake` beside it (absolute).
pub fn default_lake_dir(data_dir: &Path) -> CliResult<PathBuf> {
    let config = LakeConfig::beside_data_dir(absolute(data_dir)?).map_err(|e| {
        CliError::new(Code::Usage, format!("no default lake for the data directory {}: {e}", data_dir.display()))
            .with_hint("pass --lake")
    })?;
    match config.location() {
        Ok(LakeLocation::Local(dir)) => Ok(dir),
        _ => Err(CliError::new(Code::Failure, format!("unexpected default lake URL {} (a bug)", config.url))),
    }
}

fn absolute(path: &Path) -> CliResult<PathBuf> {
    std::path::absolute(path).map_err(|e| CliError::io("cannot resolve", path, &e))
}

impl LakeArgs {
    /// Resolves the lake of `data_dir`: parses the URL (unknown schemes and an s3:// lake without
    /// a catalog are bad usage, exit code 2), without touching the lake.
    pub fn resolve(&self, data_dir: &Path) -> CliResult<ResolvedLake> {
        let bad = |message: String| {
            CliError::new(Code::Usage, message)
                .with_hint("a lake is a local directory (a path or file:///abs/dir) or s3://bucket/prefix")
        };
        let mut config = match &self.lake {
            None => LakeConfig::local_dir(default_lake_dir(data_dir)?),
            Some(url) if url.contains("://") => Ok(LakeConfig::new(url.trim_end_matches('/'))),
            Some(path) if path.is_empty() => return Err(bad("--lake is empty".to_string())),
            Some(path) => LakeConfig::local_dir(path),
        }
        .map_err(|e| bad(format!("--lake {:?}: {e}", self.lake.as_deref().unwrap_or_default())))?;
        let location = config.location().map_err(|e| bad(e.to_string()))?;
        if let LakeLocation::Memory(_) = location {
            return Err(bad(format!(
                "lake URL {:?}: a memory:// lake lives only inside one process; use a directory or s3://",
                config.url
            )));
        }
        if let Some(path) = &self.catalog_path {
            config.catalog_path = Some(absolute(path)?);
        }
        let catalog_file = match (&config.catalog_path, &location) {
            (Some(path), _) => path.clone(),
            (None, LakeLocation::Local(dir)) => dir.join(CATALOG_FILE_NAME),
            (None, _) => {
                return Err(CliError::new(
                    Code::Usage,
                    format!(
                        "the lake {} needs --catalog-path: the local sqlite file of its Iceberg catalog",
                        config.url
                    ),
                ));
            }
        };
        Ok(ResolvedLake { config, location, catalog_file, explicit: self.lake.is_some() })
    }
}

impl ResolvedLake {
    /// Whether a lake exists there: its catalog file does (nothing has been archived otherwise).
    pub fn exists(&self) -> bool {
        self.catalog_file.is_file()
    }

    /// The lake as commands print it.
    pub fn json(&self) -> LakeJson {
        LakeJson::new(&self.config, &self.location, self.catalog_file.clone())
    }

    /// The error for a lake that is not there.
    pub fn not_found(&self) -> CliError {
        CliError::new(
            Code::LakeUnavailable,
            format!("no archive lake at {}: {} does not exist", self.config.url, self.catalog_file.display()),
        )
        .with_hint("nothing has been archived there yet: `walden archive` creates the lake; or pass --lake")
    }

    /// For an S3 lake, checks that its endpoint accepts TCP connections (within 5 s), so an
    /// unreachable lake fails at once with a clear message instead of after the object store's
    /// retries. Skipped when a proxy is configured (the endpoint may only be reachable through it).
    pub fn check_reachable(&self) -> CliResult {
        let LakeLocation::S3 { bucket, .. } = &self.location else { return Ok(()) };
        let proxied =
            ["AWS_PROXY_URL", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        if proxied {
            return Ok(());
        }
        let endpoint = self
            .config
            .s3
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"))
            .unwrap_or_else(|| {
                let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or("us-east-1".into());
                format!("https://{bucket}.s3.{region}.amazonaws.com")
            });
        let Some(host_port) = host_port(&endpoint) else {
            return Err(CliError::new(
                Code::Usage,
                format!("the lake's S3 endpoint {endpoint:?} is not a URL (http://host[:port] or https://host[:port])"),
            ));
        };
        let unreachable = |why: String| {
            CliError::new(
                Code::LakeUnavailable,
                format!("cannot reach the lake {}: its S3 endpoint {endpoint} {why}", self.config.url),
            )
            .with_hint("check AWS_ENDPOINT_URL / AWS_REGION and the network")
        };
        let addrs: Vec<_> = match host_port.to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => return Err(unreachable(format!("does not resolve ({e})"))),
        };
        let mut last: Option<io::Error> = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable(match last {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => {
                format!("did not answer within {} s", CONNECT_TIMEOUT.as_secs())
            }
            Some(e) => format!("refuses connections ({e})"),
            None => "resolves to no address".to_string(),
        }))
    }

    /// The archiver of a command that only reads the archive (`replay`, `tail`): `None` when no
    /// lake exists at the default place (nothing is created); a lake named with `--lake` must
    /// exist ([`Code::LakeUnavailable`] otherwise).
    pub fn open_for_reading(&self, db: &Arc<Database>) -> CliResult<Option<Archiver>> {
        if !self.exists() {
            return if self.explicit { Err(self.not_found()) } else { Ok(None) };
        }
        self.open_archiver(db.clone(), None).map(Some)
    }

    /// Runs `body` with the change source of a command that reads the archive (`replay`, `tail`):
    /// through the lake when one exists ([`open_for_reading`](Self::open_for_reading)), so LSNs the
    /// local WAL no longer holds are read from it, else the local WAL alone. `body` learns which.
    pub fn with_reader<T>(
        &self,
        db: &Arc<Database>,
        body: impl FnOnce(&Cdc, Option<&Archiver>) -> CliResult<T>,
    ) -> CliResult<T> {
        let archiver = self.open_for_reading(db)?;
        let cdc = archiver.as_ref().map_or_else(|| Cdc::new(db.clone()), Archiver::cdc);
        body(&cdc, archiver.as_ref())
    }

    /// Opens (creating it if needed) the lake and its archiver over `db`, with
    /// `target_batch_bytes` of WAL per archive batch (`None`: the default). The archiver holds
    /// the engine's retain-from horizon at the first unarchived LSN.
    pub fn open_archiver(&self, db: Arc<Database>, target_batch_bytes: Option<u64>) -> CliResult<Archiver> {
        self.check_reachable()?;
        let mut config = self.config.clone();
        if let Some(bytes) = target_batch_bytes {
            config.target_batch_bytes = bytes;
        }
        Archiver::open(db, config).map_err(|e| {
            let err = CliError::from_error(format!("cannot open the archive lake {}", self.config.url), &e);
            match err.code {
                Code::Damaged => err.with_hint(
                    "the lake does not match this data directory's log (another database's lake?); pass --lake",
                ),
                _ => err,
            }
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `host:port` of an `http(s)://host[:port][/...]` URL (the default port by scheme).
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?; // user:pass@host
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'), // not the inside of an IPv6 literal
        None => false,
    };
    Some(if has_port { authority.to_string() } else { format!("{authority}:{default_port}") })
}

/// What the events table looks like now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableInfo {
    /// The current metadata JSON (what `StaticTable.from_metadata` and DuckDB's `iceberg_scan`
    /// read).
    pub metadata_location: Option<String>,
    /// Snapshots kept.
    pub snapshots: usize,
    /// The current snapshot.
    pub current_snapshot_id: Option<i64>,
    /// Live data files (from the current snapshot's summary).
    pub data_files: Option<u64>,
    /// Live rows.
    pub records: Option<u64>,
    /// Bytes of the live data files.
    pub data_bytes: Option<u64>,
    /// First LSN the archive holds.
    pub first_lsn: Option<Lsn>,
    /// Last LSN the archive holds.
    pub last_lsn: Option<Lsn>,
}

/// Reads the events table's current state.
pub fn table_info(archiver: &Archiver) -> CliResult<TableInfo> {
    let lake = archiver.lake();
    let table =
        archiver.block_on(lake.load_table()).map_err(|e| CliError::from_error("cannot load the archive table", &e))?;
    let range =
        archiver.block_on(lake.archived_range()).map_err(|e| CliError::from_error("cannot read the archive", &e))?;
    let metadata = table.metadata();
    let current = metadata.current_snapshot();
    let total = |key: &str| -> Option<u64> {
        current.and_then(|s| s.summary().additional_properties.get(key)).and_then(|v| v.parse().ok())
    };
    Ok(TableInfo {
        metadata_location: table.metadata_location().map(str::to_string),
        snapshots: metadata.snapshots().count(),
        current_snapshot_id: current.map(|s| s.snapshot_id()),
        data_files: total("total-data-files"),
        records: total("total-records"),
        data_bytes: total("total-files-size"),
        first_lsn: range.map(|r| r.first_lsn),
        last_lsn: range.map(|r| r.last_lsn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_to_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:9000").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(
            host_port("https://acct.r2.cloudflarestorage.com/bucket").as_deref(),
            Some("acct.r2.cloudflarestorage.com:443")
        );
        assert_eq!(host_port("http://[::1]:9000/x").as_deref(), Some("[::1]:9000"));
        assert_eq!(host_port("http://[::1]").as_deref(), Some("[::1]:80"));
        assert_eq!(host_port("ftp://x"), None);
        assert_eq!(host_port("localhost:9000"), None);
        assert_eq!(host_port("http://"), None);
    }

    #[test]
    fn lake_urls_resolve_or_are_bad_usage() {
        let args = |lake: Option<&str>, catalog: Option<&str>| LakeArgs {
            lake: lake.map(str::to_string),
            catalog_path: catalog.map(PathBuf::from),
        };
        let default = args(None, None).resolve(Path::new("/srv/db")).unwrap();
        assert_eq!(default.config.url, "file:///srv/db.lake");
        assert_eq!(default.catalog_file, Path::new("/srv/db.lake/catalog.db"));
        assert!(!default.explicit);
        let path = args(Some("/srv/lake"), None).resolve(Path::new("/srv/db")).unwrap();
        assert_eq!(path.config.url, "file:///srv/lake");
        let s3 = args(Some("s3://bkt/p"), Some("/srv/cat.db")).resolve(Path::new("/srv/db")).unwrap();
        assert_eq!(s3.location, LakeLocation::S3 { bucket: "bkt".into(), prefix: "p".into() });
        assert_eq!(s3.catalog_file, Path::new("/srv/cat.db"));
        for bad in [args(Some("gs://b"), None), args(Some("memory://x"), None), args(Some("s3://bkt/p"), None)] {
            assert_eq!(bad.resolve(Path::new("/srv/db")).unwrap_err().code, Code::Usage, "{bad:?}");
        }
    }
}
