//! Archive workloads through `walden-archive`: sealed WAL segments → Parquet files of an Iceberg
//! table in a local `file://` lake (events/s, and the lake's bytes against the WAL's), and cold
//! replay through `Archiver::cdc()` over a trimmed WAL against the same replay from the WAL.
//!
//! The log: `scale.archive_changes` row changes in transactions of
//! `scale.archive_changes_per_txn` over four tables (insert : update : delete = 5 : 2 : 1, as in
//! the CDC benchmarks), each transaction with an actor and a correlation id, 8-byte keys, and
//! row images of 100–300 B: JSON objects with a web app's repetitive keys and values
//! ([`ArchiveRows::Json`]) or random bytes ([`ArchiveRows::Incompressible`]). Every image is a
//! pure function of the change's number, so every check regenerates what it expects.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use walden_archive::{ArchiveReport, Archiver, LakeConfig};
use walden_cdc::{Cdc, ChangeEvent, ColdSource, Event, Operation, SubscriptionOptions};
use walden_engine::record::{ChangeOp, EngineRecord};
use walden_engine::{Config, Database, Lsn, SyncMode, WalConfig};

use crate::cdc::{op_of, table_index};
use crate::report::{ArchiveRows, LakeBytes, process_cpu_time};
use crate::workloads::{XorShift, check};
use crate::{BenchError, BenchRoot, CDC_TABLES, Sample, Scale};

/// Shortest row image of the archive logs.
pub const ARCHIVE_ROW_MIN_BYTES: usize = 100;
/// Longest row image of the archive logs.
pub const ARCHIVE_ROW_MAX_BYTES: usize = 300;

/// Records per [`ColdSource::read_chunk`] when a workload reads a lake back to check it.
const CHECK_CHUNK_RECORDS: usize = 64 * 1024;

/// splitmix64's finaliser: a well-mixed 64-bit value of `x` (seeds the per-row generators, so
/// neighbouring rows do not start from neighbouring states).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(rng: &mut XorShift, choices: &[&'a str]) -> &'a str {
    choices[(rng.next_u64() % choices.len() as u64) as usize]
}

/// An ISO-8601 UTC time in November 2026 with milliseconds, as web apps store them.
fn timestamp(rng: &mut XorShift, out: &mut String) {
    let (d, h, m, s, ms) =
        (rng.in_range(1, 30), rng.in_range(0, 23), rng.in_range(0, 59), rng.in_range(0, 59), rng.in_range(0, 999));
    let _ = write!(out, "\"2026-11-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z\"");
}

const FIRST_NAMES: [&str; 12] =
    ["anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas", "lea", "maria"];
const LAST_NAMES: [&str; 10] =
    ["mueller", "schmidt", "smith", "garcia", "rossi", "martin", "nowak", "jensen", "silva", "kim"];
const CITIES: [&str; 8] = ["Berlin", "Hamburg", "Munich", "Paris", "Lyon", "Madrid", "Vienna", "Zurich"];

/// A JSON object of 100–300 B for change `i` of table `table` (keys repeat across rows, values
/// vary as a web app's do: ids, names from small vocabularies, times, amounts, hex ids).
fn json_image(table: usize, i: u64, rng: &mut XorShift, out: &mut String) {
    match table {
        0 => user_json(i, rng, out),
        1 => order_json(i, rng, out),
        2 => payment_json(i, rng, out),
        _ => event_json(i, rng, out),
    }
}

