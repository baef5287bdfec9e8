//! `walden verify`: checks every segment (header, chain to its predecessor, every record's CRC,
//! LSN and chain link, footer against the records, sparse index), every engine record (it
//! decodes; transactions are whole BEGIN … COMMIT batches), every slot file and `engine.state`,
//! and reports each problem with its file, byte offset and LSN. Read-only; exit code 10 when
//! anything is wrong (warnings — a torn tail, a leftover temporary file — do not count).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::InvalidationReason;
use walden_engine::record::{self, EngineRecord};
use walden_engine::retention::{self, LogBounds};
use walden_engine::state::EngineState;
use walden_wal::Lsn;
use walden_wal::format::{Footer, SegmentHeader};
use walden_wal::inspect::{self, ChainEnd, FooterState, RawRecord, ScanOutcome, ScannedSegment};

use crate::datadir::{self, DataDir, is_known_root_entry};
use crate::exit::{CliError, CliResult, Code};
use crate::offline::{self, Problem, Severity};
use crate::outln;
use crate::output::{self, bytes};

#[derive(Debug, Serialize)]
struct SegmentReport {
    path: PathBuf,
    sealed: bool,
    first_lsn: Lsn,
    last_lsn: Lsn,
    records: u64,
    size_bytes: u64,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct SlotReport {
    path: PathBuf,
    name: String,
    state: String,
    confirmed_lsn: Lsn,
}

#[derive(Debug, Serialize)]
struct Report {
    data_dir: PathBuf,
    in_use_by_pid: Option<u32>,
    ok: bool,
    errors: usize,
    warnings: usize,
    records: u64,
    segment_bytes: u64,
    segments: Vec<SegmentReport>,
    slots: Vec<SlotReport>,
    problems: Vec<Problem>,
}

/// Transaction structure across records.
#[derive(Default)]
struct TxnCheck {
    /// (BEGIN LSN, change count, next expected offset).
    open: Option<(Lsn, u32, u64)>,
    last_lsn: Option<Lsn>,
}

impl TxnCheck {
    fn check(&mut self, lsn: Lsn, batch_end: bool, rec: &EngineRecord) -> Result<(), String> {
        if self.last_lsn.is_some_and(|l| lsn != l + 1) {
            // A gap (a salvage hole): whatever was open is gone.
            self.open = None;
        }
        self.last_lsn = Some(lsn);
        let result = match rec {
            EngineRecord::Begin(b) => match self.open.replace((lsn, b.change_count, 1)) {
                Some((begin, _, _)) => Err(format!("BEGIN while transaction {begin} has no COMMIT")),
                None => Ok(()),
            },
            EngineRecord::Change(_) | EngineRecord::Schema(_) => match &mut self.open {
                Some((begin, count, next)) if lsn == *begin + *next && *next <= u64::from(*count) => {
                    if rec.txn_offset() != *next {
                        Err(format!("change numbered {} where {} was expected", rec.txn_offset(), next))
                    } else {
                        *next += 1;
                        Ok(())
                    }
                }
                Some((begin, count, _)) => {
                    Err(format!("change does not fit transaction {begin} (BEGIN announced {count} changes)"))
                }
                None => Err("change outside any transaction (no BEGIN)".to_string()),
            },
            EngineRecord::Commit(c) => match self.open.take() {
                Some((begin, count, next))
                    if c.change_count == count && lsn == begin + next && next == u64::from(count) + 1 =>
                {
                    Ok(())
                }
                Some((begin, count, _)) => Err(format!(
                    "COMMIT of {} changes does not close transaction {begin} (BEGIN announced {count})",
                    c.change_count
                )),
                None => Err("COMMIT without BEGIN".to_string()),
            },
        };
        if result.is_ok() {
            let is_commit = matches!(rec, EngineRecord::Commit(_));
            if batch_end && !is_commit {
                return Err("an atomic batch ends inside a transaction".to_string());
            }
            if is_commit && !batch_end {
                return Err("COMMIT does not end its atomic batch".to_string());
            }
        } else if !matches!(rec, EngineRecord::Begin(_)) {
            self.open = None;
        }
        result
    }
}

/// Runs `walden verify`.
pub fn run(data_dir: &Path, json: bool) -> CliResult {
    let dir = datadir::check_existing(data_dir)?;
    let mut check = Check::default();
    for tmp in &dir.segment_temp_files {
        check.warn(tmp, None, None, "leftover of an interrupted segment creation (removed at the next open)");
    }
    for (i, (name_lsn, path)) in dir.segments.iter().enumerate() {
        check.segment(path, *name_lsn, i + 1 == dir.segments.len())?;
    }
    if let Some((begin, _, _)) = check.txns.open {
        check.problems.push(Problem::error(
            &dir.wal,
            None,
            Some(begin),
            "the log ends inside a transaction (no COMMIT)",
        ));
    }
    let state = offline::read_state(&dir.root)?;
    let archived_lsn = state.as_ref().ok().and_then(|s| s.as_ref()).and_then(|s| s.archived_lsn);
    let slots = check.slots(&dir, archived_lsn)?;
    check.state_file(&dir, state);
    check.root_entries(&dir)?;
    let report = check.into_report(&dir, slots);
    let mut out = output::stdout();
    if json {
        output::json_doc(&mut out, &report)?;
    } else {
        print_human(&mut out, &report)?;
    }
    output::finish(out)?;
    if report.errors > 0 {
        let errors = report.errors;
        return Err(CliError::new(
            Code::Damaged,
            format!("verify found {errors} error{} in {}", if errors == 1 { "" } else { "s" }, dir.root.display()),
        )
        .with_hint("`walden recover --mode point-in-time` truncates at the first damage; `--mode skip-corrupted` salvages what follows it"));
    }
    Ok(())
}

/// What `verify` found so far, walking the data directory.
#[derive(Default)]
struct Check {
    problems: Vec<Problem>,
    segments: Vec<SegmentReport>,
    records_total: u64,
    log_id: Option<u64>,
    /// Where the previous segment ends, and whether it had salvage holes (when it could be read).
    prev: Option<(ChainEnd, bool)>,
    txns: TxnCheck,
    /// Oldest LSN of the log (the first segment's first LSN).
    oldest_lsn: Option<Lsn>,
    /// Last LSN of the log so far.
    last_lsn: Lsn,
}

impl Check {
    fn warn(&mut self, path: &Path, offset: Option<u64>, lsn: Option<Lsn>, detail: impl Into<String>) {
        self.problems.push(Problem::warning(path, offset, lsn, detail));
    }

