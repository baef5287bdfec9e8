//! The `events` table: its Iceberg schema and partition spec, and the rows the archiver writes.
//!
//! | id | column           | type          | notes                                                   |
//! |----|------------------|---------------|---------------------------------------------------------|
//! | 1  | `lsn`            | long          | LSN of the change (unique, rows sorted by it)           |
//! | 2  | `commit_lsn`     | long          | LSN of the transaction's COMMIT                         |
//! | 3  | `txn_id`         | long          | transaction id (LSN of its BEGIN)                       |
//! | 4  | `commit_ts`      | timestamptz   | commit time, µs, UTC; partition source (`day`)          |
//! | 5  | `op`             | string        | `insert`, `update`, `delete`, or `schema` (DDL)         |
//! | 6  | `table_name`     | string        | table the change is about                               |
//! | 7  | `key`            | binary        | primary key bytes (empty for `schema` rows)             |
//! | 8  | `before`         | string, opt.  | old row when it is JSON text                            |
//! | 9  | `after`          | string, opt.  | new row when it is JSON text; for `schema` rows the DDL |
//! | 10 | `before_bin`     | binary, opt.  | old row when it is not JSON                             |
//! | 11 | `after_bin`      | binary, opt.  | new row when it is not JSON                             |
//! | 12 | `namespace`      | string, opt.  | tenant / namespace of the transaction                   |
//! | 13 | `correlation_id` | string, opt.  | request correlation id                                  |
//! | 14 | `actor`          | string, opt.  | who made the change                                     |
//!
//! A payload goes to `before`/`after` when it is UTF-8 JSON, else to `before_bin`/`after_bin`; at
//! most one of each pair is set. A `schema` row's `after` is
//! `{"schemaVersion": N, "change": {...}}` with the change as walden-cdc serialises
//! [`walden_cdc::SchemaChange`].

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, LargeBinaryBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, SchemaRef as ArrowSchemaRef};
use bytes::Bytes;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
use walden_cdc::Event;
use walden_engine::Lsn;

use crate::error::{ArchiveError, Result};

/// Name of the partition field (`day(commit_ts)`).
pub const PARTITION_FIELD: &str = "commit_ts_day";
/// Field id of `lsn`.
pub const LSN_FIELD_ID: i32 = 1;
/// Field id of `commit_ts`.
pub const COMMIT_TS_FIELD_ID: i32 = 4;
/// µs per day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The Iceberg schema of the events table.
pub fn events_schema() -> Result<Schema> {
    let long = || Type::Primitive(PrimitiveType::Long);
    let string = || Type::Primitive(PrimitiveType::String);
    let binary = || Type::Primitive(PrimitiveType::Binary);
    let fields = vec![
        NestedField::required(1, "lsn", long()),
        NestedField::required(2, "commit_lsn", long()),
        NestedField::required(3, "txn_id", long()),
        NestedField::required(COMMIT_TS_FIELD_ID, "commit_ts", Type::Primitive(PrimitiveType::Timestamptz)),
        NestedField::required(5, "op", string()),
        NestedField::required(6, "table_name", string()),
        NestedField::required(7, "key", binary()),
        NestedField::optional(8, "before", string()),
        NestedField::optional(9, "after", string()),
        NestedField::optional(10, "before_bin", binary()),
        NestedField::optional(11, "after_bin", binary()),
        NestedField::optional(12, "namespace", string()),
        NestedField::optional(13, "correlation_id", string()),
        NestedField::optional(14, "actor", string()),
    ];
    Ok(Schema::builder().with_schema_id(0).with_fields(fields.into_iter().map(Arc::new)).build()?)
}

/// `day(commit_ts)`.
pub fn events_partition_spec() -> Result<UnboundPartitionSpec> {
    Ok(UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(COMMIT_TS_FIELD_ID, PARTITION_FIELD, Transform::Day)?
        .build())
}

/// One archived event (a row of the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// LSN.
    pub lsn: Lsn,
    /// Commit LSN of its transaction.
    pub commit_lsn: Lsn,
    /// Transaction id.
    pub txn_id: u64,
    /// Commit time, µs since the epoch.
    pub commit_ts_us: i64,
    /// `insert`, `update`, `delete` or `schema`.
    pub op: &'static str,
    /// Table.
    pub table_name: String,
    /// Key bytes.
    pub key: Bytes,
    /// Old row.
    pub before: Option<Payload>,
    /// New row (or the DDL for `schema` rows).
    pub after: Option<Payload>,
    /// Namespace.
    pub namespace: Option<Arc<str>>,
    /// Correlation id.
    pub correlation_id: Option<Arc<str>>,
    /// Actor.
    pub actor: Option<Arc<str>>,
}

