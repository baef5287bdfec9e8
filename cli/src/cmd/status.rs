//! `walden status`: LSNs, segments, bytes, slots, retention and archive horizon (read-only).

use std::path::Path;

use crate::exit::CliResult;
use crate::inspect::{self, ArchiveView, StatusReport};
use crate::outln;
use crate::output::{self, Out, bytes, opt_lsn};

/// Runs `walden status`.
pub fn run(data_dir: &Path, json: bool) -> CliResult {
    let report = inspect::inspect(data_dir)?.status();
    output::emit(json, &report, |o, report| {
        print_log(o, report)?;
        print_retention(o, report)?;
        print_slots(o, report)?;
        print_archive(o, &report.archive)
    })
}

/// Where the data directory is, who holds it, its LSNs and segments.
fn print_log(o: &mut Out, report: &StatusReport) -> CliResult {
    outln!(o, "data directory    {}", report.data_dir.display())?;
    match report.in_use_by_pid {
        Some(pid) => outln!(o, "in use            yes, by pid {pid} (figures below are the files as they are now)")?,
        None => outln!(o, "in use            no")?,
    }
    if report.current_lsn == 0 {
        outln!(o, "LSNs              empty log (next LSN {})", report.oldest_lsn)?;
    } else {
        outln!(o, "LSNs              oldest {}, current {}", report.oldest_lsn, report.current_lsn)?;
    }
    outln!(
        o,
        "segments          {} ({} sealed, {} active), {}",
        report.segment_count,
        report.sealed_segment_count,
        report.segment_count - report.sealed_segment_count,
        bytes(report.segment_bytes)
    )?;
    if let Some(tail) = &report.torn_tail {
        outln!(
            o,
            "incomplete tail   {} bytes at byte {} of {} ({}): cut at the next open unless a writer is mid-write",
            tail.bytes,
            tail.offset,
            tail.path.display(),
            tail.reason
        )?;
    }
    Ok(())
}

/// The checkpoint, retain-from and what holds the oldest segment.
fn print_retention(o: &mut Out, report: &StatusReport) -> CliResult {
    outln!(o, "checkpoint LSN    {}", opt_lsn(report.checkpoint_lsn))?;
    outln!(o, "retain-from       {}", opt_lsn(report.retain_from))?;
    match report.retention_horizon {
        Some(h) => outln!(
            o,
            "retention         keeps LSN {h} and later; oldest segment held by {}",
            report.oldest_segment_held_by
        ),
        None => outln!(
            o,
            "retention         nothing restricts it; oldest segment held by {}",
            report.oldest_segment_held_by
        ),
    }
}

/// The slot count, the largest lag and the slots the next open invalidates.
fn print_slots(o: &mut Out, report: &StatusReport) -> CliResult {
    let lost = report.slots.iter().filter(|s| s.state == "lost").count();
    let worst = report.slots.iter().filter(|s| s.state == "valid").max_by_key(|s| s.lag_lsns);
    match worst {
        Some(w) => outln!(
            o,
            "slots             {} ({} valid, {lost} lost); largest lag {} LSNs / {} (slot {:?})",
            report.slots.len(),
            report.slots.len() - lost,
            w.lag_lsns,
            bytes(w.lag_bytes),
            w.name
        )?,
        None => outln!(o, "slots             {} ({lost} lost)", report.slots.len())?,
    }
    for s in report.slots.iter().filter(|s| s.invalid_at_next_open.is_some()) {
        outln!(
            o,
            "                  slot {:?} will be invalidated at the next open: {}",
            s.name,
            s.invalid_at_next_open.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}

/// The archive horizon and the sealed segments on either side of it.
fn print_archive(o: &mut Out, a: &ArchiveView) -> CliResult {
    let Some(lsn) = a.archived_lsn else {
        return outln!(o, "archive           nothing archived (`walden archive` archives sealed segments to a lake)");
    };
    outln!(
        o,
        "archive           archived up to LSN {lsn}; slots pin only the WAL after it; consumers can read from LSN {}",
        a.readable_from
    )?;
    if a.archived_segments > 0 {
        outln!(
            o,
            "                  {} archived segments still local ({}): the next checkpoint removes them unless held",
            a.archived_segments,
            bytes(a.archived_bytes)
        )?;
    }
    if a.unarchived_sealed_segments > 0 {
        outln!(
            o,
            "                  {} sealed segments not archived yet ({})",
            a.unarchived_sealed_segments,
            bytes(a.unarchived_sealed_bytes)
        )
    } else {
        outln!(o, "                  every sealed segment is archived")
    }
}
