//! The shop workload of one writer thread: users sign up, place orders, pay, upgrade and
//! cancel; about 7% of checkouts are declined and rolled back; writer 0 adds a column halfway.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicBool, Ordering};

use walden_engine::Database;
use walden_engine::record::Column;

/// The tables, created before the writers start (every column `NOT NULL`).
const TABLES: &[(&str, &[(&str, &str)])] = &[
    ("users", &[("id", "TEXT"), ("name", "TEXT"), ("email", "TEXT"), ("plan", "TEXT"), ("orders", "INTEGER")]),
    ("orders", &[("id", "TEXT"), ("user", "TEXT"), ("total_cents", "BIGINT"), ("status", "TEXT")]),
    ("payments", &[("id", "TEXT"), ("order", "TEXT"), ("amount_cents", "BIGINT"), ("method", "TEXT")]),
];

/// Schema changes [`create_tables`] commits.
pub const CREATED_TABLES: u64 = TABLES.len() as u64;

/// Creates the shop's tables in one transaction, as `migrations`.
pub fn create_tables(db: &Database) -> walden_engine::Result<()> {
    let mut setup = db.begin();
    setup.set_namespace("shop").set_actor("migrations");
    for (table, columns) in TABLES {
        let columns: Vec<Column> =
            columns.iter().map(|&(name, data_type)| Column::new(name, data_type, false)).collect();
        setup.create_table(table, 1, &columns)?;
    }
    setup.commit()?;
    Ok(())
}

/// A tiny deterministic generator (splitmix64), so every run does the same kind of work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct User {
    key: String,
    row: String,
    orders: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OrderStatus {
    Placed,
    Paid,
}

struct Order {
    key: String,
    user: String,
    total_cents: u64,
    status: OrderStatus,
}

fn user_row(key: &str, plan: &str, orders: u32, tier: bool) -> String {
    let n = key.trim_start_matches("u-");
    let tier = if tier { r#","tier":"bronze""# } else { "" };
    format!(
        r#"{{"id":"{key}","name":"User {n}","email":"user{n}@example.com","plan":"{plan}","orders":{orders}{tier}}}"#
    )
}

fn order_row(o: &Order) -> String {
    let status = match o.status {
        OrderStatus::Placed => "placed",
        OrderStatus::Paid => "paid",
    };
    format!(r#"{{"id":"{}","user":"{}","total_cents":{},"status":"{status}"}}"#, o.key, o.user, o.total_cents)
}

/// What one writer thread did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    /// Transactions committed.
    pub committed: u64,
    /// Transactions rolled back.
    pub rolled_back: u64,
    /// Rows inserted.
    pub inserts: u64,
    /// Rows updated.
    pub updates: u64,
    /// Rows deleted.
    pub deletes: u64,
    /// Schema changes committed.
    pub schema_changes: u64,
}

impl AddAssign for WriterStats {
    fn add_assign(&mut self, w: WriterStats) {
        self.committed += w.committed;
        self.rolled_back += w.rolled_back;
        self.inserts += w.inserts;
        self.updates += w.updates;
        self.deletes += w.deletes;
        self.schema_changes += w.schema_changes;
    }
}

/// The workload of one thread.
pub struct Writer<'a> {
    db: &'a Database,
    thread: u64,
    rng: Rng,
    users: Vec<User>,
    orders: Vec<Order>,
    next_id: u64,
    tier_added: &'a AtomicBool,
    stats: WriterStats,
}

