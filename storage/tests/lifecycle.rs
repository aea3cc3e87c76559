//! Truncation, retention, DeleteRecords, compaction and slices that outlive them.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::cleaner::CLEANER_OFFSET_MAP_BYTES_DEFAULT;
use spate_storage::{CleanupPolicy, LogConfig, StorageError};

#[test]
fn truncate_to_drops_tail_and_reuses_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    append_n(&log, 150);
    let segments_before = log.segment_count();
    assert!(log.truncate_to(Offset(70)).expect("truncate"));
    assert_eq!(log.log_end_offset(), Offset(70));
    assert!(log.segment_count() <= segments_before);
    assert!(!log.truncate_to(Offset(70)).expect("no-op"));
    append_n(&log, 5);
    let all = read_all(&log, Offset(0));
    assert_eq!(all.len(), 75);
    assert_eq!(all[70].1, Bytes::from("v70"));
    // Survives an unclean reopen.
    drop(log);
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(75));
    assert_eq!(read_all(&log, Offset(0)).len(), 75);
}

#[test]
fn truncation_removes_epochs_and_snapshots_past_the_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    for epoch in 0..4 {
        for _ in 0..10 {
            let v = format!("e{epoch}");
            log.append_as_leader(&[batch(&[v.as_bytes()], T0_MS)], LeaderEpoch(epoch), None)
                .expect("append");
        }
    }
    log.write_producer_snapshot(Offset(25), b"s25")
        .expect("snap");
    log.write_producer_snapshot(Offset(35), b"s35")
        .expect("snap");
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        (LeaderEpoch(1), Offset(20))
    );
    log.truncate_to(Offset(30)).expect("truncate");
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(2)),
        (LeaderEpoch(2), Offset(30))
    );
    let (offset, bytes) = log.latest_producer_snapshot().expect("read").expect("some");
    assert_eq!((offset, &bytes[..]), (Offset(25), &b"s25"[..]));
    log.truncate_fully_and_start_at(Offset(1000))
        .expect("reset");
    assert_eq!(log.log_start_offset(), Offset(1000));
    assert_eq!(log.log_end_offset(), Offset(1000));
    assert_eq!(log.latest_epoch(), None);
    assert!(log.latest_producer_snapshot().expect("read").is_none());
    append_n(&log, 3);
    assert_eq!(read_all(&log, Offset(1000)).len(), 3);
    assert!(matches!(
        log.read(Offset(5), 100, Offset(i64::MAX), true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes_deletes_whole_oldest_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        retention_bytes: 8192,
        retention_ms: -1,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock);
    append_n(&log, 400);
    let size_before = log.size_bytes();
    let deleted = log.apply_retention().expect("retention");
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 8192 + 4096, "{}", log.size_bytes());
    assert!(log.size_bytes() < size_before);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    let all = read_all(&log, start);
    assert_eq!(all.len() as i64, 400 - start.0);
    assert!(matches!(
        log.read(Offset(0), 100, Offset(i64::MAX), true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_time_uses_segment_max_timestamp_and_rolls_expired_active() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        retention_ms: 60_000,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock);
    append_n(&log, 100);
    assert_eq!(log.apply_retention().expect("retention"), 0);
    clock.advance(60_000 + 1_000);
    let deleted = log.apply_retention().expect("retention");
    assert!(deleted > 0);
    // Everything expired: the log is empty at its old end, with a fresh active segment.
    assert_eq!(log.log_start_offset(), Offset(100));
    assert_eq!(log.log_end_offset(), Offset(100));
    assert_eq!(log.segment_count(), 1);
    append_n(&log, 1);
    assert_eq!(read_all(&log, Offset(100)).len(), 1);
}

#[test]
fn retention_never_passes_the_high_watermark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        retention_ms: 1,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock);
    append_n(&log, 100);
    log.set_high_watermark(Offset(0));
    clock.advance(10_000);
    assert_eq!(log.apply_retention().expect("retention"), 0);
    log.set_high_watermark(Offset(100));
    assert!(log.apply_retention().expect("retention") > 0);
}

