//! A read-through cache kept fresh by change data capture (the DoSQL guide's "Cache
//! Invalidation").
//!
//! The host keeps a `users` table (rows in memory; every write is logged to Walden first, with
//! before and after images). Reads go through a cache (a `HashMap`) keyed like the guide's
//! patterns: `user:<id>` and `user:email:<email>`. An invalidator consumes a replication slot
//! ([`Cdc::subscribe_slot`]) filtered to updates and deletes of `users`, drops the affected keys
//! (for an email change, both the old and the new email's key, read from the before and after
//! images) and acknowledges its progress ([`walden_cdc::SlotSubscription::ack`]).
//!
//! The scenario shows that after each write the cache serves the new row as soon as the
//! invalidation has arrived, that while the invalidator is down the cache serves stale rows,
//! and that a restarted invalidator resumes from its slot and applies every invalidation it
//! missed.
//!
//! # The fill race
//!
//! A read-through cache has a classic race: a reader misses, loads the old row, a writer commits
//! and its invalidation runs (nothing to drop yet), then the reader stores the old row — stale
//! until the next write. Here every row carries the commit LSN that wrote it, and the cache
//! remembers the newest invalidation LSN per key: an invalidation drops an entry only if the
//! entry is older, and a fill is refused if the key was invalidated after the row it carries.
//! Whatever the interleaving, an entry older than a processed invalidation never survives.
//!
//! ```text
//! cargo run -p walden-cdc --example cache_invalidation [DIR]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use walden_cdc::{Cdc, ChangeEvent, Event, Lsn, SlotSubscription, SubscriptionOptions};
use walden_engine::{CommitInfo, Config, Database, SlotFilter, SlotOptions, StartPosition, SyncMode};

/// The invalidator's replication slot.
const SLOT: &str = "user_cache";
const USERS_TABLE: &str = "users";
/// Users created at the start.
const USERS: u64 = 40;
/// Writes made while the invalidator runs, each followed by a read.
const LIVE_WRITES: usize = 30;
/// Writes made while the invalidator is down (to distinct users).
const WRITES_WHILE_DOWN: usize = 12;
/// How long a reader waits for an invalidation to arrive.
const INVALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the invalidator waits for a change before it reports itself caught up and acks.
const IDLE_ACK_AFTER: Duration = Duration::from_millis(20);

type BoxError = Box<dyn Error + Send + Sync>;

// ----- the users table (kept by the host) -----

/// A subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Plan {
    Free,
    Pro,
    Team,
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
    plan: Plan,
}

/// A row as the host stores it, with the commit LSN of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    user: User,
    written_lsn: Lsn,
}

fn json<T: Serialize>(row: &T) -> Vec<u8> {
    serde_json::to_vec(row).expect("rows serialise")
}

/// The host's `users` table: every write is committed to Walden (with its before image), then
/// applied to the rows, under the table's write lock.
struct UsersTable {
    db: Arc<Database>,
    rows: RwLock<BTreeMap<u64, Row>>,
    /// Reads that reached the table (what the cache is there to save).
    reads: AtomicU64,
}

impl UsersTable {
    fn new(db: Arc<Database>) -> UsersTable {
        UsersTable { db, rows: RwLock::new(BTreeMap::new()), reads: AtomicU64::new(0) }
    }

    fn insert(&self, user: User) -> Result<CommitInfo, BoxError> {
        let mut rows = self.rows.write();
        if rows.contains_key(&user.id) {
            return Err(format!("user {} exists", user.id).into());
        }
        let mut txn = self.db.begin();
        txn.insert(USERS_TABLE, user.id.to_string().as_bytes(), &json(&user))?;
        let info = txn.commit_info()?;
        rows.insert(user.id, Row { user, written_lsn: info.commit_lsn });
        Ok(info)
    }

    /// Applies `change` to user `id`; `None` if there is no such user.
    fn update(&self, id: u64, change: impl FnOnce(&mut User)) -> Result<Option<CommitInfo>, BoxError> {
        let mut rows = self.rows.write();
        let Some(row) = rows.get_mut(&id) else { return Ok(None) };
        let mut after = row.user.clone();
        change(&mut after);
        let mut txn = self.db.begin();
        txn.update(USERS_TABLE, id.to_string().as_bytes(), &json(&row.user), &json(&after))?;
        let info = txn.commit_info()?;
        *row = Row { user: after, written_lsn: info.commit_lsn };
        Ok(Some(info))
    }