    fn error(&mut self, path: &Path, offset: Option<u64>, lsn: Option<Lsn>, detail: impl Into<String>) {
        self.problems.push(Problem::error(path, offset, lsn, detail));
    }

    fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    /// Checks one segment: header (log id, chain to its predecessor), footer, every record
    /// (scan), the footer against the records, and the engine records in it.
    fn segment(&mut self, path: &Path, name_lsn: Lsn, is_last: bool) -> CliResult {
        let errors_before = self.error_count();
        let (header, len) = match offline::read_header(path, name_lsn)? {
            Ok(h) => h,
            Err(e) => {
                self.problems.push(e.problem().clone());
                self.prev = None;
                self.txns = TxnCheck::default();
                return Ok(());
            }
        };
        self.oldest_lsn.get_or_insert(header.first_lsn);
        self.check_header(path, &header);
        let footer = self.footer(path, &header, len, is_last)?;
        let sealed = footer.is_some();
        let segment = offline::scan(path, header, footer)?;
        self.check_scan(path, &segment, len);
        self.check_footer(&segment);
        self.check_records(&segment);
        let scan = &segment.scan;
        self.records_total += scan.record_count;
        self.last_lsn = scan.last_lsn;
        let ok = self.error_count() == errors_before;
        self.segments.push(SegmentReport {
            path: path.to_path_buf(),
            sealed,
            first_lsn: header.first_lsn,
            last_lsn: scan.last_lsn,
            records: scan.record_count,
            size_bytes: len,
            ok,
        });
        self.prev = Some((ChainEnd { last_lsn: scan.last_lsn, last_crc: scan.last_crc }, !scan.holes.is_empty()));
        Ok(())
    }

