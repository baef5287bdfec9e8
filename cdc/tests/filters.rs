//! Every subscription filter against a model: random transactions (row changes of every kind
//! and schema changes over three tables, empty transactions too), a random start LSN and a
//! random combination of table / operation / transaction-id / predicate filters, column masks,
//! transaction control and schema events. The delivered events must be exactly what the model
//! says (not only "everything delivered matches": nothing that matches may be missing), and the
//! async stream must deliver the same as the blocking one.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use walden_cdc::{Cdc, ColumnMask, Event, Filter, Operation, SubscriptionOptions, TransactionEventKind};
use walden_engine::{Column, Config, Database, SyncMode, WalConfig};

mod common;
use common::memory_db;

const TABLES: [&str; 3] = ["users", "orders", "payments"];
const COLUMNS: [&str; 5] = ["id", "step", "secret", "note", "absent"];

#[derive(Debug, Clone, Copy)]
enum Step {
    Row(Operation),
    Schema,
}

#[derive(Debug, Clone)]
struct TxnSpec {
    /// (table index, step) per change.
    steps: Vec<(usize, Step)>,
}

#[derive(Debug, Clone)]
struct FilterSpec {
    tables: Option<BTreeSet<usize>>,
    operations: Option<BTreeSet<Operation>>,
    /// Indexes into the written transactions (mapped to their ids once written).
    txns: Option<BTreeSet<usize>>,
    /// Keep row changes whose key's byte sum is `r` mod 3.
    predicate: Option<u8>,
    /// (exclude?, columns)
    mask: Option<(bool, BTreeSet<usize>)>,
    transaction_control: bool,
    schema_changes: bool,
    /// Start at this fraction (per mille) of the log; 0 means LSN 0 (the oldest).
    from_permille: u16,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![Just(Operation::Insert), Just(Operation::Update), Just(Operation::Delete)]
}

fn txn_spec() -> impl Strategy<Value = TxnSpec> {
    let step = prop_oneof![5 => operation().prop_map(Step::Row), 1 => Just(Step::Schema)];
    prop::collection::vec((0..TABLES.len(), step), 0..5).prop_map(|steps| TxnSpec { steps })
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    (
        prop::option::weighted(0.4, prop::collection::btree_set(0..TABLES.len(), 0..=2)),
        prop::option::weighted(0.4, prop::collection::btree_set(operation(), 0..=2)),
        prop::option::weighted(0.3, prop::collection::btree_set(0usize..16, 0..=3)),
        prop::option::weighted(0.3, 0u8..3),
        prop::option::weighted(0.4, (any::<bool>(), prop::collection::btree_set(0..COLUMNS.len(), 0..=3))),
        any::<bool>(),
        prop::bool::weighted(0.7),
        prop_oneof![Just(0u16), 0u16..=1000],
    )
        .prop_map(
            |(tables, operations, txns, predicate, mask, transaction_control, schema_changes, from_permille)| {
                FilterSpec {
                    tables,
                    operations,
                    txns,
                    predicate,
                    mask,
                    transaction_control,
                    schema_changes,
                    from_permille,
                }
            },
        )
}

fn key(txn: usize, step: usize) -> Vec<u8> {
    format!("t{txn}-s{step}").into_bytes()
}

fn key_class(key: &[u8]) -> u8 {
    (key.iter().map(|&b| u32::from(b)).sum::<u32>() % 3) as u8
}

fn after_image(txn: usize, step: usize) -> Value {
    json!({"id": txn, "step": step, "secret": format!("s{txn}"), "note": null})
}

fn before_image(txn: usize, step: usize) -> Value {
    json!({"id": txn, "step": step, "secret": "old", "note": 1.5})
}

/// What a delivered event looks like, for comparison with the model.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Begin {
        lsn: u64,
        txn_id: u64,
        change_count: u32,
    },
    Commit {
        lsn: u64,
        txn_id: u64,
        change_count: u32,
    },
    Change {
        lsn: u64,
        txn_id: u64,
        commit_lsn: u64,
        table: String,
        op: Operation,
        key: Vec<u8>,
        data: Option<Value>,
        old_data: Option<Value>,
    },
    Schema {
        lsn: u64,
        txn_id: u64,
        table: String,
    },
}

