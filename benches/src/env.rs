//! Where the benchmarks write (a real disk, never tmpfs) and what machine they run on.

use std::path::{Path, PathBuf};

use walden_wal::storage::FileSystemType;

use crate::BenchError;

/// The directory under which every benchmark creates (and removes) its temporary directories.
#[derive(Debug, Clone)]
pub struct BenchRoot {
    path: PathBuf,
    fs_type: String,
    why: &'static str,
}

impl BenchRoot {
    /// Picks the directory: `$WALDEN_BENCH_DIR` if set; else the system temp dir if it is on a
    /// real disk; else `<target dir>/walden-bench-tmp` (when the temp dir is tmpfs or ramfs).
    pub fn choose() -> Result<BenchRoot, BenchError> {
        if let Some(dir) = std::env::var_os("WALDEN_BENCH_DIR").filter(|d| !d.is_empty()) {
            return BenchRoot::at(PathBuf::from(dir), "$WALDEN_BENCH_DIR");
        }
        let tmp = std::env::temp_dir();
        if !fs_type(&tmp)?.is_in_memory() {
            return BenchRoot::at(tmp, "system temp dir (not tmpfs)");
        }
        BenchRoot::at(target_dir().join("walden-bench-tmp"), "target dir (system temp dir is tmpfs)")
    }

    /// Uses `path` (created if missing).
    pub fn at(path: PathBuf, why: &'static str) -> Result<BenchRoot, BenchError> {
        std::fs::create_dir_all(&path).map_err(|e| BenchError::io("create directory", &path, e))?;
        let fs_type = fs_type(&path)?.name();
        Ok(BenchRoot { path, fs_type, why })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File-system type of the directory (`ext4`, `xfs`, `tmpfs`, …, or the hex magic).
    pub fn fs_type(&self) -> &str {
        &self.fs_type
    }

    /// Whether the directory is in memory (figures would not measure a disk).
    pub fn is_in_memory(&self) -> bool {
        self.fs_type == "tmpfs" || self.fs_type == "ramfs"
    }

    /// One line describing the choice, for the summary.
    pub fn describe(&self) -> String {
        format!("{} ({}; {})", self.path.display(), self.fs_type, self.why)
    }

    /// A fresh temporary directory under the root, removed when dropped.
    pub fn tempdir(&self) -> Result<tempfile::TempDir, BenchError> {
        tempfile::Builder::new()
            .prefix("walden-bench-")
            .tempdir_in(&self.path)
            .map_err(|e| BenchError::io("create temp dir", &self.path, e))
    }
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            std::fs::canonicalize(&workspace).unwrap_or(workspace).join("target")
        }
    }
}

fn fs_type(path: &Path) -> Result<FileSystemType, BenchError> {
    walden_wal::storage::file_system_type(path).map_err(|e| BenchError::io("statfs", path, e))
}

/// The machine, as the summary reports it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the run started.
    pub load_average: String,
}

impl Machine {
    /// Reads the machine description (missing pieces become `"unknown"`).
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        Machine { cores, cpu_model, load_average: load_average() }
    }
}

/// The first three fields of `/proc/loadavg`, or `"unknown"`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}
