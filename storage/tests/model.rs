//! Random sequences of log operations checked against a simple in-memory model (STYLE item 12):
//! append, read, timestamp lookup, roll, truncate, retention, DeleteRecords, compaction, flush,
//! clean and unclean reopen.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::{T0_MS, batches_of};
use proptest::prelude::*;
use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::cleaner::CLEANER_OFFSET_MAP_BYTES_DEFAULT;
use spate_storage::{
    CleanupPolicy, Clock, LogConfig, LogOpenOptions, ManualClock, PartitionLog, StorageError,
};

#[derive(Debug, Clone)]
enum Op {
    /// Batches of records: (key index, value length, timestamp step), and whether a new leader
    /// epoch starts with this append.
    Append(Vec<Vec<(u8, u16, u8)>>, bool),
    /// A replicated batch whose base offset is `gap` past the log end (compacted leaders leave
    /// gaps), with a new epoch when `bump`.
    AppendFollower(Vec<(u8, u16, u8)>, u8, bool),
    Read {
        at: u16,
        max_bytes: u16,
    },
    Lookup {
        at: u16,
    },
    Roll,
    Truncate {
        at: u16,
    },
    Retention {
        keep_bytes: u16,
    },
    DeleteRecords {
        at: u16,
    },
    Compact,
    Flush,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, 0u16..300, 0u8..3);
    let batch = prop::collection::vec(record, 1..5);
    prop_oneof![
        6 => (prop::collection::vec(batch, 1..3), prop::bool::weighted(0.2))
            .prop_map(|(batches, bump)| Op::Append(batches, bump)),
        2 => (prop::collection::vec((0u8..6, 0u16..300, 0u8..3), 1..5), 0u8..4, prop::bool::weighted(0.2))
            .prop_map(|(records, gap, bump)| Op::AppendFollower(records, gap, bump)),
        3 => (any::<u16>(), 1u16..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => any::<u16>().prop_map(|at| Op::Lookup { at }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => (0u16..8000).prop_map(|keep_bytes| Op::Retention { keep_bytes }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => Just(Op::Compact),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelRecord {
    offset: i64,
    key: u8,
    value: Bytes,
    timestamp: i64,
}

#[derive(Debug, Clone)]
struct ModelBatch {
    last: i64,
    records: Vec<ModelRecord>,
}

struct Model {
    batches: Vec<ModelBatch>,
    /// Leader epochs as (epoch, start offset), Kafka's LeaderEpochFileCache semantics.
    epochs: Vec<(i32, i64)>,
    epoch: i32,
    log_start: i64,
    log_end: i64,
    next_timestamp: i64,
}

impl Model {
    fn records(&self) -> Vec<&ModelRecord> {
        self.batches
            .iter()
            .flat_map(|b| b.records.iter())
            .filter(|r| r.offset >= self.log_start)
            .collect()
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        segment_index_bytes: 256,
        file_delete_delay_ms: 0,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::CompactAndDelete,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>, log_start: i64) -> PartitionLog {
    PartitionLog::open(
        dir,
        config(),
        clock.clone() as Arc<dyn Clock>,
        LogOpenOptions {
            log_start_offset: Some(Offset(log_start)),
            ..LogOpenOptions::default()
        },
    )
    .expect("open")
}

fn build(records: &[(u8, u16, u8)], model: &mut Model) -> (RecordBatch, Vec<(u8, Bytes, i64)>) {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    let mut out = Vec::new();
    for (key, len, step) in records {
        model.next_timestamp += i64::from(*step);
        let value = Bytes::from(vec![b'a' + (len % 26) as u8; usize::from(*len)]);
        builder
            .append(
                model.next_timestamp,
                Some(Bytes::from(format!("k{key}"))),
                Some(value.clone()),
                vec![],
            )
            .expect("append");
        out.push((*key, value, model.next_timestamp));
    }
    (
        RecordBatch::new(builder.build().expect("build")).expect("valid"),
        out,
    )
}

fn log_records(log: &PartitionLog) -> Vec<ModelRecord> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let r = log
            .read(next, 4096, Offset(i64::MAX), true)
            .expect("read all");
        if r.records.is_empty() {
            break;
        }
        for b in batches_of(r.records) {
            b.verify_crc().expect("crc");
            for rec in b.records(1 << 20).expect("records") {
                let rec = rec.expect("record");
                let offset = b.base_offset().0 + i64::from(rec.offset_delta);
                if offset < next.0 {
                    continue;
                }
                let timestamp = rec.timestamp(b.base_timestamp());
                let key = rec.key.expect("key");
                out.push(ModelRecord {
                    offset,
                    key: key[1..].iter().fold(0u8, |a, d| a * 10 + (d - b'0')),
                    value: rec.value.expect("value"),
                    timestamp,
                });
            }
            next = b.next_offset();
        }
    }
    out
}

/// Kafka's `truncateFromStart`: entries at or before the new start collapse into one at it.
fn epochs_from_start(epochs: &mut Vec<(i32, i64)>, start: i64) {
    let before = epochs.iter().filter(|(_, s)| *s <= start).count();
    if before > 0 {
        let epoch = epochs[before - 1].0;
        epochs.drain(..before);
        epochs.insert(0, (epoch, start));
    }
}

/// Kafka's `endOffsetFor` over the model's entries.
fn model_end_offset(epochs: &[(i32, i64)], requested: i32, log_end: i64) -> (i32, i64) {
    if epochs.last().map(|(e, _)| *e) == Some(requested) {
        return (requested, log_end);
    }
    let Some(higher) = epochs.iter().find(|(e, _)| *e > requested) else {
        return (-1, -1);
    };
    match epochs.iter().rev().find(|(e, _)| *e <= requested) {
        None => (requested, higher.1),
        Some(floor) => (floor.0, higher.1),
    }
}

fn check(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset().0, model.log_end);
    let epochs: Vec<(i32, i64)> = log
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    prop_assert_eq!(&epochs, &model.epochs);
    for requested in 0..=model.epoch + 1 {
        let (epoch, end) = log.end_offset_for_epoch(LeaderEpoch(requested));
        prop_assert_eq!(
            (epoch.0, end.0),
            model_end_offset(&model.epochs, requested, model.log_end),
            "OffsetForLeaderEpoch({})",
            requested
        );
    }
    prop_assert_eq!(log.log_start_offset().0, model.log_start);
    let actual = log_records(log);
    let expected: Vec<ModelRecord> = model.records().into_iter().cloned().collect();
    prop_assert_eq!(actual, expected);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0_MS));
    let mut log = open(dir.path(), &clock, 0);
    let mut model = Model {
        batches: Vec::new(),
        epochs: Vec::new(),
        epoch: 0,
        log_start: 0,
        log_end: 0,
        next_timestamp: T0_MS,
    };
    for op in ops {
        match op {
            Op::Append(batches, bump) => {
                if bump {
                    model.epoch += 1;
                }
                let mut built = Vec::new();
                let mut contents = Vec::new();
                for records in &batches {
                    let (batch, recs) = build(records, &mut model);
                    built.push(batch);
                    contents.push(recs);
                }
                let info = log
                    .append_as_leader(&built, LeaderEpoch(model.epoch), None)
                    .expect("append");
                prop_assert_eq!(info.first_offset.0, model.log_end);
                if model.epochs.last().is_none_or(|(e, _)| *e < model.epoch) {
                    // Kafka's assign: entries that would break monotonicity go.
                    let (epoch, start) = (model.epoch, model.log_end);
                    model.epochs.retain(|(e, s)| *e < epoch && *s < start);
                    model.epochs.push((epoch, start));
                }
                for recs in contents {
                    let base = model.log_end;
                    let records: Vec<ModelRecord> = recs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (key, value, timestamp))| ModelRecord {
                            offset: base + i as i64,
                            key,
                            value,
                            timestamp,
                        })
                        .collect();
                    let last = base + records.len() as i64 - 1;
                    model.batches.push(ModelBatch { last, records });
                    model.log_end = last + 1;
                }
            }
            Op::AppendFollower(records, gap, bump) => {
                if bump {
                    model.epoch += 1;
                }
                let base = model.log_end + i64::from(gap);
                let (leader_batch, recs) = build(&records, &mut model);
                // Re-encode as the leader would have stored it: its offsets and epoch.
                let mut builder = RecordBatchBuilder::new(Compression::None)
                    .base_offset(Offset(base))
                    .partition_leader_epoch(LeaderEpoch(model.epoch));
                for rec in leader_batch.records(1 << 20).expect("records") {
                    let rec = rec.expect("record");
                    let ts = rec.timestamp(leader_batch.base_timestamp());
                    builder.append_record(&rec, ts).expect("append");
                }
                let replicated = RecordBatch::new(builder.build().expect("build")).expect("valid");
                let info = log
                    .append_as_follower(&[replicated])
                    .expect("follower append");
                prop_assert_eq!(info.first_offset.0, base);
                let records: Vec<ModelRecord> = recs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (key, value, timestamp))| ModelRecord {
                        offset: base + i as i64,
                        key,
                        value,
                        timestamp,
                    })
                    .collect();
                let last = base + records.len() as i64 - 1;
                model.batches.push(ModelBatch { last, records });
                model.log_end = last + 1;
                if model.epochs.last().is_none_or(|(e, _)| *e < model.epoch) {
                    let epoch = model.epoch;
                    model.epochs.retain(|(e, s)| *e < epoch && *s < base);
                    model.epochs.push((epoch, base));
                }
            }
            Op::Read { at, max_bytes } => {
                let span = model.log_end - model.log_start + 1;
                let from = model.log_start + i64::from(at) % span;
                let r = log
                    .read(Offset(from), usize::from(max_bytes), Offset(i64::MAX), true)
                    .expect("read");
                let batches = batches_of(r.records);
                // Whole batches, the first one reaching `from`; the records at or past `from`
                // that they hold are the model's, in order, with none skipped.
                if let Some(first) = batches.first() {
                    prop_assert!(first.last_offset().0 >= from);
                }
                let mut got = Vec::new();
                for b in &batches {
                    for rec in b.records(1 << 20).expect("records") {
                        let rec = rec.expect("record");
                        let offset = b.base_offset().0 + i64::from(rec.offset_delta);
                        if offset >= from {
                            got.push((offset, rec.value.expect("value")));
                        }
                    }
                }
                let want: Vec<(i64, Bytes)> = model
                    .records()
                    .into_iter()
                    .filter(|r| r.offset >= from)
                    .take(got.len())
                    .map(|r| (r.offset, r.value.clone()))
                    .collect();
                prop_assert_eq!(&got, &want);
                let has_visible = model.records().iter().any(|r| r.offset >= from);
                prop_assert!(
                    !has_visible || !batches.is_empty(),
                    "min_one_batch read nothing at {}",
                    from
                );
                prop_assert!(
                    batches.len() <= 1
                        || batches.iter().map(|b| b.size_bytes()).sum::<usize>()
                            <= usize::from(max_bytes)
                );
            }
            Op::Lookup { at } => {
                let target = T0_MS + i64::from(at) % (model.next_timestamp - T0_MS + 3);
                let found = log.offset_for_timestamp(target).expect("lookup");
                let expected = model
                    .records()
                    .into_iter()
                    .find(|r| r.timestamp >= target)
                    .map(|r| (r.offset, r.timestamp));
                prop_assert_eq!(found.map(|f| (f.offset.0, f.timestamp)), expected);
            }
            Op::Roll => log.roll().expect("roll"),
            Op::Truncate { at } => {
                let span = model.log_end - model.log_start + 1;
                let target = model.log_start + i64::from(at) % span;
                log.truncate_to(Offset(target)).expect("truncate");
                if target < model.log_end {
                    // Whole batches go: the log end is the cut, or the base of the batch
                    // holding it. Every visible record of a batch wholly before the cut stays.
                    let new_end = log.log_end_offset().0;
                    let kept_end = model
                        .batches
                        .iter()
                        .filter(|b| b.last < target)
                        .flat_map(|b| b.records.iter())
                        .filter(|r| r.offset >= model.log_start)
                        .map(|r| r.offset + 1)
                        .max()
                        .unwrap_or(0);
                    prop_assert!(
                        new_end >= kept_end && new_end <= target,
                        "log end {} not in [{}, {}]",
                        new_end,
                        kept_end,
                        target
                    );
                    model.batches.retain(|b| b.last < new_end);
                    model.epochs.retain(|(_, start)| *start < new_end);
                    model.log_end = new_end;
                    model.log_start = model.log_start.min(new_end);
                } else {
                    // Kafka's `truncateTo` past the end still drops epochs that begin at the
                    // log end: they hold nothing.
                    model.epochs.retain(|(_, start)| *start < model.log_end);
                }
            }
            Op::Retention { keep_bytes } => {
                let mut cfg = config();
                cfg.retention_bytes = i64::from(keep_bytes);
                log.set_config(cfg).expect("config");
                log.apply_retention().expect("retention");
                log.set_config(config()).expect("config");
                let start = log.log_start_offset().0;
                prop_assert!(start >= model.log_start);
                model.log_start = start;
                epochs_from_start(&mut model.epochs, start);
            }
            Op::DeleteRecords { at } => {
                let span = model.log_end - model.log_start + 1;
                let target = model.log_start + i64::from(at) % span;
                let start = log.delete_records_before(Offset(target)).expect("delete");
                prop_assert_eq!(start.0, target.max(model.log_start));
                model.log_start = start.0;
                epochs_from_start(&mut model.epochs, start.0);
            }
            Op::Compact => {
                let before: BTreeMap<u8, (i64, Bytes)> = model
                    .records()
                    .into_iter()
                    .map(|r| (r.key, (r.offset, r.value.clone())))
                    .collect();
                log.compact(true, CLEANER_OFFSET_MAP_BYTES_DEFAULT)
                    .expect("compact");
                let after = log_records(&log);
                // A subsequence of the model with the latest record of every key intact.
                let model_records: BTreeMap<i64, ModelRecord> = model
                    .records()
                    .into_iter()
                    .map(|r| (r.offset, r.clone()))
                    .collect();
                for r in &after {
                    prop_assert_eq!(Some(r), model_records.get(&r.offset));
                }
                let latest: BTreeMap<u8, (i64, Bytes)> = after
                    .iter()
                    .map(|r| (r.key, (r.offset, r.value.clone())))
                    .collect();
                prop_assert_eq!(latest, before);
                let kept: std::collections::BTreeSet<i64> =
                    after.iter().map(|r| r.offset).collect();
                for b in &mut model.batches {
                    b.records
                        .retain(|r| r.offset < model.log_start || kept.contains(&r.offset));
                }
                // Batches left empty are dropped from the log, as the cleaner documents.
                model.batches.retain(|b| !b.records.is_empty());
            }
            Op::Flush => {
                log.flush().expect("flush");
                prop_assert_eq!(log.recovery_point(), log.log_end_offset());
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().expect("close");
                }
                drop(log);
                log = open(dir.path(), &clock, model.log_start);
                // Loading drops epochs starting at or past the log end (Kafka's load does
                // `truncateFromEnd(logEndOffset)`), which matters when the log is empty.
                model.epochs.retain(|(_, start)| *start < model.log_end);
                for entry in std::fs::read_dir(dir.path()).expect("ls") {
                    let name = entry
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned();
                    prop_assert!(
                        !name.ends_with(".swap")
                            && !name.ends_with(".cleaned")
                            && !name.ends_with(".deleted"),
                        "leftover {}",
                        name
                    );
                }
            }
        }
        check(&log, &model)?;
    }
    // Reading below the log start is out of range.
    if model.log_start > 0 {
        let err = log
            .read(Offset(model.log_start - 1), 100, Offset(i64::MAX), true)
            .expect_err("below start");
        let out_of_range = matches!(err, StorageError::OffsetOutOfRange { .. });
        prop_assert!(out_of_range, "{}", err);
    }
    Ok(())
}

proptest! {
    // 48 cases keep CI quick; set PROPTEST_CASES for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