/// A `users` row: contact, plan and settings.
fn user_json(i: u64, rng: &mut XorShift, out: &mut String) {
    let (first, last) = (pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES));
    let _ = write!(out, "{{\"id\":{i},\"email\":\"{first}.{last}{}@", rng.in_range(1, 99));
    out.push_str(pick(rng, &["gmail.com", "example.com", "outlook.com", "posteo.de"]));
    let _ = write!(out, "\",\"name\":\"{first} {last}\",\"status\":\"");
    out.push_str(pick(rng, &["active", "active", "active", "pending", "disabled"]));
    out.push_str("\",\"plan\":\"");
    out.push_str(pick(rng, &["free", "free", "pro", "team"]));
    out.push_str("\",\"created_at\":");
    timestamp(rng, out);
    let _ = write!(out, ",\"login_count\":{},\"settings\":{{\"theme\":\"", rng.in_range(0, 500));
    out.push_str(pick(rng, &["light", "dark", "system"]));
    out.push_str("\",\"locale\":\"");
    out.push_str(pick(rng, &["en-US", "de-DE", "fr-FR", "es-ES"]));
    let _ = write!(out, "\",\"newsletter\":{}}}}}", rng.next_u64().is_multiple_of(2));
}

/// An `orders` row: one or two items, the total and the shipping city.
fn order_json(i: u64, rng: &mut XorShift, out: &mut String) {
    let _ = write!(out, "{{\"id\":{i},\"user_id\":{},\"status\":\"", rng.in_range(1, 50_000));
    out.push_str(pick(rng, &["paid", "paid", "shipped", "pending", "cancelled"]));
    out.push_str("\",\"currency\":\"EUR\",\"items\":[");
    let items = rng.in_range(1, 2);
    let mut total = 0;
    for n in 0..items {
        let (qty, price) = (rng.in_range(1, 3), rng.in_range(199, 9_999));
        total += qty * price;
        let sep = if n > 0 { "," } else { "" };
        let sku = rng.in_range(1, 20_000);
        let _ = write!(out, "{sep}{{\"sku\":\"SKU-{sku:05}\",\"qty\":{qty},\"unit_price_cents\":{price}}}");
    }
    let _ = write!(out, "],\"total_cents\":{total},\"shipping\":{{\"city\":\"");
    out.push_str(pick(rng, &CITIES));
    let _ = write!(out, "\",\"postal_code\":\"{:05}\"}},\"created_at\":", rng.in_range(1000, 99_999));
    timestamp(rng, out);
    out.push('}');
}

/// A `payments` row: provider, method, amount and status.
fn payment_json(i: u64, rng: &mut XorShift, out: &mut String) {
    let _ = write!(out, "{{\"id\":{i},\"order_id\":{},\"provider\":\"stripe\",\"method\":\"", rng.in_range(1, 1 << 20));
    out.push_str(pick(rng, &["card", "card", "sepa_debit", "paypal"]));
    out.push_str("\",\"card_brand\":\"");
    out.push_str(pick(rng, &["visa", "mastercard", "amex"]));
    let _ = write!(
        out,
        "\",\"card_last4\":\"{:04}\",\"amount_cents\":{},\"currency\":\"EUR\",\"status\":\"",
        rng.in_range(0, 9999),
        rng.in_range(199, 99_999)
    );
    out.push_str(pick(rng, &["succeeded", "succeeded", "pending", "failed"]));
    let _ = write!(out, "\",\"provider_ref\":\"pi_{:016x}\",\"created_at\":", rng.next_u64());
    timestamp(rng, out);
    out.push('}');
}

/// An `events` row: a page view, click or search of a session.
fn event_json(i: u64, rng: &mut XorShift, out: &mut String) {
    let _ = write!(
        out,
        "{{\"id\":{i},\"session_id\":\"{:016x}\",\"user_id\":{},\"type\":\"",
        rng.next_u64(),
        rng.in_range(1, 50_000)
    );
    out.push_str(pick(rng, &["page_view", "page_view", "click", "add_to_cart", "search"]));
    out.push_str("\",\"path\":\"/");
    out.push_str(pick(rng, &["products", "products", "cart", "search", "account"]));
    let _ = write!(out, "/{}\",\"referrer\":\"", rng.in_range(1, 5_000));
    out.push_str(pick(rng, &["https://www.google.com/", "https://duckduckgo.com/", "", "https://t.co/"]));
    out.push_str("\",\"device\":\"");
    out.push_str(pick(rng, &["desktop", "mobile", "mobile", "tablet"]));
    out.push_str("\",\"ts\":");
    timestamp(rng, out);
    out.push('}');
}

