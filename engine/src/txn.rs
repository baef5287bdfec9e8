//! Transactions: changes are encoded into a private buffer as they are made (no lock, no I/O);
//! `commit` hands BEGIN, the changes and COMMIT to the WAL as one atomic batch.

use std::ops::Range;

use walden_wal::WalError;
use walden_wal::format::RECORD_HEADER_LEN;

use crate::Lsn;
use crate::db::Database;
use crate::error::{EngineError, Result};
use crate::record::{self, ChangeOp, Column, KIND_BEGIN, KIND_COMMIT, KIND_SCHEMA, SchemaChange};

/// Upper bound of an encoded BEGIN without metadata, or of a COMMIT (version + 5-byte varint).
const MAX_FRAME_RECORD_BYTES: u64 = 6;

/// What a successful commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The transaction id: the LSN of its BEGIN record.
    pub txn_id: u64,
    /// LSN of the COMMIT record (the transaction's position in commit order).
    pub commit_lsn: Lsn,
    /// Number of changes (row and schema) in the transaction.
    pub change_count: u32,
}

impl CommitInfo {
    /// The LSNs of all the transaction's records, BEGIN to COMMIT.
    pub fn lsns(&self) -> std::ops::RangeInclusive<Lsn> {
        self.txn_id..=self.commit_lsn
    }
}

/// An open transaction, from [`Database::begin`]. Changes are buffered in memory (up to
/// `Config::max_transaction_bytes`) and written by [`Transaction::commit`] as one atomic WAL
/// batch with consecutive LSNs. [`Transaction::rollback`] or dropping it writes nothing.
#[derive(Debug)]
pub struct Transaction<'db> {
    db: &'db Database,
    buf: Vec<u8>,
    records: Vec<(u8, Range<usize>)>,
    /// Encoded size of the changes plus one WAL record header each.
    change_bytes: u64,
    correlation_id: Option<String>,
    actor: Option<String>,
    namespace: Option<String>,
    /// Set once an operation was refused for size: the transaction can only be rolled back.
    refused: Option<(u64, u64)>,
}