#[test]
fn delete_records_moves_log_start_and_drops_covered_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    append_n(&log, 200);
    let segments = log.segment_count();
    let start = log.delete_records_before(Offset(120)).expect("delete");
    assert_eq!(start, Offset(120));
    assert!(log.segment_count() < segments);
    assert!(log.segment_base_offsets()[0] <= Offset(120));
    let all = read_all(&log, Offset(120));
    assert_eq!(all[0].0, 120);
    assert!(matches!(
        log.read(Offset(119), 100, Offset(i64::MAX), true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Never backwards; never past the high watermark.
    assert_eq!(
        log.delete_records_before(Offset(50)).expect("noop"),
        Offset(120)
    );
    log.set_high_watermark(Offset(150));
    assert!(matches!(
        log.delete_records_before(Offset(160)),
        Err(StorageError::LogStartBeyondHighWatermark { .. })
    ));
    // The log start survives a reopen through the caller's checkpoint.
    drop(log);
    let log = spate_storage::PartitionLog::open(
        dir.path(),
        small_config(),
        clock.clone(),
        spate_storage::LogOpenOptions {
            log_start_offset: Some(Offset(120)),
            ..Default::default()
        },
    )
    .expect("open");
    assert_eq!(log.log_start_offset(), Offset(120));
}

#[test]
fn slices_outlive_truncation_deletion_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock);
    for round in 0..40 {
        let v = format!("r{round}");
        log.append_as_leader(
            &[keyed_batch(&[("a", Some(&v)), ("b", Some(&v))], T0_MS)],
            LeaderEpoch(0),
            None,
        )
        .expect("append");
    }
    let held = log
        .read(Offset(0), 1 << 20, Offset(i64::MAX), true)
        .expect("read")
        .records;
    let held_tail = log
        .read(Offset(70), 1 << 20, Offset(i64::MAX), true)
        .expect("read")
        .records;
    let copy = held.to_vec();
    let copy_tail = held_tail.to_vec();
    log.compact(true, CLEANER_OFFSET_MAP_BYTES_DEFAULT)
        .expect("compact");
    log.truncate_to(Offset(71)).expect("truncate");
    log.truncate_fully_and_start_at(Offset(500)).expect("reset");
    log.apply_retention().expect("unlink retired files");
    append_n(&log, 50);
    assert_eq!(&held[..], &copy[..]);
    assert_eq!(&held_tail[..], &copy_tail[..]);
    for b in batches_of(held).into_iter().chain(batches_of(held_tail)) {
        b.verify_crc().expect("still intact");
    }
}

fn compacted_view(log: &spate_storage::PartitionLog) -> BTreeMap<String, (i64, Option<String>)> {
    let mut latest = BTreeMap::new();
    let mut next = log.log_start_offset();
    loop {
        let r = log
            .read(next, 1 << 20, Offset(i64::MAX), true)
            .expect("read");
        if r.records.is_empty() {
            break;
        }
        for b in batches_of(r.records) {
            for rec in b.records(1 << 20).expect("records") {
                let rec = rec.expect("record");
                let key = String::from_utf8(rec.key.clone().expect("key").to_vec()).expect("utf8");
                let value = rec
                    .value
                    .map(|v| String::from_utf8(v.to_vec()).expect("utf8"));
                latest.insert(
                    key,
                    (b.base_offset().0 + i64::from(rec.offset_delta), value),
                );
            }
            next = b.next_offset();
        }
    }
    latest
}

fn count_records(log: &spate_storage::PartitionLog) -> usize {
    read_all(log, log.log_start_offset()).len()
}

