//! The one table: a row per workload, a column per contender, the ratio to the best peer and
//! to the machine's limit measured in the same run.

use std::fmt::Write as _;

use walden_benches::group_thousands;

use crate::harness::{RateResult, ReopenRun, ReplayRun, human_bytes};
use crate::store::Durability;

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Workload label.
    pub workload: String,
    /// Unit of every figure in the row.
    pub unit: &'static str,
    /// Whether smaller figures are better (times).
    pub lower_is_better: bool,
    /// Walden's figure.
    pub walden: Option<f64>,
    /// Each peer's figure, in column order (`None`: no such mode or API).
    pub peers: Vec<Option<f64>>,
    /// Per peer: shown but not counted as the best peer (its durable mode is weaker; marked †).
    pub uncounted: Vec<bool>,
    /// The machine's limit in the row's unit, measured in the same run.
    pub limit: Option<f64>,
    /// What the limit is.
    pub limit_note: String,
}

impl TableRow {
    /// The best peer's figure.
    pub fn best_peer(&self) -> Option<f64> {
        let figures =
            self.peers.iter().zip(self.uncounted.iter().chain(std::iter::repeat(&false))).filter(|(_, u)| !**u);
        let figures = figures.filter_map(|(f, _)| *f);
        if self.lower_is_better { figures.reduce(f64::min) } else { figures.reduce(f64::max) }
    }

    /// How many times better Walden is than the best peer (> 1: Walden wins). For times this is
    /// best peer time ÷ Walden's time.
    pub fn vs_best_peer(&self) -> Option<f64> {
        let (w, p) = (self.walden?, self.best_peer()?);
        Some(if self.lower_is_better { p / w } else { w / p })
    }

    /// Walden's figure as a fraction of the machine's limit.
    pub fn vs_limit(&self) -> Option<f64> {
        Some(self.walden? / self.limit?)
    }
}

/// The table rows of a run, in workload order.
///
/// `weak_durable[i]`: peer `i`'s durable mode is weaker than an fdatasync (it is then not counted
/// as the best peer in durable rows).
pub fn rows(
    peer_names: &[&str],
    weak_durable: &[bool],
    rates: &[RateResult],
    replay: Option<&ReplayRun>,
    reopen: Option<&ReopenRun>,
) -> Vec<TableRow> {
    let columns = Columns { peer_names };
    let mut out: Vec<TableRow> = rates.iter().flat_map(|r| columns.rate_rows(r, weak_durable)).collect();
    if let Some(rp) = replay {
        out.extend(columns.replay_rows(rp));
    }
    if let Some(ro) = reopen {
        out.extend(columns.reopen_rows(ro));
    }
    out
}

/// The contender columns of the table: Walden, then the peers by name.
struct Columns<'a> {
    peer_names: &'a [&'a str],
}

impl Columns<'_> {
    /// A row of `figure(contender)` for every contender, higher is better, counting every peer,
    /// with no limit; the callers override what differs.
    fn row(&self, workload: String, unit: &'static str, figure: impl Fn(&str) -> Option<f64>) -> TableRow {
        TableRow {
            workload,
            unit,
            lower_is_better: false,
            walden: figure("walden"),
            peers: self.peer_names.iter().map(|n| figure(n)).collect(),
            uncounted: vec![false; self.peer_names.len()],
            limit: None,
            limit_note: "—".to_string(),
        }
    }

    /// Workloads 1–3: transactions per second (and, for multi-row transactions, rows per
    /// second) beside the limit lane of the same rounds.
    fn rate_rows(&self, r: &RateResult, weak_durable: &[bool]) -> Vec<TableRow> {
        let durable = r.spec.durability == Durability::Durable;
        let uncounted = if durable { weak_durable.to_vec() } else { vec![false; self.peer_names.len()] };
        let figure =
            |name: &str| r.lanes.iter().find(|(n, _)| *n == name).and_then(|(_, t)| t.as_ref()).map(|t| t.txns_per_s());
        let limit = r.limit.commits_per_s();
        let unit = if r.spec.group == 3 { "txns/s" } else { "commits/s" };
        let txns = TableRow {
            uncounted: uncounted.clone(),
            limit: Some(limit),
            limit_note: r.limit.describe(),
            ..self.row(r.spec.label(), unit, figure)
        };
        if r.spec.txn_rows <= 1 {
            return vec![txns];
        }
        let rows = r.spec.txn_rows as f64;
        let per_row = TableRow {
            uncounted,
            limit: Some(limit * rows),
            limit_note: r.limit.describe(),
            ..self.row(format!("{} — rows", r.spec.label()), "rows/s", |n| figure(n).map(|f| f * rows))
        };
        vec![txns, per_row]
    }

    /// Workload 4: records per second through the log's reader and as rows in order, beside a
    /// raw read of Walden's log files.
    fn replay_rows(&self, rp: &ReplayRun) -> Vec<TableRow> {
        let size = human_bytes(rp.record_bytes);
        let records = format_count(rp.records as f64);
        let figure = |name: &str, log: bool| {
            rp.results
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| if log { r.log } else { r.rows })
                .map(|p| p.records as f64 / p.elapsed.as_secs_f64().max(1e-9))
        };
        [(true, "the log's reader"), (false, "every row in key (= commit) order")]
            .into_iter()
            .map(|(log, what)| TableRow {
                limit: Some(rp.raw_read_records_per_s()),
                limit_note: "read(2) of Walden's log files, 1 MiB chunks, page cache".to_string(),
                ..self.row(format!("4. replay {records} × {size} records from the start: {what}"), "records/s", |n| {
                    figure(n, log)
                })
            })
            .collect()
    }

    /// Workload 5: the time to reopen (lower is better, no limit), and its load's throughput
    /// beside a sequential write of the same bytes.
    fn reopen_rows(&self, ro: &ReopenRun) -> Vec<TableRow> {
        let gib = ro.bytes as f64 / f64::from(1u32 << 30);
        let result = |name: &str| ro.results.iter().find(|r| r.name == name);
        let ms = |name: &str| result(name).map(|r| r.reopen.as_secs_f64() * 1e3);
        let mb_s = |name: &str| result(name).map(|r| ro.bytes as f64 / r.load.as_secs_f64().max(1e-9) / 1e6);
        let reopen = TableRow {
            lower_is_better: true,
            ..self.row(
                format!("5. reopen after writing {gib:.2} GiB of 4 KiB rows: open + read the last row"),
                "ms",
                ms,
            )
        };
        let load = TableRow {
            limit: Some(ro.bytes as f64 / ro.raw_write.as_secs_f64().max(1e-9) / 1e6),
            limit_note: "sequential write of the same bytes, 1 MiB chunks + one fdatasync".to_string(),
            ..self.row(
                format!("5. (its load) write {gib:.2} GiB in 64-row transactions non-durably, then sync once"),
                "MB/s",
                mb_s,
            )
        };
        vec![reopen, load]
    }
}

