//! Early write-back in non-durable modes (`WalConfig::writeback_interval_bytes`): real files, so
//! `sync_file_range` runs; nothing about the log's contents or guarantees changes.

use walden_wal::{Lsn, SyncMode, Wal, WalConfig};

#[test]
fn early_writeback_changes_nothing_readable() {
    for interval in [0, 64 << 10, 1 << 20] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = WalConfig {
            sync_mode: SyncMode::None,
            target_segment_size_bytes: 2 << 20,
            writeback_interval_bytes: interval,
            ..WalConfig::default()
        };
        let wal = Wal::open(tmp.path(), cfg.clone()).expect("open");
        let record = vec![7u8; 4096];
        for _ in 0..1500 {
            wal.append(1, &record).expect("append");
        }
        assert!(wal.stats().segments_sealed >= 2, "{:?}", wal.stats());
        wal.close().expect("close");
        let wal = Wal::open(tmp.path(), cfg).expect("reopen");
        let mut n: Lsn = 0;
        for r in wal.reader(1).expect("reader") {
            let r = r.expect("read");
            n += 1;
            assert_eq!((r.lsn, &r.payload[..]), (n, &record[..]));
        }
        assert_eq!(n, 1500, "interval {interval}");
        wal.close().expect("close");
    }
}