impl<'db> Transaction<'db> {
    pub(crate) fn new(db: &'db Database) -> Transaction<'db> {
        Transaction {
            db,
            buf: Vec::new(),
            records: Vec::new(),
            change_bytes: 0,
            correlation_id: None,
            actor: None,
            namespace: None,
            refused: None,
        }
    }

    /// Sets the correlation id written in the BEGIN record.
    pub fn set_correlation_id(&mut self, id: impl Into<String>) -> &mut Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the actor written in the BEGIN record.
    pub fn set_actor(&mut self, actor: impl Into<String>) -> &mut Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the namespace written in the BEGIN record.
    pub fn set_namespace(&mut self, namespace: impl Into<String>) -> &mut Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Number of changes so far.
    pub fn change_count(&self) -> usize {
        self.records.len()
    }

    /// Bytes the transaction counts against the limit so far (changes, BEGIN, COMMIT and one WAL
    /// record header each).
    pub fn size_bytes(&self) -> u64 {
        self.change_bytes + self.frame_bytes()
    }

    /// Records a new row.
    pub fn insert(&mut self, table: &str, key: &[u8], after: &[u8]) -> Result<()> {
        self.row(ChangeOp::Insert, table, key, None, Some(after))
    }

    /// Records a changed row with its before and after images.
    pub fn update(&mut self, table: &str, key: &[u8], before: &[u8], after: &[u8]) -> Result<()> {
        self.row(ChangeOp::Update, table, key, Some(before), Some(after))
    }

    /// Records a removed row with its before image.
    pub fn delete(&mut self, table: &str, key: &[u8], before: &[u8]) -> Result<()> {
        self.row(ChangeOp::Delete, table, key, Some(before), None)
    }

    /// Records a row change with optional images (checked per operation: an INSERT carries only
    /// `after`, an UPDATE needs `after`, a DELETE has no `after`).
    pub fn change(
        &mut self,
        op: ChangeOp,
        table: &str,
        key: &[u8],
        before: Option<&[u8]>,
        after: Option<&[u8]>,
    ) -> Result<()> {
        self.row(op, table, key, before, after)
    }

    /// Records `CREATE TABLE` with its columns; `schema_version` is the table's version after it.
    pub fn create_table(&mut self, table: &str, schema_version: u32, columns: &[Column]) -> Result<()> {
        self.schema(table, schema_version, SchemaChange::CreateTable { columns: columns.to_vec() })
    }

    /// Records `ALTER TABLE … ADD COLUMN`.
    pub fn add_column(&mut self, table: &str, schema_version: u32, column: Column) -> Result<()> {
        self.schema(table, schema_version, SchemaChange::AddColumn { column })
    }

    /// Records `ALTER TABLE … DROP COLUMN`.
    pub fn drop_column(&mut self, table: &str, schema_version: u32, name: &str) -> Result<()> {
        self.schema(table, schema_version, SchemaChange::DropColumn { name: name.to_string() })
    }

    /// Records `ALTER TABLE … ALTER COLUMN name` with the column's new definition.
    pub fn alter_column(&mut self, table: &str, schema_version: u32, name: &str, column: Column) -> Result<()> {
        self.schema(table, schema_version, SchemaChange::AlterColumn { name: name.to_string(), column })
    }

    /// Records `DROP TABLE`.
    pub fn drop_table(&mut self, table: &str, schema_version: u32) -> Result<()> {
        self.schema(table, schema_version, SchemaChange::DropTable)
    }

    /// Records any schema change.
    pub fn schema(&mut self, table: &str, schema_version: u32, change: SchemaChange) -> Result<()> {
        check_name("table", table)?;
        match &change {
            SchemaChange::CreateTable { columns } => columns.iter().try_for_each(check_column)?,
            SchemaChange::AddColumn { column } => check_column(column)?,
            SchemaChange::DropColumn { name } => check_name("column name", name)?,
            SchemaChange::AlterColumn { name, column } => {
                check_name("column name", name)?;
                check_column(column)?;
            }
            SchemaChange::DropTable => {}
        }
        let seq = self.next_seq()?;
        let len = record::schema_len(seq, table, &change);
        self.reserve(len)?;
        let start = self.buf.len();
        record::encode_schema(&mut self.buf, seq, table, schema_version, &change);
        self.push(KIND_SCHEMA, start);
        Ok(())
    }

    fn row(
        &mut self,
        op: ChangeOp,
        table: &str,
        key: &[u8],
        before: Option<&[u8]>,
        after: Option<&[u8]>,
    ) -> Result<()> {
        check_name("table", table)?;
        op.check_images(before.is_some(), after.is_some()).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        let seq = self.next_seq()?;
        let len = record::row_change_len(seq, table, key.len(), before.map(<[u8]>::len), after.map(<[u8]>::len));
        self.reserve(len)?;
        let start = self.buf.len();
        record::encode_row_change(&mut self.buf, seq, table, key, before, after);
        self.push(op.kind(), start);
        Ok(())
    }

    fn next_seq(&self) -> Result<u32> {
        if let Some((size_bytes, max_bytes)) = self.refused {
            return Err(EngineError::TransactionTooLarge { size_bytes, max_bytes });
        }
        // `seq` of the new change, and COMMIT's offset `count + 1`, must fit in 32 bits.
        u32::try_from(self.records.len() + 1)
            .ok()
            .filter(|&s| s < u32::MAX)
            .ok_or_else(|| EngineError::InvalidInput("too many changes in one transaction".to_string()))
    }

    /// Checks that one more change of `len` encoded bytes fits both limits.
    fn reserve(&mut self, len: usize) -> Result<()> {
        let wal = &self.db.config().wal;
        let len = len as u64;
        if len > u64::from(wal.max_record_size_bytes) {
            return Err(EngineError::ChangeTooLarge {
                size_bytes: len,
                max_bytes: u64::from(wal.max_record_size_bytes),
            });
        }
        let max_bytes = self.db.config().effective_max_transaction_bytes();
        let size_bytes = self.size_bytes() + len + RECORD_HEADER_LEN as u64;
        if size_bytes > max_bytes {
            self.refused = Some((size_bytes, max_bytes));
            return Err(EngineError::TransactionTooLarge { size_bytes, max_bytes });
        }
        Ok(())
    }

    fn push(&mut self, kind: u8, start: usize) {
        let end = self.buf.len();
        self.change_bytes += (end - start + RECORD_HEADER_LEN) as u64;
        self.records.push((kind, start..end));
    }

    /// Bytes of BEGIN and COMMIT with their WAL headers (upper bound).
    fn frame_bytes(&self) -> u64 {
        let metadata = codec_len(&self.correlation_id) + codec_len(&self.actor) + codec_len(&self.namespace);
        2 * (MAX_FRAME_RECORD_BYTES + RECORD_HEADER_LEN as u64) + metadata
    }

    /// Writes BEGIN, the changes and COMMIT as one WAL batch and returns the COMMIT record's LSN
    /// once it is acknowledged per the sync mode (durable in `Always`/`Group`).
    pub fn commit(self) -> Result<Lsn> {
        self.commit_info().map(|c| c.commit_lsn)
    }

    /// Like [`Transaction::commit`], returning the transaction id and LSNs too.
    pub fn commit_info(self) -> Result<CommitInfo> {
        if let Some((size_bytes, max_bytes)) = self.refused {
            return Err(EngineError::TransactionTooLarge { size_bytes, max_bytes });
        }
        let max_bytes = self.db.config().effective_max_transaction_bytes();
        let size_bytes = self.size_bytes();
        if size_bytes > max_bytes {
            return Err(EngineError::TransactionTooLarge { size_bytes, max_bytes });
        }
        let change_count = self.records.len() as u32;
        let mut begin = Vec::with_capacity(record::begin_len(
            change_count,
            self.correlation_id.as_deref(),
            self.actor.as_deref(),
            self.namespace.as_deref(),
        ));
        record::encode_begin(
            &mut begin,
            change_count,
            self.correlation_id.as_deref(),
            self.actor.as_deref(),
            self.namespace.as_deref(),
        );
        let wal = &self.db.config().wal;
        if begin.len() as u64 > u64::from(wal.max_record_size_bytes) {
            return Err(EngineError::ChangeTooLarge {
                size_bytes: begin.len() as u64,
                max_bytes: u64::from(wal.max_record_size_bytes),
            });
        }
        let mut commit = Vec::with_capacity(MAX_FRAME_RECORD_BYTES as usize);
        record::encode_commit(&mut commit, change_count);
        let buf = &self.buf;
        let batch = std::iter::once((KIND_BEGIN, &begin[..]))
            .chain(self.records.iter().map(|(kind, range)| (*kind, &buf[range.clone()])))
            .chain(std::iter::once((KIND_COMMIT, &commit[..])));
        let range = self.db.wal().append_batch(batch).map_err(|e| match e {
            WalError::BatchTooLarge { size_bytes, max_bytes, .. } => {
                EngineError::TransactionTooLarge { size_bytes, max_bytes }
            }
            other => EngineError::Wal(other),
        })?;
        debug_assert_eq!(range.end() - range.start(), u64::from(change_count) + 1);
        Ok(CommitInfo { txn_id: *range.start(), commit_lsn: *range.end(), change_count })
    }

    /// Discards the transaction; nothing is written. (Dropping it does the same.)
    pub fn rollback(self) {}
}

fn codec_len(s: &Option<String>) -> u64 {
    s.as_ref().map_or(0, |s| s.len() as u64 + 10)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(EngineError::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

fn check_column(c: &Column) -> Result<()> {
    check_name("column name", &c.name)?;
    check_name("column data type", &c.data_type)
}