    /// The header belongs to the same log as the segments before it and continues the chain
    /// ([`inspect::check_chain`]; after salvage holes a gap is only a warning).
    fn check_header(&mut self, path: &Path, header: &SegmentHeader) {
        match self.log_id {
            None => self.log_id = Some(header.log_id),
            Some(id) if id != header.log_id => self.error(
                path,
                Some(0),
                None,
                format!("belongs to log {:#x}, not {id:#x} like the segments before it", header.log_id),
            ),
            Some(_) => {}
        }
        let Some((prev, prev_holes)) = self.prev else { return };
        if let Err(chain_break) = inspect::check_chain(prev, header) {
            let detail = chain_break.to_string();
            if prev_holes && chain_break.is_gap() {
                self.warn(path, Some(0), Some(header.first_lsn), detail);
            } else {
                self.error(path, Some(0), Some(header.first_lsn), detail);
            }
        }
    }

    /// The segment's footer: a sealed segment (any but the last) must have a valid one; the
    /// last may end without one (it is then the active segment).
    fn footer(&mut self, path: &Path, header: &SegmentHeader, len: u64, is_last: bool) -> CliResult<Option<Footer>> {
        let as_active = "the next open scans it as the active segment";
        match offline::read_footer(path, header)? {
            FooterState::Sealed(footer) => return Ok(Some(footer)),
            FooterState::OtherSegment { first_lsn } => {
                let detail = format!("the footer describes a segment starting at LSN {first_lsn}");
                if is_last {
                    self.warn(path, None, None, format!("{detail}; {as_active}"));
                } else {
                    self.error(path, None, None, detail);
                }
            }
            FooterState::Invalid(e) if is_last => {
                self.warn(path, None, None, format!("ends in an invalid footer ({e}); {as_active}"));
            }
            FooterState::Invalid(e) => self.error(path, None, None, format!("sealed segment has no valid footer: {e}")),
            FooterState::Absent if !is_last => self.error(path, Some(len), None, "sealed segment has no footer"),
            FooterState::Absent => {}
        }
        Ok(None)
    }

    /// How the scan ended, and the salvage holes it skipped.
    fn check_scan(&mut self, path: &Path, segment: &ScannedSegment, len: u64) {
        let scan = &segment.scan;
        let sealed = segment.footer.is_some();
        match &scan.outcome {
            ScanOutcome::Clean => {}
            ScanOutcome::Corruption { offset, lsn, detail } => {
                self.error(path, Some(*offset), Some(*lsn), detail.clone())
            }
            ScanOutcome::TornTail { offset, records_dropped, reason } if sealed => self.error(
                path,
                Some(*offset),
                Some(scan.last_lsn + 1),
                format!("records of a sealed segment end early ({reason}; {records_dropped} records lost)"),
            ),
            ScanOutcome::TornTail { offset, records_dropped, reason } => self.warn(
                path,
                Some(*offset),
                Some(scan.last_lsn + 1),
                format!(
                    "incomplete tail of {} bytes ({reason}; {records_dropped} complete records of an unfinished \
                     batch): cut at the next open. Normal after a crash, or while a writer is mid-write",
                    len - offset
                ),
            ),
        }
        for hole in &scan.holes {
            self.warn(
                path,
                Some(hole.start_offset),
                None,
                format!("damaged range skipped by salvage recovery (bytes {}..{})", hole.start_offset, hole.end_offset),
            );
        }
    }

    /// A sealed segment's footer says what its records say.
    fn check_footer(&mut self, segment: &ScannedSegment) {
        let (Some(f), scan) = (&segment.footer, &segment.scan) else { return };
        let mut mismatches = Vec::new();
        if f.record_count != scan.record_count {
            mismatches.push(format!("{} records, the records say {}", f.record_count, scan.record_count));
        }
        if f.last_lsn != scan.last_lsn {
            mismatches.push(format!("last LSN {}, the records say {}", f.last_lsn, scan.last_lsn));
        }
        if f.last_crc != scan.last_crc {
            mismatches.push(format!("last CRC {:#010x}, the records say {:#010x}", f.last_crc, scan.last_crc));
        }
        if f.holes != scan.holes {
            mismatches.push(format!("{} skipped ranges, the scan finds {}", f.holes.len(), scan.holes.len()));
        }
        if !mismatches.is_empty() {
            let detail = format!("footer does not match the records: it says {}", mismatches.join("; "));
            self.error(&segment.path, Some(f.data_end_offset), None, detail);
        }
    }

