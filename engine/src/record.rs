//! The engine's WAL records: what a transaction writes, and the versioned payload encoding.
//!
//! A committed transaction is one atomic WAL batch with consecutive LSNs:
//!
//! ```text
//! BEGIN (offset 0) · change 1 (offset 1) · … · change n (offset n) · COMMIT (offset n + 1)
//! ```
//!
//! where a change is a row change (INSERT / UPDATE / DELETE) or a SCHEMA change. The transaction
//! id is the LSN of its BEGIN record. Every record stores its offset within the transaction (BEGIN
//! implicitly 0, a change its `seq`, COMMIT `change_count + 1`), so any single record, read on its
//! own, names its transaction: `txn_id = lsn - offset` (see [`EngineRecord::txn_id`]).
//!
//! Byte layouts are in `docs/FORMAT.md` ("Engine records").

use bytes::Bytes;

use crate::Lsn;
use crate::codec::{self, DecodeError, Decoder};

/// The payload encoding version this build writes and reads (the first byte of every payload).
pub const ENCODING_VERSION: u8 = 1;

/// WAL `kind` byte of a BEGIN record.
pub const KIND_BEGIN: u8 = 1;
/// WAL `kind` byte of an INSERT record.
pub const KIND_INSERT: u8 = 2;
/// WAL `kind` byte of an UPDATE record.
pub const KIND_UPDATE: u8 = 3;
/// WAL `kind` byte of a DELETE record.
pub const KIND_DELETE: u8 = 4;
/// WAL `kind` byte of a SCHEMA record.
pub const KIND_SCHEMA: u8 = 5;
/// WAL `kind` byte of a COMMIT record.
pub const KIND_COMMIT: u8 = 6;

const FLAG_BEFORE: u8 = 0b01;
const FLAG_AFTER: u8 = 0b10;

const TAG_CREATE_TABLE: u8 = 1;
const TAG_ADD_COLUMN: u8 = 2;
const TAG_DROP_COLUMN: u8 = 3;
const TAG_ALTER_COLUMN: u8 = 4;
const TAG_DROP_TABLE: u8 = 5;

/// Smallest encoded column: three one-byte fields (empty strings are rejected, but the bound only
/// needs to be a lower one).
const MIN_COLUMN_BYTES: usize = 3;

/// The operation of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeOp {
    /// A new row: `after` only.
    Insert,
    /// A changed row: `after`, and `before` when the host supplies it.
    Update,
    /// A removed row: `before` when the host supplies it, never `after`.
    Delete,
}

impl ChangeOp {
    /// The WAL `kind` byte of records with this operation.
    pub fn kind(self) -> u8 {
        match self {
            ChangeOp::Insert => KIND_INSERT,
            ChangeOp::Update => KIND_UPDATE,
            ChangeOp::Delete => KIND_DELETE,
        }
    }

    /// Checks which row images a change with this operation may carry: INSERT needs `after` and
    /// no `before`; UPDATE needs `after`; DELETE must not have `after`.
    pub fn check_images(self, has_before: bool, has_after: bool) -> Result<(), &'static str> {
        match (self, has_before, has_after) {
            (ChangeOp::Insert, false, true) => Ok(()),
            (ChangeOp::Insert, _, _) => Err("an INSERT carries an after image and no before image"),
            (ChangeOp::Update, _, true) => Ok(()),
            (ChangeOp::Update, _, false) => Err("an UPDATE carries an after image"),
            (ChangeOp::Delete, _, false) => Ok(()),
            (ChangeOp::Delete, _, true) => Err("a DELETE carries no after image"),
        }
    }
}

/// BEGIN: opens a transaction and carries its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// Number of changes (row and schema) between BEGIN and COMMIT.
    pub change_count: u32,
    /// Caller-chosen id tying this transaction to a request, job or message.
    pub correlation_id: Option<String>,
    /// Who made the change (user, service).
    pub actor: Option<String>,
    /// Tenant, schema or database namespace the transaction belongs to.
    pub namespace: Option<String>,
}

/// INSERT / UPDATE / DELETE of one row. Keys and row images are opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// Position in the transaction, 1-based (the record's LSN minus the BEGIN LSN).
    pub seq: u32,
    /// The operation (also given by the WAL kind).
    pub op: ChangeOp,
    /// Table name (non-empty UTF-8).
    pub table: String,
    /// Row key.
    pub key: Bytes,
    /// Row image before the change.
    pub before: Option<Bytes>,
    /// Row image after the change.
    pub after: Option<Bytes>,
}

