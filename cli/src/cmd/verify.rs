//! `walden verify`: checks every segment (header, chain to its predecessor, every record's CRC,
//! LSN and chain link, footer against the records, sparse index), every engine record (it
//! decodes; transactions are whole BEGIN … COMMIT batches), every slot file and `engine.state`,
//! and reports each problem with its file, byte offset and LSN. Read-only; exit code 10 when
//! anything is wrong (warnings — a torn tail, a leftover temporary file — do not count).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::record::{self, EngineRecord};
use walden_wal::Lsn;
use walden_wal::recovery::ScanOutcome;

use crate::datadir::{self, is_known_root_entry};
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
    let mut problems: Vec<Problem> = Vec::new();
    let mut segments = Vec::new();
    let mut records_total = 0u64;
    let mut log_id = None;
    // (last LSN, last CRC, had holes) of the previous segment, when it could be read.
    let mut prev: Option<(Lsn, u32, bool)> = None;
    let mut txns = TxnCheck::default();
    let last_index = dir.segments.len() - 1;
    let mut oldest_lsn = 1;
    let mut last_lsn = 0;

    for tmp in &dir.segment_temp_files {
        problems.push(Problem::warning(
            tmp,
            None,
            None,
            "leftover of an interrupted segment creation (removed at the next open)",
        ));
    }
    for (i, (name_lsn, path)) in dir.segments.iter().enumerate() {
        let errors_before = problems.iter().filter(|p| p.severity == Severity::Error).count();
        let (header, len) = match offline::read_header(path, *name_lsn)? {
            Ok(h) => h,
            Err(e) => {
                problems.push(e.problem().clone());
                prev = None;
                txns = TxnCheck::default();
                continue;
            }
        };
        if i == 0 {
            oldest_lsn = header.first_lsn;
        }
        match log_id {
            None => log_id = Some(header.log_id),
            Some(id) if id != header.log_id => problems.push(Problem::error(
                path,
                Some(0),
                None,
                format!("belongs to log {:#x}, not {id:#x} like the segments before it", header.log_id),
            )),
            Some(_) => {}
        }
        if let Some((prev_last, prev_crc, prev_holes)) = prev {
            let follows =
                header.prev_last_lsn == prev_last && header.first_lsn == prev_last + 1 && header.prev_crc == prev_crc;
            if !follows {
                let detail = format!(
                    "does not follow its predecessor (which ends at LSN {prev_last}, CRC {prev_crc:#010x}; this one \
                     starts at LSN {} after {} / {:#010x}): a segment may be missing",
                    header.first_lsn, header.prev_last_lsn, header.prev_crc
                );
                if prev_holes && header.first_lsn > prev_last {
                    problems.push(Problem::warning(path, Some(0), Some(header.first_lsn), detail));
                } else {
                    problems.push(Problem::error(path, Some(0), Some(header.first_lsn), detail));
                }
            }
        }
        let is_last = i == last_index;
        let footer = match offline::read_footer(path, len)? {
            Some(Ok(f)) if f.first_lsn == header.first_lsn => Some(f),
            Some(Ok(f)) => {
                let detail = format!("the footer describes a segment starting at LSN {}", f.first_lsn);
                problems.push(if is_last {
                    Problem::warning(
                        path,
                        None,
                        None,
                        format!("{detail}; the next open scans it as the active segment"),
                    )
                } else {
                    Problem::error(path, None, None, detail)
                });
                None
            }
            Some(Err(e)) => {
                problems.push(if is_last {
                    Problem::warning(
                        path,
                        None,
                        None,
                        format!("ends in an invalid footer ({e}); the next open scans it as the active segment"),
                    )
                } else {
                    Problem::error(path, None, None, format!("sealed segment has no valid footer: {e}"))
                });
                None
            }
            None if !is_last => {
                problems.push(Problem::error(path, Some(len), None, "sealed segment has no footer"));
                None
            }
            None => None,
        };
        let sealed = footer.is_some();
        let segment = offline::scan(path, header, footer)?;
        match &segment.outcome {
            ScanOutcome::Clean => {}
            ScanOutcome::Corruption { offset, lsn, detail } => {
                problems.push(Problem::error(path, Some(*offset), Some(*lsn), detail.clone()));
            }
            ScanOutcome::TornTail { offset, records_dropped, reason } if sealed => {
                problems.push(Problem::error(
                    path,
                    Some(*offset),
                    Some(segment.last_lsn + 1),
                    format!("records of a sealed segment end early ({reason}; {records_dropped} records lost)"),
                ));
            }
            ScanOutcome::TornTail { offset, records_dropped, reason } => {
                problems.push(Problem::warning(
                    path,
                    Some(*offset),
                    Some(segment.last_lsn + 1),
                    format!(
                        "incomplete tail of {} bytes ({reason}; {records_dropped} complete records of an unfinished \
                         batch): cut at the next open. Normal after a crash, or while a writer is mid-write",
                        len - offset
                    ),
                ));
            }
        }
        for hole in &segment.holes {
            problems.push(Problem::warning(
                path,
                Some(hole.start_offset),
                None,
                format!("damaged range skipped by salvage recovery (bytes {}..{})", hole.start_offset, hole.end_offset),
            ));
        }
        if let Some(f) = &segment.footer {
            let mut mismatches = Vec::new();
            if f.record_count != segment.record_count {
                mismatches.push(format!("{} records, the records say {}", f.record_count, segment.record_count));
            }
            if f.last_lsn != segment.last_lsn {
                mismatches.push(format!("last LSN {}, the records say {}", f.last_lsn, segment.last_lsn));
            }
            if f.last_crc != segment.last_crc {
                mismatches.push(format!("last CRC {:#010x}, the records say {:#010x}", f.last_crc, segment.last_crc));
            }
            if f.holes != segment.holes {
                mismatches.push(format!("{} skipped ranges, the scan finds {}", f.holes.len(), segment.holes.len()));
            }
            if !mismatches.is_empty() {
                problems.push(Problem::error(
                    path,
                    Some(f.data_end_offset),
                    None,
                    format!("footer does not match the records: it says {}", mismatches.join("; ")),
                ));
            }
        }
        // Walk the records: engine decoding, transaction structure, index entries.
        let mut starts: HashMap<u64, Lsn> = HashMap::new();
        for raw in segment.records() {
            let raw = match raw {
                Ok(r) => r,
                Err(p) => {
                    problems.push(p);
                    break;
                }
            };
            starts.insert(raw.offset, raw.lsn);
            match record::decode(raw.kind, &raw.payload) {
                Ok(rec) => {
                    if rec.txn_id(raw.lsn).is_none() {
                        problems.push(Problem::error(
                            path,
                            Some(raw.offset),
                            Some(raw.lsn),
                            format!("transaction offset {} is impossible at this LSN", rec.txn_offset()),
                        ));
                    }
                    if let Err(detail) = txns.check(raw.lsn, raw.batch_end, &rec) {
                        problems.push(Problem::error(path, Some(raw.offset), Some(raw.lsn), detail));
                    }
                }
                Err(e) => {
                    txns = TxnCheck::default();
                    problems.push(Problem::error(
                        path,
                        Some(raw.offset),
                        Some(raw.lsn),
                        format!("engine record of kind {} does not decode: {e}", raw.kind),
                    ));
                }
            }
        }
        if let Some(f) = &segment.footer {
            for entry in &f.index {
                if starts.get(&entry.offset) != Some(&entry.lsn) {
                    problems.push(Problem::error(
                        path,
                        Some(entry.offset),
                        Some(entry.lsn),
                        "footer index entry does not point at the record with its LSN",
                    ));
                    break;
                }
            }
        }
        records_total += segment.record_count;
        last_lsn = segment.last_lsn;
        let errors_after = problems.iter().filter(|p| p.severity == Severity::Error).count();
        segments.push(SegmentReport {
            path: path.clone(),
            sealed,
            first_lsn: header.first_lsn,
            last_lsn: segment.last_lsn,
            records: segment.record_count,
            size_bytes: len,
            ok: errors_after == errors_before,
        });
        prev = Some((segment.last_lsn, segment.last_crc, !segment.holes.is_empty()));
    }
    if let Some((begin, _, _)) = txns.open {
        problems.push(Problem::error(&dir.wal, None, Some(begin), "the log ends inside a transaction (no COMMIT)"));
    }

    // Slots. LSNs the WAL no longer holds are still readable when the archive holds them.
    let state = offline::read_state(&dir.root)?;
    let archived_lsn = state.as_ref().ok().and_then(|s| s.as_ref()).and_then(|s| s.archived_lsn);
    let readable_from = crate::inspect::readable_from(oldest_lsn, archived_lsn);
    let slot_view = offline::read_slots(&dir)?;
    problems.extend(slot_view.problems.iter().cloned());
    for tmp in &slot_view.temp_files {
        problems.push(Problem::warning(
            tmp,
            None,
            None,
            "leftover of an interrupted slot write (removed at the next open)",
        ));
    }
    for foreign in &slot_view.foreign_files {
        problems.push(Problem::warning(foreign, None, None, "not a slot file (the engine ignores it)"));
    }
    let mut slots = Vec::new();
    for (path, rec) in &slot_view.slots {
        let state = match &rec.invalidation {
            Some(inv) => format!("lost: {}", inv.reason),
            None => "valid".to_string(),
        };
        if rec.invalidation.is_none() {
            if rec.confirmed_lsn > last_lsn {
                problems.push(Problem::error(
                    path,
                    None,
                    Some(rec.confirmed_lsn),
                    format!(
                        "slot {:?} confirmed LSN {} but the log ends at {last_lsn}: it will be invalidated at the next open",
                        rec.name, rec.confirmed_lsn
                    ),
                ));
            } else if rec.restart_lsn < readable_from {
                problems.push(Problem::error(
                    path,
                    None,
                    Some(rec.restart_lsn),
                    format!(
                        "slot {:?} needs the WAL from LSN {} but the oldest retained LSN is {oldest_lsn}{}: it will be \
                         invalidated at the next open",
                        rec.name,
                        rec.restart_lsn,
                        archived_lsn.map(|a| format!(" and the archive ends at LSN {a}")).unwrap_or_default()
                    ),
                ));
            }
        }
        slots.push(SlotReport { path: path.clone(), name: rec.name.clone(), state, confirmed_lsn: rec.confirmed_lsn });
    }

    // engine.state and the root.
    match state {
        Ok(Some(state)) => {
            let path = dir.root.join(walden_engine::state::STATE_FILE_NAME);
            if let Some(c) = state.checkpoint_lsn
                && c > last_lsn
            {
                problems.push(Problem::warning(
                    &path,
                    None,
                    Some(c),
                    format!("checkpoint LSN {c} is beyond the end of the log ({last_lsn})"),
                ));
            }
            if let Some(a) = state.archived_lsn
                && a > last_lsn
            {
                problems.push(Problem::error(
                    &path,
                    None,
                    Some(a),
                    format!("archived LSN {a} is beyond the end of the log ({last_lsn})"),
                ));
            }
            if let Some(a) = state.archived_lsn
                && a.saturating_add(1) < oldest_lsn
            {
                problems.push(Problem::warning(
                    &path,
                    None,
                    Some(a),
                    format!(
                        "the archive ends at LSN {a} but the WAL starts at LSN {oldest_lsn}: LSNs {}-{} are in neither",
                        a + 1,
                        oldest_lsn - 1
                    ),
                ));
            }
        }
        Ok(None) => {}
        Err(p) => problems.push(p),
    }
    let entries = fs::read_dir(&dir.root).map_err(|e| CliError::io("cannot list", &dir.root, &e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") && is_known_root_entry(&name) {
            problems.push(Problem::warning(&entry.path(), None, None, "leftover of an interrupted state-file write"));
        } else if !is_known_root_entry(&name) {
            problems.push(Problem::warning(&entry.path(), None, None, "not written by Walden (ignored)"));
        }
    }

    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    let report = Report {
        data_dir: dir.root.clone(),
        in_use_by_pid: datadir::lock_holder(&dir.wal),
        ok: errors == 0,
        errors,
        warnings,
        records: records_total,
        segment_bytes: segments.iter().map(|s| s.size_bytes).sum(),
        segments,
        slots,
        problems,
    };
    let mut out = output::stdout();
    if json {
        output::json_doc(&mut out, &report)?;
    } else {
        print_human(&mut out, &report)?;
    }
    output::finish(out)?;
    if errors > 0 {
        return Err(CliError::new(
            Code::Damaged,
            format!("verify found {errors} error{} in {}", if errors == 1 { "" } else { "s" }, dir.root.display()),
        )
        .with_hint("`walden recover --mode point-in-time` truncates at the first damage; `--mode skip-corrupted` salvages what follows it"));
    }
    Ok(())
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
