//! The one table: a row per workload, a column per contender, the ratio to the best peer and
//! to the machine's limit measured in the same run.

use std::fmt::Write as _;

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
    let mut out = Vec::new();
    let none = vec![false; peer_names.len()];
    for r in rates {
        let uncounted = if r.spec.durability == Durability::Durable { weak_durable.to_vec() } else { none.clone() };
        let figure =
            |name: &str| r.lanes.iter().find(|(n, _)| *n == name).and_then(|(_, t)| t.as_ref()).map(|t| t.txns_per_s());
        let limit = r.limit.commits_per_s();
        let unit = if r.spec.group == 3 { "txns/s" } else { "commits/s" };
        out.push(TableRow {
            workload: r.spec.label(),
            unit,
            lower_is_better: false,
            walden: figure("walden"),
            peers: peer_names.iter().map(|n| figure(n)).collect(),
            uncounted: uncounted.clone(),
            limit: Some(limit),
            limit_note: r.limit.describe(),
        });
        if r.spec.txn_rows > 1 {
            let rows = r.spec.txn_rows as f64;
            out.push(TableRow {
                workload: format!("{} — rows", r.spec.label()),
                unit: "rows/s",
                lower_is_better: false,
                walden: figure("walden").map(|f| f * rows),
                peers: peer_names.iter().map(|n| figure(n).map(|f| f * rows)).collect(),
                uncounted: uncounted.clone(),
                limit: Some(limit * rows),
                limit_note: r.limit.describe(),
            });
        }
    }
    if let Some(rp) = replay {
        let size = human_bytes(rp.record_bytes);
        let records = format_count(rp.records as f64);
        let figure = |name: &str, log: bool| {
            rp.results
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| if log { r.log } else { r.rows })
                .map(|p| p.records as f64 / p.elapsed.as_secs_f64().max(1e-9))
        };
        for (log, what) in [(true, "the log's reader"), (false, "every row in key (= commit) order")] {
            out.push(TableRow {
                workload: format!("4. replay {records} × {size} records from the start: {what}"),
                unit: "records/s",
                lower_is_better: false,
                walden: figure("walden", log),
                peers: peer_names.iter().map(|n| figure(n, log)).collect(),
                uncounted: none.clone(),
                limit: Some(rp.raw_read_records_per_s()),
                limit_note: "read(2) of Walden's log files, 1 MiB chunks, page cache".to_string(),
            });
        }
    }
    if let Some(ro) = reopen {
        let gib = ro.bytes as f64 / f64::from(1u32 << 30);
        let ms = |name: &str| ro.results.iter().find(|r| r.name == name).map(|r| r.reopen.as_secs_f64() * 1e3);
        out.push(TableRow {
            workload: format!("5. reopen after writing {gib:.2} GiB of 4 KiB rows: open + read the last row"),
            unit: "ms",
            lower_is_better: true,
            walden: ms("walden"),
            peers: peer_names.iter().map(|n| ms(n)).collect(),
            uncounted: none.clone(),
            limit: None,
            limit_note: "—".to_string(),
        });
        let mb_s = |name: &str| {
            ro.results.iter().find(|r| r.name == name).map(|r| ro.bytes as f64 / r.load.as_secs_f64().max(1e-9) / 1e6)
        };
        out.push(TableRow {
            workload: format!("5. (its load) write {gib:.2} GiB in 64-row transactions non-durably, then sync once"),
            unit: "MB/s",
            lower_is_better: false,
            walden: mb_s("walden"),
            peers: peer_names.iter().map(|n| mb_s(n)).collect(),
            uncounted: none.clone(),
            limit: Some(ro.bytes as f64 / ro.raw_write.as_secs_f64().max(1e-9) / 1e6),
            limit_note: "sequential write of the same bytes, 1 MiB chunks + one fdatasync".to_string(),
        });
    }
    out
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
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
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
