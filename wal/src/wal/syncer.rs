//! The background syncer of `SyncMode::IntervalMs`: every interval it writes and `fdatasync`s
//! what was appended, until stopped or the log fails.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::shared::Shared;
use crate::{Result, WalError};

/// The syncer thread's handle, owned by the `Wal`.
pub(super) struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: std::thread::JoinHandle<()>,
}

impl Syncer {
    /// Starts the syncer for the log behind `shared` (held weakly: the thread ends once the
    /// log is gone).
    pub(super) fn start(shared: Weak<Shared>, interval: Duration) -> Result<Syncer> {
        let dir = shared.upgrade().map(|s| s.dir.clone()).unwrap_or_default();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("walden-wal-syncer".into())
            .spawn(move || run(&shared, &thread_stop, interval))
            .map_err(|e| WalError::io("spawn the interval syncer thread", dir, e))?;
        Ok(Syncer { stop, handle })
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if self.handle.join().is_err() {
            tracing::error!("the interval syncer thread panicked");
        }
    }
}

fn run(shared: &Weak<Shared>, stop: &(Mutex<bool>, Condvar), interval: Duration) {
    loop {
        {
            let mut stopped = stop.0.lock();
            if !*stopped {
                stop.1.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let Some(shared) = shared.upgrade() else { return };
        if shared.failed.load(Ordering::Acquire) {
            return;
        }
        // An error here fails the log; appenders will see it.
        let _ = shared.flush(true);
    }
}
