//! Cold storage below the local WAL: the trait a higher layer (the archive) implements so that a
//! subscription from an LSN older than the oldest local segment reads the archived transactions
//! first and then continues into the WAL, as one gap-free, duplicate-free stream.
//!
//! The CDC layer cannot import the archive (layering runs wal ← engine ← cdc ← archive), so the
//! archive implements [`ColdSource`] and hands it to [`crate::Cdc::with_cold_source`]. A cold
//! source returns *engine records* ([`EngineRecord`]) rebuilt from what it stored, and the stream
//! runs them through the same transaction assembly, filters, masks and transaction-control logic
//! as records read from the WAL, so hot and cold events are the same events.
//!
//! ```text
//!  from_lsn            cold range (first..=last)        WAL (oldest..)
//!     │ ◄──────────── ColdSource::read_chunk ───────────► │ ◄──── Reader ────►
//!     └─ stream switches to the WAL at last + 1 (always a transaction boundary) ─┘
//! ```

use walden_engine::record::EngineRecord;

use crate::Lsn;

/// The error a cold source reports (its own type, boxed); the stream wraps it in
/// [`crate::CdcError::SubscriptionFailed`].
pub type ColdError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The LSN range a cold source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdRange {
    /// First LSN covered.
    pub first_lsn: Lsn,
    /// Last LSN covered: everything from `first_lsn` through it was archived (transactions
    /// without changes leave no trace and are not delivered by a hot stream either).
    pub last_lsn: Lsn,
}

/// One record rebuilt by a cold source.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its timestamp, µs since the Unix epoch (for BEGIN: the transaction's commit time, as the
    /// WAL stamps every record of a transaction with one time).
    pub timestamp_us: u64,
    /// The engine record.
    pub record: EngineRecord,
}

/// A chunk of whole transactions from a cold source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColdChunk {
    /// Records in strictly increasing LSN order: for each transaction its BEGIN, changes and
    /// COMMIT, all of them (also those before the `from_lsn` that was asked for).
    pub records: Vec<ColdRecord>,
    /// The LSN to ask for next: one past the COMMIT of the last transaction returned, or one past
    /// `through_lsn` when nothing more lies at or below it. Always greater than `from_lsn`.
    pub next_lsn: Lsn,
}

/// Archived transactions, readable by LSN. Implemented by the archive (`walden-archive`).
///
/// Implementations block (a stream calls them on its own thread); they must return whole
/// transactions only, in LSN order, and never skip one that has changes.
pub trait ColdSource: Send + Sync + std::fmt::Debug {
    /// The range held now (`None`: nothing archived). It only ever grows at the top; its start
    /// may move up when old data is expired.
    fn range(&self) -> Result<Option<ColdRange>, ColdError>;

    /// Every transaction that has at least one change and whose COMMIT LSN is at or after
    /// `from_lsn`, up to and including `through_lsn` (a transaction boundary), in LSN order,
    /// about `max_records` records at a time (at least one whole transaction when one remains).
    fn read_chunk(&self, from_lsn: Lsn, through_lsn: Lsn, max_records: usize) -> Result<ColdChunk, ColdError>;
}

/// The engine's form of a schema change event's [`crate::SchemaChange`] (the inverse of what a
/// stream does when it turns a SCHEMA record into an event), for cold sources that stored the
/// event form.
pub fn schema_change_record(change: &crate::SchemaChange) -> walden_engine::record::SchemaChange {
    use walden_engine::record::{Column, SchemaChange as Rec};

    use crate::SchemaChange as Ev;
    let column = |c: &crate::ColumnDef| Column::new(c.name.clone(), c.data_type.clone(), c.nullable);
    match change {
        Ev::CreateTable { columns } => Rec::CreateTable { columns: columns.iter().map(column).collect() },
        Ev::AddColumn { column: c } => Rec::AddColumn { column: column(c) },
        Ev::DropColumn { name } => Rec::DropColumn { name: name.clone() },
        Ev::AlterColumn { name, column: c } => Rec::AlterColumn { name: name.clone(), column: column(c) },
        Ev::DropTable => Rec::DropTable,
    }
}
