//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::{Clock, LogConfig, LogOpenOptions, ManualClock, PartitionLog};

/// Start of the manual clock in tests: a fixed, realistic wall-clock time.
pub const T0_MS: i64 = 1_700_000_000_000;

/// A producer-style batch (base offset 0) of `values` with keys `key-<i>` and timestamps `ts`.
pub fn batch(values: &[&[u8]], timestamp_ms: i64) -> RecordBatch {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for (i, value) in values.iter().enumerate() {
        builder
            .append(
                timestamp_ms + i as i64,
                Some(Bytes::from(format!("key-{i}"))),
                Some(Bytes::copy_from_slice(value)),
                vec![],
            )
            .expect("append");
    }
    RecordBatch::new(builder.build().expect("build")).expect("valid")
}

/// A batch of `count` records of `value_bytes` each, all at `timestamp_ms`.
pub fn sized_batch(count: usize, value_bytes: usize, timestamp_ms: i64) -> RecordBatch {
    let value = vec![b'x'; value_bytes];
    let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for v in values {
        builder
            .append(timestamp_ms, None, Some(Bytes::copy_from_slice(v)), vec![])
            .expect("append");
    }
    RecordBatch::new(builder.build().expect("build")).expect("valid")
}

/// A keyed batch: one record per `(key, value)`, `None` value = tombstone.
pub fn keyed_batch(records: &[(&str, Option<&str>)], timestamp_ms: i64) -> RecordBatch {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for (key, value) in records {
        builder
            .append(
                timestamp_ms,
                Some(Bytes::from(key.to_string())),
                value.map(|v| Bytes::from(v.to_string())),
                vec![],
            )
            .expect("append");
    }
    RecordBatch::new(builder.build().expect("build")).expect("valid")
}

/// Splits a read result into batches.
pub fn batches_of(mut bytes: Bytes) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(RecordBatch::split_first(&mut bytes).expect("whole batch"));
    }
    out
}

/// Small segments and indexes so tests roll often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(
        dir,
        config,
        clock.clone() as Arc<dyn Clock>,
        LogOpenOptions::default(),
    )
    .expect("open")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0_MS))
}

/// Appends `count` single-record batches with values `v<offset>`, timestamps T0 + offset.
pub fn append_n(log: &PartitionLog, count: usize) {
    for _ in 0..count {
        let next = log.log_end_offset().0;
        let value = format!("v{next}");
        log.append_as_leader(
            &[batch(&[value.as_bytes()], T0_MS + next)],
            LeaderEpoch(0),
            None,
        )
        .expect("append");
    }
}

/// Every record offset readable from `from`, with its value, reading until the end.
pub fn read_all(log: &PartitionLog, from: Offset) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let result = log
            .read(next, 1 << 20, Offset(i64::MAX), true)
            .expect("read");
        if result.records.is_empty() {
            break;
        }
        for batch in batches_of(result.records) {
            for record in batch.records(1 << 20).expect("records") {
                let record = record.expect("record");
                let offset = batch.base_offset().0 + i64::from(record.offset_delta);
                if offset >= next.0 {
                    out.push((offset, record.value.clone().unwrap_or_default()));
                }
            }
            next = batch.next_offset();
        }
    }
    out
}
