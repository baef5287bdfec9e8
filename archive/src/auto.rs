//! Auto-archive: a background thread woken by the engine's [`SegmentSealed`] hook that archives
//! once enough sealed bytes are pending (the batch target) or the oldest pending segment has
//! waited `max_age_ms`, so the lake gets few, large files without lagging far behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use walden_engine::{SegmentInfo, SegmentSealed};

use crate::archiver::Archiver;
use crate::error::Result;

/// Options of [`Archiver::start_auto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoArchiveOptions {
    /// Archive when the oldest sealed, unarchived segment has waited this long, even if less
    /// than a batch is pending (default 60 s).
    pub max_age_ms: u64,
    /// How often the worker re-checks without a seal notification (default 1 s).
    pub poll_interval_ms: u64,
}

impl Default for AutoArchiveOptions {
    fn default() -> Self {
        AutoArchiveOptions { max_age_ms: 60_000, poll_interval_ms: 1_000 }
    }
}

/// What the auto-archiver has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoArchiveStatus {
    /// Successful archive runs that appended at least one batch.
    pub runs: u64,
    /// Rows appended.
    pub rows: u64,
    /// Failed runs (retried at the next wake-up).
    pub failures: u64,
    /// The last failure's message, cleared by the next success.
    pub last_error: Option<String>,
}

/// Forwards seal notifications to the worker; never blocks the committing thread.
struct SealNotifier {
    wake: SyncSender<()>,
}

impl SegmentSealed for SealNotifier {
    fn segment_sealed(&self, _segment: &SegmentInfo) {
        // Full: a wake-up is already pending; disconnected: the worker has stopped.
        let _ = self.wake.try_send(());
    }
}

/// A running auto-archiver; [`AutoArchive::stop`] (or dropping it) stops the worker and removes
/// the engine hook.
pub struct AutoArchive {
    archiver: Arc<Archiver>,
    stop: Arc<AtomicBool>,
    wake: SyncSender<()>,
    status: Arc<Mutex<AutoArchiveStatus>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AutoArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoArchive").field("status", &self.status()).finish()
    }
}

impl Archiver {
    /// Registers this archiver as the database's sealed-segment hook and starts the background
    /// worker. Only one hook exists per database: this replaces any other.
    pub fn start_auto(self: &Arc<Self>, options: AutoArchiveOptions) -> Result<AutoArchive> {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(AutoArchiveStatus::default()));
        let worker = {
            let (archiver, stop, status) = (self.clone(), stop.clone(), status.clone());
            std::thread::Builder::new()
                .name("walden-auto-archive".into())
                .spawn(move || run(&archiver, &woken, &stop, &status, options))?
        };
        self.database().set_segment_sealed_hook(Some(Arc::new(SealNotifier { wake: wake.clone() })));
        // Segments sealed before the hook existed are noticed at once.
        let _ = wake.try_send(());
        Ok(AutoArchive { archiver: self.clone(), stop, wake, status, worker: Some(worker) })
    }
}

impl AutoArchive {
    /// Progress so far.
    pub fn status(&self) -> AutoArchiveStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the worker (finishing a run in progress) and removes the engine hook.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.archiver.database().set_segment_sealed_hook(None);
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!("the auto-archive worker panicked");
        }
    }
}

impl Drop for AutoArchive {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn pending_sealed_bytes(archiver: &Archiver) -> u64 {
    let next = archiver.database().retain_from().unwrap_or(0);
    archiver.database().segments().iter().filter(|s| s.sealed && s.last_lsn >= next).map(|s| s.size_bytes).sum()
}

fn run(
    archiver: &Archiver,
    woken: &Receiver<()>,
    stop: &AtomicBool,
    status: &Mutex<AutoArchiveStatus>,
    options: AutoArchiveOptions,
) {
    let poll = Duration::from_millis(options.poll_interval_ms.max(1));
    let max_age = Duration::from_millis(options.max_age_ms);
    let target = archiver.lake().config().target_batch_bytes;
    let mut pending_since: Option<Instant> = None;
    loop {
        match woken.recv_timeout(poll) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        // The archiver keeps retain_from at the first unarchived LSN.
        let pending = pending_sealed_bytes(archiver);
        if pending == 0 {
            pending_since = None;
            continue;
        }
        let since = *pending_since.get_or_insert_with(Instant::now);
        if pending < target && since.elapsed() < max_age {
            continue;
        }
        let result = archiver.archive_sealed();
        let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(report) => {
                if !report.batches.is_empty() {
                    st.runs += 1;
                    st.rows += report.rows();
                }
                st.last_error = None;
                pending_since = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "auto-archive run failed; retrying at the next wake-up");
                st.failures += 1;
                st.last_error = Some(e.to_string());
            }
        }
    }
}
