//! Append, read, lookups, roll and reopen of a partition log, against real files.

mod common;

use bytes::Bytes;
use common::*;
use spate_protocol::records::TimestampType;
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::{LogConfig, StorageError};

#[test]
fn leader_append_assigns_offsets_and_stamps_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), LogConfig::default(), &clock);
    let info = log
        .append_as_leader(
            &[
                batch(&[b"a", b"b", b"c"], T0_MS),
                batch(&[b"d"], T0_MS + 10),
            ],
            LeaderEpoch(3),
            None,
        )
        .expect("append");
    assert_eq!(info.first_offset, Offset(0));
    assert_eq!(info.last_offset, Offset(3));
    assert_eq!(info.log_end_offset, Offset(4));
    assert_eq!(info.max_timestamp, T0_MS + 10);
    assert_eq!(info.offset_of_max_timestamp, Offset(3));
    let read = log
        .read(Offset(0), 1 << 20, Offset(4), false)
        .expect("read");
    let batches = batches_of(read.records);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].base_offset(), Offset(0));
    assert_eq!(batches[1].base_offset(), Offset(3));
    for b in &batches {
        assert_eq!(b.partition_leader_epoch(), LeaderEpoch(3));
        b.verify_crc().expect("crc intact");
    }
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(3)));
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), LogConfig::default(), &clock);
    let info = log
        .append_as_leader(&[batch(&[b"a", b"b"], 5)], LeaderEpoch(0), Some(T0_MS))
        .expect("append");
    assert_eq!(info.log_append_time_ms, Some(T0_MS));
    assert_eq!(info.max_timestamp, T0_MS);
    let read = log
        .read(Offset(0), 1 << 20, Offset(2), false)
        .expect("read");
    let b = &batches_of(read.records)[0];
    assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(b.max_timestamp(), T0_MS);
    b.verify_crc().expect("re-CRCed");
}

#[test]
fn corrupt_batch_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), LogConfig::default(), &clock);
    let good = batch(&[b"ok"], T0_MS);
    let mut raw = batch(&[b"bad"], T0_MS).into_bytes().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    let bad = spate_protocol::records::RecordBatch::new(Bytes::from(raw)).expect("header ok");
    let err = log
        .append_as_leader(&[good, bad], LeaderEpoch(0), None)
        .expect_err("crc");
    assert!(
        matches!(err, StorageError::InvalidBatch { batch_index: 1, .. }),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn read_semantics_follow_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), LogConfig::default(), &clock);
    // Batches: [0..=2], [3..=3], [4..=6]
    log.append_as_leader(&[batch(&[b"a", b"b", b"c"], T0_MS)], LeaderEpoch(0), None)
        .expect("append");
    log.append_as_leader(&[batch(&[b"d"], T0_MS)], LeaderEpoch(0), None)
        .expect("append");
    log.append_as_leader(&[batch(&[b"e", b"f", b"g"], T0_MS)], LeaderEpoch(0), None)
        .expect("append");
    // The batch containing the offset is returned whole.
    let r = log
        .read(Offset(1), 1 << 20, Offset(7), false)
        .expect("read");
    let b = batches_of(r.records);
    assert_eq!(b[0].base_offset(), Offset(0));
    assert_eq!(b.len(), 3);
    // The upper bound excludes a batch that crosses it.
    let r = log
        .read(Offset(0), 1 << 20, Offset(5), false)
        .expect("read");
    assert_eq!(batches_of(r.records).len(), 2);
    // max_bytes: whole batches only; min_one_batch returns one oversized batch.
    let first_size = batch(&[b"a", b"b", b"c"], T0_MS).size_bytes();
    let r = log
        .read(Offset(0), first_size + 1, Offset(7), false)
        .expect("read");
    assert_eq!(batches_of(r.records).len(), 1);
    let r = log.read(Offset(0), 1, Offset(7), false).expect("read");
    assert!(r.records.is_empty());
    let r = log.read(Offset(0), 1, Offset(7), true).expect("read");
    assert_eq!(batches_of(r.records).len(), 1);
    // At the log end: empty. Past it: out of range.
    let r = log
        .read(Offset(7), 1 << 20, Offset(7), false)
        .expect("read");
    assert!(r.records.is_empty());
    assert_eq!(r.log_end_offset, Offset(7));
    let err = log
        .read(Offset(8), 1 << 20, Offset(9), false)
        .expect_err("oor");
    assert!(matches!(
        err,
        StorageError::OffsetOutOfRange {
            requested: Offset(8),
            log_start: Offset(0),
            log_end: Offset(7)
        }
    ));
}