impl<'a> Writer<'a> {
    /// Writer number `thread`, with its own deterministic random sequence; `tier_added` is set
    /// (by writer 0) once `users` has its `tier` column.
    pub fn new(db: &'a Database, thread: u64, tier_added: &'a AtomicBool) -> Writer<'a> {
        Writer {
            db,
            thread,
            rng: Rng(0x5EED ^ thread.wrapping_mul(0x1000_0001)),
            users: Vec::new(),
            orders: Vec::new(),
            next_id: 0,
            tier_added,
            stats: WriterStats::default(),
        }
    }

    /// Runs `transactions` steps (the schema change at step `schema_change_at`), calling
    /// `on_step` after each.
    pub fn run(
        mut self,
        transactions: u64,
        schema_change_at: Option<u64>,
        on_step: impl Fn(),
    ) -> walden_engine::Result<WriterStats> {
        for i in 0..transactions {
            self.step(i, schema_change_at)?;
            on_step();
        }
        Ok(self.stats)
    }

    fn key(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}-{}", self.thread, self.next_id)
    }

    fn signup(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let key = self.key("u");
        let row = user_row(&key, "free", 0, self.tier_added.load(Ordering::Relaxed));
        txn.insert("users", key.as_bytes(), row.as_bytes())?;
        self.stats.inserts += 1;
        self.users.push(User { key, row, orders: 0 });
        Ok(())
    }

    fn place_order(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        if self.users.is_empty() {
            return self.signup(txn);
        }
        let u = self.rng.below(self.users.len() as u64) as usize;
        let key = self.key("o");
        let order = Order {
            key,
            user: self.users[u].key.clone(),
            total_cents: 500 + self.rng.below(20_000),
            status: OrderStatus::Placed,
        };
        txn.insert("orders", order.key.as_bytes(), order_row(&order).as_bytes())?;
        let user = &mut self.users[u];
        user.orders += 1;
        let plan = if user.row.contains(r#""plan":"pro""#) { "pro" } else { "free" };
        let new_row = user_row(&user.key, plan, user.orders, user.row.contains("tier"));
        txn.update("users", user.key.as_bytes(), user.row.as_bytes(), new_row.as_bytes())?;
        user.row = new_row;
        self.stats.inserts += 1;
        self.stats.updates += 1;
        self.orders.push(order);
        Ok(())
    }

    fn placed_order(&mut self) -> Option<usize> {
        let placed: Vec<usize> =
            (0..self.orders.len()).filter(|&i| self.orders[i].status == OrderStatus::Placed).collect();
        (!placed.is_empty()).then(|| placed[self.rng.below(placed.len() as u64) as usize])
    }

    fn pay(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let Some(i) = self.placed_order() else { return self.place_order(txn) };
        let key = self.key("p");
        let order = &self.orders[i];
        let payment =
            format!(r#"{{"id":"{key}","order":"{}","amount_cents":{},"method":"card"}}"#, order.key, order.total_cents);
        txn.insert("payments", key.as_bytes(), payment.as_bytes())?;
        let before = order_row(order);
        self.orders[i].status = OrderStatus::Paid;
        let after = order_row(&self.orders[i]);
        txn.update("orders", self.orders[i].key.as_bytes(), before.as_bytes(), after.as_bytes())?;
        self.stats.inserts += 1;
        self.stats.updates += 1;
        Ok(())
    }

    fn upgrade(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        if self.users.is_empty() {
            return self.signup(txn);
        }
        let u = self.rng.below(self.users.len() as u64) as usize;
        let user = &mut self.users[u];
        let new_row = user_row(&user.key, "pro", user.orders, user.row.contains("tier"));
        txn.update("users", user.key.as_bytes(), user.row.as_bytes(), new_row.as_bytes())?;
        user.row = new_row;
        self.stats.updates += 1;
        Ok(())
    }

    fn cancel(&mut self, txn: &mut walden_engine::Transaction<'_>) -> walden_engine::Result<()> {
        let Some(i) = self.placed_order() else { return self.place_order(txn) };
        let order = self.orders.swap_remove(i);
        txn.delete("orders", order.key.as_bytes(), order_row(&order).as_bytes())?;
        self.stats.deletes += 1;
        Ok(())
    }

    /// One transaction: commits, or (about 7%) rolls back a checkout whose card was declined.
    fn step(&mut self, i: u64, schema_change_at: Option<u64>) -> walden_engine::Result<()> {
        let mut txn = self.db.begin();
        txn.set_namespace("shop");
        txn.set_actor(format!("checkout-{}", self.thread));
        txn.set_correlation_id(format!("req-{}-{i}", self.thread));
        if schema_change_at == Some(i) {
            txn.set_actor("migrations");
            txn.add_column("users", 2, Column::new("tier", "TEXT", true))?;
            txn.commit()?;
            self.tier_added.store(true, Ordering::Relaxed);
            self.stats.schema_changes += 1;
            self.stats.committed += 1;
            return Ok(());
        }
        let roll = self.rng.below(100);
        if roll >= 93 {
            // Card declined: the order and payment are never written.
            let key = self.key("o");
            txn.insert("orders", key.as_bytes(), br#"{"status":"placed"}"#)?;
            txn.insert("payments", b"declined", br#"{"method":"card"}"#)?;
            txn.rollback();
            self.stats.rolled_back += 1;
            return Ok(());
        }
        let saved = self.stats;
        let result = match roll {
            0..18 => self.signup(&mut txn),
            18..45 => self.place_order(&mut txn),
            45..70 => self.pay(&mut txn),
            70..80 => self.upgrade(&mut txn),
            _ => self.cancel(&mut txn),
        };
        if let Err(e) = result.and_then(|()| txn.commit().map(|_| ())) {
            self.stats = saved;
            return Err(e);
        }
        self.stats.committed += 1;
        Ok(())
    }
}
