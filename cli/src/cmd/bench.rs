//! `walden bench`: a quick, honest throughput run on the disk under `--dir`: the raw
//! write + fdatasync loop (the ceiling for one durable writer), durable appends with group commit
//! from several threads, and buffered appends (not durable until the final sync, which is timed
//! too). It works in a fresh sub-directory that it removes afterwards.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use walden_wal::format::RECORD_HEADER_LEN;
use walden_wal::{SyncMode, Wal, WalConfig};

use crate::exit::{CliError, CliResult, Code};
use crate::outln;
use crate::output::{self, Out, bytes};
use crate::{stop, thread};

/// Options of `walden bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory on the disk to measure (a temporary sub-directory is created in it and removed).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Total measuring time in seconds, split across the three runs.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Writer threads for the group-commit run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub record_bytes: u32,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.3..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0.3 and 3600")),
    }
}

#[derive(Debug, Serialize)]
struct RawResult {
    syncs: u64,
    syncs_per_second: f64,
    mean_sync_us: f64,
}

#[derive(Debug, Serialize)]
struct AppendResult {
    threads: u64,
    appends: u64,
    appends_per_second: f64,
    bytes_per_second: f64,
    fdatasyncs: u64,
    appends_per_sync: f64,
    /// Buffered run only: the sync that made everything durable at the end.
    final_sync_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    dir: PathBuf,
    filesystem: String,
    record_bytes: u32,
    raw_write_fdatasync: RawResult,
    durable_group_commit: AppendResult,
    buffered: AppendResult,
    warning: Option<String>,
}

/// The file-system type under `path` (from `statfs`).
fn filesystem(path: &Path) -> String {
    walden_wal::storage::file_system_type(path).map_or_else(|_| "unknown".to_string(), |t| t.name())
}

fn raw_loop(dir: &Path, record_bytes: u32, budget: Duration) -> CliResult<RawResult> {
    let path = dir.join("raw.bin");
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::io("cannot create", &path, &e))?;
    let buf = vec![0x5Au8; record_bytes as usize + RECORD_HEADER_LEN];
    let mut offset = 0u64;
    let mut syncs = 0u64;
    let started = Instant::now();
    while started.elapsed() < budget && !stop::requested() {
        file.write_all_at(&buf, offset).map_err(|e| CliError::io("cannot write", &path, &e))?;
        file.sync_data().map_err(|e| CliError::io("cannot fdatasync", &path, &e))?;
        offset += buf.len() as u64;
        syncs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(RawResult { syncs, syncs_per_second: syncs as f64 / secs, mean_sync_us: secs * 1e6 / syncs.max(1) as f64 })
}

fn appends(dir: &Path, mode: SyncMode, threads: u64, record_bytes: u32, budget: Duration) -> CliResult<AppendResult> {
    let config = WalConfig { sync_mode: mode, ..WalConfig::default() };
    let wal = Wal::open(dir, config)
        .map_err(|e| CliError::from_error(format!("cannot open a log in {}", dir.display()), &e))?;
    let payload = vec![0x42u8; record_bytes as usize];
    let started = Instant::now();
    let total = append_until(&wal, threads, &payload, started + budget)?;
    let append_secs = started.elapsed().as_secs_f64();
    let final_sync_ms = if mode.is_durable() {
        None
    } else {
        let t = Instant::now();
        wal.sync().map_err(|e| CliError::from_error("sync failed", &e))?;
        Some(t.elapsed().as_secs_f64() * 1e3)
    };
    let syncs = wal.stats().data_syncs;
    wal.close().map_err(|e| CliError::from_error("close failed", &e))?;
    Ok(AppendResult {
        threads,
        appends: total,
        appends_per_second: total as f64 / append_secs,
        bytes_per_second: (total * u64::from(record_bytes)) as f64 / append_secs,
        fdatasyncs: syncs,
        appends_per_sync: total as f64 / syncs.max(1) as f64,
        final_sync_ms,
    })
}