/// One column definition in a schema change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    /// Column name (non-empty UTF-8).
    pub name: String,
    /// Host-defined data type name, e.g. `"INTEGER"` or `"text"` (non-empty UTF-8; the engine
    /// does not interpret it).
    pub data_type: String,
    /// Whether the column accepts NULL.
    pub nullable: bool,
}

impl Column {
    /// A column definition.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>, nullable: bool) -> Column {
        Column { name: name.into(), data_type: data_type.into(), nullable }
    }
}

/// What a SCHEMA record changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// A new table with these columns.
    CreateTable {
        /// The columns, in order.
        columns: Vec<Column>,
    },
    /// A column appended to the table.
    AddColumn {
        /// The new column.
        column: Column,
    },
    /// A column removed from the table.
    DropColumn {
        /// Name of the removed column.
        name: String,
    },
    /// A column redefined (renamed, retyped or nullability changed).
    AlterColumn {
        /// Current name of the column.
        name: String,
        /// Its new definition.
        column: Column,
    },
    /// The table removed.
    DropTable,
}

/// SCHEMA: a DDL change to one table, with the table's schema version after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Position in the transaction, 1-based.
    pub seq: u32,
    /// Table name (non-empty UTF-8).
    pub table: String,
    /// The table's schema version after this change (host-assigned).
    pub schema_version: u32,
    /// The change.
    pub change: SchemaChange,
}

/// COMMIT: closes a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Number of changes in the transaction (equals BEGIN's).
    pub change_count: u32,
}

/// One decoded engine record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineRecord {
    /// Transaction start.
    Begin(Begin),
    /// Row change.
    Change(RowChange),
    /// Schema change.
    Schema(SchemaRecord),
    /// Transaction end.
    Commit(Commit),
}

impl EngineRecord {
    /// The WAL `kind` byte this record is stored under.
    pub fn kind(&self) -> u8 {
        match self {
            EngineRecord::Begin(_) => KIND_BEGIN,
            EngineRecord::Change(c) => c.op.kind(),
            EngineRecord::Schema(_) => KIND_SCHEMA,
            EngineRecord::Commit(_) => KIND_COMMIT,
        }
    }

    /// The record's offset within its transaction: 0 for BEGIN, `seq` for a change,
    /// `change_count + 1` for COMMIT.
    pub fn txn_offset(&self) -> u64 {
        match self {
            EngineRecord::Begin(_) => 0,
            EngineRecord::Change(c) => u64::from(c.seq),
            EngineRecord::Schema(s) => u64::from(s.seq),
            EngineRecord::Commit(c) => u64::from(c.change_count) + 1,
        }
    }

    /// The id of the transaction this record belongs to, given the record's LSN: the LSN of the
    /// transaction's BEGIN. `None` if the offset is impossible at that LSN (a damaged record).
    pub fn txn_id(&self, lsn: Lsn) -> Option<u64> {
        lsn.checked_sub(self.txn_offset()).filter(|&id| id >= 1)
    }

    /// The table a row or schema change touches (`None` for BEGIN/COMMIT).
    pub fn table(&self) -> Option<&str> {
        match self {
            EngineRecord::Change(c) => Some(&c.table),
            EngineRecord::Schema(s) => Some(&s.table),
            _ => None,
        }
    }

    /// Encodes the payload (version byte first). Does not validate: encoding a record that
    /// [`decode`] would reject (an empty table name, an INSERT with a before image) produces bytes
    /// that [`decode`] rejects.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            EngineRecord::Begin(b) => encode_begin(
                out,
                b.change_count,
                b.correlation_id.as_deref(),
                b.actor.as_deref(),
                b.namespace.as_deref(),
            ),
            EngineRecord::Change(c) => {
                encode_row_change(out, c.seq, &c.table, &c.key, c.before.as_deref(), c.after.as_deref())
            }
            EngineRecord::Schema(s) => encode_schema(out, s.seq, &s.table, s.schema_version, &s.change),
            EngineRecord::Commit(c) => encode_commit(out, c.change_count),
        }
    }

    /// Exact length of [`EngineRecord::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        match self {
            EngineRecord::Begin(b) => {
                begin_len(b.change_count, b.correlation_id.as_deref(), b.actor.as_deref(), b.namespace.as_deref())
            }
            EngineRecord::Change(c) => row_change_len(
                c.seq,
                &c.table,
                c.key.len(),
                c.before.as_ref().map(Bytes::len),
                c.after.as_ref().map(Bytes::len),
            ),
            EngineRecord::Schema(s) => schema_len(s.seq, &s.table, &s.change),
            EngineRecord::Commit(c) => commit_len(c.change_count),
        }
    }
}

