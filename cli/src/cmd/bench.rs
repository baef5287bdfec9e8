//! `walden bench`: a quick, honest throughput run on the disk under `--dir`: the raw
//! write + fdatasync loop (the ceiling for one durable writer), durable appends with group commit
//! from several threads, and buffered appends (not durable until the final sync, which is timed
//! too). It works in a fresh sub-directory that it removes afterwards.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT / SIGTERM: every run stops early, the work directory is removed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use walden_wal::format::RECORD_HEADER_LEN;
use walden_wal::{SyncMode, Wal, WalConfig};

use crate::exit::{CliError, CliResult, Code};
use crate::outln;
use crate::output::{self, bytes};

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
    while started.elapsed() < budget && !INTERRUPTED.load(Ordering::Relaxed) {
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
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let results: Vec<Result<u64, walden_wal::WalError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (wal, payload, stop) = (&wal, &payload, &stop);
                scope.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        wal.append(1, payload)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        while started.elapsed() < budget && !INTERRUPTED.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(budget.saturating_sub(started.elapsed())));
        }
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap_or(Ok(0))).collect()
    });
    let append_secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r.map_err(|e| CliError::from_error("append failed", &e))?;
    }
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
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .map_err(|e| CliError::new(Code::Failure, format!("cannot install the signal handler: {e}")))?;
    let work = args.dir.join(format!("walden-bench-{}", std::process::id()));
    fs::create_dir(&work).map_err(|e| CliError::io("cannot create", &work, &e))?;
    let result = measure(&work, json, args);
    let removed = fs::remove_dir_all(&work).map_err(|e| CliError::io("cannot remove", &work, &e));
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(CliError::new(Code::Interrupted, "interrupted; the work directory was removed"));
    }
    let report = result?;
    removed?;
    let mut out = output::stdout();
    if json {
        output::json_doc(&mut out, &report)?;
    } else {
        print(&mut out, &report)?;
    }
    output::finish(out)
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

fn print(out: &mut output::Out, r: &BenchReport) -> CliResult {
    let raw = &r.raw_write_fdatasync;
    outln!(
        out,
        "raw write+fdatasync    {:>10.0} syncs/s      {:>8.1} µs per sync  (one durable writer can do no better)",
        raw.syncs_per_second,
        raw.mean_sync_us
    )?;
    let g = &r.durable_group_commit;
    outln!(
        out,
        "durable, group commit  {:>10.0} appends/s    {:>8}/s  {} threads, {:.1} appends per fdatasync",
        g.appends_per_second,
        bytes(g.bytes_per_second as u64),
        g.threads,
        g.appends_per_sync
    )?;
    let b = &r.buffered;
    outln!(
        out,
        "buffered (not durable) {:>10.0} appends/s    {:>8}/s  1 thread; the final sync took {:.1} ms",
        b.appends_per_second,
        bytes(b.bytes_per_second as u64),
        b.final_sync_ms.unwrap_or(0.0)
    )?;
    outln!(out, "file system: {}, {}-byte payloads", r.filesystem, r.record_bytes)?;
    if let Some(w) = &r.warning {
        outln!(out, "warning: {w}")?;
    }
    Ok(())
}
