//! `walden-peers`: Walden side by side with the embedded logs and stores users would pick
//! instead — okaywal, RocksDB, SQLite (WAL mode), fjall and sled — on the same disk, in one run,
//! beside the machine's own limits (see `BENCHMARKS.md`, "Side by side with peers").
//!
//! Each peer is behind a cargo feature of its own (`okaywal`, `rocksdb`, `sqlite`, `fjall`,
//! `sled`; `all-peers` for all), off by default: without features the harness runs Walden and
//! the raw-disk limits only, which is what `cargo test --workspace` builds and smoke-tests.
//!
//! Workloads (the numbering):
//! 1. single-writer 1-row commits of 128 B and 4 KiB records, durable and non-durable;
//! 2. 1, 8 and 64 concurrent committers of 128 B records, durable (group commit);
//! 3. a 1-row against a 100-row transaction, durable and non-durable;
//! 4. a replay of 1 M records from the start: through the log's reader, and as every row in order;
//! 5. reopening after writing 1 GiB.
//!
//! Rate workloads (1–3) run in rounds: every contender and the limit lane (a `pwrite` +
//! `fdatasync` loop of the bytes Walden writes per commit, or a sequential write of them to the
//! page cache) take one time slice per round in a random order, so that they all see the same
//! disk. Every workload checks its result (rows read back and counted, keys and values
//! verified) and fails rather than print a figure for wrong work.

#![deny(missing_docs)]

mod error;
pub mod harness;
mod peers;
pub mod report;
mod scale;
pub mod store;
mod walden;

pub use error::{PeerError, Result};
pub use scale::Scale;
pub use store::{Durability, Fixture, Peer};
pub use walden::Walden;

use walden_benches::{BenchRoot, Machine, load_average};

use crate::harness::{RateResult, ReopenRun, ReplayRun};
use crate::report::TableRow;

/// Walden followed by every peer compiled in (by cargo feature).
pub fn contenders() -> Vec<&'static dyn Peer> {
    let mut all: Vec<&'static dyn Peer> = vec![&Walden];
    all.extend(peers::compiled());
    all
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Sizes used.
    pub scale: Scale,
    /// Peer columns (contenders but Walden), in order.
    pub peer_names: Vec<&'static str>,
    /// Per peer column: why its durable mode is weaker than an fdatasync, if it is.
    pub durable_caveats: Vec<Option<&'static str>>,
    /// Rate workloads.
    pub rates: Vec<RateResult>,
    /// Replay workload.
    pub replay: Option<ReplayRun>,
    /// Reopen workload.
    pub reopen: Option<ReopenRun>,
    /// `/proc/loadavg` before and after.
    pub load_average: (String, String),
}

impl Run {
    /// The table rows.
    pub fn rows(&self) -> Vec<TableRow> {
        let weak: Vec<bool> = self.durable_caveats.iter().map(Option::is_some).collect();
        report::rows(&self.peer_names, &weak, &self.rates, self.replay.as_ref(), self.reopen.as_ref())
    }
}

/// Which workloads to run (all by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Workloads 1–3.
    pub rates: bool,
    /// Only the rate workloads whose label contains this text (e.g. `"64 concurrent"`).
    pub rate_filter: Option<String>,
    /// Workload 4.
    pub replay: bool,
    /// Workload 5.
    pub reopen: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection { rates: true, rate_filter: None, replay: true, reopen: true }
    }
}