fn seen(event: Event) -> Seen {
    let json = |b: Option<bytes::Bytes>| b.map(|b| serde_json::from_slice::<Value>(&b).expect("row images are JSON"));
    match event {
        Event::Transaction(t) => match t.kind {
            TransactionEventKind::Begin => {
                Seen::Begin { lsn: t.lsn, txn_id: t.txn.txn_id, change_count: t.change_count }
            }
            TransactionEventKind::Commit => {
                Seen::Commit { lsn: t.lsn, txn_id: t.txn.txn_id, change_count: t.change_count }
            }
        },
        Event::Change(c) => Seen::Change {
            lsn: c.lsn,
            txn_id: c.txn.txn_id,
            commit_lsn: c.txn.commit_lsn,
            table: c.table,
            op: c.op,
            key: c.key.to_vec(),
            data: json(c.data),
            old_data: json(c.old_data),
        },
        Event::Schema(s) => Seen::Schema { lsn: s.lsn, txn_id: s.txn.txn_id, table: s.table },
    }
}

fn masked(image: Value, mask: &Option<(bool, BTreeSet<usize>)>) -> Value {
    let Some((exclude, columns)) = mask else { return image };
    let Value::Object(map) = image else { unreachable!("images are objects") };
    let listed = |k: &str| columns.iter().any(|&c| COLUMNS[c] == k);
    Value::Object(map.into_iter().filter(|(k, _)| listed(k) != *exclude).collect())
}

struct Written {
    /// (txn id, commit LSN, spec) per transaction.
    txns: Vec<(u64, u64, TxnSpec)>,
    last_lsn: u64,
}

fn write(db: &Database, specs: &[TxnSpec]) -> Written {
    let mut txns = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut t = db.begin();
        for (j, (table, step)) in spec.steps.iter().enumerate() {
            let (table, k) = (TABLES[*table], key(i, j));
            let (before, after) = (before_image(i, j).to_string(), after_image(i, j).to_string());
            match step {
                Step::Row(Operation::Insert) => t.insert(table, &k, after.as_bytes()).unwrap(),
                Step::Row(Operation::Update) => t.update(table, &k, before.as_bytes(), after.as_bytes()).unwrap(),
                Step::Row(Operation::Delete) => t.delete(table, &k, before.as_bytes()).unwrap(),
                Step::Schema => t.create_table(table, j as u32 + 1, &[Column::new("id", "BIGINT", false)]).unwrap(),
            }
        }
        let info = t.commit_info().unwrap();
        txns.push((info.txn_id, info.commit_lsn, spec.clone()));
    }
    Written { last_lsn: db.wal().next_lsn() - 1, txns }
}

fn from_lsn(spec: &FilterSpec, last_lsn: u64) -> u64 {
    if spec.from_permille == 0 { 0 } else { 1 + (last_lsn - 1) * u64::from(spec.from_permille) / 1000 }
}

fn filter(spec: &FilterSpec, written: &Written) -> Filter {
    let mut f = Filter::all();
    if let Some(t) = &spec.tables {
        f = f.tables(t.iter().map(|&i| TABLES[i]));
    }
    if let Some(o) = &spec.operations {
        f = f.operations(o.iter().copied());
    }
    if let Some(t) = &spec.txns {
        // Indexes past the end name no transaction (an id that never existed).
        f = f.txn_ids(t.iter().map(|&i| written.txns.get(i).map_or(u64::MAX - i as u64, |t| t.0)));
    }
    if let Some(r) = spec.predicate {
        f = f.predicate(move |c| key_class(&c.key) == r);
    }
    if let Some((exclude, columns)) = &spec.mask {
        let names = columns.iter().map(|&c| COLUMNS[c]);
        f = f.columns(if *exclude { ColumnMask::exclude(names) } else { ColumnMask::include(names) });
    }
    f
}