/// Renders rows as a Markdown table.
pub fn table(peer_names: &[&str], rows: &[TableRow]) -> String {
    let mut s = String::new();
    let _ = write!(s, "| workload | unit | walden |");
    for n in peer_names {
        let _ = write!(s, " {n} |");
    }
    let _ = writeln!(s, " walden ÷ best peer | machine limit (same run) | walden ÷ limit |");
    let _ = write!(s, "|---|---|--:|");
    for _ in peer_names {
        let _ = write!(s, "--:|");
    }
    let _ = writeln!(s, "--:|---|--:|");
    for r in rows {
        let _ = write!(s, "| {} | {} | {} |", r.workload, r.unit, opt(r.walden));
        for (i, p) in r.peers.iter().enumerate() {
            let mark = if p.is_some() && r.uncounted.get(i).copied().unwrap_or(false) { " †" } else { "" };
            let _ = write!(s, " {}{mark} |", opt(*p));
        }
        let limit = match r.limit {
            Some(l) => format!("{} ({})", format_count(l), r.limit_note),
            None => r.limit_note.clone(),
        };
        let ratio = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:.2}"));
        let _ = writeln!(s, " {} | {} | {} |", ratio(r.vs_best_peer()), limit, ratio(r.vs_limit()));
    }
    s
}

fn opt(x: Option<f64>) -> String {
    x.map_or("—".to_string(), format_count)
}

/// `1234567.8` → `1,234,568`; below 100, three significant digits.
pub fn format_count(x: f64) -> String {
    if !x.is_finite() {
        return "—".to_string();
    }
    if x.abs() < 100.0 {
        return if x.abs() < 10.0 { format!("{x:.2}") } else { format!("{x:.1}") };
    }
    group_thousands(x)
}

/// A goal of the issue, judged on the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is asked.
    pub goal: String,
    /// The measured ratio.
    pub ratio: Option<f64>,
    /// The threshold.
    pub threshold: f64,
}

impl Target {
    /// Whether the ratio meets the threshold.
    pub fn met(&self) -> bool {
        self.ratio.is_some_and(|r| r >= self.threshold)
    }
}

/// The targets against this run's rows.
pub fn targets(rates: &[RateResult], rows: &[TableRow], max_threads: usize) -> Vec<Target> {
    let mut out = Vec::new();
    for r in rates {
        let s = &r.spec;
        let label = s.label();
        let row = rows.iter().find(|row| row.workload == label);
        if s.group == 1 && s.durability == Durability::Durable {
            out.push(Target {
                goal: format!("{label}: ≥ 0.9 × the raw fdatasync loop"),
                ratio: row.and_then(TableRow::vs_limit),
                threshold: 0.9,
            });
        }
        if s.group == 2 && s.threads == max_threads {
            out.push(Target {
                goal: format!("{label}: ≥ 2 × the best peer"),
                ratio: row.and_then(TableRow::vs_best_peer),
                threshold: 2.0,
            });
        }
    }
    if let Some(row) = rows.iter().find(|r| r.workload.starts_with("4. ") && r.workload.ends_with("the log's reader")) {
        out.push(Target {
            goal: format!("{}: ≥ 1.5 × the best peer", row.workload),
            ratio: row.vs_best_peer(),
            threshold: 1.5,
        });
    }
    out
}