pub(crate) fn encode_begin(
    out: &mut Vec<u8>,
    change_count: u32,
    correlation_id: Option<&str>,
    actor: Option<&str>,
    namespace: Option<&str>,
) {
    out.push(ENCODING_VERSION);
    codec::put_varint(out, u64::from(change_count));
    codec::put_opt_str(out, correlation_id);
    codec::put_opt_str(out, actor);
    codec::put_opt_str(out, namespace);
}

pub(crate) fn begin_len(
    change_count: u32,
    correlation_id: Option<&str>,
    actor: Option<&str>,
    namespace: Option<&str>,
) -> usize {
    1 + codec::varint_len(u64::from(change_count))
        + codec::opt_str_len(correlation_id)
        + codec::opt_str_len(actor)
        + codec::opt_str_len(namespace)
}

pub(crate) fn encode_row_change(
    out: &mut Vec<u8>,
    seq: u32,
    table: &str,
    key: &[u8],
    before: Option<&[u8]>,
    after: Option<&[u8]>,
) {
    out.push(ENCODING_VERSION);
    codec::put_varint(out, u64::from(seq));
    codec::put_bytes(out, table.as_bytes());
    codec::put_bytes(out, key);
    let flags = if before.is_some() { FLAG_BEFORE } else { 0 } | if after.is_some() { FLAG_AFTER } else { 0 };
    out.push(flags);
    if let Some(b) = before {
        codec::put_bytes(out, b);
    }
    if let Some(a) = after {
        codec::put_bytes(out, a);
    }
}

pub(crate) fn row_change_len(
    seq: u32,
    table: &str,
    key_len: usize,
    before_len: Option<usize>,
    after_len: Option<usize>,
) -> usize {
    1 + codec::varint_len(u64::from(seq))
        + codec::bytes_len(table.len())
        + codec::bytes_len(key_len)
        + 1
        + before_len.map_or(0, codec::bytes_len)
        + after_len.map_or(0, codec::bytes_len)
}

fn encode_column(out: &mut Vec<u8>, c: &Column) {
    codec::put_bytes(out, c.name.as_bytes());
    codec::put_bytes(out, c.data_type.as_bytes());
    out.push(u8::from(c.nullable));
}

fn column_len(c: &Column) -> usize {
    codec::bytes_len(c.name.len()) + codec::bytes_len(c.data_type.len()) + 1
}

pub(crate) fn encode_schema(out: &mut Vec<u8>, seq: u32, table: &str, schema_version: u32, change: &SchemaChange) {
    out.push(ENCODING_VERSION);
    codec::put_varint(out, u64::from(seq));
    codec::put_bytes(out, table.as_bytes());
    out.extend_from_slice(&schema_version.to_le_bytes());
    match change {
        SchemaChange::CreateTable { columns } => {
            out.push(TAG_CREATE_TABLE);
            codec::put_varint(out, columns.len() as u64);
            for c in columns {
                encode_column(out, c);
            }
        }
        SchemaChange::AddColumn { column } => {
            out.push(TAG_ADD_COLUMN);
            encode_column(out, column);
        }
        SchemaChange::DropColumn { name } => {
            out.push(TAG_DROP_COLUMN);
            codec::put_bytes(out, name.as_bytes());
        }
        SchemaChange::AlterColumn { name, column } => {
            out.push(TAG_ALTER_COLUMN);
            codec::put_bytes(out, name.as_bytes());
            encode_column(out, column);
        }
        SchemaChange::DropTable => out.push(TAG_DROP_TABLE),
    }
}

pub(crate) fn schema_len(seq: u32, table: &str, change: &SchemaChange) -> usize {
    let head = 1 + codec::varint_len(u64::from(seq)) + codec::bytes_len(table.len()) + 4 + 1;
    head + match change {
        SchemaChange::CreateTable { columns } => {
            codec::varint_len(columns.len() as u64) + columns.iter().map(column_len).sum::<usize>()
        }
        SchemaChange::AddColumn { column } => column_len(column),
        SchemaChange::DropColumn { name } => codec::bytes_len(name.len()),
        SchemaChange::AlterColumn { name, column } => codec::bytes_len(name.len()) + column_len(column),
        SchemaChange::DropTable => 0,
    }
}