    fn delete(&self, id: u64) -> Result<Option<CommitInfo>, BoxError> {
        let mut rows = self.rows.write();
        let Some(row) = rows.get(&id) else { return Ok(None) };
        let mut txn = self.db.begin();
        txn.delete(USERS_TABLE, id.to_string().as_bytes(), &json(&row.user))?;
        let info = txn.commit_info()?;
        rows.remove(&id);
        Ok(Some(info))
    }

    /// `SELECT * FROM users WHERE id = ?`
    fn read(&self, id: u64) -> Option<Row> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.rows.read().get(&id).cloned()
    }

    /// `SELECT * FROM users WHERE email = ?` (a scan: exactly what a cache is for).
    fn read_by_email(&self, email: &str) -> Option<Row> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.rows.read().values().find(|r| r.user.email == email).cloned()
    }

    /// The current row, for checking the cache (not counted as a read).
    fn peek(&self, id: u64) -> Option<User> {
        self.rows.read().get(&id).map(|r| r.user.clone())
    }

    fn ids(&self) -> Vec<u64> {
        self.rows.read().keys().copied().collect()
    }
}

/// The LSN of a transaction's last change (its COMMIT is the record after it).
fn last_change_lsn(info: &CommitInfo) -> Lsn {
    info.commit_lsn - 1
}

// ----- the cache -----

fn id_key(id: u64) -> String {
    format!("user:{id}")
}

fn email_key(email: &str) -> String {
    format!("user:email:{email}")
}

#[derive(Debug, Clone)]
struct Entry {
    user: User,
    /// Commit LSN of the row this entry holds.
    row_lsn: Lsn,
}

#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<String, Entry>,
    /// Newest invalidation per key (commit LSN of the write that caused it).
    invalidated_at: HashMap<String, Lsn>,
    /// Every change up to this LSN has been applied to the cache.
    applied_through: Lsn,
    hits: u64,
    misses: u64,
    evictions: u64,
    refused_fills: u64,
}

/// The read-through cache.
#[derive(Default)]
struct UserCache {
    state: Mutex<CacheState>,
    progress: Condvar,
}

impl UserCache {
    fn get_by_id(&self, table: &UsersTable, id: u64) -> Option<User> {
        self.read_through(id_key(id), || table.read(id))
    }

    fn get_by_email(&self, table: &UsersTable, email: &str) -> Option<User> {
        self.read_through(email_key(email), || table.read_by_email(email))
    }

    /// Serves `key` from the cache, or loads it and fills the cache (absent rows are not cached).
    fn read_through(&self, key: String, load: impl FnOnce() -> Option<Row>) -> Option<User> {
        {
            let mut state = self.state.lock();
            if let Some(entry) = state.entries.get(&key) {
                let user = entry.user.clone();
                state.hits += 1;
                return Some(user);
            }
            state.misses += 1;
        }
        // Load without holding the cache lock; the invalidation LSNs settle the race.
        let row = load()?;
        let mut state = self.state.lock();
        if state.invalidated_at.get(&key).is_some_and(|&lsn| lsn > row.written_lsn) {
            state.refused_fills += 1;
        } else {
            state.entries.insert(key, Entry { user: row.user.clone(), row_lsn: row.written_lsn });
        }
        Some(row.user)
    }

    /// Drops `keys` if they hold rows older than `commit_lsn`, and remembers the invalidation.
    fn invalidate(&self, keys: &BTreeSet<String>, commit_lsn: Lsn) {
        let mut state = self.state.lock();
        for key in keys {
            if state.entries.get(key).is_some_and(|e| e.row_lsn < commit_lsn) {
                state.entries.remove(key);
                state.evictions += 1;
            }
            let newest = state.invalidated_at.entry(key.clone()).or_insert(0);
            *newest = (*newest).max(commit_lsn);
        }
    }

    fn mark_applied(&self, lsn: Lsn) {
        let mut state = self.state.lock();
        if lsn > state.applied_through {
            state.applied_through = lsn;
            self.progress.notify_all();
        }
    }

