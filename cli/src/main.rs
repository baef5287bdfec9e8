//! `walden`: the command-line tool. For now it runs the demo; the full operator CLI (dump, tail,
//! slots, status, verify, archive) follows the engine and CDC layers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use walden_wal::{SyncMode, Wal, WalConfig};

#[derive(Parser)]
#[command(name = "walden", version, about = "Walden: an embedded WAL with change data capture")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a log from several threads with group commit, read it back and verify it.
    Demo {
        /// Data directory (reset if it holds an earlier demo run).
        #[arg(long, default_value = "walden-data")]
        data_dir: PathBuf,
        /// Records to write.
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Concurrent writer threads.
        #[arg(long, default_value_t = 8)]
        threads: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { data_dir, records, threads } => demo(&data_dir, records, threads.max(1)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo(data_dir: &std::path::Path, records: u64, threads: u64) -> Result<(), Box<dyn std::error::Error>> {
    let wal_dir = data_dir.join("wal");
    if wal_dir.exists() {
        println!("resetting {} (left by an earlier demo run)", wal_dir.display());
        std::fs::remove_dir_all(&wal_dir)?;
    }
    let config = WalConfig { sync_mode: SyncMode::Group, target_segment_size_bytes: 1 << 20, ..WalConfig::default() };
    let wal = Arc::new(Wal::open(&wal_dir, config.clone())?);
    println!("writing {records} records from {threads} threads with group commit into {}", wal_dir.display());
    let started = Instant::now();
    let per_thread = records / threads;
    std::thread::scope(|scope| -> Result<(), walden_wal::WalError> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let wal = wal.clone();
                scope.spawn(move || -> Result<(), walden_wal::WalError> {
                    for i in 0..per_thread {
                        let payload = format!("{{\"thread\":{t},\"seq\":{i}}}");
                        wal.append(1, payload.as_bytes())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("writer thread panicked")?;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    let written = per_thread * threads;
    let stats = wal.stats();
    println!(
        "  {written} durable appends in {:.2} s: {:.0} appends/s, {} fdatasyncs ({:.1} appends per sync)",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64(),
        stats.data_syncs,
        written as f64 / stats.data_syncs.max(1) as f64
    );
    drop(wal);
    let wal = Wal::open(&wal_dir, config)?;
    let report = wal.recovery_report();
    println!(
        "reopened: {} segments ({} sealed, trusted without a scan), last LSN {}, {} bytes truncated",
        report.segment_count, report.sealed_segments_trusted, report.last_lsn, report.bytes_truncated
    );
    let started = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0u64;
    for (expected_lsn, record) in (1u64..).zip(wal.reader(1)?) {
        let record = record?;
        if record.lsn != expected_lsn {
            return Err(format!("LSN {} where {expected_lsn} was expected", record.lsn).into());
        }
        bytes += record.payload.len() as u64;
        count += 1;
    }
    println!(
        "read back {count} records ({bytes} payload bytes) in {:.1} ms, every CRC and LSN verified",
        started.elapsed().as_secs_f64() * 1e3
    );
    if count != written {
        return Err(format!("expected {written} records, read {count}").into());
    }
    wal.close()?;
    println!("ok: {}", data_dir.display());
    Ok(())
}