pub(crate) fn encode_commit(out: &mut Vec<u8>, change_count: u32) {
    out.push(ENCODING_VERSION);
    codec::put_varint(out, u64::from(change_count));
}

pub(crate) fn commit_len(change_count: u32) -> usize {
    1 + codec::varint_len(u64::from(change_count))
}

/// Decodes the payload of a WAL record of kind `kind`. Copies the payload once; see
/// [`decode_bytes`] for the zero-copy form. Never panics; every malformation is a typed
/// [`DecodeError`].
pub fn decode(kind: u8, payload: &[u8]) -> Result<EngineRecord, DecodeError> {
    decode_bytes(kind, &Bytes::copy_from_slice(payload))
}

/// Like [`decode`], but keys and row images are zero-copy slices of `payload`.
pub fn decode_bytes(kind: u8, payload: &Bytes) -> Result<EngineRecord, DecodeError> {
    if !(KIND_BEGIN..=KIND_COMMIT).contains(&kind) {
        return Err(DecodeError::UnknownKind(kind));
    }
    let mut d = Decoder::new(payload);
    let version = d.u8("version").map_err(|_| DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version, supported: ENCODING_VERSION });
    }
    let record = match kind {
        KIND_BEGIN => EngineRecord::Begin(Begin {
            change_count: d.varint_u32("change_count")?,
            correlation_id: d.opt_string("correlation_id")?,
            actor: d.opt_string("actor")?,
            namespace: d.opt_string("namespace")?,
        }),
        KIND_INSERT | KIND_UPDATE | KIND_DELETE => {
            let c = decode_row_change_body(kind, &mut d)?;
            EngineRecord::Change(RowChange {
                seq: c.seq,
                op: c.op,
                table: c.table.to_owned(),
                key: payload.slice(c.key),
                before: c.before.map(|r| payload.slice(r)),
                after: c.after.map(|r| payload.slice(r)),
            })
        }
        KIND_SCHEMA => {
            let seq = decode_seq(&mut d)?;
            let table = d.name("table")?;
            let schema_version = d.u32_le("schema_version")?;
            let change = match d.u8("schema change tag")? {
                TAG_CREATE_TABLE => {
                    let n = d.count("column count", MIN_COLUMN_BYTES)?;
                    let mut columns = Vec::with_capacity(n);
                    for _ in 0..n {
                        columns.push(decode_column(&mut d)?);
                    }
                    SchemaChange::CreateTable { columns }
                }
                TAG_ADD_COLUMN => SchemaChange::AddColumn { column: decode_column(&mut d)? },
                TAG_DROP_COLUMN => SchemaChange::DropColumn { name: d.name("column name")? },
                TAG_ALTER_COLUMN => {
                    SchemaChange::AlterColumn { name: d.name("column name")?, column: decode_column(&mut d)? }
                }
                TAG_DROP_TABLE => SchemaChange::DropTable,
                other => {
                    return Err(DecodeError::InvalidValue {
                        field: "schema change tag",
                        detail: format!("unknown tag {other}"),
                    });
                }
            };
            EngineRecord::Schema(SchemaRecord { seq, table, schema_version, change })
        }
        _ => EngineRecord::Commit(Commit { change_count: d.varint_u32("change_count")? }),
    };
    d.finish()?;
    Ok(record)
}

/// A row change decoded in place: the table name borrowed from the payload, the key and images
/// as byte ranges of it. Nothing is allocated and no reference count is touched, so a reader
/// can look at a change (its table, its position in the transaction) before deciding to build
/// a [`RowChange`]. From [`decode_row_change_ref`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChangeRef<'a> {
    /// Position in the transaction, 1-based (the record's LSN minus the BEGIN LSN).
    pub seq: u32,
    /// The operation (given by the WAL kind).
    pub op: ChangeOp,
    /// Table name (non-empty UTF-8).
    pub table: &'a str,
    /// Range of the row key in the payload.
    pub key: std::ops::Range<usize>,
    /// Range of the row image before the change, if any.
    pub before: Option<std::ops::Range<usize>>,
    /// Range of the row image after the change, if any.
    pub after: Option<std::ops::Range<usize>>,
}

/// Decodes a row-change record (kinds INSERT, UPDATE, DELETE) in place, with exactly the checks
/// of [`decode`] (it is the same decoder): `Ok(None)` for a record of any other kind, and for a
/// row change the error [`decode`] would return. Never panics.
pub fn decode_row_change_ref(kind: u8, payload: &[u8]) -> Result<Option<RowChangeRef<'_>>, DecodeError> {
    if !matches!(kind, KIND_INSERT | KIND_UPDATE | KIND_DELETE) {
        return Ok(None);
    }
    let mut d = Decoder::new(payload);
    let version = d.u8("version").map_err(|_| DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version, supported: ENCODING_VERSION });
    }
    let change = decode_row_change_body(kind, &mut d)?;
    d.finish()?;
    Ok(Some(change))
}