#[test]
fn rolls_on_segment_bytes_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    append_n(&log, 200);
    assert!(log.segment_count() > 3, "{}", log.segment_count());
    let all = read_all(&log, Offset(0));
    assert_eq!(all.len(), 200);
    for (i, (offset, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &Bytes::from(format!("v{i}")));
    }
    // Every segment file is named by its base offset and sealed ones are trimmed.
    let bases = log.segment_base_offsets();
    for base in &bases[..bases.len() - 1] {
        let name = format!("{:020}", base.0);
        let index = dir.path().join(format!("{name}.index"));
        assert!(dir.path().join(format!("{name}.log")).exists());
        assert!(std::fs::metadata(&index).expect("index").len() < 1024);
    }
    // Reads from the middle of any segment return the right batch first.
    for from in [0, 37, 99, 150, 199] {
        let r = log
            .read(Offset(from), 100, Offset(200), true)
            .expect("read");
        let b = batches_of(r.records);
        assert_eq!(b[0].base_offset(), Offset(from));
    }
}

/// Reads find and walk batches of every size the same way: small ones (many per header read)
/// and large ones (header by header), mixed, from every offset and with tight and loose limits.
#[test]
fn reads_walk_small_and_large_batches_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    // (records, value bytes): a few bytes to tens of KiB per batch, in no particular order.
    let shapes = [
        (1, 10),
        (3, 40),
        (2, 12_000),
        (1, 5),
        (40, 100),
        (1, 70_000),
        (5, 1_500),
        (1, 9_000),
        (2, 3),
        (8, 2_000),
    ];
    let mut batches = Vec::new();
    for round in 0..4 {
        for (count, value_bytes) in shapes {
            let batch = sized_batch(count, value_bytes, T0_MS + round);
            let info = log
                .append_as_leader(std::slice::from_ref(&batch), LeaderEpoch(0), None)
                .expect("append");
            batches.push((
                info.first_offset.0,
                info.last_offset.0,
                batch.as_bytes().len(),
            ));
        }
    }
    let end = log.log_end_offset();
    for &(base, last, size) in &batches {
        for from in [base, last] {
            // Unlimited: every batch from the one holding `from` to the end.
            let read = log.read(Offset(from), 1 << 30, end, true).expect("read");
            let got: Vec<i64> = batches_of(read.records)
                .iter()
                .map(|b| b.base_offset().0)
                .collect();
            let want: Vec<i64> = batches.iter().map(|b| b.0).filter(|&b| b >= base).collect();
            assert_eq!(got, want, "from {from}");
            // A limit below the first batch: that batch alone, whole.
            let read = log.read(Offset(from), 1, end, true).expect("read");
            assert_eq!(read.records.len(), size, "from {from}");
            assert_eq!(batches_of(read.records)[0].base_offset().0, base);
            // Without min_one_batch the same limit returns nothing.
            let read = log.read(Offset(from), 1, end, false).expect("read");
            assert!(read.records.is_empty());
        }
    }
    // An upper bound inside the log stops before the batch that reaches it.
    let (bound_base, _, _) = batches[17];
    let read = log
        .read(Offset(0), 1 << 30, Offset(bound_base), true)
        .expect("read");
    assert_eq!(batches_of(read.records).len(), 17);
}