/// The row image of change `i`: `version` 0 is the inserted row and the row before an update
/// or a delete, 1 the row after an update. Written into `out` (cleared first).
pub fn archive_row_image(rows: ArchiveRows, i: u64, version: u64, out: &mut Vec<u8>) {
    out.clear();
    let mut rng = XorShift::new(mix(i.wrapping_mul(2).wrapping_add(version)));
    match rows {
        ArchiveRows::Json => {
            let mut text = String::from_utf8(std::mem::take(out)).unwrap_or_default();
            json_image(table_index(i), i, &mut rng, &mut text);
            *out = text.into_bytes();
        }
        ArchiveRows::Incompressible => {
            let len = rng.in_range(ARCHIVE_ROW_MIN_BYTES as u64, ARCHIVE_ROW_MAX_BYTES as u64) as usize;
            out.extend((0..len).map(|_| rng.next_u64() as u8));
        }
    }
}

/// Mean row-image bytes of the first `changes` changes (images as written: one for inserts and
/// deletes, two for updates).
pub fn archive_row_mean_bytes(rows: ArchiveRows, changes: u64) -> f64 {
    let mut buf = Vec::new();
    let (mut images, mut bytes) = (0u64, 0u64);
    for i in 0..changes {
        let versions: &[u64] = if op_of(i) == Operation::Update { &[0, 1] } else { &[0] };
        for &v in versions {
            archive_row_image(rows, i, v, &mut buf);
            images += 1;
            bytes += buf.len() as u64;
        }
    }
    bytes as f64 / images.max(1) as f64
}

fn actor(txn: u64) -> String {
    format!("user-{}", mix(txn) % 997)
}

fn correlation_id(txn: u64) -> String {
    format!("req-{:016x}", mix(txn ^ 0xC0FF_EE00))
}

/// The shape of an archive log: where every change is, so checks know each LSN.
#[derive(Debug, Clone, Copy)]
struct LogShape {
    rows: ArchiveRows,
    changes: u64,
    per_txn: u64,
    first_lsn: Lsn,
    last_lsn: Lsn,
}

impl LogShape {
    /// LSN of transaction `t`'s BEGIN (every transaction has changes, so they are contiguous).
    fn txn_lsn(&self, t: u64) -> Lsn {
        self.first_lsn + t * (self.per_txn + 2)
    }

    fn change_lsn(&self, i: u64) -> Lsn {
        self.txn_lsn(i / self.per_txn) + 1 + i % self.per_txn
    }

    fn options(&self) -> SubscriptionOptions {
        SubscriptionOptions { end_lsn: Some(self.last_lsn), ..SubscriptionOptions::from_lsn(self.first_lsn) }
    }

    /// The check of a timed replay, as cheap as the CDC benchmarks' (no image regenerated):
    /// `event` is change `i` by LSN, transaction, key, table, operation and which images it
    /// has. [`ReplayLog::build`] checked every image of both replays.
    fn check_head(&self, event: &ChangeEvent, i: u64) -> Result<(), BenchError> {
        let (op, t) = (op_of(i), i / self.per_txn);
        let ok = event.lsn == self.change_lsn(i)
            && event.txn.txn_id == self.txn_lsn(t)
            && event.key[..] == i.to_be_bytes()
            && event.table == CDC_TABLES[table_index(i)]
            && event.op == op
            && event.data.is_some() == (op != Operation::Delete)
            && event.old_data.is_some() == (op != Operation::Insert);
        check(ok, || {
            format!(
                "archive: change {i} expected ({op:?} on {} at LSN {}), got {:?} on {} at LSN {} (key {:?})",
                CDC_TABLES[table_index(i)],
                self.change_lsn(i),
                event.op,
                event.table,
                event.lsn,
                &event.key[..]
            )
        })
    }
}

