//! The events a subscription delivers.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Lsn;

/// The kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A new row (`after` only).
    Insert,
    /// A changed row (`before` and `after`).
    Update,
    /// A removed row (`before` only).
    Delete,
}

impl Operation {
    /// `"insert"`, `"update"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// The one-letter code used by Debezium and the UnifiedEvent: `c`, `u`, `d`.
    pub fn code(self) -> &'static str {
        match self {
            Operation::Insert => "c",
            Operation::Update => "u",
            Operation::Delete => "d",
        }
    }
}

/// What the transaction that made a change said about itself (from its BEGIN record). Every
/// event of a transaction carries a copy: the strings are shared (`Arc<str>`), so a copy costs
/// no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnContext {
    /// Transaction id.
    pub txn_id: u64,
    /// LSN of the transaction's COMMIT record.
    pub commit_lsn: Lsn,
    /// Commit time, µs since the Unix epoch (the COMMIT record's timestamp).
    pub commit_timestamp_us: u64,
    /// Tenant / namespace, if the writer gave one.
    pub namespace: Option<Arc<str>>,
    /// Request correlation id, if the writer gave one.
    pub correlation_id: Option<Arc<str>>,
    /// Who made the change, if the writer said.
    pub actor: Option<Arc<str>>,
}

/// One row change, with its payloads decoded into `T` (raw [`Bytes`] by default).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent<T = Bytes> {
    /// Unique, stable event id: the LSN in decimal.
    pub id: String,
    /// Insert, update or delete.
    pub op: Operation,
    /// Table name.
    pub table: String,
    /// LSN of this change.
    pub lsn: Lsn,
    /// Primary key bytes.
    pub key: Bytes,
    /// The new row (insert, update).
    pub data: Option<T>,
    /// The previous row (update, delete).
    pub old_data: Option<T>,
    /// The transaction (id, commit LSN and time, namespace, correlation id, actor).
    pub txn: TxnContext,
}

impl<T> ChangeEvent<T> {
    /// Transaction id.
    pub fn txn_id(&self) -> u64 {
        self.txn.txn_id
    }

    /// Commit time of the transaction, µs since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        self.txn.commit_timestamp_us
    }

    /// Re-types the payloads.
    pub fn map_payload<U>(self, mut f: impl FnMut(T) -> U) -> ChangeEvent<U> {
        ChangeEvent {
            id: self.id,
            op: self.op,
            table: self.table,
            lsn: self.lsn,
            key: self.key,
            data: self.data.map(&mut f),
            old_data: self.old_data.map(&mut f),
            txn: self.txn,
        }
    }

    /// Like [`ChangeEvent::map_payload`] with a fallible conversion.
    pub fn try_map_payload<U, E>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Result<ChangeEvent<U>, E> {
        Ok(ChangeEvent {
            id: self.id,
            op: self.op,
            table: self.table,
            lsn: self.lsn,
            key: self.key,
            data: self.data.map(&mut f).transpose()?,
            old_data: self.old_data.map(&mut f).transpose()?,
            txn: self.txn,
        })
    }
}

/// BEGIN or COMMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionEventKind {
    /// The transaction starts (its BEGIN record).
    Begin,
    /// The transaction committed (its COMMIT record).
    Commit,
}

/// A transaction boundary, delivered when `include_transaction_control` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionEvent {
    /// Begin or commit.
    pub kind: TransactionEventKind,
    /// LSN of the BEGIN or COMMIT record.
    pub lsn: Lsn,
    /// Number of changes (row and schema) in the transaction.
    pub change_count: u32,
    /// The transaction.
    pub txn: TxnContext,
}

/// A column of a table definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Data type, as the writer named it.
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

/// What a schema change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaChange {
    /// A table was created.
    CreateTable {
        /// Its columns.
        columns: Vec<ColumnDef>,
    },
    /// A column was added.
    AddColumn {
        /// The new column.
        column: ColumnDef,
    },
    /// A column was dropped.
    DropColumn {
        /// Its name.
        name: String,
    },
    /// A column's definition changed.
    AlterColumn {
        /// The column's (old) name.
        name: String,
        /// The new definition.
        column: ColumnDef,
    },
    /// The table was dropped.
    DropTable,
}

/// A schema change (DDL) on a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChangeEvent {
    /// Unique, stable event id: the LSN in decimal.
    pub id: String,
    /// LSN of the schema record.
    pub lsn: Lsn,
    /// Table concerned.
    pub table: String,
    /// Schema version after the change.
    pub schema_version: u32,
    /// The change.
    pub change: SchemaChange,
    /// The transaction.
    pub txn: TxnContext,
}

/// Anything a subscription delivers, in LSN order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T = Bytes> {
    /// A row change.
    Change(ChangeEvent<T>),
    /// A transaction boundary (only with `include_transaction_control`).
    Transaction(TransactionEvent),
    /// A schema change.
    Schema(SchemaChangeEvent),
}

impl<T> Event<T> {
    /// The event's LSN.
    pub fn lsn(&self) -> Lsn {
        match self {
            Event::Change(e) => e.lsn,
            Event::Transaction(e) => e.lsn,
            Event::Schema(e) => e.lsn,
        }
    }

    /// The transaction the event belongs to.
    pub fn txn(&self) -> &TxnContext {
        match self {
            Event::Change(e) => &e.txn,
            Event::Transaction(e) => &e.txn,
            Event::Schema(e) => &e.txn,
        }
    }

    /// The row change, if this is one.
    pub fn as_change(&self) -> Option<&ChangeEvent<T>> {
        match self {
            Event::Change(e) => Some(e),
            _ => None,
        }
    }

    /// Converts into the row change, if this is one.
    pub fn into_change(self) -> Option<ChangeEvent<T>> {
        match self {
            Event::Change(e) => Some(e),
            _ => None,
        }
    }
}