#[test]
fn read_slices_name_the_file_bytes_they_came_from() {
    use std::os::unix::fs::FileExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    append_n(&log, 200);
    for from in [0, 37, 150, 199] {
        let read = log
            .read(Offset(from), 1000, Offset(200), true)
            .expect("read");
        assert!(!read.records.is_empty());
        let whole = spate_storage::file_region(&read.records).expect("a segment slice");
        assert_eq!(whole.len(), read.records.len());
        let mut on_disk = vec![0u8; whole.len()];
        whole
            .file()
            .read_exact_at(&mut on_disk, whole.position())
            .expect("pread");
        assert_eq!(on_disk, read.records);
        // Any part of the slice maps to the matching part of the file.
        let tail = read.records.slice(10..);
        let part = spate_storage::file_region(&tail).expect("a part of a segment slice");
        assert_eq!(part.position(), whole.position() + 10);
        assert_eq!(part.len(), tail.len());
    }
    // Bytes that do not come from a segment are not mistaken for one.
    let copy = Bytes::copy_from_slice(b"not from a segment map");
    assert!(spate_storage::file_region(&copy).is_none());
    assert!(spate_storage::file_region(&Bytes::from_static(b"static")).is_none());
}

#[test]
fn rolls_on_segment_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    log.append_as_leader(&[batch(&[b"a"], T0_MS)], LeaderEpoch(0), None)
        .expect("append");
    log.append_as_leader(&[batch(&[b"b"], T0_MS + 500)], LeaderEpoch(0), None)
        .expect("append");
    assert_eq!(log.segment_count(), 1);
    // Kafka measures segment.ms from the first batch's timestamp to the incoming batch's.
    log.append_as_leader(&[batch(&[b"c"], T0_MS + 1001)], LeaderEpoch(0), None)
        .expect("append");
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets()[1], Offset(2));
}

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    {
        let log = open(dir.path(), small_config(), &clock);
        append_n(&log, 120);
        log.close().expect("close");
        assert!(
            log.append_as_leader(&[batch(&[b"x"], T0_MS)], LeaderEpoch(0), None)
                .is_err()
        );
    }
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(120));
    append_n(&log, 10);
    let all = read_all(&log, Offset(0));
    assert_eq!(all.len(), 130);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
}

#[test]
fn reopen_without_close_recovers_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    {
        let log = open(dir.path(), small_config(), &clock);
        append_n(&log, 120);
        // Dropped without close: an unclean stop.
    }
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(120));
    assert_eq!(read_all(&log, Offset(0)).len(), 120);
    // Timestamp lookups work on the rebuilt indexes.
    let found = log
        .offset_for_timestamp(T0_MS + 77)
        .expect("lookup")
        .expect("some");
    assert_eq!(found.offset, Offset(77));
    assert_eq!(found.timestamp, T0_MS + 77);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    // Batch timestamps: records i at T0 + 10*n + i.
    for n in 0..50 {
        log.append_as_leader(
            &[batch(&[b"a", b"b", b"c"], T0_MS + 10 * n)],
            LeaderEpoch(n as i32 / 10),
            None,
        )
        .expect("append");
    }
    // The second record of batch 20 (offset 61) has timestamp T0 + 201.
    let found = log
        .offset_for_timestamp(T0_MS + 201)
        .expect("lookup")
        .expect("some");
    assert_eq!(found.offset, Offset(61));
    assert_eq!(found.timestamp, T0_MS + 201);
    assert_eq!(found.leader_epoch, LeaderEpoch(2));
    // Between batches: the first record of the next batch.
    let found = log
        .offset_for_timestamp(T0_MS + 205)
        .expect("lookup")
        .expect("some");
    assert_eq!(found.offset, Offset(63));
    assert!(
        log.offset_for_timestamp(T0_MS + 10_000)
            .expect("lookup")
            .is_none()
    );
    let found = log.offset_for_timestamp(0).expect("lookup").expect("some");
    assert_eq!(found.offset, Offset(0));
}