/// Regenerates the images a check expects.
struct Expected {
    shape: LogShape,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Expected {
    fn new(shape: LogShape) -> Expected {
        Expected { shape, before: Vec::new(), after: Vec::new() }
    }

    /// The images of change `i`: (before, after).
    fn images(&mut self, i: u64) -> (Option<&[u8]>, Option<&[u8]>) {
        let rows = self.shape.rows;
        match op_of(i) {
            Operation::Insert => {
                archive_row_image(rows, i, 0, &mut self.after);
                (None, Some(&self.after))
            }
            Operation::Update => {
                archive_row_image(rows, i, 0, &mut self.before);
                archive_row_image(rows, i, 1, &mut self.after);
                (Some(&self.before), Some(&self.after))
            }
            Operation::Delete => {
                archive_row_image(rows, i, 0, &mut self.before);
                (Some(&self.before), None)
            }
        }
    }

    /// Checks that `event` is change `i`: LSN, transaction (id, commit LSN, actor, correlation
    /// id), key, table, operation and images.
    fn check_event(&mut self, event: &ChangeEvent, i: u64) -> Result<(), BenchError> {
        let shape = self.shape;
        let t = i / shape.per_txn;
        let op = op_of(i);
        let txn_ok = event.txn.txn_id == shape.txn_lsn(t)
            && event.txn.commit_lsn == shape.txn_lsn(t) + shape.per_txn + 1
            && event.txn.actor.as_deref() == Some(actor(t).as_str())
            && event.txn.correlation_id.as_deref() == Some(correlation_id(t).as_str())
            && event.txn.namespace.is_none();
        let head_ok = event.lsn == shape.change_lsn(i)
            && event.key[..] == i.to_be_bytes()
            && event.table == CDC_TABLES[table_index(i)]
            && event.op == op;
        let (before, after) = self.images(i);
        let images_ok = event.old_data.as_deref() == before && event.data.as_deref() == after;
        check(txn_ok && head_ok && images_ok, || {
            format!(
                "archive: change {i} expected ({op:?} on {} at LSN {}, transaction {}), got {:?} on {} at LSN {} \
                 (transaction {}, key {:?}; transaction ok {txn_ok}, images ok {images_ok})",
                CDC_TABLES[table_index(i)],
                shape.change_lsn(i),
                shape.txn_lsn(t),
                event.op,
                event.table,
                event.lsn,
                event.txn.txn_id,
                &event.key[..]
            )
        })
    }

    /// Checks that `record` is the engine record at `lsn` (BEGIN, change or COMMIT).
    fn check_record(&mut self, lsn: Lsn, record: &EngineRecord) -> Result<(), BenchError> {
        let shape = self.shape;
        let per_txn = shape.per_txn;
        let offset = lsn - shape.first_lsn;
        let (t, pos) = (offset / (per_txn + 2), offset % (per_txn + 2));
        let ok = match record {
            EngineRecord::Begin(b) if pos == 0 => {
                u64::from(b.change_count) == per_txn
                    && b.actor.as_deref() == Some(actor(t).as_str())
                    && b.correlation_id.as_deref() == Some(correlation_id(t).as_str())
                    && b.namespace.is_none()
            }
            EngineRecord::Commit(c) if pos == per_txn + 1 => u64::from(c.change_count) == per_txn,
            EngineRecord::Change(c) if pos >= 1 && pos <= per_txn => {
                let i = t * per_txn + pos - 1;
                let op = match op_of(i) {
                    Operation::Insert => ChangeOp::Insert,
                    Operation::Update => ChangeOp::Update,
                    Operation::Delete => ChangeOp::Delete,
                };
                let head = u64::from(c.seq) == pos
                    && c.op == op
                    && c.table == CDC_TABLES[table_index(i)]
                    && c.key[..] == i.to_be_bytes();
                let (before, after) = self.images(i);
                head && c.before.as_deref() == before && c.after.as_deref() == after
            }
            _ => false,
        };
        check(ok, || format!("archive: the lake's record at LSN {lsn} (transaction {t}, position {pos}) is {record:?}"))
    }
}

fn log_config(scale: &Scale) -> Config {
    Config {
        wal: WalConfig {
            sync_mode: SyncMode::None,
            target_segment_size_bytes: scale.archive_segment_bytes,
            ..WalConfig::default()
        },
        ..Config::default()
    }
}

/// Writes the archive log into a new database at `path` (SyncMode::None, then sealed; untimed),
/// closes it and returns its shape and the bytes of its sealed segments.
fn write_log(path: &Path, scale: &Scale, rows: ArchiveRows) -> Result<(LogShape, u64), BenchError> {
    let per_txn = scale.archive_changes_per_txn.max(1);
    let changes = scale.archive_changes;
    check(changes.is_multiple_of(per_txn) && changes > 0, || {
        format!("archive: {changes} changes are not whole transactions of {per_txn}")
    })?;
    let db = Database::open(path, log_config(scale))?;
    let first_lsn = db.wal().next_lsn();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for t in 0..changes / per_txn {
        let mut txn = db.begin();
        txn.set_actor(actor(t)).set_correlation_id(correlation_id(t));
        for i in t * per_txn..(t + 1) * per_txn {
            let (table, key) = (CDC_TABLES[table_index(i)], i.to_be_bytes());
            match op_of(i) {
                Operation::Insert => {
                    archive_row_image(rows, i, 0, &mut after);
                    txn.insert(table, &key, &after)?;
                }
                Operation::Update => {
                    archive_row_image(rows, i, 0, &mut before);
                    archive_row_image(rows, i, 1, &mut after);
                    txn.update(table, &key, &before, &after)?;
                }
                Operation::Delete => {
                    archive_row_image(rows, i, 0, &mut before);
                    txn.delete(table, &key, &before)?;
                }
            }
            for image in [&before, &after] {
                check(
                    (ARCHIVE_ROW_MIN_BYTES..=ARCHIVE_ROW_MAX_BYTES).contains(&image.len()) || image.is_empty(),
                    || format!("archive: row image of change {i} has {} bytes", image.len()),
                )?;
            }
        }
        txn.commit()?;
    }
    db.wal().seal_active_segment()?;
    let last_lsn = db.wal().next_lsn() - 1;
    let transactions = changes / per_txn;
    check(last_lsn + 1 - first_lsn == changes + 2 * transactions, || {
        format!("archive: log holds LSNs {first_lsn}..={last_lsn} for {changes} changes")
    })?;
    let sealed: Vec<_> = db.segments().into_iter().filter(|s| s.sealed && s.last_lsn >= s.first_lsn).collect();
    let sealed_records: u64 = sealed.iter().map(|s| s.last_lsn + 1 - s.first_lsn).sum();
    check(sealed_records == last_lsn + 1 - first_lsn, || {
        format!("archive: {sealed_records} of {} records sealed", last_lsn + 1 - first_lsn)
    })?;
    let wal_bytes = sealed.iter().map(|s| s.size_bytes).sum();
    db.close()?;
    Ok((LogShape { rows, changes, per_txn, first_lsn, last_lsn }, wal_bytes))
}

/// Reopens a log [`write_log`] wrote and checks nothing was added or lost.
fn reopen(path: &Path, scale: &Scale, shape: &LogShape) -> Result<Arc<Database>, BenchError> {
    let db = Database::open(path, log_config(scale))?;
    let next = db.wal().next_lsn();
    check(next == shape.last_lsn + 1, || {
        format!("archive: reopened log continues at LSN {next}, not {}", shape.last_lsn + 1)
    })?;
    Ok(Arc::new(db))
}

/// Checks an archive run's report: every change archived, in contiguous batches ending at the
/// log's last LSN.
fn check_report(report: &ArchiveReport, shape: &LogShape) -> Result<(), BenchError> {
    let batches = &report.batches;
    let contiguous = batches.windows(2).all(|w| w[1].range.first_lsn == w[0].range.last_lsn + 1);
    let starts = batches.first().is_some_and(|b| b.range.first_lsn <= shape.first_lsn);
    let ends = batches.last().is_some_and(|b| b.range.last_lsn == shape.last_lsn);
    let ok = report.rows() == shape.changes
        && report.last_archived_lsn == Some(shape.last_lsn)
        && contiguous
        && starts
        && ends
        && batches.iter().all(|b| !b.data_files.is_empty());
    check(ok, || {
        let ranges: Vec<_> = batches.iter().map(|b| (b.range.first_lsn, b.range.last_lsn, b.rows)).collect();
        format!(
            "archive: archived {} rows up to {:?} in batches {ranges:?}; expected {} changes in {}..={}",
            report.rows(),
            report.last_archived_lsn,
            shape.changes,
            shape.first_lsn,
            shape.last_lsn
        )
    })
}

fn cold_error(e: walden_cdc::cold::ColdError) -> BenchError {
    BenchError::Check(format!("archive: the lake could not be read back: {e}"))
}

/// Reads the whole archive back through the lake's cold source (untimed) and checks every LSN
/// of the log is there, in order, exactly as written.
fn check_lake(source: &dyn ColdSource, shape: &LogShape) -> Result<(), BenchError> {
    let range = source.range().map_err(cold_error)?;
    check(range.is_some_and(|r| r.first_lsn <= shape.first_lsn && r.last_lsn == shape.last_lsn), || {
        format!("archive: the lake holds {range:?}, the log {}..={}", shape.first_lsn, shape.last_lsn)
    })?;
    let mut expected = Expected::new(*shape);
    let mut next_lsn = shape.first_lsn;
    let mut want_lsn = shape.first_lsn;
    while next_lsn <= shape.last_lsn {
        let chunk = source.read_chunk(next_lsn, shape.last_lsn, CHECK_CHUNK_RECORDS).map_err(cold_error)?;
        check(chunk.next_lsn > next_lsn && !chunk.records.is_empty(), || {
            format!("archive: the lake returned nothing at LSN {next_lsn} (next {})", chunk.next_lsn)
        })?;
        for record in &chunk.records {
            check(record.lsn == want_lsn, || {
                format!("archive: the lake returned LSN {} where {want_lsn} belongs", record.lsn)
            })?;
            expected.check_record(record.lsn, &record.record)?;
            want_lsn += 1;
        }
        next_lsn = chunk.next_lsn;
    }
    check(want_lsn == shape.last_lsn + 1, || format!("archive: the lake ends at LSN {}", want_lsn - 1))
}

/// Bytes of the files under a lake directory, by kind.
fn lake_bytes(dir: &Path) -> Result<LakeBytes, BenchError> {
    let mut bytes = LakeBytes::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).map_err(|e| BenchError::io("list", &path, e))? {
            let entry = entry.map_err(|e| BenchError::io("list", &path, e))?;
            let meta = entry.metadata().map_err(|e| BenchError::io("stat", entry.path(), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if meta.is_dir() {
                pending.push(entry.path());
            } else if name.ends_with(".parquet") {
                bytes.data_bytes += meta.len();
            } else if name.starts_with("catalog.db") {
                bytes.catalog_bytes += meta.len();
            } else {
                bytes.metadata_bytes += meta.len();
            }
        }
    }
    Ok(bytes)
}

/// A pre-written log for the archive throughput benchmark (every segment sealed); each run
/// archives all of it into a fresh lake.
#[derive(Debug)]
pub struct ArchiveLog {
    db: Arc<Database>,
    shape: LogShape,
    wal_bytes: u64,
    batch_bytes: u64,
    root: BenchRoot,
    // Declared last: the directory outlives the database.
    _dir: tempfile::TempDir,
}

impl ArchiveLog {
    /// Writes the log (untimed) with row images of kind `rows`.
    pub fn build(root: &BenchRoot, scale: &Scale, rows: ArchiveRows) -> Result<ArchiveLog, BenchError> {
        let dir = root.tempdir()?;
        let path = dir.path().join("db");
        let (shape, wal_bytes) = write_log(&path, scale, rows)?;
        let db = reopen(&path, scale, &shape)?;
        Ok(ArchiveLog { db, shape, wal_bytes, batch_bytes: scale.archive_batch_bytes, root: root.clone(), _dir: dir })
    }

