//! Test kits, behind the `testing` cargo feature: not part of the default API.
//!
//! - [`fault`]: fault points of an archive run (a failure injected at a chosen step).
//! - [`lake_python`]: the Python interpreter of the lake venv (`scripts/lake_venv.sh`: pyiceberg,
//!   DuckDB and moto), which the tests that read the lake with independent readers run.

use std::path::PathBuf;

pub mod fault;

/// The interpreters that may be the lake venv's, in order: `$WALDEN_LAKE_PYTHON`, else the
/// venv in `$WALDEN_LAKE_VENV`, the default of `scripts/lake_venv.sh`
/// (`${XDG_CACHE_HOME:-$HOME/.cache}/walden/lake-venv`) and the repository's `.venv`.
pub fn lake_python_candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("WALDEN_LAKE_PYTHON") {
        return vec![PathBuf::from(p)];
    }
    let mut venvs: Vec<PathBuf> = std::env::var_os("WALDEN_LAKE_VENV").map(PathBuf::from).into_iter().collect();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    venvs.extend(cache.map(|c| c.join("walden/lake-venv")));
    venvs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venvs.into_iter().map(|v| v.join("bin/python")).collect()
}

/// The lake venv's python: `$WALDEN_LAKE_PYTHON` as given, else the first candidate
/// ([`lake_python_candidates`]) that exists.
pub fn lake_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WALDEN_LAKE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    lake_python_candidates().into_iter().find(|p| p.exists())
}
