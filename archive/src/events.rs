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

use arrow_array::{ArrayRef, Int64Array, LargeBinaryArray, RecordBatch, StringArray, TimestampMicrosecondArray};
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
    pub namespace: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Actor.
    pub actor: Option<String>,
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
        match std::str::from_utf8(&bytes) {
            // The same verdict as serde_json's (`json_check` tests that), several times faster.
            Ok(text) if crate::json_check::is_json(text.as_bytes()) => Payload::Json(bytes),
            _ => Payload::Binary(bytes),
        }
    }
}

fn json(p: &Option<Payload>) -> Option<&str> {
    match p {
        // Checked to be UTF-8 when classified; checking again (GB/s) is cheaper than a copy.
        Some(Payload::Json(b)) => std::str::from_utf8(b).ok(),
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
    let longs = |f: &dyn Fn(&EventRow) -> u64, what: &str| -> Result<ArrayRef> {
        let values = rows.iter().map(|r| to_i64(f(r), what)).collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Int64Array::from(values)))
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "lsn" => longs(&|r| r.lsn, "LSN")?,
            "commit_lsn" => longs(&|r| r.commit_lsn, "commit LSN")?,
            "txn_id" => longs(&|r| r.txn_id, "transaction id")?,
            "commit_ts" => {
                let DataType::Timestamp(_, tz) = field.data_type() else {
                    return Err(ArchiveError::Inconsistent(format!("commit_ts has Arrow type {}", field.data_type())));
                };
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.commit_ts_us))
                        .with_timezone_opt(tz.clone()),
                )
            }
            "op" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.op))),
            "table_name" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.table_name.as_str()))),
            "key" => Arc::new(LargeBinaryArray::from_iter_values(rows.iter().map(|r| r.key.as_ref()))),
            "before" => Arc::new(StringArray::from_iter(rows.iter().map(|r| json(&r.before)))),
            "after" => Arc::new(StringArray::from_iter(rows.iter().map(|r| json(&r.after)))),
            "before_bin" => Arc::new(LargeBinaryArray::from_iter(rows.iter().map(|r| bin(&r.before)))),
            "after_bin" => Arc::new(LargeBinaryArray::from_iter(rows.iter().map(|r| bin(&r.after)))),
            "namespace" => Arc::new(StringArray::from_iter(rows.iter().map(|r| r.namespace.as_deref()))),
            "correlation_id" => Arc::new(StringArray::from_iter(rows.iter().map(|r| r.correlation_id.as_deref()))),
            "actor" => Arc::new(StringArray::from_iter(rows.iter().map(|r| r.actor.as_deref()))),
            _ if field.is_nullable() => arrow_array::new_null_array(field.data_type(), rows.len()),
            other => {
                return Err(ArchiveError::Inconsistent(format!(
                    "the events table has a required column {other:?} that Walden does not fill"
                )));
            }
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
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