/// Runs the comparison at `scale` under `root` for `contenders` (Walden first); `progress` is
/// told what runs next.
pub fn run(
    scale: &Scale,
    root: &BenchRoot,
    contenders: &[&dyn Peer],
    selection: &Selection,
    progress: &mut dyn FnMut(&str),
) -> Result<Run> {
    let load_start = load_average();
    let peers: Vec<_> = contenders.iter().filter(|p| p.name() != "walden").collect();
    let peer_names = peers.iter().map(|p| p.name()).collect();
    let durable_caveats = peers.iter().map(|p| p.modes().durable_caveat).collect();
    let mut rates = Vec::new();
    if selection.rates {
        let wanted = |label: &str| selection.rate_filter.as_deref().is_none_or(|f| label.contains(f));
        for spec in harness::rate_specs(scale).into_iter().filter(|s| wanted(&s.label())) {
            progress(&spec.label());
            rates.push(harness::run_rate(&spec, contenders, root, scale)?);
        }
    }
    let passes = if scale.name == "full" { 3 } else { 1 };
    let replay = if selection.replay {
        progress("4. replay");
        Some(harness::run_replay(contenders, root, scale, passes)?)
    } else {
        None
    };
    let reopen = if selection.reopen {
        progress("5. reopen");
        Some(harness::run_reopen(contenders, root, scale)?)
    } else {
        None
    };
    Ok(Run {
        scale: scale.clone(),
        peer_names,
        durable_caveats,
        rates,
        replay,
        reopen,
        load_average: (load_start, load_average()),
    })
}

/// The printed summary: conditions, legend, table, notes, targets.
pub fn summary(run: &Run, machine: &Machine, root: &BenchRoot, contenders: &[&dyn Peer]) -> String {
    let mut out = conditions(run, machine, root);
    out.push_str("\ncontenders (durable mode / non-durable mode):\n");
    for p in contenders {
        let m = p.modes();
        out.push_str(&format!("- {}: {} / {}\n", p.name(), m.durable, m.buffered.unwrap_or("— (none)")));
    }
    out.push('\n');
    let rows = run.rows();
    out.push_str(&report::table(&run.peer_names, &rows));
    let notes = notes(run);
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    let max_threads = run.scale.committer_threads.iter().copied().max().unwrap_or(1);
    out.push_str("\ntargets:\n");
    for t in report::targets(&run.rates, &rows, max_threads) {
        let ratio = t.ratio.map_or("—".to_string(), |r| format!("{r:.2}"));
        let verdict = if t.met() { "met" } else { "MISSED" };
        out.push_str(&format!("- {}: {ratio} → {verdict}\n", t.goal));
    }
    out
}

/// The summary's first lines: scale, machine, bench dir, load.
fn conditions(run: &Run, machine: &Machine, root: &BenchRoot) -> String {
    let scale = &run.scale;
    let mut out = format!(
        "Walden side by side with peers — scale: {} (slice {} ms × {} rounds; replay {} records; reopen {} MiB)\n",
        scale.name,
        scale.slice.as_millis(),
        scale.rounds,
        scale.replay_records,
        scale.reopen_log_bytes >> 20
    );
    out.push_str(&format!("machine: {} cores, {}\n", machine.cores, machine.cpu_model));
    out.push_str(&format!("bench dir: {}\n", root.describe()));
    if root.is_in_memory() {
        out.push_str("WARNING: the bench dir is in memory; the disk figures do not measure a disk\n");
    }
    out.push_str(&format!("load average: {} at start, {} at end\n", run.load_average.0, run.load_average.1));
    if scale.name != "full" {
        out.push_str("smoke run: tiny sizes; the figures are not measurements\n");
    }
    out
}

/// The notes under the table: weaker durable modes (†), what a replay's time includes, and the
/// commits per fdatasync of each store that counts them (Walden) in each durable rate workload.
fn notes(run: &Run) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for (name, caveat) in run.peer_names.iter().zip(&run.durable_caveats) {
        if let Some(c) = caveat {
            notes.push(format!("- † {name} (durable rows, not counted as best peer): {c}"));
        }
    }
    if let Some(rp) = &run.replay {
        for r in &rp.results {
            for p in [r.log, r.rows].into_iter().flatten() {
                if let Some(note) = p.note {
                    let line = format!("- {}: {note}", r.name);
                    if !notes.contains(&line) {
                        notes.push(line);
                    }
                }
            }
        }
    }
    for r in &run.rates {
        for (name, totals) in &r.lanes {
            if let Some(t) = totals
                && let Some(syncs) = t.data_syncs
                && r.spec.durability == Durability::Durable
                && syncs > 0
            {
                notes.push(format!(
                    "- {name}: {:.2} commits per fdatasync in \"{}\"",
                    t.txns as f64 / syncs as f64,
                    r.spec.label()
                ));
            }
        }
    }
    notes
}
