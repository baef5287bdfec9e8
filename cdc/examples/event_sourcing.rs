//! Event sourcing on Walden with optimistic concurrency (the DoSQL guide's "Event Sourcing").
//!
//! Bank accounts are aggregates; their history is an append-only `events` table of domain events
//! (opened, deposited, withdrawn). Tellers on several threads handle commands against a few
//! accounts, racing on the same ones. The read side is a projection kept by a CDC subscriber
//! ([`Cdc::stream_callbacks`]); at the end it is rebuilt from a replay of the log, after a
//! restart, and every balance is checked against the events the tellers committed.
//!
//! # Optimistic concurrency without compare-and-set
//!
//! A command loads the account from the projection (which may lag behind the log), decides
//! which events follow, and appends them *with the version it decided on* (the expected
//! version). The append must fail if anything was appended to that account in between —
//! otherwise two withdrawals decided against the same balance could both go through.
//!
//! Walden's engine is a log: it has no unique constraint and no compare-and-set, so the check
//! and the commit are made atomic by the application:
//!
//! - [`EventStore`] keeps, per account, a lock guarding the account's *committed version* (the
//!   version of its last event in the log). An append takes the account's lock, compares the
//!   expected version with the committed one, and either fails with
//!   [`AppendError::Conflict`] or commits and bumps the committed version — all under the lock.
//!   Appends to different accounts run in parallel (and share group commits).
//! - The lock is in-process; that suffices because one process owns a Walden directory (the
//!   WAL's directory lock). On open, the committed versions are recovered from the log (this
//!   example keeps the whole log; a store that lets checkpoints remove old segments would have
//!   to snapshot its heads and projections first).
//! - Each event's key is `<account>/<version>`, and the same transaction writes the account's
//!   `account_heads` row: an insert for the first append, then an update whose *before image*
//!   is the expected version and whose after image is the new version. The log therefore
//!   records every check that was made; a replay verifies that versions are gapless and that each
//!   append's expected version was the committed one (no lost update can hide in the log).
//! - A writer that gets a conflict waits until the projection has caught up with the winning
//!   version, reloads, decides again (the command may now be rejected, e.g. for insufficient
//!   funds) and retries.
//!
//! ```text
//! cargo run -p walden-cdc --example event_sourcing [DIR]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use walden_cdc::{Cdc, CdcError, ChangeEvent, ChangeHandler, Event, Filter, Operation, SubscriptionOptions};
use walden_engine::{Config, Database, EngineError, SyncMode};

/// The append-only table of domain events.
const EVENTS: &str = "events";
/// One row per account: the version of its last event.
const HEADS: &str = "account_heads";
/// Accounts: id, owner, opening deposit in cents.
const ACCOUNTS: [(&str, &str, i64); 4] = [
    ("acc-ada", "Ada Lovelace", 12_000),
    ("acc-alan", "Alan Turing", 8_000),
    ("acc-grace", "Grace Hopper", 15_000),
    ("acc-edsger", "Edsger Dijkstra", 6_000),
];
const TELLERS: usize = 4;
const COMMANDS_PER_TELLER: usize = 40;
/// Conflicts a command tolerates before giving up.
const MAX_CONFLICTS: u32 = 50;
/// How long a writer waits for the projection to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn Error + Send + Sync>;

// ----- the domain -----

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount_cents: i64 },
    Withdrawn { amount_cents: i64 },
}

/// A row of the `events` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredEvent {
    event_id: String,
    account_id: String,
    /// 1 for the account's first event, then +1 per event.
    version: u64,
    /// The command that produced it (also the transaction's correlation id).
    command_id: String,
    recorded_at_ms: u64,
    #[serde(flatten)]
    event: AccountEvent,
}

/// A row of the `account_heads` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    version: u64,
}

/// What a teller asks for.
#[derive(Debug, Clone)]
enum Command {
    Open { owner: String, opening_deposit_cents: i64 },
    Deposit { amount_cents: i64 },
    Withdraw { amount_cents: i64 },
}

/// Why a command was refused by the business rules (not a concurrency problem).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    AlreadyOpen,
    NotOpen,
    NonPositiveAmount,
    InsufficientFunds { balance_cents: i64, requested_cents: i64 },
}

/// The account aggregate: the fold of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Account {
    owner: Option<String>,
    balance_cents: i64,
    version: u64,
}

