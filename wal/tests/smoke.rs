use walden_wal::{SyncMode, Wal, WalConfig};

fn small(sync_mode: SyncMode) -> WalConfig {
    WalConfig { target_segment_size_bytes: 4096, sync_mode, index_interval_bytes: 256, ..WalConfig::default() }
}

#[test]
fn append_read_rotate_reopen() {
    for mode in [SyncMode::Always, SyncMode::Group, SyncMode::None, SyncMode::IntervalMs(5)] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), small(mode)).unwrap();
        for i in 0..1000u32 {
            let payload = format!("record-{i}");
            let lsn = wal.append((i % 3) as u8, payload.as_bytes()).unwrap();
            assert_eq!(lsn, u64::from(i) + 1);
        }
        let range = wal.append_batch((0..10u8).map(|k| (k, vec![k; 100]))).unwrap();
        assert_eq!(range, 1001..=1010);
        wal.flush().unwrap();
        assert!(wal.segments().len() > 5, "segments: {}", wal.segments().len());
        let all: Vec<_> = wal.reader(1).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1010);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.lsn, i as u64 + 1);
        }
        // Seek into the middle.
        let mut rd = wal.reader(500).unwrap();
        assert_eq!(rd.next_record().unwrap().unwrap().payload, &b"record-499"[..]);
        wal.close().unwrap();
        let wal = Wal::open(dir.path(), small(mode)).unwrap();
        let report = wal.recovery_report().clone();
        assert_eq!(report.last_lsn, 1010, "{report:?}");
        assert_eq!(report.bytes_truncated, 0);
        let all: Vec<_> = wal.reader(1).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1010);
        assert_eq!(wal.append(9, b"after").unwrap(), 1011);
        let removed = wal.remove_segments_before(600).unwrap();
        assert!(!removed.is_empty());
        assert!(wal.oldest_lsn() <= 600);
        assert!(matches!(wal.reader(1), Err(walden_wal::WalError::LsnNotFound { .. })));
    }
}