/// Appends `payload` from `threads` threads until `deadline` (or a stop request); returns the
/// number of appends.
fn append_until(wal: &Wal, threads: u64, payload: &[u8], deadline: Instant) -> CliResult<u64> {
    let stop_appending = AtomicBool::new(false);
    let (results, spawn_error) = std::thread::scope(|scope| {
        let (handles, spawn_error) = thread::spawn_workers(scope, "bench-append", threads, |_| {
            let stop_appending = &stop_appending;
            move || {
                let mut n = 0u64;
                while !stop_appending.load(Ordering::Relaxed) {
                    wal.append(1, payload)?;
                    n += 1;
                }
                Ok::<u64, walden_wal::WalError>(n)
            }
        });
        while spawn_error.is_none() && Instant::now() < deadline && !stop::requested() {
            std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
        }
        stop_appending.store(true, Ordering::Relaxed);
        // A join fails only if the thread panicked: its appends are not counted.
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap_or(Ok(0))).collect();
        (results, spawn_error)
    });
    let mut total = 0;
    for r in results {
        total += r.map_err(|e| CliError::from_error("append failed", &e))?;
    }
    spawn_error.map_or(Ok(total), Err)
}

/// Runs `walden bench`.
pub fn run(json: bool, args: &BenchArgs) -> CliResult {
    match fs::metadata(&args.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(CliError::new(Code::Usage, format!("{} is not a directory", args.dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::new(Code::Missing, format!("{} does not exist", args.dir.display())));
        }
        Err(e) => return Err(CliError::io("cannot access", &args.dir, &e)),
    }
    stop::install()?;
    let work = args.dir.join(format!("walden-bench-{}", std::process::id()));
    fs::create_dir(&work).map_err(|e| CliError::io("cannot create", &work, &e))?;
    let result = measure(&work, json, args);
    let removed = fs::remove_dir_all(&work).map_err(|e| CliError::io("cannot remove", &work, &e));
    if stop::requested() {
        return Err(CliError::new(Code::Interrupted, "interrupted; the work directory was removed"));
    }
    let report = result?;
    removed?;
    output::emit(json, &report, print)
}

fn measure(work: &Path, json: bool, args: &BenchArgs) -> CliResult<BenchReport> {
    let fs_type = filesystem(work);
    let total = Duration::from_secs_f64(args.seconds);
    if !json {
        eprintln!(
            "walden bench: {:.1} s on {} ({fs_type}), {}-byte records",
            args.seconds,
            args.dir.display(),
            args.record_bytes
        );
    }
    let raw = raw_loop(work, args.record_bytes, total.mul_f64(0.2))?;
    let group = appends(&work.join("group"), SyncMode::Group, args.threads, args.record_bytes, total.mul_f64(0.5))?;
    let buffered = appends(&work.join("buffered"), SyncMode::None, 1, args.record_bytes, total.mul_f64(0.3))?;
    let warning = match fs_type.as_str() {
        "tmpfs" => {
            Some("tmpfs keeps data in memory: fdatasync does nothing, so these are not disk figures".to_string())
        }
        "overlayfs" | "fuse" | "9p" | "nfs" => {
            Some(format!("{fs_type} may not pass fdatasync through to a disk the way a local file system does"))
        }
        _ if raw.mean_sync_us < 20.0 => Some(
            "fdatasync took under 20 µs: the disk (or a volatile write cache) acknowledges before data is durable"
                .to_string(),
        ),
        _ => None,
    };
    Ok(BenchReport {
        dir: args.dir.clone(),
        filesystem: fs_type,
        record_bytes: args.record_bytes,
        raw_write_fdatasync: raw,
        durable_group_commit: group,
        buffered,
        warning,
    })
}

fn print(out: &mut Out, r: &BenchReport) -> CliResult {
    let raw = &r.raw_write_fdatasync;
    outln!(
        out,
        "raw write+fdatasync    {:>10.0} syncs/s      {:>8.1} µs per sync  (one durable writer can do no better)",
        raw.syncs_per_second,
        raw.mean_sync_us
    )?;
    let g = &r.durable_group_commit;
    let group_note = format!("{} threads, {:.1} appends per fdatasync", g.threads, g.appends_per_sync);
    print_appends(out, "durable, group commit", g, &group_note)?;
    let b = &r.buffered;
    let buffered_note = format!("1 thread; the final sync took {:.1} ms", b.final_sync_ms.unwrap_or(0.0));
    print_appends(out, "buffered (not durable)", b, &buffered_note)?;
    outln!(out, "file system: {}, {}-byte payloads", r.filesystem, r.record_bytes)?;
    if let Some(w) = &r.warning {
        outln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// One append run's line, its figures aligned under the raw run's.
fn print_appends(out: &mut Out, label: &str, r: &AppendResult, note: &str) -> CliResult {
    outln!(
        out,
        "{label:<22} {:>10.0} appends/s    {:>8}/s  {note}",
        r.appends_per_second,
        bytes(r.bytes_per_second as u64)
    )
}