impl Account {
    /// Folds in the next event. A history that breaks the rules (a version gap, a withdrawal
    /// beyond the balance, ...) is an error: it would mean concurrency control failed.
    fn apply(&mut self, e: &StoredEvent) -> Result<(), String> {
        if e.version != self.version + 1 {
            return Err(format!("{}: event version {} follows version {}", e.account_id, e.version, self.version));
        }
        match (&e.event, &self.owner) {
            (AccountEvent::Opened { owner }, None) => self.owner = Some(owner.clone()),
            (AccountEvent::Opened { .. }, Some(_)) => return Err(format!("{}: opened twice", e.account_id)),
            (_, None) => return Err(format!("{}: {:?} before opening", e.account_id, e.event)),
            (AccountEvent::Deposited { amount_cents }, Some(_)) => self.balance_cents += amount_cents,
            (AccountEvent::Withdrawn { amount_cents }, Some(_)) => {
                if *amount_cents > self.balance_cents {
                    return Err(format!(
                        "{}: version {} withdraws {amount_cents} from a balance of {}",
                        e.account_id, e.version, self.balance_cents
                    ));
                }
                self.balance_cents -= amount_cents;
            }
        }
        self.version = e.version;
        Ok(())
    }

    /// The events `command` produces against this state, or why it is refused.
    fn decide(&self, command: &Command) -> Result<Vec<AccountEvent>, Rejection> {
        match command {
            Command::Open { .. } if self.owner.is_some() => Err(Rejection::AlreadyOpen),
            Command::Open { opening_deposit_cents, .. } if *opening_deposit_cents < 0 => {
                Err(Rejection::NonPositiveAmount)
            }
            Command::Open { owner, opening_deposit_cents } => {
                let mut events = vec![AccountEvent::Opened { owner: owner.clone() }];
                if *opening_deposit_cents > 0 {
                    events.push(AccountEvent::Deposited { amount_cents: *opening_deposit_cents });
                }
                Ok(events)
            }
            _ if self.owner.is_none() => Err(Rejection::NotOpen),
            Command::Deposit { amount_cents } | Command::Withdraw { amount_cents } if *amount_cents <= 0 => {
                Err(Rejection::NonPositiveAmount)
            }
            Command::Deposit { amount_cents } => Ok(vec![AccountEvent::Deposited { amount_cents: *amount_cents }]),
            Command::Withdraw { amount_cents } if *amount_cents > self.balance_cents => {
                Err(Rejection::InsufficientFunds { balance_cents: self.balance_cents, requested_cents: *amount_cents })
            }
            Command::Withdraw { amount_cents } => Ok(vec![AccountEvent::Withdrawn { amount_cents: *amount_cents }]),
        }
    }
}

// ----- the event store (write side) -----

/// Why an append failed.
#[derive(Debug)]
enum AppendError {
    /// Events were appended to the account after the version the command decided on.
    Conflict { account_id: String, expected_version: u64, actual_version: u64 },
    /// The engine refused or failed the commit (nothing was appended).
    Engine(EngineError),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::Conflict { account_id, expected_version, actual_version } => write!(
                f,
                "concurrency conflict on {account_id}: expected version {expected_version}, \
                 actual version {actual_version}"
            ),
            AppendError::Engine(e) => write!(f, "append failed: {e}"),
        }
    }
}

impl Error for AppendError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AppendError::Engine(e) => Some(e),
            AppendError::Conflict { .. } => None,
        }
    }
}