#[test]
fn max_timestamp_offset_is_first_record_with_max_kip_734() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    assert!(log.max_timestamp_offset().expect("empty").is_none());
    append_n(&log, 30);
    // A batch whose middle record holds the max timestamp (KAFKA-16310 fixed the offset to be
    // the record's, not the batch's last offset).
    let mut builder = spate_protocol::records::RecordBatchBuilder::new(
        spate_protocol::records::Compression::None,
    );
    for ts in [T0_MS + 1, T0_MS + 100_000, T0_MS + 2] {
        builder
            .append(ts, None, Some(Bytes::from_static(b"v")), vec![])
            .expect("append");
    }
    let b = spate_protocol::records::RecordBatch::new(builder.build().expect("build")).expect("ok");
    log.append_as_leader(&[b], LeaderEpoch(4), None)
        .expect("append");
    append_n(&log, 30);
    let found = log.max_timestamp_offset().expect("lookup").expect("some");
    assert_eq!(found.timestamp, T0_MS + 100_000);
    assert_eq!(found.offset, Offset(31));
    assert_eq!(found.leader_epoch, LeaderEpoch(4));
}

#[test]
fn follower_append_keeps_offsets_and_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let leader = open(leader_dir.path(), LogConfig::default(), &clock);
    leader
        .append_as_leader(&[batch(&[b"a", b"b"], T0_MS)], LeaderEpoch(1), None)
        .expect("append");
    leader
        .append_as_leader(&[batch(&[b"c"], T0_MS)], LeaderEpoch(2), None)
        .expect("append");
    let fetched = batches_of(
        leader
            .read(Offset(0), 1 << 20, Offset(3), false)
            .expect("read")
            .records,
    );
    let follower = open(dir.path(), LogConfig::default(), &clock);
    let info = follower.append_as_follower(&fetched).expect("append");
    assert_eq!(info.first_offset, Offset(0));
    assert_eq!(info.log_end_offset, Offset(3));
    assert_eq!(follower.latest_epoch(), Some(LeaderEpoch(2)));
    assert_eq!(
        follower.end_offset_for_epoch(LeaderEpoch(1)),
        (LeaderEpoch(1), Offset(2))
    );
    // Appending the same batches again goes backwards.
    let err = follower
        .append_as_follower(&fetched)
        .expect_err("backwards");
    assert!(
        matches!(err, StorageError::OffsetsOutOfOrder { .. }),
        "{err}"
    );
}

#[test]
fn readers_run_while_a_writer_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let log = std::sync::Arc::new(open(dir.path(), small_config(), &clock));
    std::thread::scope(|scope| {
        let writer = log.clone();
        scope.spawn(move || append_n(&writer, 500));
        for _ in 0..2 {
            let reader = log.clone();
            scope.spawn(move || {
                let mut next = 0i64;
                while next < 500 {
                    let r = reader
                        .read(Offset(next), 4096, Offset(i64::MAX), true)
                        .expect("read");
                    for b in batches_of(r.records) {
                        b.verify_crc().expect("whole, valid batches only");
                        assert!(b.last_offset().0 >= next);
                        next = b.next_offset().0;
                    }
                }
            });
        }
    });
}

#[test]
fn preallocated_segments_are_trimmed_on_roll_and_recovered_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        preallocate: true,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone(), &clock);
        append_n(&log, 150);
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 2);
        // Sealed segments hold exactly their data; the active one is still preallocated.
        let sealed = dir.path().join(format!("{:020}.log", bases[0].0));
        assert!(std::fs::metadata(&sealed).expect("meta").len() < 4096);
        let active = dir
            .path()
            .join(format!("{:020}.log", bases[bases.len() - 1].0));
        assert_eq!(std::fs::metadata(&active).expect("meta").len(), 4096);
        // Unclean stop with a zero-filled preallocated tail.
    }
    let log = open(dir.path(), config.clone(), &clock);
    assert_eq!(log.log_end_offset(), Offset(150));
    append_n(&log, 10);
    log.close().expect("close");
    drop(log);
    let log = open(dir.path(), config, &clock);
    let all = read_all(&log, Offset(0));
    assert_eq!(all.len(), 160);
    assert_eq!(all[155].1, Bytes::from("v155"));
}

#[test]
fn flush_messages_advances_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    append_n(&log, 4);
    assert_eq!(log.recovery_point(), Offset(0));
    append_n(&log, 1);
    assert_eq!(log.recovery_point(), Offset(5));
    append_n(&log, 3);
    assert_eq!(log.recovery_point(), Offset(5));
    log.flush().expect("flush");
    assert_eq!(log.recovery_point(), Offset(8));
}
