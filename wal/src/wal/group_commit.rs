//! Group commit (`SyncMode::Group`): committers queue their batches; whoever finds the `io`
//! lock free leads (optionally gathering the appenders in flight first), writes everything
//! queued and syncs once; the others park until a sync covers them. See ARCHITECTURE.md for
//! the wake-up invariant.

use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;
use parking_lot_core::{DEFAULT_UNPARK_TOKEN, FilterOp, ParkResult, ParkToken};

use super::append::PreparedBatch;
use super::shared::{AppendState, IoState, Shared};
use crate::config::SyncMode;
use crate::{Lsn, Result};

/// A gathering group-commit leader waits at most the recent fdatasync time divided by this.
const GATHER_SYNC_DIVISOR: u64 = 2;
/// Longest a parked group-commit follower sleeps before it looks again by itself; a safety
/// net, since every `io` holder wakes the followers it covers.
const GROUP_PARK_TIMEOUT_MS: u64 = 50;

/// Counts a `SyncMode::Group` appender in [`Shared::group_in_flight`] from before it queues
/// until it returns (also on error), and on leaving wakes a gathering leader whose group is
/// now complete.
pub(super) struct GroupInFlight<'a>(&'a Shared);

impl<'a> GroupInFlight<'a> {
    pub(super) fn enter(shared: &'a Shared) -> Self {
        shared.group_in_flight.fetch_add(1, Ordering::SeqCst);
        GroupInFlight(shared)
    }
}

impl Drop for GroupInFlight<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        shared.group_in_flight.fetch_sub(1, Ordering::SeqCst);
        if shared.gathering.load(Ordering::SeqCst) {
            let st = shared.lock_append();
            shared.wake_gatherer_if_complete(&st);
        }
    }
}

impl Shared {
    /// `SyncMode::Group`: queue the batch, then wait until a sync covers it (leading one if
    /// nobody holds `io`).
    pub(super) fn append_group(&self, batch: &PreparedBatch<'_>) -> Result<RangeInclusive<Lsn>> {
        let _in_flight = GroupInFlight::enter(self);
        let range = {
            let mut st = self.lock_append();
            let range = st.encode_batch(&self.config, batch);
            st.group_queued += 1;
            self.wake_gatherer_if_complete(&st);
            range
        };
        self.assigned_lsn.fetch_max(*range.end(), Ordering::AcqRel);
        self.wait_group_commit(*range.end())?;
        Ok(range)
    }

    /// Whether every group-commit appender in flight has queued its batch. `st` is the locked
    /// append state (`group_queued` changes only under it).
    pub(super) fn gather_complete(&self, st: &AppendState) -> bool {
        st.group_queued >= self.group_in_flight.load(Ordering::SeqCst)
    }

    /// Called with the append lock held after a group-commit batch was queued or an appender
    /// left: wakes a gathering leader once its group is complete.
    pub(super) fn wake_gatherer_if_complete(&self, st: &AppendState) {
        if self.gathering.load(Ordering::SeqCst) && self.gather_complete(st) {
            self.gather.notify_one();
        }
    }

    /// Group-commit leader, holding `io`, before it drains the queue: while fewer batches are
    /// queued than appenders are in flight (the others are on their way in, typically just
    /// woken by the previous sync), sleep until they have queued or left, for at most half the
    /// recent fdatasync duration and `group_commit_gather_max_us`. Returns at once for a lone
    /// writer (its own batch is the only one in flight) and when gathering is off.
    pub(super) fn gather(&self) {
        let max_us = self.config.group_commit_gather_max_us;
        let budget_us = (self.sync_avg_us.load(Ordering::Relaxed) / GATHER_SYNC_DIVISOR).min(max_us);
        if budget_us == 0 {
            return;
        }
        let mut st = self.lock_append();
        if self.gather_complete(&st) {
            return;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_micros(budget_us);
        // Set before the condition is re-checked (both SeqCst): an appender leaving decrements
        // `group_in_flight`, then looks at `gathering`; one of the two sides sees the other.
        self.gathering.store(true, Ordering::SeqCst);
        while !self.gather_complete(&st) {
            if self.gather.wait_until(st.inner(), deadline).timed_out() {
                break;
            }
        }
        self.gathering.store(false, Ordering::SeqCst);
        drop(st);
        let waited_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.group_commit_gathers.fetch_add(1, Ordering::Relaxed);
        self.stats.group_commit_gather_us.fetch_add(waited_us, Ordering::Relaxed);
    }

    /// Group commit: returns once `lsn` is durable. Whoever finds the I/O lock free becomes the
    /// leader, writes everything queued and syncs once; the others park until a leader's sync
    /// covers them ([`Shared::wake_group_followers`] wakes exactly those, and one uncovered
    /// follower to lead the next sync), so no follower is woken only to sleep again.
    pub(super) fn wait_group_commit(&self, lsn: Lsn) -> Result<()> {
        loop {
            if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            self.check_usable()?;
            if let Some(mut io) = self.io.try_lock() {
                let result = if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                    Ok(())
                } else {
                    self.gather();
                    self.write_pending(&mut io, true)
                };
                // Wake followers after releasing the lock: those now durable and, unless the
                // flusher leads the batches queued meanwhile, one not covered to lead next.
                let handed_over = result.is_ok() && self.hand_over_to_flusher();
                self.assert_synced_before_release(&io);
                drop(io);
                self.wake_group_followers(!handed_over);
                result?;
                continue;
            }
            self.park_group_follower(lsn);
        }
    }