    /// Waits until every change up to `lsn` has been applied to the cache.
    fn wait_applied(&self, lsn: Lsn, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.applied_through < lsn {
            if self.progress.wait_until(&mut state, deadline).timed_out() {
                return state.applied_through >= lsn;
            }
        }
        true
    }

    /// Checks every entry against the table: (entries checked, entries that differ).
    fn audit(&self, table: &UsersTable) -> (usize, usize) {
        let state = self.state.lock();
        let rows = table.rows.read();
        let wrong = state
            .entries
            .iter()
            .filter(|(key, entry)| {
                let current = match key.strip_prefix("user:email:") {
                    Some(email) => rows.values().find(|r| r.user.email == email),
                    None => key.strip_prefix("user:").and_then(|id| id.parse().ok()).and_then(|id: u64| rows.get(&id)),
                };
                current.map(|r| &r.user) != Some(&entry.user)
            })
            .count();
        (state.entries.len(), wrong)
    }

    fn counters(&self) -> (u64, u64, u64, u64) {
        let s = self.state.lock();
        (s.hits, s.misses, s.evictions, s.refused_fills)
    }
}

// ----- the invalidator -----

/// The cache keys a change of `users` invalidates: the user's id key and the email keys of the
/// before and after images (an email change frees one email and takes another).
fn keys_to_invalidate(change: &ChangeEvent) -> Result<BTreeSet<String>, BoxError> {
    let id: u64 = std::str::from_utf8(&change.key)?.parse()?;
    let mut keys = BTreeSet::from([id_key(id)]);
    for image in [&change.old_data, &change.data].into_iter().flatten() {
        let user: User = serde_json::from_slice(image)?;
        keys.insert(email_key(&user.email));
    }
    Ok(keys)
}

/// What one run of the invalidator did.
#[derive(Debug, Default)]
struct InvalidatorReport {
    /// The slot's confirmed LSN when this run started (it resumed after it).
    resumed_after_lsn: Lsn,
    /// LSNs of the changes it applied.
    applied_lsns: Vec<Lsn>,
    acks: u64,
}

/// The invalidator acknowledges at least every this many changes.
const ACK_EVERY: usize = 8;
/// How the invalidator is told to stop (values of its `stop` flag).
const RUNNING: u8 = 0;
/// Stop at once, without a final ack, like a crash: changes after the last ack are delivered
/// again to the next run, which is harmless because invalidating is idempotent.
const CRASH: u8 = 1;
/// Apply what is already in the log, acknowledge it, release the slot.
const SHUT_DOWN: u8 = 2;

/// Consumes the slot until told to stop: applies each invalidation, and acknowledges progress
/// to the slot every `ACK_EVERY` changes and whenever it is caught up (an ack costs an fsync, so
/// not one per change). Delivery is at-least-once: after a crash the changes after the last ack
/// come again, which is harmless because invalidating is idempotent.
fn invalidator(cdc: &Cdc, cache: &UserCache, stop: &AtomicU8) -> Result<InvalidatorReport, BoxError> {
    let mut subscription = cdc.subscribe_slot(SLOT, SubscriptionOptions::default())?;
    let mut run = InvalidatorRun {
        acked: subscription.slot_info().confirmed_lsn,
        unacked_changes: 0,
        report: InvalidatorReport {
            resumed_after_lsn: subscription.slot_info().confirmed_lsn,
            ..InvalidatorReport::default()
        },
    };
    loop {
        let item = subscription.next_timeout(IDLE_ACK_AFTER);
        let signal = stop.load(Ordering::Acquire);
        if signal == CRASH {
            // Dies here: `item` is neither applied nor acknowledged.
            return Ok(run.report);
        }
        match item {
            Some(Ok(Event::Change(change))) => run.apply(cache, &subscription, &change)?,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => run.caught_up(cache, &subscription)?,
        }
        if signal == SHUT_DOWN {
            while let Some(event) = subscription.try_next() {
                if let Event::Change(change) = event? {
                    run.apply(cache, &subscription, &change)?;
                }
            }
            run.caught_up(cache, &subscription)?;
            subscription.close()?;
            return Ok(run.report);
        }
    }
}

/// Invalidator state: acknowledgement bookkeeping and the report.
struct InvalidatorRun {
    acked: Lsn,
    unacked_changes: usize,
    report: InvalidatorReport,
}

