//! A dead-letter queue persisted to a directory: events a sink could not process after its
//! retries, kept for inspection and later retry.
//!
//! One file per entry, `<id>.dlq`: a header line `walden-dlq <version> <crc32 hex> <body length>`
//! followed by the JSON body. Files are written temp → fsync → rename → fsync directory, so a
//! crash leaves either the old or the new version; a damaged file is reported, never deleted.
//!
//! ```
//! use walden_cdc::dlq::DeadLetterQueue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("walden-dlq-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let dlq = DeadLetterQueue::open(&dir)?;
//! dlq.push("42", Some(42), &serde_json::json!({"table": "orders"}), "sink unavailable", 5)?;
//! let entries = dlq.list()?;
//! assert_eq!(entries.len(), 1);
//! assert_eq!(entries[0].as_ref().map(|e| e.attempts).ok(), Some(5));
//!
//! // Later: feed every entry to the sink again; those it accepts are removed.
//! let report = dlq.retry_all(|entry| if entry.event["table"] == "orders" { Ok(()) } else { Err("no".into()) })?;
//! assert_eq!(report.succeeded, ["42"]);
//! assert!(dlq.list()?.is_empty());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use walden_wal::clock::now_ms;

/// File-format version of DLQ entries.
pub const DLQ_FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "walden-dlq";
const SUFFIX: &str = ".dlq";
/// Largest entry file accepted when reading (guards allocation).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// One dead-lettered event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Entry id (the event id; unique within the queue).
    pub id: String,
    /// LSN of the event, when it has one.
    pub lsn: Option<u64>,
    /// The last error.
    pub error: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// First failure, ms since the Unix epoch.
    pub first_failed_at_ms: u64,
    /// Latest failure, ms since the Unix epoch.
    pub last_failed_at_ms: u64,
    /// The event itself, as JSON.
    pub event: serde_json::Value,
}

/// DLQ errors.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// File-system failure.
    #[error("dead-letter queue I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A damaged or foreign entry file (left in place).
    #[error("dead-letter entry {path} is damaged: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The event could not be serialised.
    #[error("cannot serialise dead-letter event: {0}")]
    Serialize(#[from] serde_json::Error),
    /// No entry with that id.
    #[error("no dead-letter entry {0}")]
    NotFound(String),
}

/// Outcome of [`DeadLetterQueue::retry_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqRetryReport {
    /// Ids processed successfully (and removed).
    pub succeeded: Vec<String>,
    /// Ids that failed again (kept, attempts incremented).
    pub failed: Vec<String>,
}

/// A directory of dead-lettered events.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DlqError + '_ {
    move |source| DlqError::Io { path: path.to_path_buf(), source }
}

/// Maps an id to a safe file stem: `[A-Za-z0-9_-]` kept, anything else (`.` and `/` included)
/// hex-escaped, so no id can name a path outside the directory.
fn file_stem(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    if out.is_empty() { "%".to_string() } else { out }
}

/// Encodes an entry into the file format.
pub fn encode_entry(entry: &DeadLetter) -> Result<Vec<u8>, DlqError> {
    let body = serde_json::to_vec_pretty(entry)?;
    let mut out = format!("{MAGIC} {DLQ_FORMAT_VERSION} {:08x} {}\n", crc32fast::hash(&body), body.len()).into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes an entry file; any damage is a descriptive error.
pub fn decode_entry(bytes: &[u8]) -> Result<DeadLetter, String> {
    let newline = bytes.iter().position(|&b| b == b'\n').ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not UTF-8")?;
    let fields: Vec<&str> = header.split(' ').collect();
    if fields.len() != 4 || fields[0] != MAGIC {
        return Err("bad magic".into());
    }
    let version: u32 = fields[1].parse().map_err(|_| "bad version")?;
    if version != DLQ_FORMAT_VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let crc = u32::from_str_radix(fields[2], 16).map_err(|_| "bad checksum field")?;
    let len: usize = fields[3].parse().map_err(|_| "bad length field")?;
    let body = &bytes[newline + 1..];
    if body.len() != len {
        return Err(format!("body is {} bytes, header says {len}", body.len()));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))
}