/// A row image: JSON text or opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Valid UTF-8 JSON (checked by [`Payload::classify`]; kept as the record's bytes, no copy).
    Json(Bytes),
    /// Anything else.
    Binary(Bytes),
}

impl Payload {
    /// Classifies raw payload bytes.
    pub fn classify(bytes: Bytes) -> Payload {
        // UTF-8 and JSON in one pass: the same verdict as serde_json's after a UTF-8 check
        // (`json_check` tests that), several times faster.
        if crate::json_check::is_json(&bytes) { Payload::Json(bytes) } else { Payload::Binary(bytes) }
    }
}

fn json(p: &Option<Payload>) -> Option<&[u8]> {
    match p {
        // UTF-8 (checked when classified, and again per chunk by `EventColumns::finish`).
        Some(Payload::Json(b)) => Some(b.as_ref()),
        _ => None,
    }
}

fn bin(p: &Option<Payload>) -> Option<&[u8]> {
    match p {
        Some(Payload::Binary(b)) => Some(b.as_ref()),
        _ => None,
    }
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| ArchiveError::Inconsistent(format!("{what} {v} does not fit an Iceberg long")))
}

impl EventRow {
    /// The row for a change-stream event; `None` for transaction boundaries (they are implied by
    /// `txn_id` / `commit_lsn`).
    pub fn from_event(event: Event) -> Result<Option<EventRow>> {
        let row = match event {
            Event::Change(c) => EventRow {
                lsn: c.lsn,
                commit_lsn: c.txn.commit_lsn,
                txn_id: c.txn.txn_id,
                commit_ts_us: to_i64(c.txn.commit_timestamp_us, "commit timestamp")?,
                op: c.op.as_str(),
                table_name: c.table,
                key: c.key,
                before: c.old_data.map(Payload::classify),
                after: c.data.map(Payload::classify),
                namespace: c.txn.namespace,
                correlation_id: c.txn.correlation_id,
                actor: c.txn.actor,
            },
            Event::Schema(s) => {
                let ddl = serde_json::json!({ "schemaVersion": s.schema_version, "change": s.change });
                EventRow {
                    lsn: s.lsn,
                    commit_lsn: s.txn.commit_lsn,
                    txn_id: s.txn.txn_id,
                    commit_ts_us: to_i64(s.txn.commit_timestamp_us, "commit timestamp")?,
                    op: "schema",
                    table_name: s.table,
                    key: Bytes::new(),
                    before: None,
                    after: Some(Payload::Json(Bytes::from(ddl.to_string()))),
                    namespace: s.txn.namespace,
                    correlation_id: s.txn.correlation_id,
                    actor: s.txn.actor,
                }
            }
            Event::Transaction(_) => return Ok(None),
        };
        Ok(Some(row))
    }

    /// Days since the epoch of the commit time (the `day` partition value).
    pub fn commit_day(&self) -> i32 {
        // In range for any i64 µs timestamp: |i64::MAX / µs-per-day| < i32::MAX.
        self.commit_ts_us.div_euclid(MICROS_PER_DAY) as i32
    }
}

/// Builds the Arrow batch of `rows` (in the given order) for the table's Arrow schema. Columns
/// added to the table later (schema evolution) that Walden does not fill are written as nulls;
/// they must be optional.
pub fn to_record_batch(schema: &ArrowSchemaRef, rows: &[EventRow]) -> Result<RecordBatch> {
    let mut columns = EventColumns::new(schema.clone(), rows.len(), ColumnBytes::default())?;
    for row in rows {
        columns.push(row)?;
    }
    columns.finish()
}

/// Value bytes of each variable-length column of a batch: the capacity [`EventColumns::new`]
/// reserves up front (a chunk sized like the previous one then never reallocates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnBytes {
    /// In [`STRING_COLUMNS`] order.
    strings: [usize; STRING_COLUMNS.len()],
    /// In [`JSON_COLUMNS`] order.
    json: [usize; JSON_COLUMNS.len()],
    /// In [`BINARY_COLUMNS`] order.
    binaries: [usize; BINARY_COLUMNS.len()],
}

impl ColumnBytes {
    /// These sizes plus an eighth: room for a chunk like the one they were taken from.
    #[must_use]
    pub fn with_headroom(self) -> ColumnBytes {
        let more = |b: usize| b.saturating_add(b / 8);
        ColumnBytes { strings: self.strings.map(more), json: self.json.map(more), binaries: self.binaries.map(more) }
    }
}