impl InvalidatorRun {
    fn apply(
        &mut self,
        cache: &UserCache,
        subscription: &SlotSubscription,
        change: &ChangeEvent,
    ) -> Result<(), BoxError> {
        cache.invalidate(&keys_to_invalidate(change)?, change.txn.commit_lsn);
        self.report.applied_lsns.push(change.lsn);
        // Events come in LSN order: everything up to this change is applied.
        cache.mark_applied(change.lsn);
        self.unacked_changes += 1;
        if self.unacked_changes >= ACK_EVERY {
            self.ack(subscription, change.lsn)?;
        }
        Ok(())
    }

    /// Nothing more to read: everything the stream has read (filtered-out records included) is
    /// applied.
    fn caught_up(&mut self, cache: &UserCache, subscription: &SlotSubscription) -> Result<(), BoxError> {
        let position = subscription.stream().position();
        cache.mark_applied(position);
        self.ack(subscription, position)
    }

    fn ack(&mut self, subscription: &SlotSubscription, lsn: Lsn) -> Result<(), BoxError> {
        if lsn > self.acked {
            subscription.ack(lsn)?;
            self.acked = lsn;
            self.unacked_changes = 0;
            self.report.acks += 1;
        }
        Ok(())
    }
}

// ----- the run -----

/// What the example did and computed.
#[derive(Debug, Default)]
struct Summary {
    users_created: u64,
    /// Reads while warming the cache (two passes over every user): misses then hits.
    warm_misses: u64,
    warm_hits: u64,
    /// Writes while the invalidator ran, and reads right after each invalidation arrived.
    live_writes: usize,
    fresh_reads_after_invalidation: usize,
    stale_reads_after_invalidation: usize,
    /// Reads right after a write's invalidation that went to the table (the entry was dropped).
    misses_after_invalidation: usize,
    /// Writes while the invalidator was down, to distinct cached users.
    users_written_while_down: usize,
    /// Reads of those users from the cache before the restart: stale ones.
    stale_reads_while_down: usize,
    /// The slot's confirmed LSN when the invalidator stopped, and where its restart resumed.
    confirmed_lsn_at_stop: Lsn,
    resumed_after_lsn: Lsn,
    /// The slot's confirmed LSN after the restarted invalidator shut down, and the log's last LSN.
    confirmed_lsn_at_end: Lsn,
    last_lsn: Lsn,
    /// Invalidations the restarted invalidator applied, and how many were redeliveries of
    /// changes the first run had already applied (after its last ack).
    applied_after_restart: usize,
    redelivered: usize,
    /// Reads of the users written while down, after the restart caught up: stale ones.
    stale_reads_after_restart: usize,
    /// Cache entries audited against the table at the end, and wrong ones.
    audited_entries: usize,
    wrong_entries: usize,
    /// Update and delete changes written, and those no invalidator run applied.
    invalidating_changes_written: usize,
    missed_invalidations: Vec<Lsn>,
    /// Applied changes that were never written (should not exist).
    unexpected_invalidations: Vec<Lsn>,
    /// Whether every write made while down was applied by the restarted run.
    down_writes_applied_after_restart: bool,
    hits: u64,
    misses: u64,
    table_reads: u64,
    evictions: u64,
    refused_fills: u64,
    acks: u64,
    elapsed: Duration,
}

const NAMES: [&str; 8] = ["ada", "alan", "barbara", "donald", "edsger", "frances", "grace", "ken"];

/// One random write (rename, email change, plan change or delete) to existing user `id`.
fn random_write(table: &UsersTable, rng: &mut StdRng, id: u64, serial: usize) -> Result<CommitInfo, BoxError> {
    let info = match rng.random_range(0..10) {
        0..=4 => table.update(id, |u| u.name = format!("{} ({serial})", NAMES[serial % NAMES.len()]))?,
        5..=7 => table.update(id, |u| u.email = format!("user{id}.v{serial}@example.com"))?,
        8 => table.update(id, |u| u.plan = if u.plan == Plan::Team { Plan::Free } else { Plan::Team })?,
        _ => table.delete(id)?,
    };
    info.ok_or_else(|| format!("user {id} vanished").into())
}

