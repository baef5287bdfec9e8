//! The group-commit flusher: a background thread that leads the syncs of `SyncMode::Group`
//! while commits keep coming ([`WalConfig::group_commit_flusher`](crate::WalConfig::group_commit_flusher)).
//!
//! A committer that finds `io` free leads its own sync. If batches were queued while it
//! synced, it hands them to the flusher ([`Shared::hand_over_to_flusher`]) instead of waking a
//! parked committer to lead the next sync. The flusher then holds `io` round after round —
//! write, `fdatasync`, wake the committers that sync covered — until a round finds the queue
//! empty, and sleeps. So under load no sync waits for a hand-off between two threads (a
//! wake-up, then the woken thread waiting for a CPU), and no committer's call is kept leading
//! syncs for others. Between rounds it yields `io` to any thread blocked on it (an explicit
//! flush, seal, retention or close), so those never starve.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::Shared;
use crate::{Result, WalError};

/// The flusher's controls, in [`Shared`].
#[derive(Debug, Default)]
pub(super) struct FlusherControl {
    state: Mutex<FlusherState>,
    wake: Condvar,
    /// Whether the flusher thread is running (set before it starts, cleared when it ends,
    /// also by a panic): committers hand over only to a running flusher.
    alive: AtomicBool,
    /// Set by `stop` (under `state`'s lock, so a waiting flusher cannot miss it): the flusher
    /// finishes its round and exits, and nothing more is handed over.
    stopping: AtomicBool,
}

#[derive(Debug, Default)]
struct FlusherState {
    /// A committer handed over queued batches since the flusher last looked.
    wanted: bool,
}

/// Clears `alive` when the flusher thread ends, however it ends.
struct AliveGuard<'a>(&'a AtomicBool);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The flusher thread's handle, owned by the `Wal`.
pub(super) struct Flusher {
    shared: Arc<Shared>,
    handle: std::thread::JoinHandle<()>,
}

impl Flusher {
    /// Starts the flusher thread for `shared`.
    pub(super) fn start(shared: &Arc<Shared>) -> Result<Flusher> {
        shared.flusher.alive.store(true, Ordering::Release);
        let thread_shared = Arc::clone(shared);
        let spawned =
            std::thread::Builder::new().name("walden-wal-flusher".into()).spawn(move || thread_shared.run_flusher());
        match spawned {
            Ok(handle) => Ok(Flusher { shared: Arc::clone(shared), handle }),
            Err(e) => {
                shared.flusher.alive.store(false, Ordering::Release);
                Err(WalError::io("spawn the group-commit flusher thread", &shared.dir, e))
            }
        }
    }

    /// Stops the thread once its current round is done, and waits for it. Committers hand
    /// nothing over from then on (those that still commit lead their own syncs).
    pub(super) fn stop(self) {
        let control = &self.shared.flusher;
        {
            let _state = control.state.lock();
            control.stopping.store(true, Ordering::Release);
        }
        control.wake.notify_one();
        if self.handle.join().is_err() {
            tracing::error!("the group-commit flusher thread panicked");
        }
    }
}

impl Shared {
    /// Called by a committer that led a sync and still holds `io`: if batches were queued
    /// meanwhile and the flusher runs, asks it to lead them and returns true (the caller then
    /// must not wake a committer to lead). Returns false otherwise.
    pub(super) fn hand_over_to_flusher(&self) -> bool {
        let control = &self.flusher;
        if !control.alive.load(Ordering::Acquire) || self.lock_append().pending.is_empty() {
            return false;
        }
        let mut state = control.state.lock();
        if control.stopping.load(Ordering::Acquire) {
            return false;
        }
        state.wanted = true;
        drop(state);
        control.wake.notify_one();
        true
    }

    /// The flusher thread: sleeps until a committer hands over, leads while batches keep
    /// coming, and repeats until stopped.
    fn run_flusher(&self) {
        let _alive = AliveGuard(&self.flusher.alive);
        loop {
            {
                let mut state = self.flusher.state.lock();
                let stopping = || self.flusher.stopping.load(Ordering::Acquire);
                while !state.wanted && !stopping() {
                    self.flusher.wake.wait(&mut state);
                }
                if stopping() {
                    return;
                }
                state.wanted = false;
            }
            // Seal notifications are left to the committers this period woke: each one fires
            // them before returning, so listeners never run on this thread.
            self.lead_while_busy();
        }
    }

    /// One busy period: holding `io`, writes and syncs everything queued, wakes the committers
    /// that sync covered, and goes again until a round finds nothing queued (or the log
    /// failed, or the flusher is stopping); then releases `io`, waking a committer to lead
    /// if any is still waiting.
    fn lead_while_busy(&self) {
        let mut io = self.lock_io();
        while !self.flusher.stopping.load(Ordering::Acquire) && self.check_usable().is_ok() {
            let (queued, empty) = {
                let st = self.lock_append();
                (st.group_queued, st.pending.is_empty())
            };
            if empty {
                break;
            }
            // Gather only for a thin group. With half the committers in flight queued or more,
            // starting the sync at once beats waiting for the rest: they queue during it.
            if queued * 2 < self.group_in_flight.load(Ordering::SeqCst) {
                self.gather();
            }
            if self.write_pending(&mut io, true).is_err() {
                // The error failed the log, which woke everyone.
                break;
            }
            self.stats.flusher_syncs.fetch_add(1, Ordering::Relaxed);
            // `io` is held, so this wakes only the committers now durable, none to lead.
            self.wake_group_followers(false);
            self.assert_synced_before_release(&io);
            MutexGuard::bump(&mut io);
        }
        self.release_io(io);
    }
}
