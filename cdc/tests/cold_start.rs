//! A stream starting inside a transaction that only a cold source still holds: the source
//! returns the whole transaction (its BEGIN and the records before the start LSN too), and the
//! stream delivers the rest of it, then everything after, exactly as a hot stream did before the
//! WAL was trimmed.

use std::sync::Arc;

use walden_cdc::cold::ColdError;
use walden_cdc::{Cdc, ColdChunk, ColdRange, ColdRecord, ColdSource, Event, SubscriptionOptions};
use walden_engine::{Config, Lsn, WalConfig};

mod common;
use common::{collect, temp_db};

/// The archived records, in memory.
#[derive(Debug)]
struct MemoryCold {
    records: Vec<ColdRecord>,
}

impl ColdSource for MemoryCold {
    fn range(&self) -> Result<Option<ColdRange>, ColdError> {
        Ok(self.records.first().zip(self.records.last()).map(|(f, l)| ColdRange { first_lsn: f.lsn, last_lsn: l.lsn }))
    }

    fn read_chunk(&self, from_lsn: Lsn, through_lsn: Lsn, max_records: usize) -> Result<ColdChunk, ColdError> {
        // Whole transactions whose COMMIT is at or after from_lsn, a few at a time.
        let mut records = Vec::new();
        let mut txn = Vec::new();
        let mut next_lsn = through_lsn + 1;
        for r in self.records.iter().filter(|r| r.lsn <= through_lsn) {
            txn.push(r.clone());
            if matches!(r.record, walden_engine::EngineRecord::Commit(_)) {
                if r.lsn >= from_lsn {
                    records.append(&mut txn);
                    if records.len() >= max_records {
                        next_lsn = r.lsn + 1;
                        break;
                    }
                }
                txn.clear();
            }
        }
        Ok(ColdChunk { records, next_lsn })
    }
}

#[test]
fn a_start_inside_an_archived_transaction_delivers_its_rest_then_everything_after() {
    let config =
        Config { wal: WalConfig { target_segment_size_bytes: 4096, ..WalConfig::default() }, ..Config::default() };
    let (_dir, db) = temp_db(config);
    let mut end = 0;
    for i in 0..120u32 {
        let mut t = db.begin();
        for j in 0..3u32 {
            t.insert("t", &(i * 3 + j).to_be_bytes(), format!("{{\"i\":{i},\"j\":{j}}}").as_bytes()).expect("insert");
        }
        end = t.commit().expect("commit"); // BEGIN, 3 inserts, COMMIT: transactions start at 5k + 1
    }
    // "Archive" every whole transaction in the sealed segments.
    let sealed_end = db.segments().iter().filter(|s| s.sealed).map(|s| s.last_lsn).max().expect("sealed segments");
    let archived = sealed_end - sealed_end % 5;
    assert!(archived > 100);
    let records: Vec<ColdRecord> = Cdc::new(db.clone())
        .raw_records(1)
        .expect("reader")
        .take(archived as usize)
        .map(|r| {
            let r = r.expect("record");
            let record = walden_engine::record::decode(r.kind, &r.payload[..]).expect("decode");
            ColdRecord { lsn: r.lsn, timestamp_us: r.timestamp_us, record }
        })
        .collect();
    // Starts inside a transaction (LSN 5k + 3 is its second insert), early and near the archive's end.
    let starts = [3, archived / 2 - archived / 2 % 5 + 3, archived - 2];
    let hot = Cdc::new(db.clone());
    let options = |from: Lsn| SubscriptionOptions { from_lsn: from, end_lsn: Some(end), ..Default::default() };
    let expected: Vec<Vec<Event>> =
        starts.iter().map(|&s| collect(&hot, options(s).with_transaction_control(true))).collect();
    drop(hot);
    // Trim: the WAL no longer holds what the cold source does.
    db.set_retain_from(Some(archived + 1)).expect("retain from");
    db.set_archived_lsn(Some(archived)).expect("archived");
    assert!(!db.checkpoint().expect("checkpoint").removed_segments.is_empty());
    assert!(db.wal().oldest_lsn() > starts[1]);
    let cold = Cdc::with_cold_source(db.clone(), Arc::new(MemoryCold { records }));
    for (start, expected) in starts.iter().zip(&expected) {
        let got = collect(&cold, options(*start).with_transaction_control(true));
        assert_eq!(&got, expected, "from LSN {start}");
        let changes: Vec<Lsn> = got.iter().filter(|e| matches!(e, Event::Change(_))).map(Event::lsn).take(2).collect();
        assert_eq!(changes, [*start, start + 1], "the rest of the transaction, from the start LSN");
    }
    drop(cold);
    let Ok(db) = Arc::try_unwrap(db) else { panic!("no other handle") };
    db.close().expect("close");
}