/// Runs the scenario in `dir` (which must not hold a database yet).
fn run(dir: &Path) -> Result<Summary, Box<dyn Error>> {
    run_inner(dir).map_err(|e| e.to_string().into())
}

fn run_inner(dir: &Path) -> Result<Summary, BoxError> {
    let started = Instant::now();
    let db = Arc::new(Database::open(dir, Config::with_sync_mode(SyncMode::Group))?);
    if db.wal().next_lsn() != 1 {
        return Err(format!("{} already holds a database; give an empty directory", dir.display()).into());
    }
    let cdc = Cdc::new(db.clone());
    cdc.create_slot(
        SLOT,
        SlotOptions {
            start: StartPosition::Current,
            filter: SlotFilter {
                tables: Some(BTreeSet::from([USERS_TABLE.to_string()])),
                operations: Some(BTreeSet::from([walden_engine::Operation::Update, walden_engine::Operation::Delete])),
            },
            temporary: false,
        },
    )?;
    let table = UsersTable::new(db.clone());
    let cache = UserCache::default();
    let stop = AtomicU8::new(RUNNING);
    let mut rng = StdRng::seed_from_u64(0xcac4e);
    let mut s = Summary::default();
    // LSNs of the update/delete changes written (what must be invalidated).
    let mut invalidating: BTreeSet<Lsn> = BTreeSet::new();

    let (first, second, down_lsns) = thread::scope(|scope| -> Result<_, BoxError> {
        let first_run = scope.spawn(|| invalidator(&cdc, &cache, &stop));

        for id in 1..=USERS {
            let name = NAMES[(id as usize) % NAMES.len()];
            let plan = [Plan::Free, Plan::Pro, Plan::Team][rng.random_range(0..3)];
            table.insert(User { id, name: name.to_string(), email: format!("{name}{id}@example.com"), plan })?;
            s.users_created += 1;
        }
        // Warm up: every user twice by id, a few by email.
        for pass in 0..2 {
            let before = cache.counters();
            for id in table.ids() {
                cache.get_by_id(&table, id);
            }
            let after = cache.counters();
            if pass == 0 {
                s.warm_misses = after.1 - before.1;
            } else {
                s.warm_hits = after.0 - before.0;
            }
        }
        for id in 1..=10 {
            if let Some(user) = table.peek(id) {
                cache.get_by_email(&table, &user.email);
            }
        }

        // Live: each write, then a read once its invalidation has arrived.
        for serial in 0..LIVE_WRITES {
            if serial == LIVE_WRITES - 1 {
                // Before the last write, cache every user again (for the downtime below).
                for id in table.ids() {
                    cache.get_by_id(&table, id);
                }
            }
            let id = table.ids().into_iter().choose(&mut rng).ok_or("no users left")?;
            let old_email = table.peek(id).map(|u| u.email).unwrap_or_default();
            let info = random_write(&table, &mut rng, id, serial)?;
            invalidating.insert(last_change_lsn(&info));
            if !cache.wait_applied(last_change_lsn(&info), INVALIDATION_TIMEOUT) {
                return Err(format!("invalidation of LSN {} did not arrive", last_change_lsn(&info)).into());
            }
            let misses = cache.counters().1;
            let by_id = cache.get_by_id(&table, id);
            s.misses_after_invalidation += usize::from(cache.counters().1 > misses);
            let current = table.peek(id);
            // By id, by the new email, and by the old one (which must no longer find this user).
            let by_new_email = current.as_ref().and_then(|u| cache.get_by_email(&table, &u.email));
            let by_old_email = cache.get_by_email(&table, &old_email).filter(|u| u.id == id);
            let fresh = by_id == current
                && by_new_email == current
                && (by_old_email.is_none() || current.as_ref().is_some_and(|u| u.email == old_email));
            if fresh {
                s.fresh_reads_after_invalidation += 1;
            } else {
                s.stale_reads_after_invalidation += 1;
            }
            s.live_writes += 1;
        }

        // The invalidator crashes, most likely with its last few changes not yet acknowledged
        // (it acks every few changes and when idle): its next run will see them again.
        stop.store(CRASH, Ordering::Release);
        let first = first_run.join().map_err(|_| "invalidator panicked")??;
        s.confirmed_lsn_at_stop = cdc.database().slot(SLOT)?.confirmed_lsn;

        // Writes while down: the cache keeps serving the old rows.
        let victims: Vec<u64> = table.ids().into_iter().choose_multiple(&mut rng, WRITES_WHILE_DOWN);
        let mut down_lsns = BTreeSet::new();
        for (i, &id) in victims.iter().enumerate() {
            let info = random_write(&table, &mut rng, id, LIVE_WRITES + i)?;
            invalidating.insert(last_change_lsn(&info));
            down_lsns.insert(last_change_lsn(&info));
        }
        s.users_written_while_down = victims.len();
        s.stale_reads_while_down = victims.iter().filter(|&&id| cache.get_by_id(&table, id) != table.peek(id)).count();

        // Restart: the new run resumes after the slot's confirmed LSN and catches up.
        stop.store(RUNNING, Ordering::Release);
        let second_run = scope.spawn(|| invalidator(&cdc, &cache, &stop));
        let last = down_lsns.last().copied().unwrap_or(0);
        if !cache.wait_applied(last, INVALIDATION_TIMEOUT) {
            return Err(format!("the restarted invalidator did not reach LSN {last}").into());
        }
        s.stale_reads_after_restart =
            victims.iter().filter(|&&id| cache.get_by_id(&table, id) != table.peek(id)).count();
        for id in 1..=USERS {
            cache.get_by_id(&table, id);
        }
        (s.audited_entries, s.wrong_entries) = cache.audit(&table);
        stop.store(SHUT_DOWN, Ordering::Release);
        let second = second_run.join().map_err(|_| "invalidator panicked")??;
        s.confirmed_lsn_at_end = cdc.database().slot(SLOT)?.confirmed_lsn;
        s.last_lsn = cdc.database().wal().next_lsn() - 1;
        Ok((first, second, down_lsns))
    })?;

    let first_applied: BTreeSet<Lsn> = first.applied_lsns.iter().copied().collect();
    let second_applied: BTreeSet<Lsn> = second.applied_lsns.iter().copied().collect();
    let applied: BTreeSet<Lsn> = first_applied.union(&second_applied).copied().collect();
    s.resumed_after_lsn = second.resumed_after_lsn;
    s.applied_after_restart = second.applied_lsns.len();
    s.redelivered = second_applied.intersection(&first_applied).count();
    s.invalidating_changes_written = invalidating.len();
    s.missed_invalidations = invalidating.difference(&applied).copied().collect();
    s.unexpected_invalidations = applied.difference(&invalidating).copied().collect();
    s.down_writes_applied_after_restart = down_lsns.is_subset(&second_applied);
    (s.hits, s.misses, s.evictions, s.refused_fills) = cache.counters();
    s.table_reads = table.reads.load(Ordering::Relaxed);
    s.acks = first.acks + second.acks;
    drop(table);
    drop(cdc);
    Arc::try_unwrap(db).map_err(|_| "database still shared")?.close()?;
    s.elapsed = started.elapsed();
    Ok(s)
}