    /// Row changes in the log.
    pub fn changes(&self) -> u64 {
        self.shape.changes
    }

    /// Bytes of the log's sealed segments.
    pub fn wal_bytes(&self) -> u64 {
        self.wal_bytes
    }

    /// Opens a fresh lake (untimed), times `Archiver::archive_sealed` of the whole log, then
    /// checks the report and reads the lake back through its cold source, checking every LSN
    /// (untimed). CPU time is the process's (the archiver's runtime threads write the files).
    /// The sample's operations are the rows archived, its bytes the WAL bytes, and its
    /// [`LakeBytes`] what the lake holds afterwards.
    pub fn archive(&self) -> Result<Sample, BenchError> {
        let lake_dir = self.root.tempdir()?;
        let config = LakeConfig { target_batch_bytes: self.batch_bytes, ..LakeConfig::local_dir(lake_dir.path())? };
        let archiver = Archiver::open(self.db.clone(), config)?;
        let cpu_start = process_cpu_time();
        let start = Instant::now();
        let report = archiver.archive_sealed()?;
        let elapsed = start.elapsed();
        let cpu = process_cpu_time().saturating_sub(cpu_start);
        check_report(&report, &self.shape)?;
        check_lake(archiver.cold_source().as_ref(), &self.shape)?;
        drop(archiver);
        let mut lake = lake_bytes(lake_dir.path())?;
        let reported: u64 = report.batches.iter().map(|b| b.data_bytes).sum();
        check(lake.data_bytes == reported, || {
            format!("archive: {} bytes of Parquet in the lake, the report says {reported}", lake.data_bytes)
        })?;
        lake.wal_bytes = self.wal_bytes;
        Ok(Sample { elapsed, ops: report.rows(), bytes: self.wal_bytes, cpu, lake, ..Sample::default() })
    }
}

/// Copies the directory tree at `from` to `to` (regular files only).
fn copy_tree(from: &Path, to: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(to).map_err(|e| BenchError::io("create directory", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| BenchError::io("list", from, e))? {
        let entry = entry.map_err(|e| BenchError::io("list", from, e))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| BenchError::io("stat", entry.path(), e))?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| BenchError::io("copy", entry.path(), e))?;
        }
    }
    Ok(())
}