/// The string columns Walden fills, built as strings. (`EventColumns::push` destructures the
/// builders in the order of these lists.)
const STRING_COLUMNS: [&str; 5] = ["op", "table_name", "namespace", "correlation_id", "actor"];
/// The JSON row-image columns: checked to be UTF-8 when classified, gathered as bytes and checked
/// again in one pass per chunk when the string column is made (not once per value).
const JSON_COLUMNS: [&str; 2] = ["before", "after"];
/// The binary columns Walden fills.
const BINARY_COLUMNS: [&str; 3] = ["key", "before_bin", "after_bin"];
/// The integer and time columns Walden fills.
const LONG_COLUMNS: [&str; 4] = ["lsn", "commit_lsn", "txn_id", "commit_ts"];

fn position(columns: &[&str], name: &str) -> Option<usize> {
    columns.iter().position(|c| *c == name)
}

/// The events table's columns under construction, row by row, in Arrow builders sized up front;
/// [`finish`](Self::finish) turns them into a [`RecordBatch`] for the table's Arrow schema
/// (columns added to the table later that Walden does not fill are written as nulls; they must be
/// optional).
pub struct EventColumns {
    schema: ArrowSchemaRef,
    lsn: Vec<i64>,
    commit_lsn: Vec<i64>,
    txn_id: Vec<i64>,
    commit_ts_us: Vec<i64>,
    /// In [`STRING_COLUMNS`] order.
    strings: [StringBuilder; STRING_COLUMNS.len()],
    /// In [`JSON_COLUMNS`] order.
    json: [BinaryBuilder; JSON_COLUMNS.len()],
    /// In [`BINARY_COLUMNS`] order.
    binaries: [LargeBinaryBuilder; BINARY_COLUMNS.len()],
}

impl EventColumns {
    /// Empty columns with room for `rows` rows and `bytes` of values per column. Fails if the
    /// schema has a required column Walden does not fill.
    pub fn new(schema: ArrowSchemaRef, rows: usize, bytes: ColumnBytes) -> Result<EventColumns> {
        for field in schema.fields() {
            let name = field.name().as_str();
            let filled = [&LONG_COLUMNS[..], &STRING_COLUMNS, &JSON_COLUMNS, &BINARY_COLUMNS]
                .iter()
                .any(|columns| position(columns, name).is_some());
            if !field.is_nullable() && !filled {
                return Err(ArchiveError::Inconsistent(format!(
                    "the events table has a required column {name:?} that Walden does not fill"
                )));
            }
        }
        Ok(EventColumns {
            schema,
            lsn: Vec::with_capacity(rows),
            commit_lsn: Vec::with_capacity(rows),
            txn_id: Vec::with_capacity(rows),
            commit_ts_us: Vec::with_capacity(rows),
            strings: bytes.strings.map(|b| StringBuilder::with_capacity(rows, b)),
            json: bytes.json.map(|b| BinaryBuilder::with_capacity(rows, b)),
            binaries: bytes.binaries.map(|b| LargeBinaryBuilder::with_capacity(rows, b)),
        })
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.lsn.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.lsn.is_empty()
    }

    /// Value bytes per column so far (the capacity to give the next chunk's columns).
    #[must_use]
    pub fn bytes(&self) -> ColumnBytes {
        ColumnBytes {
            strings: std::array::from_fn(|i| self.strings[i].values_slice().len()),
            json: std::array::from_fn(|i| self.json[i].values_slice().len()),
            binaries: std::array::from_fn(|i| self.binaries[i].values_slice().len()),
        }
    }

    /// Appends `row`.
    pub fn push(&mut self, row: &EventRow) -> Result<()> {
        // The longs first: a value that does not fit fails before any column grew.
        let lsn = to_i64(row.lsn, "LSN")?;
        let commit_lsn = to_i64(row.commit_lsn, "commit LSN")?;
        let txn_id = to_i64(row.txn_id, "transaction id")?;
        self.lsn.push(lsn);
        self.commit_lsn.push(commit_lsn);
        self.txn_id.push(txn_id);
        self.commit_ts_us.push(row.commit_ts_us);
        let [op, table, namespace, correlation_id, actor] = &mut self.strings;
        let [before, after] = &mut self.json;
        let [key, before_bin, after_bin] = &mut self.binaries;
        op.append_value(row.op);
        table.append_value(&row.table_name);
        key.append_value(&row.key);
        before.append_option(json(&row.before));
        after.append_option(json(&row.after));
        before_bin.append_option(bin(&row.before));
        after_bin.append_option(bin(&row.after));
        namespace.append_option(row.namespace.as_deref());
        correlation_id.append_option(row.correlation_id.as_deref());
        actor.append_option(row.actor.as_deref());
        Ok(())
    }