/// The body of a row change (after the version byte); `kind` is a row-change kind.
fn decode_row_change_body<'a>(kind: u8, d: &mut Decoder<'a>) -> Result<RowChangeRef<'a>, DecodeError> {
    let op = match kind {
        KIND_INSERT => ChangeOp::Insert,
        KIND_UPDATE => ChangeOp::Update,
        _ => ChangeOp::Delete,
    };
    let seq = decode_seq(d)?;
    let table = d.name_str("table")?;
    let key = d.bytes_range("key")?;
    let flags = d.u8("image flags")?;
    if flags & !(FLAG_BEFORE | FLAG_AFTER) != 0 {
        return Err(DecodeError::InvalidValue { field: "image flags", detail: format!("unknown bits {flags:#04x}") });
    }
    let has_before = flags & FLAG_BEFORE != 0;
    let has_after = flags & FLAG_AFTER != 0;
    op.check_images(has_before, has_after)
        .map_err(|detail| DecodeError::InvalidValue { field: "image flags", detail: detail.to_string() })?;
    let before = if has_before { Some(d.bytes_range("before")?) } else { None };
    let after = if has_after { Some(d.bytes_range("after")?) } else { None };
    Ok(RowChangeRef { seq, op, table, key, before, after })
}

fn decode_seq(d: &mut Decoder<'_>) -> Result<u32, DecodeError> {
    let seq = d.varint_u32("seq")?;
    if seq == 0 {
        return Err(DecodeError::InvalidValue { field: "seq", detail: "changes are numbered from 1".to_string() });
    }
    Ok(seq)
}