/// The account `main` prints.
fn render(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!("{} users created; warm-up: {} misses, then {} hits", s.users_created, s.warm_misses, s.warm_hits));
    line(format!(
        "{} writes with the invalidator running: after each invalidation arrived, {} reads were fresh, {} stale \
         ({} went to the table: the entry had been dropped)",
        s.live_writes, s.fresh_reads_after_invalidation, s.stale_reads_after_invalidation, s.misses_after_invalidation
    ));
    line(format!(
        "invalidator crashed with its slot confirmed at LSN {}; {} users written while it was down: {} stale reads from \
         the cache",
        s.confirmed_lsn_at_stop, s.users_written_while_down, s.stale_reads_while_down
    ));
    line(format!(
        "restarted: resumed after LSN {}, applied {} invalidations ({} redelivered); stale reads now: {}; shut down \
         with the slot confirmed at LSN {} of {}",
        s.resumed_after_lsn,
        s.applied_after_restart,
        s.redelivered,
        s.stale_reads_after_restart,
        s.confirmed_lsn_at_end,
        s.last_lsn
    ));
    line(format!(
        "audit: {} cache entries, {} wrong; {} invalidating changes written, {} missed",
        s.audited_entries,
        s.wrong_entries,
        s.invalidating_changes_written,
        s.missed_invalidations.len()
    ));
    line(format!(
        "cache: {} hits, {} misses, {} table reads, {} evictions, {} fills refused as stale; {} slot acks; took \
         {:.2} s",
        s.hits,
        s.misses,
        s.table_reads,
        s.evictions,
        s.refused_fills,
        s.acks,
        s.elapsed.as_secs_f64()
    ));
    out
}