    /// Walks the records: each decodes as an engine record, transactions are whole, and the
    /// footer's index entries point at the records with their LSNs.
    fn check_records(&mut self, segment: &ScannedSegment) {
        let path = segment.path.as_path();
        let mut starts: HashMap<u64, Lsn> = HashMap::new();
        for raw in segment.records() {
            let raw = match raw {
                Ok(r) => r,
                Err(problem) => {
                    self.problems.push(offline::record_problem(path, problem));
                    break;
                }
            };
            starts.insert(raw.offset, raw.lsn);
            self.check_engine_record(path, &raw);
        }
        let Some(f) = &segment.footer else { return };
        if let Some(entry) = f.index.iter().find(|entry| starts.get(&entry.offset) != Some(&entry.lsn)) {
            let detail = "footer index entry does not point at the record with its LSN";
            self.error(path, Some(entry.offset), Some(entry.lsn), detail);
        }
    }

    fn check_engine_record(&mut self, path: &Path, raw: &RawRecord<'_>) {
        let (offset, lsn) = (Some(raw.offset), Some(raw.lsn));
        match record::decode(raw.kind, &raw.payload) {
            Ok(rec) => {
                if rec.txn_id(raw.lsn).is_none() {
                    let detail = format!("transaction offset {} is impossible at this LSN", rec.txn_offset());
                    self.error(path, offset, lsn, detail);
                }
                if let Err(detail) = self.txns.check(raw.lsn, raw.batch_end, &rec) {
                    self.error(path, offset, lsn, detail);
                }
            }
            Err(e) => {
                self.txns = TxnCheck::default();
                let detail = format!("engine record of kind {} does not decode: {e}", raw.kind);
                self.error(path, offset, lsn, detail);
            }
        }
    }

    /// Every slot file: it decodes, and a valid slot is one the log can still serve
    /// ([`retention::slot_unservable`], the rule the engine applies at open). LSNs the WAL no
    /// longer holds are still readable when the archive holds them.
    fn slots(&mut self, dir: &DataDir, archived_lsn: Option<Lsn>) -> CliResult<Vec<SlotReport>> {
        let slot_view = offline::read_slots(dir)?;
        self.problems.extend(slot_view.problems.iter().cloned());
        for tmp in &slot_view.temp_files {
            self.warn(tmp, None, None, "leftover of an interrupted slot write (removed at the next open)");
        }
        for foreign in &slot_view.foreign_files {
            self.warn(foreign, None, None, "not a slot file (the engine ignores it)");
        }
        let log = LogBounds { oldest_lsn: self.oldest_lsn.unwrap_or(1), last_lsn: self.last_lsn };
        let mut slots = Vec::new();
        for (path, rec) in &slot_view.slots {
            let state = match &rec.invalidation {
                Some(inv) => format!("lost: {}", inv.reason),
                None => "valid".to_string(),
            };
            let unservable = retention::slot_unservable(rec.restart_lsn, rec.confirmed_lsn, log, archived_lsn);
            if let (None, Some(reason)) = (&rec.invalidation, unservable) {
                let (lsn, why) = match reason {
                    InvalidationReason::AheadOfLog { confirmed_lsn, last_lsn } => {
                        (confirmed_lsn, format!("confirmed LSN {confirmed_lsn} but the log ends at {last_lsn}"))
                    }
                    InvalidationReason::WalRemoved { restart_lsn, oldest_lsn } => {
                        let archive =
                            archived_lsn.map(|a| format!(" and the archive ends at LSN {a}")).unwrap_or_default();
                        let why = format!(
                            "needs the WAL from LSN {restart_lsn} but the oldest retained LSN is {oldest_lsn}{archive}"
                        );
                        (restart_lsn, why)
                    }
                    other => (rec.restart_lsn, other.to_string()),
                };
                let detail = format!("slot {:?} {why}: it will be invalidated at the next open", rec.name);
                self.error(path, None, Some(lsn), detail);
            }
            slots.push(SlotReport {
                path: path.clone(),
                name: rec.name.clone(),
                state,
                confirmed_lsn: rec.confirmed_lsn,
            });
        }
        Ok(slots)
    }

