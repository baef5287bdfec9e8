//! Where the benchmarks write (a real disk, never tmpfs) and what machine they run on.

use std::path::{Path, PathBuf};

use crate::BenchError;

/// `statfs` magic numbers of file systems that live in memory.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

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
        let magic = fs_magic(&tmp)?;
        if magic != TMPFS_MAGIC && magic != RAMFS_MAGIC {
            return BenchRoot::at(tmp, "system temp dir (not tmpfs)");
        }
        BenchRoot::at(target_dir().join("walden-bench-tmp"), "target dir (system temp dir is tmpfs)")
    }

    /// Uses `path` (created if missing).
    pub fn at(path: PathBuf, why: &'static str) -> Result<BenchRoot, BenchError> {
        std::fs::create_dir_all(&path).map_err(|e| BenchError::io("create directory", &path, e))?;
        let fs_type = fs_name(fs_magic(&path)?);
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

fn fs_magic(path: &Path) -> Result<i64, BenchError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| BenchError::Check(format!("path {} contains a NUL byte", path.display())))?;
    // SAFETY: `statfs` only writes into the zero-initialised struct we pass; the path is a valid
    // NUL-terminated string that outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(BenchError::io("statfs", path, std::io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between libc targets
    Ok(st.f_type as i64)
}

fn fs_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".to_string(),
        0x5846_5342 => "xfs".to_string(),
        0x9123_683E => "btrfs".to_string(),
        0x794C_7630 => "overlayfs".to_string(),
        0x2FC1_2FC1 => "zfs".to_string(),
        0x6969 => "nfs".to_string(),
        TMPFS_MAGIC => "tmpfs".to_string(),
        RAMFS_MAGIC => "ramfs".to_string(),
        other => format!("fs magic {other:#x}"),
    }
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
