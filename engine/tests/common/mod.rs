//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use walden_engine::{Config, Database, EngineRecord, LogEntry, Lsn, SyncMode, WalConfig};

/// Small segments so tests exercise rotation and retention quickly.
pub fn small_config(sync_mode: SyncMode) -> Config {
    Config {
        wal: WalConfig {
            target_segment_size_bytes: 4096,
            index_interval_bytes: 512,
            sync_mode,
            ..WalConfig::default()
        },
        ..Config::default()
    }
}

/// Every entry from the oldest retained LSN to the visible end.
pub fn read_all(db: &Database) -> Vec<LogEntry> {
    let oldest = db.wal().oldest_lsn();
    db.read_log(oldest).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

/// One transaction read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTxn {
    pub txn_id: u64,
    pub commit_lsn: Lsn,
    pub begin: EngineRecord,
    pub changes: Vec<EngineRecord>,
}

/// Groups entries into transactions, checking every structural guarantee: LSNs consecutive,
/// BEGIN … COMMIT contiguous with matching counts and sequence numbers, txn id = BEGIN LSN,
/// and (when `from_boundary`) no partial transaction at either end.
pub fn transactions(entries: &[LogEntry]) -> Vec<ReadTxn> {
    for w in entries.windows(2) {
        assert_eq!(w[1].lsn, w[0].lsn + 1, "LSNs must be consecutive");
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let begin = &entries[i];
        let EngineRecord::Begin(b) = &begin.record else {
            panic!("expected BEGIN at LSN {}, found {:?}", begin.lsn, begin.record)
        };
        assert_eq!(begin.txn_id, begin.lsn, "txn id is the BEGIN LSN");
        let n = b.change_count as usize;
        assert!(i + n + 1 < entries.len(), "transaction at {} is incomplete", begin.lsn);
        let mut changes = Vec::with_capacity(n);
        for (k, e) in entries[i + 1..=i + n].iter().enumerate() {
            assert_eq!(e.txn_id, begin.lsn, "change at {} belongs to another transaction", e.lsn);
            assert_eq!(e.record.txn_offset(), k as u64 + 1);
            assert!(matches!(e.record, EngineRecord::Change(_) | EngineRecord::Schema(_)), "{:?}", e.record);
            changes.push(e.record.clone());
        }
        let commit = &entries[i + n + 1];
        let EngineRecord::Commit(c) = &commit.record else {
            panic!("expected COMMIT at LSN {}, found {:?}", commit.lsn, commit.record)
        };
        assert_eq!(c.change_count as usize, n);
        assert_eq!(commit.txn_id, begin.lsn);
        out.push(ReadTxn { txn_id: begin.lsn, commit_lsn: commit.lsn, begin: begin.record.clone(), changes });
        i += n + 2;
    }
    out
}

/// Drops everything before the first BEGIN (retention may cut inside nothing, but a reader
/// started at a slot's restart LSN is always at a boundary; this is for reading from `oldest`).
pub fn from_first_begin(entries: Vec<LogEntry>) -> Vec<LogEntry> {
    let at = entries.iter().position(|e| matches!(e.record, EngineRecord::Begin(_))).unwrap_or(entries.len());
    entries[at..].to_vec()
}