/// The replay benchmarks' fixture: the JSON log archived into a lake and trimmed from its WAL
/// (`checkpoint` after archiving), so a replay through [`Archiver::cdc`] reads every event from
/// the lake; beside it a copy of the untrimmed log for the same replay from the WAL.
#[derive(Debug)]
pub struct ReplayLog {
    archiver: Archiver,
    cold_db: Arc<Database>,
    hot_db: Arc<Database>,
    shape: LogShape,
    // Declared last: the directory outlives the databases and the lake.
    _dir: tempfile::TempDir,
}

impl ReplayLog {
    /// Writes the log, copies it, archives the original, checkpoints it (so its WAL no longer
    /// holds any archived LSN) and checks that a cold replay and a hot replay of the copy give
    /// the same events, each the expected change (all untimed).
    pub fn build(root: &BenchRoot, scale: &Scale) -> Result<ReplayLog, BenchError> {
        let dir = root.tempdir()?;
        let (cold_path, hot_path) = (dir.path().join("db"), dir.path().join("hot"));
        let (shape, _) = write_log(&cold_path, scale, ArchiveRows::Json)?;
        copy_tree(&cold_path, &hot_path)?;
        let cold_db = reopen(&cold_path, scale, &shape)?;
        let hot_db = reopen(&hot_path, scale, &shape)?;
        let lake = LakeConfig {
            target_batch_bytes: scale.archive_batch_bytes,
            ..LakeConfig::local_dir(dir.path().join("lake"))?
        };
        let archiver = Archiver::open(cold_db.clone(), lake)?;
        check_report(&archiver.archive_sealed()?, &shape)?;
        let checkpoint = cold_db.checkpoint()?;
        let oldest = cold_db.wal().oldest_lsn();
        check(oldest > shape.last_lsn && !checkpoint.removed_segments.is_empty(), || {
            format!(
                "archive: after the checkpoint the WAL still starts at LSN {oldest} (log ends at {})",
                shape.last_lsn
            )
        })?;
        let fixture = ReplayLog { archiver, cold_db, hot_db, shape, _dir: dir };
        fixture.compare_cold_with_hot()?;
        Ok(fixture)
    }

