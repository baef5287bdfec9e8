//! A live sales dashboard fed by change data capture (the DoSQL guide's "Real-time Dashboard").
//!
//! A few writer threads run an order workload against Walden: orders are placed, paid (order
//! update and payment insert in one transaction), shipped, cancelled, refunded (order and payment
//! updated together) and purged. A subscriber tails the `orders` and `payments` tables with
//! [`Cdc::subscribe_batched`] and maintains the dashboard incrementally from the before and after
//! images of each change — it never reads the writers' state. Each batch is one dashboard refresh
//! (what a server would push to its WebSocket clients), so a burst of commits costs one refresh,
//! not one per row.
//!
//! At the end the live figures are compared with figures computed directly from what the writers
//! wrote.
//!
//! ```text
//! cargo run -p walden-cdc --example dashboard_metrics [DIR]
//! ```

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use walden_cdc::{BatchOptions, Cdc, ChangeEvent, Event, Filter, Lsn, Operation, SubscriptionOptions};
use walden_engine::{Config, Database, SyncMode};

/// Writer threads.
const WRITERS: usize = 3;
/// Orders each writer places.
const ORDERS_PER_WRITER: usize = 50;
/// Width of the "orders placed recently" window, in milliseconds of the orders' `placed_at_ms`.
const ROLLING_WINDOW_MS: u64 = 100;
/// How many of the newest orders the dashboard lists.
const RECENT_ORDERS: usize = 5;
/// Dashboard refresh policy: at most this many changes per refresh ...
const MAX_BATCH_SIZE: usize = 64;
/// ... and a change is on screen at most this long after it was read.
const MAX_BATCH_AGE: Duration = Duration::from_millis(20);

type BoxError = Box<dyn Error + Send + Sync>;

// ----- the rows -----

/// Lifecycle of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Cancelled,
}

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PaymentMethod {
    Card,
    Paypal,
    BankTransfer,
}

/// State of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PaymentStatus {
    Captured,
    Refunded,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LineItem {
    sku: String,
    quantity: u32,
    unit_price_cents: i64,
}

/// A row of the `orders` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    id: String,
    customer_id: String,
    items: Vec<LineItem>,
    total_cents: i64,
    status: OrderStatus,
    placed_at_ms: u64,
}

/// A row of the `payments` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Payment {
    id: String,
    order_id: String,
    method: PaymentMethod,
    amount_cents: i64,
    status: PaymentStatus,
}

// ----- the dashboard -----

/// Count and amount of captured payments of one method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MethodTotals {
    count: i64,
    amount_cents: i64,
}

/// What the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DashboardMetrics {
    /// Orders currently in the table, per status (statuses with no order are absent).
    orders_by_status: BTreeMap<OrderStatus, i64>,
    /// Captured payments, in cents (refunded payments are not revenue).
    revenue_cents: i64,
    /// Refunded payments, in cents.
    refunded_cents: i64,
    /// Captured payments per method.
    payments_by_method: BTreeMap<PaymentMethod, MethodTotals>,
    /// Orders placed within `ROLLING_WINDOW_MS` of the most recently placed order.
    orders_in_window: i64,
    /// Ids of the newest orders still in the table (by commit order), newest first.
    recent_orders: Vec<String>,
}

impl DashboardMetrics {
    /// Orders currently in the table.
    fn live_orders(&self) -> i64 {
        self.orders_by_status.values().sum()
    }
}

