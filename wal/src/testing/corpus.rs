//! Helpers the crates' `tests/fuzz_corpus.rs` share: reading the committed corpora and
//! regressions of `fuzz/`, replaying them, and mutating inputs.

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace's `fuzz/` directory (targets, corpora, regressions).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fuzz")
}

/// The names of the fuzz targets in [`fuzz_dir`] whose name starts with `prefix`, sorted: what a
/// crate's corpus replay must cover.
pub fn targets(prefix: &str) -> Vec<String> {
    files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Files directly inside `dir`, sorted; empty if the directory does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display())).path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The corpus inputs of `target` under `fuzz_dir` (`corpus/<target>/`, which must exist and
/// be non-empty, so a moved directory cannot make a replay pass vacuously), followed by its
/// regressions (`regressions/<target>/`, optional).
pub fn inputs(fuzz_dir: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus_dir = fuzz_dir.join("corpus").join(target);
    let corpus = files_in(&corpus_dir);
    assert!(!corpus.is_empty(), "fuzz corpus {} is missing or empty", corpus_dir.display());
    let regressions = files_in(&fuzz_dir.join("regressions").join(target));
    corpus
        .into_iter()
        .chain(regressions)
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs `run` over every input of `target` (see [`inputs`]), naming the input that panicked;
/// returns how many there were.
pub fn replay(fuzz_dir: &Path, target: &str, run: fn(&[u8])) -> usize {
    let inputs = inputs(fuzz_dir, target);
    for (path, input) in &inputs {
        let result = std::panic::catch_unwind(|| run(input));
        assert!(result.is_ok(), "fuzz target {target} panicked on {}", path.display());
    }
    inputs.len()
}

/// One edit of an input, for mutation tests (positions wrap around the input's length).
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip bit `bit % 8` of byte `at`.
    Flip {
        /// The byte.
        at: usize,
        /// The bit (modulo 8).
        bit: u8,
    },
    /// Set byte `at` to `byte`.
    Set {
        /// The byte's position.
        at: usize,
        /// Its new value.
        byte: u8,
    },
    /// Cut the input at `at`.
    Truncate {
        /// The new length.
        at: usize,
    },
    /// Insert `bytes` before `at`.
    Insert {
        /// Where.
        at: usize,
        /// What.
        bytes: Vec<u8>,
    },
}

impl Mutation {
    /// A mutation from raw parts (for property tests): `choice % 4` picks flip, set, truncate
    /// or insert; the other parts fill its fields.
    pub fn from_parts(choice: u8, at: usize, byte: u8, bytes: Vec<u8>) -> Mutation {
        match choice % 4 {
            0 => Mutation::Flip { at, bit: byte },
            1 => Mutation::Set { at, byte },
            2 => Mutation::Truncate { at },
            _ => Mutation::Insert { at, bytes },
        }
    }
}

/// `data` with `mutations` applied in order.
pub fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len().max(1);
        match m {
            Mutation::Flip { at, bit } => {
                if !data.is_empty() {
                    data[at % len] ^= 1 << (bit % 8);
                }
            }
            Mutation::Set { at, byte } => {
                if !data.is_empty() {
                    data[at % len] = *byte;
                }
            }
            Mutation::Truncate { at } => data.truncate(at % len),
            Mutation::Insert { at, bytes } => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
        }
    }
    data
}