    /// `engine.state`: its positions lie within the log.
    fn state_file(&mut self, dir: &DataDir, state: Result<Option<EngineState>, Problem>) {
        let state = match state {
            Ok(Some(state)) => state,
            Ok(None) => return,
            Err(p) => return self.problems.push(p),
        };
        let path = dir.root.join(walden_engine::state::STATE_FILE_NAME);
        let (oldest_lsn, last_lsn) = (self.oldest_lsn.unwrap_or(1), self.last_lsn);
        if let Some(c) = state.checkpoint_lsn
            && c > last_lsn
        {
            self.warn(&path, None, Some(c), format!("checkpoint LSN {c} is beyond the end of the log ({last_lsn})"));
        }
        let Some(a) = state.archived_lsn else { return };
        if a > last_lsn {
            self.error(&path, None, Some(a), format!("archived LSN {a} is beyond the end of the log ({last_lsn})"));
        }
        if a.saturating_add(1) < oldest_lsn {
            let detail = format!(
                "the archive ends at LSN {a} but the WAL starts at LSN {oldest_lsn}: LSNs {}-{} are in neither",
                a + 1,
                oldest_lsn - 1
            );
            self.warn(&path, None, Some(a), detail);
        }
    }

    /// Entries of the data directory root that Walden did not write, or leftovers.
    fn root_entries(&mut self, dir: &DataDir) -> CliResult {
        let entries = fs::read_dir(&dir.root).map_err(|e| CliError::io("cannot list", &dir.root, &e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") && is_known_root_entry(&name) {
                self.warn(&entry.path(), None, None, "leftover of an interrupted state-file write");
            } else if !is_known_root_entry(&name) {
                self.warn(&entry.path(), None, None, "not written by Walden (ignored)");
            }
        }
        Ok(())
    }

    fn into_report(self, dir: &DataDir, slots: Vec<SlotReport>) -> Report {
        let errors = self.error_count();
        Report {
            data_dir: dir.root.clone(),
            in_use_by_pid: datadir::lock_holder(&dir.wal),
            ok: errors == 0,
            errors,
            warnings: self.problems.len() - errors,
            records: self.records_total,
            segment_bytes: self.segments.iter().map(|s| s.size_bytes).sum(),
            segments: self.segments,
            slots,
            problems: self.problems,
        }
    }
}

fn print_human(out: &mut output::Out, report: &Report) -> CliResult {
    outln!(out, "verifying {} (read-only)", report.data_dir.display())?;
    if let Some(pid) = report.in_use_by_pid {
        outln!(out, "  note: in use by pid {pid}; checking the files as they are now")?;
    }
    let rows: Vec<Vec<String>> = report
        .segments
        .iter()
        .map(|s| {
            vec![
                format!("  {}", s.path.display()),
                if s.sealed { "sealed" } else { "active" }.to_string(),
                if s.last_lsn >= s.first_lsn {
                    format!("LSN {}-{}", s.first_lsn, s.last_lsn)
                } else {
                    "empty".to_string()
                },
                bytes(s.size_bytes),
                if s.ok { "ok" } else { "DAMAGED" }.to_string(),
            ]
        })
        .chain(report.slots.iter().map(|s| {
            vec![
                format!("  {}", s.path.display()),
                "slot".to_string(),
                format!("confirmed {}", s.confirmed_lsn),
                String::new(),
                s.state.clone(),
            ]
        }))
        .collect();
    let t = output::table(&["  FILE", "KIND", "CONTENT", "SIZE", "STATUS"], &rows);
    std::io::Write::write_all(out, t.as_bytes()).map_err(output::out_err)?;
    for p in &report.problems {
        let tag = match p.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        };
        outln!(out, "{tag} {}", p.located())?;
    }
    outln!(
        out,
        "{} segments, {} records ({}), {} slot files: {} error{}, {} warning{}",
        report.segments.len(),
        report.records,
        bytes(report.segment_bytes),
        report.slots.len(),
        report.errors,
        if report.errors == 1 { "" } else { "s" },
        report.warnings,
        if report.warnings == 1 { "" } else { "s" }
    )
}