    /// Row changes replayed per run.
    pub fn changes(&self) -> u64 {
        self.shape.changes
    }

    /// The database whose WAL was trimmed after archiving.
    pub fn cold_database(&self) -> &Arc<Database> {
        &self.cold_db
    }

    fn compare_cold_with_hot(&self) -> Result<(), BenchError> {
        let (cold, hot) = (self.archiver.cdc(), Cdc::new(self.hot_db.clone()));
        let mut cold_stream = cold.subscribe(self.shape.options())?;
        let mut hot_stream = hot.subscribe(self.shape.options())?;
        let mut expected = Expected::new(self.shape);
        let mut i = 0u64;
        loop {
            match (cold_stream.try_next().transpose()?, hot_stream.try_next().transpose()?) {
                (None, None) => break,
                (Some(c), Some(h)) => {
                    check(c == h, || format!("archive: cold event {c:?} differs from hot event {h:?}"))?;
                    let Event::Change(change) = &c else {
                        return Err(BenchError::Check(format!("archive: unexpected event {c:?}")));
                    };
                    expected.check_event(change, i)?;
                    i += 1;
                }
                (c, h) => {
                    return Err(BenchError::Check(format!("archive: one replay ended first: cold {c:?}, hot {h:?}")));
                }
            }
        }
        check(i == self.shape.changes && cold_stream.is_ended() && hot_stream.is_ended(), || {
            format!("archive: replays delivered {i} of {} events", self.shape.changes)
        })
    }