    /// The rows as a batch of the schema's columns, in push order.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let rows = self.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let name = field.name().as_str();
            let column: ArrayRef = match name {
                "lsn" => Arc::new(Int64Array::from(std::mem::take(&mut self.lsn))),
                "commit_lsn" => Arc::new(Int64Array::from(std::mem::take(&mut self.commit_lsn))),
                "txn_id" => Arc::new(Int64Array::from(std::mem::take(&mut self.txn_id))),
                "commit_ts" => {
                    let DataType::Timestamp(_, tz) = field.data_type() else {
                        return Err(ArchiveError::Inconsistent(format!(
                            "commit_ts has Arrow type {}",
                            field.data_type()
                        )));
                    };
                    Arc::new(
                        TimestampMicrosecondArray::from(std::mem::take(&mut self.commit_ts_us))
                            .with_timezone_opt(tz.clone()),
                    )
                }
                _ => {
                    if let Some(i) = position(&STRING_COLUMNS, name) {
                        Arc::new(self.strings[i].finish())
                    } else if let Some(i) = position(&JSON_COLUMNS, name) {
                        Arc::new(StringArray::try_from_binary(self.json[i].finish())?)
                    } else if let Some(i) = position(&BINARY_COLUMNS, name) {
                        Arc::new(self.binaries[i].finish())
                    } else {
                        // `new` checked that such a column is optional.
                        arrow_array::new_null_array(field.data_type(), rows)
                    }
                }
            };
            columns.push(column);
        }
        Ok(RecordBatch::try_new(self.schema, columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_payloads() {
        assert_eq!(Payload::classify(Bytes::from_static(b"{\"a\":1}")), Payload::Json("{\"a\":1}".into()));
        assert_eq!(Payload::classify(Bytes::from_static(b"42")), Payload::Json("42".into()));
        assert!(matches!(Payload::classify(Bytes::from_static(b"{not json")), Payload::Binary(_)));
        assert!(matches!(Payload::classify(Bytes::from_static(&[0xff, 0x00])), Payload::Binary(_)));
    }

    #[test]
    fn commit_day_floors_negative_times() {
        let mut row = EventRow {
            lsn: 1,
            commit_lsn: 2,
            txn_id: 1,
            commit_ts_us: MICROS_PER_DAY + 5,
            op: "insert",
            table_name: "t".into(),
            key: Bytes::new(),
            before: None,
            after: None,
            namespace: None,
            correlation_id: None,
            actor: None,
        };
        assert_eq!(row.commit_day(), 1);
        row.commit_ts_us = -1;
        assert_eq!(row.commit_day(), -1);
    }

    /// The bytes `bytes` counts for the column `name`.
    fn bytes_of(bytes: &ColumnBytes, name: &str) -> usize {
        if let Some(i) = position(&STRING_COLUMNS, name) {
            bytes.strings[i]
        } else if let Some(i) = position(&JSON_COLUMNS, name) {
            bytes.json[i]
        } else {
            bytes.binaries[position(&BINARY_COLUMNS, name).expect("a byte column")]
        }
    }

    fn arrow_schema_of(schema: &Schema) -> ArrowSchemaRef {
        Arc::new(iceberg::arrow::schema_to_arrow_schema(schema).unwrap())
    }

    fn sample_row(lsn: Lsn, after: Payload) -> EventRow {
        EventRow {
            lsn,
            commit_lsn: lsn + 1,
            txn_id: lsn - 1,
            commit_ts_us: 1_700_000_000_000_000,
            op: "insert",
            table_name: "users".into(),
            key: Bytes::copy_from_slice(&lsn.to_be_bytes()),
            before: None,
            after: Some(after),
            namespace: None,
            correlation_id: Some(format!("req-{lsn}").into()),
            actor: None,
        }
    }

    #[test]
    fn columns_count_their_bytes_and_keep_push_order() {
        let arrow = arrow_schema_of(&events_schema().unwrap());
        let mut columns = EventColumns::new(arrow.clone(), 2, ColumnBytes::default()).unwrap();
        assert!(columns.is_empty());
        columns.push(&sample_row(2, Payload::Json("{\"a\":1}".into()))).unwrap();
        columns.push(&sample_row(5, Payload::Binary(Bytes::from_static(&[0xff; 3])))).unwrap();
        assert_eq!(columns.len(), 2);
        let bytes = columns.bytes();
        assert_eq!(bytes_of(&bytes, "op"), 12);
        assert_eq!(bytes_of(&bytes, "table_name"), 10);
        assert_eq!(bytes_of(&bytes, "key"), 16);
        assert_eq!(bytes_of(&bytes, "after"), 7);
        assert_eq!(bytes_of(&bytes, "after_bin"), 3);
        assert_eq!(bytes_of(&bytes, "before"), 0);
        assert_eq!(bytes_of(&bytes, "correlation_id"), 10);
        assert_eq!(bytes_of(&bytes.with_headroom(), "key"), 18);
        let batch = columns.finish().unwrap();
        let lsn = batch.column_by_name("lsn").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(lsn.values().to_vec(), vec![2, 5]);
        let after = batch.column_by_name("after").unwrap();
        assert!(!after.is_null(0) && after.is_null(1));
        assert!(batch.column_by_name("after_bin").unwrap().is_null(0));
        // The same rows through `to_record_batch` give the same batch.
        let rows = [
            sample_row(2, Payload::Json("{\"a\":1}".into())),
            sample_row(5, Payload::Binary(Bytes::from_static(&[0xff; 3]))),
        ];
        assert_eq!(to_record_batch(&arrow, &rows).unwrap(), batch);
    }

    #[test]
    fn a_json_payload_that_is_not_utf8_fails_the_chunk_instead_of_vanishing() {
        let arrow = arrow_schema_of(&events_schema().unwrap());
        let mut columns = EventColumns::new(arrow, 1, ColumnBytes::default()).unwrap();
        columns.push(&sample_row(2, Payload::Json(Bytes::from_static(&[b'"', 0xff, b'"'])))).unwrap();
        assert!(matches!(columns.finish(), Err(ArchiveError::Arrow(_))));
    }

    #[test]
    fn columns_added_later_are_null_unless_required() {
        let base = events_schema().unwrap();
        let with = |field: NestedField| {
            let mut fields: Vec<_> = base.as_struct().fields().to_vec();
            fields.push(Arc::new(field));
            Schema::builder().with_schema_id(1).with_fields(fields).build().unwrap()
        };
        let optional =
            arrow_schema_of(&with(NestedField::optional(15, "region", Type::Primitive(PrimitiveType::String))));
        let mut columns = EventColumns::new(optional, 1, ColumnBytes::default()).unwrap();
        columns.push(&sample_row(2, Payload::Json("1".into()))).unwrap();
        let batch = columns.finish().unwrap();
        assert_eq!(batch.num_columns(), 15);
        assert!(batch.column_by_name("region").unwrap().is_null(0));
        let required =
            arrow_schema_of(&with(NestedField::required(15, "region", Type::Primitive(PrimitiveType::String))));
        assert!(matches!(EventColumns::new(required, 1, ColumnBytes::default()), Err(ArchiveError::Inconsistent(_))));
    }

    #[test]
    fn a_value_that_does_not_fit_a_long_grows_no_column() {
        let arrow = arrow_schema_of(&events_schema().unwrap());
        let mut columns = EventColumns::new(arrow, 1, ColumnBytes::default()).unwrap();
        let mut row = sample_row(2, Payload::Json("1".into()));
        row.commit_lsn = u64::MAX;
        assert!(matches!(columns.push(&row), Err(ArchiveError::Inconsistent(_))));
        assert!(columns.is_empty());
        assert_eq!(columns.bytes(), ColumnBytes::default());
        columns.push(&sample_row(3, Payload::Json("1".into()))).unwrap();
        assert_eq!(columns.finish().unwrap().num_rows(), 1);
    }

    #[test]
    fn batch_matches_the_iceberg_schema() {
        let schema = events_schema().unwrap();
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
        let row = EventRow {
            lsn: 2,
            commit_lsn: 3,
            txn_id: 1,
            commit_ts_us: 1_700_000_000_000_000,
            op: "update",
            table_name: "users".into(),
            key: Bytes::from_static(b"k"),
            before: Some(Payload::Binary(Bytes::from_static(&[1, 2]))),
            after: Some(Payload::Json("{}".into())),
            namespace: Some("tenant".into()),
            correlation_id: None,
            actor: Some("alice".into()),
        };
        let batch = to_record_batch(&arrow, &[row]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.num_columns(), 14);
        assert!(batch.column_by_name("before").unwrap().is_null(0));
        assert!(!batch.column_by_name("before_bin").unwrap().is_null(0));
    }
}