    /// The `parking_lot_core` queue key of parked group-commit followers: the address of a
    /// field that is no lock of its own, so no other queue shares it.
    pub(super) fn group_park_key(&self) -> usize {
        std::ptr::addr_of!(self.durable_lsn) as usize
    }

    /// Parks a group-commit follower waiting for `lsn`, unless it is durable already, the log
    /// is unusable, or no one holds `io` (then the caller tries to lead). The check runs under
    /// the park queue's lock and every `io` holder calls [`Shared::wake_group_followers`] after
    /// unlocking, under the same queue lock, so a follower that parks is always seen by the
    /// wake-up pass of the holder it saw. The timeout is a safety net only.
    pub(super) fn park_group_follower(&self, lsn: Lsn) {
        let token = ParkToken(usize::try_from(lsn).unwrap_or(usize::MAX));
        let timeout = Instant::now() + Duration::from_millis(GROUP_PARK_TIMEOUT_MS);
        // SAFETY: the key is an address this `Shared` owns and that no parking_lot primitive
        // uses (`group_park_key`). `validate` only loads atomics (`Mutex::is_locked` is a load
        // of the raw lock's state word, not a call into the parking lot) and cannot unwind;
        // `before_sleep` and `timed_out` do nothing.
        let result = unsafe {
            parking_lot_core::park(
                self.group_park_key(),
                || {
                    self.durable_lsn.load(Ordering::Acquire) < lsn
                        && self.io.is_locked()
                        && !self.failed.load(Ordering::Acquire)
                        && !self.closed.load(Ordering::Acquire)
                },
                || {},
                |_, _| {},
                token,
                Some(timeout),
            )
        };
        if result == ParkResult::TimedOut {
            self.stats.group_commit_park_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a sync: wakes the parked group-commit followers whose LSN is now durable and, if
    /// `may_elect` and no one holds `io` (whoever does wakes the rest in turn), the first one
    /// not covered, to lead the next sync; the others stay parked. Everyone when the log is
    /// failed or closed. `may_elect` is false where the flusher leads next.
    pub(super) fn wake_group_followers(&self, may_elect: bool) {
        let durable = self.durable_lsn.load(Ordering::Acquire);
        let everyone = self.failed.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire);
        let mut need_leader = may_elect && !everyone && !self.io.is_locked();
        // SAFETY: our own key (see `park_group_follower`); the filter and callback only read
        // atomics and captured values and cannot unwind.
        unsafe {
            parking_lot_core::unpark_filter(
                self.group_park_key(),
                |ParkToken(token)| {
                    // usize::MAX: an LSN beyond usize (32-bit targets), woken on every pass.
                    if everyone || token == usize::MAX || token as u64 <= durable {
                        FilterOp::Unpark
                    } else if need_leader {
                        need_leader = false;
                        FilterOp::Unpark
                    } else {
                        FilterOp::Skip
                    }
                },
                |_| DEFAULT_UNPARK_TOKEN,
            );
        }
    }

    /// Unlocks `io`, then wakes the group-commit followers parked while it was held. Every
    /// `io` holder in `SyncMode::Group` releases it through here, or drops it and calls
    /// `wake_all` (flush, close), which does the same, or (a committer that led a sync) drops
    /// it and calls `wake_group_followers` itself, electing no one if it handed over.
    pub(super) fn release_io(&self, io: MutexGuard<'_, IoState>) {
        self.assert_synced_before_release(&io);
        drop(io);
        if self.config.sync_mode == SyncMode::Group {
            self.wake_group_followers(true);
        }
    }
}