/// What the subscription must deliver, computed from the specs alone.
fn model(spec: &FilterSpec, written: &Written) -> Vec<Seen> {
    let from = from_lsn(spec, written.last_lsn).max(1);
    let mut out = Vec::new();
    for (i, (txn_id, commit_lsn, txn)) in written.txns.iter().enumerate() {
        let change_count = txn.steps.len() as u32;
        let txn_ok = spec.txns.as_ref().is_none_or(|t| t.contains(&i));
        let mut delivered = Vec::new();
        for (j, (table, step)) in txn.steps.iter().enumerate() {
            let lsn = txn_id + 1 + j as u64;
            let table_ok = spec.tables.as_ref().is_none_or(|t| t.contains(table));
            if lsn < from || !txn_ok || !table_ok {
                continue;
            }
            match step {
                Step::Row(op) => {
                    let k = key(i, j);
                    if spec.operations.as_ref().is_some_and(|o| !o.contains(op))
                        || spec.predicate.is_some_and(|r| key_class(&k) != r)
                    {
                        continue;
                    }
                    let after = (*op != Operation::Delete).then(|| masked(after_image(i, j), &spec.mask));
                    let before = (*op != Operation::Insert).then(|| masked(before_image(i, j), &spec.mask));
                    delivered.push(Seen::Change {
                        lsn,
                        txn_id: *txn_id,
                        commit_lsn: *commit_lsn,
                        table: TABLES[*table].to_string(),
                        op: *op,
                        key: k,
                        data: after,
                        old_data: before,
                    });
                }
                Step::Schema if spec.schema_changes => {
                    delivered.push(Seen::Schema { lsn, txn_id: *txn_id, table: TABLES[*table].to_string() });
                }
                Step::Schema => {}
            }
        }
        // BEGIN/COMMIT only around transactions with something delivered (a start inside a
        // transaction still gets its BEGIN, before the rest of it).
        if spec.transaction_control && !delivered.is_empty() {
            out.push(Seen::Begin { lsn: *txn_id, txn_id: *txn_id, change_count });
            out.append(&mut delivered);
            out.push(Seen::Commit { lsn: *commit_lsn, txn_id: *txn_id, change_count });
        } else {
            out.append(&mut delivered);
        }
    }
    out
}

fn options(spec: &FilterSpec, written: &Written) -> SubscriptionOptions {
    SubscriptionOptions {
        end_lsn: Some(written.last_lsn),
        include_transaction_control: spec.transaction_control,
        include_schema_changes: spec.schema_changes,
        buffer_capacity: 3,
        ..SubscriptionOptions::from_lsn(from_lsn(spec, written.last_lsn)).with_filter(filter(spec, written))
    }
}

fn open_db() -> Arc<Database> {
    let config = Config {
        // Small segments, so that subscriptions cross segment boundaries.
        wal: WalConfig { target_segment_size_bytes: 4096, sync_mode: SyncMode::None, ..WalConfig::default() },
        ..Config::default()
    };
    memory_db(config)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_filter_delivers_exactly_what_the_model_says(
        txns in prop::collection::vec(txn_spec(), 1..14),
        specs in prop::collection::vec(filter_spec(), 1..5),
    ) {
        let db = open_db();
        let written = write(&db, &txns);
        let cdc = Cdc::new(db.clone());
        for spec in &specs {
            let expected = model(spec, &written);
            // Blocking: the stream ends at `end_lsn`.
            let blocking: Vec<Seen> =
                cdc.subscribe(options(spec, &written)).unwrap().map(|e| seen(e.unwrap())).collect();
            prop_assert_eq!(&blocking, &expected, "filter {:?}", spec);
            // Async: the same events, through a bounded channel.
            let mut sub = cdc.subscribe_async(options(spec, &written)).unwrap();
            let asynced: Vec<Seen> = futures::executor::block_on(async {
                let mut out = Vec::new();
                while let Some(e) = sub.next().await {
                    out.push(seen(e.unwrap()));
                }
                out
            });
            prop_assert_eq!(&asynced, &expected, "async, filter {:?}", spec);
        }
    }
}

#[test]
fn an_empty_set_filters_everything_out() {
    let db = open_db();
    let written = write(&db, &[TxnSpec { steps: vec![(0, Step::Row(Operation::Insert)), (1, Step::Schema)] }]);
    let cdc = Cdc::new(db.clone());
    for filter in
        [Filter::all().tables(Vec::<String>::new()), Filter::all().txn_ids([]), Filter::all().tables(["nonexistent"])]
    {
        let options = SubscriptionOptions {
            end_lsn: Some(written.last_lsn),
            include_transaction_control: true,
            ..SubscriptionOptions::from_lsn(0).with_filter(filter.clone())
        };
        let events: Vec<_> = cdc.subscribe(options).unwrap().collect();
        assert!(events.is_empty(), "{filter:?} let through {events:?}");
    }
    // An empty operation set stops row changes only; schema changes are not row operations.
    let options = SubscriptionOptions {
        end_lsn: Some(written.last_lsn),
        ..SubscriptionOptions::from_lsn(0).with_filter(Filter::all().operations([]))
    };
    let events: Vec<_> = cdc.subscribe(options).unwrap().map(|e| seen(e.unwrap())).collect();
    assert_eq!(events, vec![Seen::Schema { lsn: 3, txn_id: 1, table: "orders".into() }]);
}