fn main() -> Result<(), Box<dyn Error>> {
    let (_temp, dir) = match std::env::args_os().nth(1) {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let temp = tempfile::tempdir()?;
            let dir = temp.path().to_path_buf();
            (Some(temp), dir)
        }
    };
    let summary = run(&dir)?;
    print!("{}", render(&summary));
    if !summary.missed_invalidations.is_empty() || summary.wrong_entries > 0 {
        return Err("the cache missed invalidations".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_fresh_after_invalidations_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s = run(dir.path()).unwrap();

        assert_eq!(s.users_created, USERS);
        assert_eq!((s.warm_misses, s.warm_hits), (USERS, USERS));

        // Live: every read after an invalidation was fresh, and came from the table.
        assert_eq!(s.live_writes, LIVE_WRITES);
        assert_eq!(s.fresh_reads_after_invalidation, LIVE_WRITES);
        assert_eq!(s.stale_reads_after_invalidation, 0);
        assert_eq!(s.misses_after_invalidation, LIVE_WRITES);

        // Down: each written user was cached, so each read was stale.
        assert_eq!(s.users_written_while_down, WRITES_WHILE_DOWN);
        assert_eq!(s.stale_reads_while_down, s.users_written_while_down);

        // Restart: resumed exactly after the confirmed LSN, applied everything written while
        // down, and nothing is stale any more.
        assert_eq!(s.resumed_after_lsn, s.confirmed_lsn_at_stop);
        assert!(s.down_writes_applied_after_restart);
        // The restarted run applied the writes made while down plus, possibly, live writes the
        // first run had applied after its last ack (redelivered).
        assert_eq!(s.applied_after_restart, WRITES_WHILE_DOWN + s.redelivered);
        assert_eq!(s.stale_reads_after_restart, 0);
        assert_eq!(s.wrong_entries, 0);
        assert!(s.audited_entries > 0);

        // Exactly the update/delete changes written were invalidated: none missed, none invented.
        assert_eq!(s.invalidating_changes_written, LIVE_WRITES + WRITES_WHILE_DOWN);
        assert!(s.missed_invalidations.is_empty(), "{:?}", s.missed_invalidations);
        assert!(s.unexpected_invalidations.is_empty(), "{:?}", s.unexpected_invalidations);

        // Every miss read the table once.
        assert_eq!(s.table_reads, s.misses);
        // The graceful shutdown acknowledged the whole log.
        assert_eq!(s.confirmed_lsn_at_end, s.last_lsn);
        assert!(s.acks >= 1);
        assert!(s.redelivered < ACK_EVERY, "acks every {ACK_EVERY} changes, redelivered {}", s.redelivered);
    }

    #[test]
    fn invalidation_beats_a_slow_fill() {
        // A reader loads version 1 of a row, the write of version 2 is invalidated, then the
        // reader tries to fill: the fill is refused.
        let cache = UserCache::default();
        let user = |name: &str| User { id: 7, name: name.into(), email: "u@example.com".into(), plan: Plan::Free };
        cache.invalidate(&BTreeSet::from([id_key(7)]), 20);
        let served = cache.read_through(id_key(7), || Some(Row { user: user("old"), written_lsn: 10 }));
        assert_eq!(served.unwrap().name, "old");
        assert!(cache.state.lock().entries.is_empty());
        // A row at least as new as the invalidation is cached; an older invalidation keeps it.
        cache.read_through(id_key(7), || Some(Row { user: user("new"), written_lsn: 20 }));
        cache.invalidate(&BTreeSet::from([id_key(7)]), 15);
        assert_eq!(cache.state.lock().entries[&id_key(7)].user.name, "new");
        cache.invalidate(&BTreeSet::from([id_key(7)]), 30);
        assert!(cache.state.lock().entries.is_empty());
        assert_eq!(cache.counters(), (0, 2, 1, 1));
    }
}