impl DeadLetterQueue {
    /// Opens (creating if needed) the queue in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<DeadLetterQueue, DlqError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(DeadLetterQueue { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", file_stem(id)))
    }

    /// Adds (or replaces) an entry for `event`, durably.
    pub fn push<E: Serialize>(
        &self,
        id: &str,
        lsn: Option<u64>,
        event: &E,
        error: &str,
        attempts: u32,
    ) -> Result<DeadLetter, DlqError> {
        let now = now_ms();
        let first_failed_at_ms = match self.get(id) {
            Ok(existing) => existing.first_failed_at_ms,
            Err(_) => now,
        };
        let entry = DeadLetter {
            id: id.to_string(),
            lsn,
            error: error.to_string(),
            attempts,
            first_failed_at_ms,
            last_failed_at_ms: now,
            event: serde_json::to_value(event)?,
        };
        self.write(&entry)?;
        tracing::warn!(id, lsn, error, "event moved to the dead-letter queue");
        Ok(entry)
    }

    fn write(&self, entry: &DeadLetter) -> Result<(), DlqError> {
        let path = self.path_of(&entry.id);
        let tmp = path.with_extension("dlq.tmp");
        let bytes = encode_entry(entry)?;
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))?;
        Ok(())
    }

    /// Reads one entry.
    pub fn get(&self, id: &str) -> Result<DeadLetter, DlqError> {
        let path = self.path_of(id);
        if !path.exists() {
            return Err(DlqError::NotFound(id.to_string()));
        }
        read_entry(&path)
    }

    /// Every entry, ordered by LSN then id. Damaged files are reported as errors in the list.
    pub fn list(&self) -> Result<Vec<Result<DeadLetter, DlqError>>, DlqError> {
        let mut out = Vec::new();
        for dirent in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = dirent.map_err(io_err(&self.dir))?.path();
            if path.to_string_lossy().ends_with(SUFFIX) {
                out.push(read_entry(&path));
            }
        }
        out.sort_by_key(|r| match r {
            Ok(e) => (0, e.lsn.unwrap_or(u64::MAX), e.id.clone()),
            Err(_) => (1, 0, String::new()),
        });
        Ok(out)
    }

    /// Removes an entry durably.
    pub fn remove(&self, id: &str) -> Result<(), DlqError> {
        let path = self.path_of(id);
        fs::remove_file(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DlqError::NotFound(id.to_string())
            } else {
                DlqError::Io { path: path.clone(), source: e }
            }
        })?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))?;
        Ok(())
    }

    /// Feeds every (readable) entry to `handler`; entries it accepts are removed, the others get
    /// their attempt count and error updated.
    pub fn retry_all(
        &self,
        mut handler: impl FnMut(&DeadLetter) -> Result<(), String>,
    ) -> Result<DlqRetryReport, DlqError> {
        let mut report = DlqRetryReport::default();
        for entry in self.list()? {
            let Ok(mut entry) = entry else { continue };
            match handler(&entry) {
                Ok(()) => {
                    self.remove(&entry.id)?;
                    report.succeeded.push(entry.id);
                }
                Err(error) => {
                    entry.attempts += 1;
                    entry.error = error;
                    entry.last_failed_at_ms = now_ms();
                    self.write(&entry)?;
                    report.failed.push(entry.id);
                }
            }
        }
        Ok(report)
    }
}

fn read_entry(path: &Path) -> Result<DeadLetter, DlqError> {
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len > MAX_ENTRY_BYTES {
        return Err(DlqError::Corrupt { path: path.to_path_buf(), detail: format!("{len} bytes is over the limit") });
    }
    let bytes = fs::read(path).map_err(io_err(path))?;
    decode_entry(&bytes).map_err(|detail| DlqError::Corrupt { path: path.to_path_buf(), detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_list_retry_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = DeadLetterQueue::open(dir.path()).unwrap();
        q.push("7", Some(7), &serde_json::json!({"table": "users"}), "sink down", 5).unwrap();
        q.push("3", Some(3), &serde_json::json!({"table": "orders"}), "sink down", 5).unwrap();
        q.push("../evil", None, &serde_json::json!(1), "x", 1).unwrap();
        let listed: Vec<_> = q.list().unwrap().into_iter().map(|e| e.unwrap().id).collect();
        assert_eq!(listed, vec!["3", "7", "../evil"]);
        assert!(dir.path().join("%2e%2e%2fevil.dlq").exists(), "ids cannot escape the directory");
        let report = q.retry_all(|e| if e.id == "3" { Ok(()) } else { Err("still down".into()) }).unwrap();
        assert_eq!(report.succeeded, vec!["3"]);
        assert_eq!(report.failed.len(), 2);
        let seven = q.get("7").unwrap();
        assert_eq!(seven.attempts, 6);
        assert_eq!(seven.error, "still down");
        assert!(matches!(q.get("3"), Err(DlqError::NotFound(_))));
        q.remove("7").unwrap();
        assert!(matches!(q.remove("7"), Err(DlqError::NotFound(_))));
    }

    /// Regression (found by the `cdc_dlq_entry` fuzz target): serde_json's default float parser
    /// is not correctly rounded, so a number written to an entry could come back as a
    /// neighbouring float, and every rewrite by `retry_all` could move it again. The crate now
    /// enables serde_json's `float_roundtrip`.
    #[test]
    fn numbers_survive_writes_and_rewrites_exactly() {
        let event: serde_json::Value = serde_json::from_str(
            "[124563789012345678901234567890, 1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111, 2.638344616030823e-256, 0.1, 5e-324]",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let q = DeadLetterQueue::open(dir.path()).unwrap();
        q.push("n", Some(1), &event, "e", 1).unwrap();
        for attempt in 2..5 {
            let report = q.retry_all(|_| Err("still failing".into())).unwrap();
            assert_eq!(report.failed, ["n"]);
            let entry = q.get("n").unwrap();
            assert_eq!(entry.attempts, attempt);
            assert_eq!(entry.event, event, "rewrite {attempt} changed the event");
        }
    }

    #[test]
    fn damaged_files_are_reported_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let q = DeadLetterQueue::open(dir.path()).unwrap();
        q.push("1", Some(1), &serde_json::json!({"a": 1}), "e", 1).unwrap();
        let path = dir.path().join("1.dlq");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let listed = q.list().unwrap();
        assert!(matches!(listed[0], Err(DlqError::Corrupt { .. })));
        assert!(path.exists());
        for bad in [&b""[..], b"walden-dlq 1 0 0", b"walden-dlq 2 00000000 0\n", b"nope 1 0 0\n{}"] {
            assert!(decode_entry(bad).is_err());
        }
    }
}