/// Adds `delta` to `map[key]`, dropping the entry when it reaches zero (so two dashboards with
/// the same figures compare equal however they got there).
fn bump<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, delta: i64) {
    match map.entry(key) {
        Entry::Occupied(mut e) => {
            *e.get_mut() += delta;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Entry::Vacant(e) => {
            if delta != 0 {
                e.insert(delta);
            }
        }
    }
}

/// The dashboard maintained from the change stream alone.
#[derive(Debug, Default)]
struct LiveDashboard {
    metrics: DashboardMetrics,
    /// Orders still in the table by the commit LSN that placed them (for "recent orders").
    placed_by_lsn: BTreeMap<Lsn, String>,
    placed_lsn_of: HashMap<String, Lsn>,
    /// Placement times inside the rolling window (`placed_at_ms` → orders).
    window: BTreeMap<u64, i64>,
    latest_placed_ms: u64,
}

fn decode<T: serde::de::DeserializeOwned>(event: &ChangeEvent, image: Option<&bytes::Bytes>) -> Result<T, BoxError> {
    let bytes = image.ok_or_else(|| format!("{} change at LSN {} lacks an image", event.op.as_str(), event.lsn))?;
    Ok(serde_json::from_slice(bytes).map_err(|e| format!("bad {} row at LSN {}: {e}", event.table, event.lsn))?)
}

impl LiveDashboard {
    fn apply(&mut self, event: &ChangeEvent) -> Result<(), BoxError> {
        match event.table.as_str() {
            "orders" => self.apply_order(event),
            "payments" => self.apply_payment(event),
            other => Err(format!("unexpected table {other}").into()),
        }
    }

    fn apply_order(&mut self, event: &ChangeEvent) -> Result<(), BoxError> {
        let m = &mut self.metrics;
        match event.op {
            Operation::Insert => {
                let order: Order = decode(event, event.data.as_ref())?;
                bump(&mut m.orders_by_status, order.status, 1);
                self.placed_by_lsn.insert(event.txn.commit_lsn, order.id.clone());
                self.placed_lsn_of.insert(order.id, event.txn.commit_lsn);
                self.record_placement(order.placed_at_ms);
            }
            Operation::Update => {
                // The before image says what to take away: no lookup of the old row needed.
                let before: Order = decode(event, event.old_data.as_ref())?;
                let after: Order = decode(event, event.data.as_ref())?;
                bump(&mut m.orders_by_status, before.status, -1);
                bump(&mut m.orders_by_status, after.status, 1);
            }
            Operation::Delete => {
                let before: Order = decode(event, event.old_data.as_ref())?;
                bump(&mut m.orders_by_status, before.status, -1);
                if let Some(lsn) = self.placed_lsn_of.remove(&before.id) {
                    self.placed_by_lsn.remove(&lsn);
                }
            }
        }
        self.metrics.recent_orders = self.placed_by_lsn.values().rev().take(RECENT_ORDERS).cloned().collect();
        Ok(())
    }

    /// Keeps `window` to the placements in (latest - ROLLING_WINDOW_MS, latest]. Concurrent
    /// writers commit slightly out of `placed_at_ms` order; a late placement that is already
    /// outside the window is simply not counted, which is what a recount would do too.
    fn record_placement(&mut self, placed_at_ms: u64) {
        self.latest_placed_ms = self.latest_placed_ms.max(placed_at_ms);
        let cutoff = self.latest_placed_ms.saturating_sub(ROLLING_WINDOW_MS);
        if placed_at_ms > cutoff {
            *self.window.entry(placed_at_ms).or_insert(0) += 1;
        }
        self.window = self.window.split_off(&(cutoff + 1));
        self.metrics.orders_in_window = self.window.values().sum();
    }

    fn apply_payment(&mut self, event: &ChangeEvent) -> Result<(), BoxError> {
        // A payment contributes to the figures according to its status: take away what the
        // before image contributed, add what the after image contributes.
        if let Some(before) = event.old_data.as_ref() {
            let before: Payment = decode(event, Some(before))?;
            self.payment_contribution(&before, -1);
        }
        if let Some(after) = event.data.as_ref() {
            let after: Payment = decode(event, Some(after))?;
            self.payment_contribution(&after, 1);
        }
        Ok(())
    }

    fn payment_contribution(&mut self, payment: &Payment, sign: i64) {
        let m = &mut self.metrics;
        match payment.status {
            PaymentStatus::Captured => {
                m.revenue_cents += sign * payment.amount_cents;
                let totals = m.payments_by_method.entry(payment.method).or_default();
                totals.count += sign;
                totals.amount_cents += sign * payment.amount_cents;
                if totals.count == 0 && totals.amount_cents == 0 {
                    m.payments_by_method.remove(&payment.method);
                }
            }
            PaymentStatus::Refunded => m.refunded_cents += sign * payment.amount_cents,
        }
    }
}

// ----- the workload -----

/// What one writer wrote: its final rows, and counters.
#[derive(Debug, Default)]
struct WriterLog {
    /// Orders still in the table, with the commit LSN that placed them.
    orders: BTreeMap<String, (Order, Lsn)>,
    payments: BTreeMap<String, Payment>,
    /// `placed_at_ms` of every order placed (purged ones included).
    placements_ms: Vec<u64>,
    orders_placed: u64,
    orders_purged: u64,
    transactions: u64,
    changes: u64,
    last_commit_lsn: Lsn,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn json<T: Serialize>(row: &T) -> Vec<u8> {
    serde_json::to_vec(row).expect("rows serialise")
}

const CATALOGUE: [(&str, i64); 5] =
    [("sku-espresso", 1_250), ("sku-grinder", 8_900), ("sku-filter", 450), ("sku-kettle", 3_900), ("sku-mug", 1_100)];
const METHODS: [PaymentMethod; 3] = [PaymentMethod::Card, PaymentMethod::Paypal, PaymentMethod::BankTransfer];

/// One writer: places its orders and drives each through its lifecycle, interleaving the orders
/// so that their transactions mix with the other writers'. Keeps the rows it owns (the engine is
/// a log: the host keeps table state), which gives the before images of its updates.
fn writer(db: &Database, writer_id: usize) -> Result<WriterLog, BoxError> {
    let mut rng = StdRng::seed_from_u64(0xda5b_0a2d + writer_id as u64);
    let mut log = WriterLog::default();
    let mut in_flight: Vec<String> = Vec::new();
    while log.orders_placed < ORDERS_PER_WRITER as u64 || !in_flight.is_empty() {
        let mut txn = db.begin();
        txn.set_actor(format!("checkout-{writer_id}"));
        let place = log.orders_placed < ORDERS_PER_WRITER as u64 && (in_flight.is_empty() || rng.random_bool(0.45));
        if place {
            let id = format!("o-{writer_id}-{:03}", log.orders_placed);
            let items: Vec<LineItem> = (0..rng.random_range(1..=3))
                .map(|_| {
                    let (sku, unit_price_cents) = CATALOGUE[rng.random_range(0..CATALOGUE.len())];
                    LineItem { sku: sku.to_string(), quantity: rng.random_range(1..=4), unit_price_cents }
                })
                .collect();
            let total_cents = items.iter().map(|i| i64::from(i.quantity) * i.unit_price_cents).sum();
            let order = Order {
                id: id.clone(),
                customer_id: format!("c-{}", rng.random_range(100..140)),
                items,
                total_cents,
                status: OrderStatus::Pending,
                placed_at_ms: now_ms(),
            };
            txn.insert("orders", id.as_bytes(), &json(&order))?;
            let lsn = txn.commit()?;
            log.orders.insert(id.clone(), (order.clone(), lsn));
            log.placements_ms.push(order.placed_at_ms);
            log.orders_placed += 1;
            log.transactions += 1;
            log.changes += 1;
            log.last_commit_lsn = lsn;
            in_flight.push(id);
        } else {
            let pick = rng.random_range(0..in_flight.len());
            let id = in_flight[pick].clone();
            let (before, placed_lsn) = log.orders[&id].clone();
            let payment_id = format!("p-{id}");
            let mut after = before.clone();
            let mut changes = 1;
            let mut done = true;
            let mut purged = false;
            let mut payment_after = None;
            match before.status {
                OrderStatus::Pending if rng.random_bool(0.75) => {
                    // Payment captured: order and payment change together or not at all.
                    after.status = OrderStatus::Paid;
                    let payment = Payment {
                        id: payment_id.clone(),
                        order_id: id.clone(),
                        method: METHODS[rng.random_range(0..METHODS.len())],
                        amount_cents: before.total_cents,
                        status: PaymentStatus::Captured,
                    };
                    txn.insert("payments", payment_id.as_bytes(), &json(&payment))?;
                    payment_after = Some(payment);
                    changes += 1;
                    done = false;
                }
                OrderStatus::Pending => {
                    // Cancelled before payment; stays in flight: it may be purged later.
                    after.status = OrderStatus::Cancelled;
                    done = false;
                }
                OrderStatus::Paid if rng.random_bool(0.85) => after.status = OrderStatus::Shipped,
                OrderStatus::Paid => {
                    // Refund: the order is cancelled and its payment refunded, atomically.
                    after.status = OrderStatus::Cancelled;
                    let payment_before = log.payments[&payment_id].clone();
                    let payment = Payment { status: PaymentStatus::Refunded, ..payment_before.clone() };
                    txn.update("payments", payment_id.as_bytes(), &json(&payment_before), &json(&payment))?;
                    payment_after = Some(payment);
                    changes += 1;
                    done = false;
                }
                OrderStatus::Cancelled => purged = rng.random_bool(0.5),
                OrderStatus::Shipped => {}
            }
            if purged {
                txn.delete("orders", id.as_bytes(), &json(&before))?;
            } else if after != before {
                txn.update("orders", id.as_bytes(), &json(&before), &json(&after))?;
            } else {
                changes = 0;
            }
            if changes > 0 {
                log.last_commit_lsn = txn.commit()?;
                log.transactions += 1;
                log.changes += changes;
            }
            if purged {
                log.orders.remove(&id);
                log.orders_purged += 1;
            } else {
                log.orders.insert(id.clone(), (after, placed_lsn));
            }
            if let Some(p) = payment_after {
                log.payments.insert(payment_id, p);
            }
            if done {
                in_flight.swap_remove(pick);
            }
        }
        // Customers do not all click at once.
        thread::sleep(Duration::from_micros(rng.random_range(0..1_500)));
    }
    Ok(log)
}

/// The dashboard figures computed directly from the writers' final rows (no CDC involved).
fn metrics_from_workload(logs: &[WriterLog]) -> DashboardMetrics {
    let mut m = DashboardMetrics::default();
    let mut placed: Vec<(Lsn, &str)> = Vec::new();
    for log in logs {
        for (order, placed_lsn) in log.orders.values() {
            bump(&mut m.orders_by_status, order.status, 1);
            placed.push((*placed_lsn, &order.id));
        }
        for p in log.payments.values() {
            match p.status {
                PaymentStatus::Captured => {
                    m.revenue_cents += p.amount_cents;
                    let t = m.payments_by_method.entry(p.method).or_default();
                    t.count += 1;
                    t.amount_cents += p.amount_cents;
                }
                PaymentStatus::Refunded => m.refunded_cents += p.amount_cents,
            }
        }
    }
    placed.sort_unstable();
    m.recent_orders = placed.iter().rev().take(RECENT_ORDERS).map(|(_, id)| id.to_string()).collect();
    let latest = logs.iter().flat_map(|l| &l.placements_ms).copied().max().unwrap_or(0);
    let cutoff = latest.saturating_sub(ROLLING_WINDOW_MS);
    m.orders_in_window = logs.iter().flat_map(|l| &l.placements_ms).filter(|&&t| t > cutoff).count() as i64;
    m
}

// ----- the run -----

/// A sample of the live dashboard taken while the writers were running.
#[derive(Debug, Clone)]
struct Sample {
    elapsed_ms: u64,
    live_orders: i64,
    revenue_cents: i64,
    lag_lsns: u64,
}

/// What the example did and computed.
#[derive(Debug)]
struct Summary {
    /// The dashboard maintained by the subscriber.
    live: DashboardMetrics,
    /// The same figures computed from the writers' rows.
    expected: DashboardMetrics,
    orders_placed: u64,
    orders_purged: u64,
    transactions: u64,
    changes_written: u64,
    /// Change events the subscriber applied.
    events_applied: u64,
    /// Batches (dashboard refreshes) and the largest one.
    refreshes: u64,
    largest_batch: usize,
    /// Whether batch LSN ranges were strictly increasing and non-overlapping.
    batches_in_order: bool,
    samples: Vec<Sample>,
    elapsed: Duration,
}

/// Live state shared between the subscriber and the sampler.
#[derive(Default)]
struct Shared {
    metrics: Mutex<DashboardMetrics>,
    position: AtomicU64,
}

#[derive(Debug, Default)]
struct SubscriberReport {
    live: DashboardMetrics,
    events_applied: u64,
    refreshes: u64,
    largest_batch: usize,
    batches_in_order: bool,
}

/// The subscriber: one refresh per batch, until it has read up to `stop_at` (the last commit LSN
/// of the workload, set once the writers are done; `u64::MAX` until then).
fn subscriber(cdc: &Cdc, shared: &Shared, stop_at: &AtomicU64) -> Result<SubscriberReport, BoxError> {
    let options = SubscriptionOptions::from_lsn(0).with_filter(Filter::all().tables(["orders", "payments"]));
    let mut stream =
        cdc.subscribe_batched(options, BatchOptions { max_batch_size: MAX_BATCH_SIZE, max_batch_age: MAX_BATCH_AGE })?;
    let mut dashboard = LiveDashboard::default();
    let mut report = SubscriberReport { batches_in_order: true, ..SubscriberReport::default() };
    let mut previous_last_lsn = 0;
    loop {
        if let Some(batch) = stream.next_batch(Duration::from_millis(20)) {
            let batch = batch?;
            report.batches_in_order &= batch.first_lsn > previous_last_lsn && batch.last_lsn >= batch.first_lsn;
            previous_last_lsn = batch.last_lsn;
            report.largest_batch = report.largest_batch.max(batch.events.len());
            for event in &batch.events {
                if let Event::Change(change) = event {
                    dashboard.apply(change)?;
                    report.events_applied += 1;
                }
            }
            report.refreshes += 1;
            // "Broadcast": publish the refreshed dashboard.
            *shared.metrics.lock().map_err(|_| "dashboard lock poisoned")? = dashboard.metrics.clone();
        }
        let position = stream.inner().position();
        shared.position.store(position, Ordering::Release);
        let target = stop_at.load(Ordering::Acquire);
        if position >= target {
            break;
        }
    }
    report.live = dashboard.metrics;
    Ok(report)
}

/// Runs the workload and the live dashboard in `dir` (which must not hold a database yet).
fn run(dir: &Path) -> Result<Summary, Box<dyn Error>> {
    let started = Instant::now();
    let db = Arc::new(Database::open(dir, Config::with_sync_mode(SyncMode::Group))?);
    if db.wal().next_lsn() != 1 {
        return Err(format!("{} already holds a database; give an empty directory", dir.display()).into());
    }
    let cdc = Cdc::new(db.clone());
    let shared = Shared::default();
    let stop_at = AtomicU64::new(u64::MAX);
    let writers_done = AtomicBool::new(false);

    let (logs, report, samples) = thread::scope(|s| {
        let sub = s.spawn(|| subscriber(&cdc, &shared, &stop_at));
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            while !writers_done.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(120));
                let m = shared.metrics.lock().map(|m| m.clone()).unwrap_or_default();
                samples.push(Sample {
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    live_orders: m.live_orders(),
                    revenue_cents: m.revenue_cents,
                    lag_lsns: db.wal().visible_lsn().saturating_sub(shared.position.load(Ordering::Acquire)),
                });
            }
            samples
        });
        let db = &db;
        let handles: Vec<_> = (0..WRITERS).map(|w| s.spawn(move || writer(db, w))).collect();
        let logs: Result<Vec<WriterLog>, BoxError> =
            handles.into_iter().map(|h| h.join().map_err(|_| BoxError::from("writer panicked"))?).collect();
        writers_done.store(true, Ordering::Release);
        // Tell the subscriber where the workload ended (0 if it failed, so that it stops at once).
        let end = logs.as_ref().map(|l| l.iter().map(|l| l.last_commit_lsn).max().unwrap_or(0)).unwrap_or(0);
        stop_at.store(end, Ordering::Release);
        let report = sub.join().map_err(|_| BoxError::from("subscriber panicked"));
        let samples = sampler.join().unwrap_or_default();
        (logs, report, samples)
    });
    let logs = logs.map_err(|e| e.to_string())?;
    let report = report.and_then(|r| r).map_err(|e| e.to_string())?;
    drop(cdc);
    Arc::try_unwrap(db).map_err(|_| "database still shared")?.close()?;

    Ok(Summary {
        expected: metrics_from_workload(&logs),
        live: report.live,
        orders_placed: logs.iter().map(|l| l.orders_placed).sum(),
        orders_purged: logs.iter().map(|l| l.orders_purged).sum(),
        transactions: logs.iter().map(|l| l.transactions).sum(),
        changes_written: logs.iter().map(|l| l.changes).sum(),
        events_applied: report.events_applied,
        refreshes: report.refreshes,
        largest_batch: report.largest_batch,
        batches_in_order: report.batches_in_order,
        samples,
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
    line(format!(
        "{WRITERS} writers placed {} orders ({} purged later): {} changes in {} transactions",
        s.orders_placed, s.orders_purged, s.changes_written, s.transactions
    ));
    for sample in &s.samples {
        line(format!(
            "  t={:>4} ms  dashboard: {:>3} orders, revenue {:>10}, subscriber {} LSNs behind",
            sample.elapsed_ms,
            sample.live_orders,
            dollars(sample.revenue_cents),
            sample.lag_lsns
        ));
    }
    line(format!(
        "subscriber applied {} changes in {} refreshes (largest batch {}, limit {MAX_BATCH_SIZE} events / {} ms; {})",
        s.events_applied,
        s.refreshes,
        s.largest_batch,
        MAX_BATCH_AGE.as_millis(),
        if s.batches_in_order { "batches in LSN order" } else { "BATCHES OUT OF ORDER" }
    ));
    line(format!("{:<28}{:>20}{:>20}", "figure", "live (CDC)", "workload"));
    let mut row = |name: String, live: String, expected: String| {
        let mark = if live == expected { "" } else { "  <-- differs" };
        line(format!("{name:<28}{live:>20}{expected:>20}{mark}"));
    };
    let statuses = [OrderStatus::Pending, OrderStatus::Paid, OrderStatus::Shipped, OrderStatus::Cancelled];
    for status in statuses {
        let get = |m: &DashboardMetrics| m.orders_by_status.get(&status).copied().unwrap_or(0).to_string();
        row(format!("orders {status:?}"), get(&s.live), get(&s.expected));
    }
    row("revenue".into(), dollars(s.live.revenue_cents), dollars(s.expected.revenue_cents));
    row("refunded".into(), dollars(s.live.refunded_cents), dollars(s.expected.refunded_cents));
    for method in METHODS {
        let get = |m: &DashboardMetrics| {
            let t = m.payments_by_method.get(&method).copied().unwrap_or_default();
            format!("{} / {}", t.count, dollars(t.amount_cents))
        };
        row(format!("payments {method:?}"), get(&s.live), get(&s.expected));
    }
    row(
        format!("orders in last {ROLLING_WINDOW_MS} ms"),
        s.live.orders_in_window.to_string(),
        s.expected.orders_in_window.to_string(),
    );
    line(format!("recent orders (live):     {}", s.live.recent_orders.join(", ")));
    line(format!("recent orders (workload): {}", s.expected.recent_orders.join(", ")));
    line(format!(
        "live dashboard {} the workload; took {:.2} s",
        if s.live == s.expected { "matches" } else { "DOES NOT match" },
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
    if summary.live != summary.expected {
        return Err("the live dashboard diverged from the workload".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_dashboard_matches_the_workload() {
        let dir = tempfile::tempdir().unwrap();
        let s = run(dir.path()).unwrap();

        // Every change written reached the dashboard, in order, in bounded batches.
        assert_eq!(s.events_applied, s.changes_written);
        assert!(s.batches_in_order);
        assert!(s.largest_batch >= 1 && s.largest_batch <= MAX_BATCH_SIZE);
        assert!(s.refreshes >= s.events_applied.div_ceil(MAX_BATCH_SIZE as u64));

        // The live figures are the ones computed from the writers' rows.
        assert_eq!(s.live, s.expected);

        // And those figures are consistent with the writers' own counters.
        assert_eq!(s.orders_placed, (WRITERS * ORDERS_PER_WRITER) as u64);
        assert_eq!(s.expected.live_orders(), (s.orders_placed - s.orders_purged) as i64);
        let by_method: i64 = s.expected.payments_by_method.values().map(|t| t.amount_cents).sum();
        assert_eq!(by_method, s.expected.revenue_cents);
        assert!(s.expected.revenue_cents > 0 && s.expected.refunded_cents > 0);
        assert_eq!(s.expected.recent_orders.len(), RECENT_ORDERS);
        assert!(s.expected.orders_in_window >= 1);
        // Every order ends shipped or cancelled.
        assert_eq!(
            s.expected.orders_by_status.keys().copied().collect::<Vec<_>>(),
            [OrderStatus::Shipped, OrderStatus::Cancelled]
        );

        let text = render(&s);
        assert!(text.contains("live dashboard matches the workload"), "{text}");
    }

    #[test]
    fn rolling_window_counts_only_recent_placements() {
        let mut d = LiveDashboard::default();
        for t in [1_000, 1_050, 1_090, 1_120, 1_030, 1_200] {
            d.record_placement(t);
        }
        // Window (1100, 1200]: 1120 and 1200; the late 1030 was already outside it.
        assert_eq!(d.metrics.orders_in_window, 2);
        let log = WriterLog { placements_ms: vec![1_000, 1_050, 1_090, 1_120, 1_030, 1_200], ..WriterLog::default() };
        assert_eq!(metrics_from_workload(&[log]).orders_in_window, 2);
    }
}