impl From<EngineError> for AppendError {
    fn from(e: EngineError) -> Self {
        AppendError::Engine(e)
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn json<T: Serialize>(row: &T) -> Vec<u8> {
    serde_json::to_vec(row).expect("rows serialise")
}

fn event_key(account_id: &str, version: u64) -> String {
    format!("{account_id}/{version:010}")
}

/// The write side: appends events with an expected version (see the module docs).
struct EventStore {
    db: Arc<Database>,
    /// Per account: the lock that serialises its appends, guarding its committed version.
    streams: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
}

impl EventStore {
    /// Opens the store over `db`, recovering every account's committed version from the log.
    fn open(cdc: &Cdc) -> Result<EventStore, BoxError> {
        let history = replay(cdc)?;
        let streams = history.accounts.iter().map(|(id, a)| (id.clone(), Arc::new(Mutex::new(a.version)))).collect();
        Ok(EventStore { db: cdc.database().clone(), streams: Mutex::new(streams) })
    }

    fn stream(&self, account_id: &str) -> Arc<Mutex<u64>> {
        self.streams.lock().entry(account_id.to_string()).or_default().clone()
    }

    /// The committed version of an account (0: no events).
    fn committed_version(&self, account_id: &str) -> u64 {
        *self.stream(account_id).lock()
    }

    /// Appends `events` to `account_id` if its committed version is still `expected_version`:
    /// the events (keys `<account>/<version>`) and the head row move in one transaction. Returns
    /// the account's new version.
    fn append(
        &self,
        account_id: &str,
        expected_version: u64,
        events: &[AccountEvent],
        command_id: &str,
        actor: &str,
    ) -> Result<u64, AppendError> {
        let stream = self.stream(account_id);
        // Held until the commit is acknowledged: no other append to this account can check the
        // version or commit in between.
        let mut committed = stream.lock();
        if *committed != expected_version {
            return Err(AppendError::Conflict {
                account_id: account_id.to_string(),
                expected_version,
                actual_version: *committed,
            });
        }
        let new_version = expected_version + events.len() as u64;
        let mut txn = self.db.begin();
        txn.set_actor(actor).set_correlation_id(command_id);
        for (i, event) in events.iter().enumerate() {
            let version = expected_version + 1 + i as u64;
            let stored = StoredEvent {
                event_id: format!("{command_id}#{i}"),
                account_id: account_id.to_string(),
                version,
                command_id: command_id.to_string(),
                recorded_at_ms: now_ms(),
                event: event.clone(),
            };
            txn.insert(EVENTS, event_key(account_id, version).as_bytes(), &json(&stored))?;
        }
        let after = json(&Head { version: new_version });
        if expected_version == 0 {
            txn.insert(HEADS, account_id.as_bytes(), &after)?;
        } else {
            txn.update(HEADS, account_id.as_bytes(), &json(&Head { version: expected_version }), &after)?;
        }
        txn.commit()?;
        *committed = new_version;
        Ok(new_version)
    }
}

// ----- the projection (read side), kept by a CDC subscriber -----

/// Accounts as of the events the subscriber has applied. May lag behind the log.
#[derive(Default)]
struct Projection {
    accounts: Mutex<BTreeMap<String, Account>>,
    changed: Condvar,
    events_applied: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Projection {
    fn load(&self, account_id: &str) -> Account {
        self.accounts.lock().get(account_id).cloned().unwrap_or_default()
    }

    /// Waits until the projection has applied `account_id` up to `version`.
    fn wait_for_version(&self, account_id: &str, version: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut accounts = self.accounts.lock();
        loop {
            if accounts.get(account_id).map_or(0, |a| a.version) >= version {
                return true;
            }
            if self.changed.wait_until(&mut accounts, deadline).timed_out() {
                return accounts.get(account_id).map_or(0, |a| a.version) >= version;
            }
        }
    }

    fn balances(&self) -> BTreeMap<String, Balance> {
        self.accounts.lock().iter().map(|(id, a)| (id.clone(), Balance::of(a))).collect()
    }
}

/// The callbacks of the projection's change stream (inserts into `events` only).
struct ProjectionHandler(Arc<Projection>);

impl ChangeHandler for ProjectionHandler {
    fn on_change(&mut self, change: &ChangeEvent) -> Result<(), String> {
        let data = change.data.as_ref().ok_or("event insert without a row")?;
        let stored: StoredEvent = serde_json::from_slice(data).map_err(|e| format!("bad event row: {e}"))?;
        let mut accounts = self.0.accounts.lock();
        accounts.entry(stored.account_id.clone()).or_default().apply(&stored)?;
        self.0.events_applied.fetch_add(1, Ordering::Relaxed);
        self.0.changed.notify_all();
        Ok(())
    }

    fn on_error(&mut self, error: &CdcError) {
        self.0.problems.lock().push(error.to_string());
    }
}

// ----- replay -----

/// An account's balance and version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Balance {
    balance_cents: i64,
    version: u64,
}

impl Balance {
    fn of(a: &Account) -> Balance {
        Balance { balance_cents: a.balance_cents, version: a.version }
    }
}

/// The accounts rebuilt from the whole log, with what the replay verified.
#[derive(Debug, Default)]
struct History {
    accounts: BTreeMap<String, Account>,
    events: u64,
    /// Appends (one head change each) whose expected version matched the committed one.
    verified_appends: u64,
    /// The lowest balance any account ever had.
    lowest_balance_cents: i64,
}

/// Replays the log up to its visible end: folds every account's events (which checks the
/// versions and the business rules) and checks each head change against the events: an insert
/// for the first append, then updates whose before image is the version before the append and
/// whose after image is the version its events reached.
fn replay(cdc: &Cdc) -> Result<History, BoxError> {
    let mut options = SubscriptionOptions::from_lsn(0).with_filter(Filter::all().tables([EVENTS, HEADS]));
    options.end_lsn = Some(cdc.database().wal().visible_lsn());
    let mut history = History::default();
    let mut heads: HashMap<String, u64> = HashMap::new();
    for event in cdc.subscribe(options)? {
        let Event::Change(c) = event? else { continue };
        let key = String::from_utf8_lossy(&c.key).into_owned();
        if c.table == EVENTS {
            if c.op != Operation::Insert {
                return Err(format!("events are append-only, found a {} at LSN {}", c.op.as_str(), c.lsn).into());
            }
            let stored: StoredEvent = serde_json::from_slice(c.data.as_deref().unwrap_or_default())?;
            if key != event_key(&stored.account_id, stored.version) {
                return Err(format!("event key {key} does not match its row at LSN {}", c.lsn).into());
            }
            let account = history.accounts.entry(stored.account_id.clone()).or_default();
            account.apply(&stored)?;
            history.lowest_balance_cents = history.lowest_balance_cents.min(account.balance_cents);
            history.events += 1;
            continue;
        }
        let reached = history.accounts.get(&key).map_or(0, |a| a.version);
        let after: Head = serde_json::from_slice(c.data.as_deref().unwrap_or_default())?;
        let expected_before = match (c.op, c.old_data.as_deref()) {
            (Operation::Insert, None) => 0,
            (Operation::Update, Some(before)) => serde_json::from_slice::<Head>(before)?.version,
            _ => return Err(format!("unexpected {} of head {key} at LSN {}", c.op.as_str(), c.lsn).into()),
        };
        let committed = heads.get(&key).copied().unwrap_or(0);
        if expected_before != committed || after.version != reached || after.version <= expected_before {
            return Err(format!(
                "head {key} at LSN {}: expected version {expected_before}, committed {committed}, \
                 moved to {}, events reached {reached}",
                c.lsn, after.version
            )
            .into());
        }
        heads.insert(key, after.version);
        history.verified_appends += 1;
    }
    for (id, account) in &history.accounts {
        if heads.get(id) != Some(&account.version) {
            return Err(format!("head of {id} does not match its {} events", account.version).into());
        }
    }
    Ok(history)
}

// ----- commands -----

/// How a command ended.
#[derive(Debug)]
struct CommandOutcome {
    /// The events committed and the account's new version, or the refusal.
    result: Result<(Vec<AccountEvent>, u64), Rejection>,
    conflicts: u32,
}

/// Loads the account from the projection, decides, appends with the loaded version; on a
/// conflict waits for the projection to catch up with the winner and tries again.
fn handle_command(
    store: &EventStore,
    projection: &Projection,
    account_id: &str,
    command: &Command,
    command_id: &str,
    actor: &str,
    think_time: Duration,
) -> Result<CommandOutcome, BoxError> {
    let mut conflicts = 0;
    loop {
        let state = projection.load(account_id);
        let events = match state.decide(command) {
            Ok(events) => events,
            Err(rejection) => {
                // Refuse only on the committed state: a refusal decided on a stale view (say, a
                // balance that misses a deposit) is decided again once the view has caught up.
                let committed = store.committed_version(account_id);
                if committed == state.version {
                    return Ok(CommandOutcome { result: Err(rejection), conflicts });
                }
                if !projection.wait_for_version(account_id, committed, CATCH_UP_TIMEOUT) {
                    return Err(format!("projection did not reach {account_id} v{committed}").into());
                }
                continue;
            }
        };
        // A real service does I/O here (fraud checks, ...), which is what opens the race window.
        thread::sleep(think_time);
        match store.append(account_id, state.version, &events, command_id, actor) {
            Ok(version) => return Ok(CommandOutcome { result: Ok((events, version)), conflicts }),
            Err(AppendError::Conflict { actual_version, .. }) => {
                conflicts += 1;
                if conflicts >= MAX_CONFLICTS {
                    return Err(format!("{command_id}: gave up after {conflicts} conflicts").into());
                }
                if !projection.wait_for_version(account_id, actual_version, CATCH_UP_TIMEOUT) {
                    return Err(format!("projection did not reach {account_id} v{actual_version}").into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What one teller did.
#[derive(Debug, Default)]
struct TellerLog {
    /// Events committed, per account.
    committed: Vec<(String, AccountEvent)>,
    accepted: u64,
    insufficient_funds: u64,
    conflicts: u64,
    most_conflicts_in_one_command: u32,
}

fn teller(store: &EventStore, projection: &Projection, teller_id: usize) -> Result<TellerLog, BoxError> {
    let mut rng = StdRng::seed_from_u64(0x7e11_e500 + teller_id as u64);
    let actor = format!("teller-{teller_id}");
    let mut log = TellerLog::default();
    for n in 0..COMMANDS_PER_TELLER {
        let (account_id, _, _) = ACCOUNTS[rng.random_range(0..ACCOUNTS.len())];
        let command = if rng.random_bool(0.4) {
            Command::Deposit { amount_cents: rng.random_range(5..=60) * 100 }
        } else {
            Command::Withdraw { amount_cents: rng.random_range(10..=90) * 100 }
        };
        let command_id = format!("{actor}/{n:03}");
        let think_time = Duration::from_micros(rng.random_range(0..1_000));
        let outcome = handle_command(store, projection, account_id, &command, &command_id, &actor, think_time)?;
        log.conflicts += u64::from(outcome.conflicts);
        log.most_conflicts_in_one_command = log.most_conflicts_in_one_command.max(outcome.conflicts);
        match outcome.result {
            Ok((events, _)) => {
                log.accepted += 1;
                log.committed.extend(events.into_iter().map(|e| (account_id.to_string(), e)));
            }
            Err(Rejection::InsufficientFunds { .. }) => log.insufficient_funds += 1,
            Err(other) => return Err(format!("{command_id}: unexpected rejection {other:?}").into()),
        }
    }
    Ok(log)
}

/// Balances computed from the committed events alone (no replay, no projection).
fn balances_from_events(committed: &[(String, AccountEvent)]) -> BTreeMap<String, Balance> {
    let mut out: BTreeMap<String, Balance> = BTreeMap::new();
    for (account_id, event) in committed {
        let b = out.entry(account_id.clone()).or_default();
        b.version += 1;
        match event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount_cents } => b.balance_cents += amount_cents,
            AccountEvent::Withdrawn { amount_cents } => b.balance_cents -= amount_cents,
        }
    }
    out
}

// ----- the run -----

/// The scripted race: two clerks load the same account; the second commits on a stale version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StaleWriterDemo {
    account_id: String,
    /// The version both clerks loaded.
    loaded_version: u64,
    /// The conflict the second clerk got.
    conflict_expected: u64,
    conflict_actual: u64,
    /// The version the second clerk's retry committed.
    retried_version: u64,
}

/// What the example did and computed.
#[derive(Debug)]
struct Summary {
    demo: StaleWriterDemo,
    commands: u64,
    accepted: u64,
    insufficient_funds: u64,
    conflicts: u64,
    most_conflicts_in_one_command: u32,
    events_committed: u64,
    /// Balances from the committed events, before the restart.
    expected_before_restart: BTreeMap<String, Balance>,
    /// The live projection once caught up.
    projection: BTreeMap<String, Balance>,
    projection_problems: Vec<String>,
    /// Versions the reopened store recovered from the log.
    recovered_versions: BTreeMap<String, u64>,
    /// An append after the restart with an old expected version: (expected, actual).
    stale_append_after_restart: Option<(u64, u64)>,
    /// Balances from the committed events, including the post-restart append.
    expected_final: BTreeMap<String, Balance>,
    /// Accounts rebuilt from a replay of the reopened log.
    rebuilt: BTreeMap<String, Balance>,
    replayed_events: u64,
    verified_appends: u64,
    lowest_balance_cents: i64,
    elapsed: Duration,
}

fn open_db(dir: &Path) -> Result<Arc<Database>, BoxError> {
    Ok(Arc::new(Database::open(dir, Config::with_sync_mode(SyncMode::Group))?))
}

fn close_db(db: Arc<Database>) -> Result<(), BoxError> {
    Arc::try_unwrap(db).map_err(|_| "database still shared")?.close()?;
    Ok(())
}

/// Runs the scenario in `dir` (which must not hold a database yet).
fn run(dir: &Path) -> Result<Summary, Box<dyn Error>> {
    run_inner(dir).map_err(|e| e.to_string().into())
}

fn run_inner(dir: &Path) -> Result<Summary, BoxError> {
    let started = Instant::now();
    let db = open_db(dir)?;
    if db.wal().next_lsn() != 1 {
        return Err(format!("{} already holds a database; give an empty directory", dir.display()).into());
    }
    let cdc = Cdc::new(db.clone());
    let store = EventStore::open(&cdc)?;
    let projection = Arc::new(Projection::default());
    let subscription = cdc.stream_callbacks(
        SubscriptionOptions::from_lsn(0).with_filter(Filter::all().tables([EVENTS]).operations([Operation::Insert])),
        ProjectionHandler(projection.clone()),
    )?;
    let mut committed: Vec<(String, AccountEvent)> = Vec::new();

    // Open the accounts (two events in one append: Opened, Deposited).
    for (id, owner, opening_deposit_cents) in ACCOUNTS {
        let command = Command::Open { owner: owner.to_string(), opening_deposit_cents };
        let outcome =
            handle_command(&store, &projection, id, &command, &format!("setup/{id}"), "setup", Duration::ZERO)?;
        let (events, _) = outcome.result.map_err(|r| format!("opening {id}: {r:?}"))?;
        committed.extend(events.into_iter().map(|e| (id.to_string(), e)));
    }

    // The scripted race.
    let demo_account = ACCOUNTS[0].0;
    if !projection.wait_for_version(demo_account, store.committed_version(demo_account), CATCH_UP_TIMEOUT) {
        return Err("projection did not catch up".into());
    }
    let alice_view = projection.load(demo_account);
    let bob_view = projection.load(demo_account);
    let alice_events =
        alice_view.decide(&Command::Deposit { amount_cents: 2_500 }).map_err(|r| format!("demo deposit: {r:?}"))?;
    store.append(demo_account, alice_view.version, &alice_events, "demo/alice", "clerk-alice")?;
    committed.extend(alice_events.into_iter().map(|e| (demo_account.to_string(), e)));
    let bob_command = Command::Withdraw { amount_cents: 4_000 };
    let bob_events = bob_view.decide(&bob_command).map_err(|r| format!("demo withdrawal: {r:?}"))?;
    let (conflict_expected, conflict_actual) =
        match store.append(demo_account, bob_view.version, &bob_events, "demo/bob", "clerk-bob") {
            Err(AppendError::Conflict { expected_version, actual_version, .. }) => (expected_version, actual_version),
            Ok(_) => return Err("a stale append was accepted".into()),
            Err(e) => return Err(e.into()),
        };
    // Bob reloads and decides again: the standard retry loop.
    let retry =
        handle_command(&store, &projection, demo_account, &bob_command, "demo/bob", "clerk-bob", Duration::ZERO)?;
    let (bob_events, retried_version) = retry.result.map_err(|r| format!("demo retry: {r:?}"))?;
    committed.extend(bob_events.into_iter().map(|e| (demo_account.to_string(), e)));
    let demo = StaleWriterDemo {
        account_id: demo_account.to_string(),
        loaded_version: bob_view.version,
        conflict_expected,
        conflict_actual,
        retried_version,
    };

    // Tellers race on the same accounts.
    let logs = thread::scope(|s| {
        let (store, projection) = (&store, &projection);
        let handles: Vec<_> = (0..TELLERS).map(|t| s.spawn(move || teller(store, projection, t))).collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| BoxError::from("teller panicked"))?)
            .collect::<Result<Vec<_>, _>>()
    })?;
    for log in &logs {
        committed.extend(log.committed.iter().cloned());
    }
    let expected_before_restart = balances_from_events(&committed);
    for (id, b) in &expected_before_restart {
        if !projection.wait_for_version(id, b.version, CATCH_UP_TIMEOUT) {
            return Err(format!("projection did not reach {id} v{}", b.version).into());
        }
    }
    let projection_balances = projection.balances();
    subscription.stop();
    let projection_problems = projection.problems.lock().clone();

    // Restart: the reopened store recovers versions from the log, so stale appends still fail.
    drop(store);
    drop(cdc);
    close_db(db)?;
    let db = open_db(dir)?;
    let cdc = Cdc::new(db.clone());
    let store = EventStore::open(&cdc)?;
    let recovered_versions: BTreeMap<String, u64> =
        ACCOUNTS.iter().map(|(id, _, _)| (id.to_string(), store.committed_version(id))).collect();
    let interest = vec![AccountEvent::Deposited { amount_cents: 100 }];
    let current = store.committed_version(demo_account);
    let stale_append_after_restart =
        match store.append(demo_account, current.saturating_sub(1), &interest, "after-restart/stale", "batch") {
            Err(AppendError::Conflict { expected_version, actual_version, .. }) => {
                Some((expected_version, actual_version))
            }
            Ok(_) => None,
            Err(e) => return Err(e.into()),
        };
    store.append(demo_account, current, &interest, "after-restart/interest", "batch")?;
    committed.extend(interest.into_iter().map(|e| (demo_account.to_string(), e)));

    // Rebuild every account from the log.
    let history = replay(&cdc)?;
    drop(store);
    drop(cdc);
    close_db(db)?;

    Ok(Summary {
        demo,
        commands: (TELLERS * COMMANDS_PER_TELLER) as u64,
        accepted: logs.iter().map(|l| l.accepted).sum(),
        insufficient_funds: logs.iter().map(|l| l.insufficient_funds).sum(),
        conflicts: logs.iter().map(|l| l.conflicts).sum(),
        most_conflicts_in_one_command: logs.iter().map(|l| l.most_conflicts_in_one_command).max().unwrap_or(0),
        events_committed: committed.len() as u64,
        expected_before_restart,
        projection: projection_balances,
        projection_problems,
        recovered_versions,
        stale_append_after_restart,
        expected_final: balances_from_events(&committed),
        rebuilt: history.accounts.iter().map(|(id, a)| (id.clone(), Balance::of(a))).collect(),
        replayed_events: history.events,
        verified_appends: history.verified_appends,
        lowest_balance_cents: history.lowest_balance_cents,
        elapsed: started.elapsed(),
    })
}

fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The account `main` prints.
fn render(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    let d = &s.demo;
    line(format!(
        "stale writer: two clerks loaded {} at v{}; the second got \"expected v{}, actual v{}\", reloaded and \
         committed v{}",
        d.account_id, d.loaded_version, d.conflict_expected, d.conflict_actual, d.retried_version
    ));
    line(format!(
        "{TELLERS} tellers, {} commands: {} accepted, {} refused for insufficient funds; {} conflicts retried \
         (at most {} for one command)",
        s.commands, s.accepted, s.insufficient_funds, s.conflicts, s.most_conflicts_in_one_command
    ));
    line(format!("{:<12}{:>14}{:>14}{:>8}", "account", "committed", "projection", "version"));
    for (id, expected) in &s.expected_before_restart {
        let live = s.projection.get(id).copied().unwrap_or_default();
        let mark = if live == *expected { "" } else { "  <-- differs" };
        line(format!(
            "{id:<12}{:>14}{:>14}{:>8}{mark}",
            dollars(expected.balance_cents),
            dollars(live.balance_cents),
            live.version
        ));
    }
    line(format!(
        "restart: versions recovered from the log ({}); a stale append {}",
        s.recovered_versions.iter().map(|(id, v)| format!("{id} v{v}")).collect::<Vec<_>>().join(", "),
        match s.stale_append_after_restart {
            Some((e, a)) => format!("was refused (expected v{e}, actual v{a})"),
            None => "was ACCEPTED".to_string(),
        }
    ));
    if !s.projection_problems.is_empty() {
        line(format!("projection problems: {}", s.projection_problems.join("; ")));
    }
    line(format!(
        "replay: {} events ({} committed), {} appends verified against their heads, lowest balance ever {}; rebuilt balances {} \
         the committed events",
        s.replayed_events,
        s.events_committed,
        s.verified_appends,
        dollars(s.lowest_balance_cents),
        if s.rebuilt == s.expected_final { "match" } else { "DO NOT match" }
    ));
    line(format!("took {:.2} s", s.elapsed.as_secs_f64()));
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
    if summary.rebuilt != summary.expected_final || summary.projection != summary.expected_before_restart {
        return Err("the read side diverged from the committed events".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_commands_keep_every_balance_right() {
        let dir = tempfile::tempdir().unwrap();
        let s = run(dir.path()).unwrap();

        // The scripted stale writer was caught and its retry landed right after the winner.
        let d = &s.demo;
        assert_eq!(d.conflict_expected, d.loaded_version);
        assert_eq!(d.conflict_actual, d.loaded_version + 1);
        assert_eq!(d.retried_version, d.loaded_version + 2);

        // Every command was either accepted or refused by the rules; nothing was lost.
        assert_eq!(s.accepted + s.insufficient_funds, s.commands);
        let opening_events = ACCOUNTS.iter().map(|(_, _, deposit)| if *deposit > 0 { 2 } else { 1 }).sum::<u64>();
        // Tellers' commands produce one event each; the demo two; the post-restart interest one.
        assert_eq!(s.events_committed, opening_events + 2 + s.accepted + 1);

        // The live projection, the recovered versions and the rebuilt accounts agree with the
        // events the tellers committed.
        assert!(s.projection_problems.is_empty(), "{:?}", s.projection_problems);
        assert_eq!(s.projection, s.expected_before_restart);
        let versions: BTreeMap<String, u64> =
            s.expected_before_restart.iter().map(|(id, b)| (id.clone(), b.version)).collect();
        assert_eq!(s.recovered_versions, versions);
        let demo_version = versions[ACCOUNTS[0].0];
        assert_eq!(s.stale_append_after_restart, Some((demo_version - 1, demo_version)));
        assert_eq!(s.rebuilt, s.expected_final);
        assert_eq!(s.replayed_events, s.events_committed);
        // One verified head change per append: opens, two demo appends, accepted commands, interest.
        assert_eq!(s.verified_appends, ACCOUNTS.len() as u64 + 2 + s.accepted + 1);
        // No balance ever went negative (the replay refuses overdrafts).
        assert!(s.lowest_balance_cents >= 0);
        assert!(s.rebuilt.values().all(|b| b.balance_cents >= 0));
    }

    #[test]
    fn decide_enforces_the_rules_and_apply_rejects_broken_histories() {
        let mut a = Account::default();
        assert_eq!(a.decide(&Command::Deposit { amount_cents: 5 }), Err(Rejection::NotOpen));
        let ev = |version, event| StoredEvent {
            event_id: format!("t#{version}"),
            account_id: "a".into(),
            version,
            command_id: "t".into(),
            recorded_at_ms: 0,
            event,
        };
        a.apply(&ev(1, AccountEvent::Opened { owner: "o".into() })).unwrap();
        a.apply(&ev(2, AccountEvent::Deposited { amount_cents: 10 })).unwrap();
        assert_eq!(
            a.decide(&Command::Withdraw { amount_cents: 11 }),
            Err(Rejection::InsufficientFunds { balance_cents: 10, requested_cents: 11 })
        );
        assert_eq!(a.decide(&Command::Withdraw { amount_cents: 0 }), Err(Rejection::NonPositiveAmount));
        assert!(a.apply(&ev(4, AccountEvent::Deposited { amount_cents: 1 })).is_err(), "gap");
        assert!(a.apply(&ev(3, AccountEvent::Withdrawn { amount_cents: 11 })).is_err(), "overdraft");
        a.apply(&ev(3, AccountEvent::Withdrawn { amount_cents: 10 })).unwrap();
        assert_eq!(Balance::of(&a), Balance { balance_cents: 0, version: 3 });
        // Stored rows round-trip through JSON with the event's tag flattened in.
        let row = json(&ev(5, AccountEvent::Withdrawn { amount_cents: 7 }));
        let text = String::from_utf8(row.clone()).unwrap();
        assert!(text.contains(r#""type":"withdrawn""#) && text.contains(r#""amount_cents":7"#), "{text}");
        assert_eq!(serde_json::from_slice::<StoredEvent>(&row).unwrap().version, 5);
    }
}