    /// Every archived change through `Archiver::cdc()` (a fresh cold source: nothing cached),
    /// from the log's first to its last LSN, each checked to be the next change in order. The
    /// subscription is opened inside the timing; CPU time is the process's (the lake is read
    /// on the archiver's runtime threads).
    pub fn cold_replay(&self) -> Result<Sample, BenchError> {
        let cpu_start = process_cpu_time();
        let start = Instant::now();
        let cdc = self.archiver.cdc();
        let sample = self.replay(&cdc, start, cpu_start)?;
        Ok(sample)
    }

    /// The same replay from the untrimmed copy's WAL.
    pub fn hot_replay(&self) -> Result<Sample, BenchError> {
        let cpu_start = process_cpu_time();
        let start = Instant::now();
        let cdc = Cdc::new(self.hot_db.clone());
        self.replay(&cdc, start, cpu_start)
    }

    fn replay(&self, cdc: &Cdc, start: Instant, cpu_start: std::time::Duration) -> Result<Sample, BenchError> {
        let mut stream = cdc.subscribe(self.shape.options())?;
        let mut delivered = 0u64;
        while let Some(item) = stream.try_next() {
            let Event::Change(change) = item? else {
                return Err(BenchError::Check("archive: a non-change event without transaction control".to_string()));
            };
            check(delivered < self.shape.changes, || {
                format!("archive: more than the {} expected events", self.shape.changes)
            })?;
            self.shape.check_head(&change, delivered)?;
            delivered += 1;
        }
        let elapsed = start.elapsed();
        let cpu = process_cpu_time().saturating_sub(cpu_start);
        check(delivered == self.shape.changes && stream.is_ended(), || {
            format!(
                "archive: delivered {delivered} of {} events (stream ended: {})",
                self.shape.changes,
                stream.is_ended()
            )
        })?;
        Ok(Sample { elapsed, ops: delivered, cpu, ..Sample::default() })
    }
}