#[test]
fn compaction_keeps_latest_per_key_and_preserves_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 1000,
        ..small_config()
    };
    let log = open(dir.path(), config.clone(), &clock);
    let keys = ["k0", "k1", "k2", "k3", "k4"];
    for round in 0..60 {
        let v = format!("{round}");
        let records: Vec<(&str, Option<&str>)> =
            keys.iter().map(|k| (*k, Some(v.as_str()))).collect();
        log.append_as_leader(&[keyed_batch(&records, T0_MS)], LeaderEpoch(0), None)
            .expect("append");
    }
    // Delete k4.
    log.append_as_leader(&[keyed_batch(&[("k4", None)], T0_MS)], LeaderEpoch(0), None)
        .expect("append");
    // Roll so the tombstone is in a cleanable segment.
    log.roll().expect("roll");
    let before = compacted_view(&log);
    let leo = log.log_end_offset();
    let total_before = count_records(&log);
    let stats = log
        .compact(false, CLEANER_OFFSET_MAP_BYTES_DEFAULT)
        .expect("compact")
        .expect("was due");
    assert!(stats.records_removed > 0);
    assert_eq!(
        compacted_view(&log),
        before,
        "latest value and offset per key unchanged"
    );
    assert!(count_records(&log) < total_before);
    assert_eq!(log.log_end_offset(), leo);
    // The tombstone is kept until its delete horizon passes, then removed by a later pass.
    assert_eq!(before["k4"].1, None);
    assert!(compacted_view(&log).contains_key("k4"));
    clock.advance(2000);
    log.append_as_leader(
        &[keyed_batch(&[("k0", Some("new"))], T0_MS)],
        LeaderEpoch(0),
        None,
    )
    .expect("append");
    log.roll().expect("roll");
    log.compact(true, CLEANER_OFFSET_MAP_BYTES_DEFAULT)
        .expect("compact");
    let after = compacted_view(&log);
    assert!(!after.contains_key("k4"), "{after:?}");
    assert_eq!(after["k0"].1.as_deref(), Some("new"));
    // Offsets are still increasing and every batch is valid after a clean and an unclean reopen.
    drop(log);
    let log = open(dir.path(), config.clone(), &clock);
    assert_eq!(compacted_view(&log), after);
    log.close().expect("close");
    let log = open(dir.path(), config, &clock);
    assert_eq!(compacted_view(&log), after);
}

#[test]
fn compaction_respects_min_lag_and_is_skipped_when_not_dirty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        min_compaction_lag_ms: 60_000,
        ..small_config()
    };
    let log = open(dir.path(), config, &clock);
    for round in 0..50 {
        let v = format!("{round}");
        log.append_as_leader(
            &[keyed_batch(&[("k", Some(&v))], clock_now(&clock))],
            LeaderEpoch(0),
            None,
        )
        .expect("append");
    }
    log.roll().expect("roll");
    // Too young: nothing is cleanable.
    assert!(log.compact(true, 1 << 20).expect("compact").is_none());
    clock.advance(120_000);
    let stats = log.compact(false, 1 << 20).expect("compact").expect("due");
    assert_eq!(stats.records_removed, 49);
    // Nothing new: not due.
    assert!(log.compact(false, 1 << 20).expect("compact").is_none());
}

fn clock_now(clock: &spate_storage::ManualClock) -> i64 {
    use spate_storage::Clock;
    clock.now_ms()
}

#[test]
fn compaction_and_retention_run_beside_appends_and_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::CompactAndDelete,
        retention_bytes: 64 * 1024,
        retention_ms: -1,
        ..small_config()
    };
    let log = std::sync::Arc::new(open(dir.path(), config, &clock));
    let done = std::sync::atomic::AtomicBool::new(false);
    let done_ref = &done;
    std::thread::scope(|scope| {
        let writer = log.clone();
        scope.spawn(move || {
            for round in 0..1500 {
                let v = format!("{round}");
                let key = format!("k{}", round % 17);
                writer
                    .append_as_leader(
                        &[keyed_batch(&[(key.as_str(), Some(v.as_str()))], T0_MS)],
                        LeaderEpoch(0),
                        None,
                    )
                    .expect("append");
            }
            done_ref.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let cleaner = log.clone();
        scope.spawn(move || {
            while !done_ref.load(std::sync::atomic::Ordering::SeqCst) {
                cleaner
                    .compact(true, CLEANER_OFFSET_MAP_BYTES_DEFAULT)
                    .expect("compact");
                cleaner.apply_retention().expect("retention");
            }
        });
        let reader = log.clone();
        scope.spawn(move || {
            for _ in 0..200 {
                let start = reader.log_start_offset();
                match reader.read(start, 8192, Offset(i64::MAX), true) {
                    Ok(r) => {
                        let mut last = -1;
                        for b in batches_of(r.records) {
                            b.verify_crc().expect("intact");
                            assert!(b.base_offset().0 > last, "offsets increase");
                            last = b.last_offset().0;
                        }
                    }
                    // Retention may move the start between the two calls.
                    Err(StorageError::OffsetOutOfRange { .. }) => {}
                    Err(err) => panic!("read failed: {err}"),
                }
            }
        });
    });
    assert_eq!(log.log_end_offset(), Offset(1500));
    let latest = compacted_view(&log);
    for k in 0..17 {
        let key = format!("k{k}");
        let last_round = (0..1500).rev().find(|r| r % 17 == k).expect("round");
        assert_eq!(
            latest[&key].1.as_deref(),
            Some(last_round.to_string().as_str())
        );
    }
}