fn decode_column(d: &mut Decoder<'_>) -> Result<Column, DecodeError> {
    Ok(Column { name: d.name("column name")?, data_type: d.name("column data type")?, nullable: d.bool("nullable")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place decoder is the same decoder: on every sample, every truncation of it and
    /// every single-byte change of it, it succeeds or fails exactly as `decode` does.
    #[test]
    fn decode_row_change_ref_agrees_with_decode_on_valid_and_damaged_payloads() {
        for record in samples() {
            let kind = record.kind();
            let payload = record.encode();
            let mut variants = vec![payload.clone()];
            variants.extend((0..payload.len()).map(|n| payload[..n].to_vec()));
            for at in 0..payload.len() {
                for byte in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut damaged = payload.clone();
                    damaged[at] = byte;
                    variants.push(damaged);
                }
            }
            for bytes in variants {
                let full = decode(kind, &bytes);
                match (decode_row_change_ref(kind, &bytes), full) {
                    (Ok(None), Ok(r)) => assert!(!matches!(r, EngineRecord::Change(_)), "{r:?}"),
                    (Ok(None), Err(_)) => assert!(!matches!(kind, KIND_INSERT | KIND_UPDATE | KIND_DELETE)),
                    (Ok(Some(c)), Ok(EngineRecord::Change(r))) => {
                        assert_eq!((c.seq, c.op, c.table), (r.seq, r.op, r.table.as_str()));
                        assert_eq!(&bytes[c.key.clone()], &r.key[..]);
                        assert_eq!(c.before.map(|b| bytes[b].to_vec()), r.before.map(|b| b.to_vec()));
                        assert_eq!(c.after.map(|a| bytes[a].to_vec()), r.after.map(|a| a.to_vec()));
                    }
                    (Err(e), Err(full)) => assert_eq!(e, full),
                    (mine, full) => panic!("in place {mine:?}, decode {full:?} on {bytes:?}"),
                }
            }
        }
    }

    fn samples() -> Vec<EngineRecord> {
        vec![
            EngineRecord::Begin(Begin { change_count: 0, correlation_id: None, actor: None, namespace: None }),
            EngineRecord::Begin(Begin {
                change_count: 300,
                correlation_id: Some("req-7".into()),
                actor: Some("alice".into()),
                namespace: Some("".into()),
            }),
            EngineRecord::Change(RowChange {
                seq: 1,
                op: ChangeOp::Insert,
                table: "users".into(),
                key: Bytes::from_static(b"k1"),
                before: None,
                after: Some(Bytes::from_static(b"{\"a\":1}")),
            }),
            EngineRecord::Change(RowChange {
                seq: 200,
                op: ChangeOp::Update,
                table: "t".into(),
                key: Bytes::new(),
                before: Some(Bytes::new()),
                after: Some(Bytes::from_static(b"x")),
            }),
            EngineRecord::Change(RowChange {
                seq: 2,
                op: ChangeOp::Delete,
                table: "t".into(),
                key: Bytes::from_static(b"k"),
                before: None,
                after: None,
            }),
            EngineRecord::Schema(SchemaRecord {
                seq: 3,
                table: "users".into(),
                schema_version: 7,
                change: SchemaChange::CreateTable {
                    columns: vec![Column::new("id", "BIGINT", false), Column::new("name", "TEXT", true)],
                },
            }),
            EngineRecord::Schema(SchemaRecord {
                seq: 4,
                table: "users".into(),
                schema_version: 8,
                change: SchemaChange::AlterColumn {
                    name: "name".into(),
                    column: Column::new("full_name", "TEXT", false),
                },
            }),
            EngineRecord::Schema(SchemaRecord {
                seq: 5,
                table: "u".into(),
                schema_version: 9,
                change: SchemaChange::DropTable,
            }),
            EngineRecord::Commit(Commit { change_count: u32::MAX }),
        ]
    }

    #[test]
    fn every_sample_round_trips_and_every_prefix_fails() {
        for r in samples() {
            let bytes = r.encode();
            assert_eq!(bytes.len(), r.encoded_len(), "{r:?}");
            assert_eq!(decode(r.kind(), &bytes).unwrap(), r);
            for cut in 0..bytes.len() {
                assert!(decode(r.kind(), &bytes[..cut]).is_err(), "prefix {cut} of {r:?} decoded");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(r.kind(), &longer), Err(DecodeError::TrailingBytes { count: 1 }));
        }
    }

    #[test]
    fn typed_errors_for_bad_input() {
        assert_eq!(decode(0, &[1]), Err(DecodeError::UnknownKind(0)));
        assert_eq!(decode(7, &[1]), Err(DecodeError::UnknownKind(7)));
        assert_eq!(decode(KIND_COMMIT, &[]), Err(DecodeError::Empty));
        assert_eq!(decode(KIND_COMMIT, &[2, 0]), Err(DecodeError::UnsupportedVersion { found: 2, supported: 1 }));
        // INSERT with a before image.
        let mut bad = Vec::new();
        encode_row_change(&mut bad, 1, "t", b"k", Some(b"b"), Some(b"a"));
        assert!(matches!(decode(KIND_INSERT, &bad), Err(DecodeError::InvalidValue { field: "image flags", .. })));
        // seq 0.
        let mut bad = Vec::new();
        encode_row_change(&mut bad, 0, "t", b"k", None, Some(b"a"));
        assert!(matches!(decode(KIND_INSERT, &bad), Err(DecodeError::InvalidValue { field: "seq", .. })));
        // Empty table name.
        let mut bad = Vec::new();
        encode_row_change(&mut bad, 1, "", b"k", None, Some(b"a"));
        assert!(matches!(decode(KIND_INSERT, &bad), Err(DecodeError::InvalidValue { field: "table", .. })));
        // A column count that cannot fit.
        let bad = [1u8, 1, 1, b't', 0, 0, 0, 0, TAG_CREATE_TABLE, 0xff, 0xff, 0x03];
        assert!(matches!(decode(KIND_SCHEMA, &bad), Err(DecodeError::LengthOutOfBounds { .. })));
    }

    #[test]
    fn bytes_match_the_documented_example() {
        // docs/FORMAT.md, "INSERT (2), UPDATE (3), DELETE (4)".
        let mut out = Vec::new();
        encode_row_change(&mut out, 2, "users", b"1", None, Some(b"alice"));
        let documented =
            [0x01, 0x02, 0x05, 0x75, 0x73, 0x65, 0x72, 0x73, 0x01, 0x31, 0x02, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65];
        assert_eq!(out, documented);
    }

    #[test]
    fn txn_id_is_the_begin_lsn() {
        let s = samples();
        assert_eq!(s[0].txn_id(10), Some(10));
        assert_eq!(s[2].txn_id(11), Some(10));
        assert_eq!(EngineRecord::Commit(Commit { change_count: 1 }).txn_id(12), Some(10));
        assert_eq!(EngineRecord::Commit(Commit { change_count: 5 }).txn_id(3), None);
    }
}
