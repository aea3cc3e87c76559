//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! One pass, as Kafka's `LogCleaner`:
//! 1. Choose the range: from the cleaner checkpoint (first dirty offset) up to the first
//!    uncleanable offset: the active segment, the high watermark, and the first segment younger
//!    than `min.compaction.lag.ms`, whichever comes first, rounded down to whole segments.
//! 2. Build the offset map: for every keyed record in the dirty range, key -> latest offset,
//!    bounded by a byte budget (when it fills, this pass cleans only up to where it got).
//! 3. Rewrite every segment from the start of the log up to that point, in groups that fit one
//!    segment: a record survives when no later record has its key; a tombstone survives until
//!    its batch's delete horizon (KIP-534: set to now + `delete.retention.ms` the first time the
//!    cleaner keeps it). Untouched batches are copied byte for byte; others are re-encoded with
//!    the same codec, base offset, producer fields and `lastOffsetDelta`, so offsets are
//!    preserved. Batches left with no record are dropped (producer state for them lives in the
//!    broker's snapshots, so an empty batch need not be kept). Keyless records are dropped, as
//!    Kafka does. Control batches and transactional batches are kept whole and their keys are
//!    not used to supersede anything: transaction-aware cleaning is out of scope, and this way
//!    an aborted record can never remove a committed one.
//! 4. Swap the new files in under the writer lock (see [`PartitionLog::swap_segments`]);
//!    appends and readers never wait for steps 1–3.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Arc;

use bytes::Bytes;
use spate_protocol::records::{RecordBatch, RecordBatchBuilder};
use spate_protocol::types::Offset;

use crate::error::{Result, StorageError};
use crate::files::{CLEANED_SUFFIX, map_prefix, remove_if_exists, with_suffix};
use crate::log::{BATCH_INFLATED_BYTES_MAX, PartitionLog, SwapIn, batch_at};
use crate::segment::{BatchHeader, Segment, scan, segment_paths};

/// Default budget of the offset map (Kafka's `log.cleaner.dedupe.buffer.size`).
pub const CLEANER_OFFSET_MAP_BYTES_DEFAULT: usize = 128 * 1024 * 1024;
/// Bytes charged per map entry on top of the key: hash table slot, `Bytes` handle, offset.
const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 64;
/// Write buffer for cleaned segment files.
const CLEANER_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// What one cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// First offset of the dirty range cleaned.
    pub first_dirty_offset: Offset,
    /// End (exclusive) of the range the offset map covered; the new cleaner checkpoint.
    pub end_offset: Offset,
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Bytes of the rewritten segments before cleaning.
    pub bytes_read: u64,
    /// Bytes after cleaning.
    pub bytes_written: u64,
    /// Records removed.
    pub records_removed: u64,
}

/// Why a log is (or is not) due for cleaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanability {
    /// Dirty bytes over cleanable bytes.
    pub dirty_ratio: f64,
    /// Bytes in the dirty, cleanable range.
    pub dirty_bytes: u64,
    /// Whether a pass should run now (ratio reached or `max.compaction.lag.ms` passed).
    pub due: bool,
}

struct Plan {
    /// Non-active segments the pass may rewrite, from the log start.
    cleanable: Vec<Arc<Segment>>,
    /// Index in `cleanable` of the first segment holding dirty data.
    first_dirty_index: usize,
    first_dirty_offset: Offset,
}

impl PartitionLog {
    fn compaction_plan(&self) -> Plan {
        let config = self.config();
        let segments = self.segments_snapshot();
        let now = self.clock().now_ms();
        let active_base = segments[segments.len() - 1].base_offset;
        let hw = self.log_end_offset().min(self.high_watermark_for_cleaner());
        let mut first_uncleanable = active_base.min(hw);
        if config.min_compaction_lag_ms > 0 {
            let limit = now.saturating_sub(config.min_compaction_lag_ms);
            if let Some(young) = segments[..segments.len() - 1]
                .iter()
                .find(|s| s.largest_timestamp_ms() > limit)
            {
                first_uncleanable = first_uncleanable.min(young.base_offset);
            }
        }
        let cleanable: Vec<Arc<Segment>> = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= first_uncleanable)
            .map(|pair| pair[0].clone())
            .collect();
        let first_dirty_offset = self.cleaner_offset().max(self.log_start_offset());
        let first_dirty_index = cleanable
            .iter()
            .position(|s| s.next_offset() > first_dirty_offset)
            .unwrap_or(cleanable.len());
        Plan {
            cleanable,
            first_dirty_index,
            first_dirty_offset,
        }
    }

    /// How dirty the log is, and whether the cleaner should compact it now.
    pub fn cleanability(&self) -> Cleanability {
        let config = self.config();
        let plan = self.compaction_plan();
        let clean_bytes: u64 = plan.cleanable[..plan.first_dirty_index]
            .iter()
            .map(|s| s.size_bytes())
            .sum();
        let dirty_bytes: u64 = plan.cleanable[plan.first_dirty_index..]
            .iter()
            .map(|s| s.size_bytes())
            .sum();
        let total = clean_bytes + dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let lag_exceeded = plan
            .cleanable
            .get(plan.first_dirty_index)
            .is_some_and(|first_dirty| {
                let first_ts = first_batch_timestamp(first_dirty);
                first_ts >= 0
                    && self.clock().now_ms().saturating_sub(first_ts) > config.max_compaction_lag_ms
            });
        Cleanability {
            dirty_ratio,
            dirty_bytes,
            due: config.cleanup_policy.compacts()
                && dirty_bytes > 0
                && (dirty_ratio >= config.min_cleanable_dirty_ratio || lag_exceeded),
        }
    }

    /// Runs one cleaning pass if the log compacts and [`PartitionLog::cleanability`] says it is
    /// due (or `force`). Returns what it did, or `None` when there was nothing to do.
    pub fn compact(
        &self,
        force: bool,
        offset_map_bytes_max: usize,
    ) -> Result<Option<CleanerStats>> {
        let config = self.config();
        if !config.cleanup_policy.compacts() {
            return Ok(None);
        }
        if !force && !self.cleanability().due {
            return Ok(None);
        }
        let plan = self.compaction_plan();
        if plan.first_dirty_index >= plan.cleanable.len() {
            return Ok(None);
        }
        // Phase 2: the offset map over the dirty segments.
        let mut map: HashMap<Bytes, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut end_offset = plan.first_dirty_offset;
        let mut last_segment = plan.first_dirty_index;
        'segments: for (i, segment) in plan
            .cleanable
            .iter()
            .enumerate()
            .skip(plan.first_dirty_index)
        {
            let data = segment.view()?;
            for header in headers(&data, segment)? {
                if header.last_offset < plan.first_dirty_offset {
                    continue;
                }
                let batch = batch_at(&data, &header, segment)?;
                if !(batch.is_control() || batch.is_transactional()) {
                    for record in records_of(&batch, segment)? {
                        let (offset, key) = (record.0, record.1);
                        let Some(key) = key else { continue };
                        if !map.contains_key(&key) {
                            map_bytes += key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
                        }
                        map.insert(key, offset);
                    }
                }
                end_offset = header.last_offset.plus(1);
                last_segment = i;
                if map_bytes > offset_map_bytes_max {
                    break 'segments;
                }
            }
            end_offset = end_offset.max(segment.next_offset());
        }
        // Phase 3: rewrite every segment from the log start through the last one mapped.
        let now = self.clock().now_ms();
        let to_clean = &plan.cleanable[..=last_segment];
        let groups = group_segments(to_clean, config.segment_bytes);
        let mut stats = CleanerStats {
            first_dirty_offset: plan.first_dirty_offset,
            end_offset,
            ..CleanerStats::default()
        };
        let mut swaps = Vec::with_capacity(groups.len());
        let cleaned = (|| -> Result<()> {
            for group in &groups {
                let base = group[0].base_offset;
                let [log_path, _, _] = segment_paths(self.dir(), base);
                let cleaned_path = with_suffix(&log_path, CLEANED_SUFFIX);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&cleaned_path)
                    .map_err(|e| StorageError::io(&cleaned_path, e))?;
                swaps.push(SwapIn {
                    base,
                    cleaned_path: cleaned_path.clone(),
                    scan: Default::default(),
                });
                let mut out = BufWriter::with_capacity(CLEANER_WRITE_BUFFER_BYTES, &file);
                for segment in group {
                    stats.bytes_read += segment.size_bytes();
                    let data = segment.view()?;
                    for header in headers(&data, segment)? {
                        let batch = batch_at(&data, &header, segment)?;
                        let (kept, removed) = self.clean_batch(
                            &batch,
                            segment,
                            &map,
                            end_offset,
                            now,
                            config.delete_retention_ms,
                        )?;
                        stats.records_removed += removed;
                        if let Some(kept) = kept {
                            out.write_all(&kept)
                                .map_err(|e| StorageError::io(&cleaned_path, e))?;
                        }
                    }
                }
                out.flush()
                    .map_err(|e| StorageError::io(&cleaned_path, e))?;
                drop(out);
                file.sync_all()
                    .map_err(|e| StorageError::io(&cleaned_path, e))?;
                let swap = swaps.last_mut().ok_or_else(|| {
                    StorageError::corrupt(&cleaned_path, "cleaned file lost its entry")
                })?;
                swap.scan = verify_cleaned(&file, &cleaned_path, base, &config)?;
                stats.bytes_written += swap.scan.valid_bytes;
                stats.segments_cleaned += group.len();
            }
            Ok(())
        })();
        let cleaned_paths: Vec<_> = swaps.iter().map(|s| s.cleaned_path.clone()).collect();
        let remove_cleaned = || {
            for path in &cleaned_paths {
                let _ = remove_if_exists(path);
            }
        };
        if let Err(err) = cleaned {
            remove_cleaned();
            return Err(err);
        }
        // Phase 4: swap under the writer lock.
        match self.swap_segments(to_clean, swaps) {
            Ok(true) => {}
            Ok(false) => {
                remove_cleaned();
                return Ok(None);
            }
            Err(err) => {
                remove_cleaned();
                return Err(err);
            }
        }
        self.set_cleaner_offset(end_offset.max(self.cleaner_offset()));
        tracing::info!(
            dir = %self.dir().display(),
            segments = stats.segments_cleaned,
            bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written,
            records_removed = stats.records_removed,
            "compacted log"
        );
        Ok(Some(stats))
    }

    /// Filters one batch. Returns the bytes to keep (the original bytes when nothing changes)
    /// and the number of records removed.
    fn clean_batch(
        &self,
        batch: &RecordBatch,
        segment: &Segment,
        map: &HashMap<Bytes, i64>,
        end_offset: Offset,
        now: i64,
        delete_retention_ms: i64,
    ) -> Result<(Option<Bytes>, u64)> {
        if batch.is_control() || batch.is_transactional() || batch.base_offset() >= end_offset {
            return Ok((Some(batch.as_bytes().clone()), 0));
        }
        let horizon = batch.has_delete_horizon().then(|| batch.base_timestamp());
        let iter =
            batch
                .records(BATCH_INFLATED_BYTES_MAX)
                .map_err(|source| StorageError::Records {
                    path: segment.log_path().to_path_buf(),
                    batch_offset: batch.base_offset(),
                    source,
                })?;
        let mut kept = Vec::new();
        let mut removed = 0u64;
        let mut keeps_tombstone = false;
        for record in iter {
            let record = record.map_err(|source| StorageError::Records {
                path: segment.log_path().to_path_buf(),
                batch_offset: batch.base_offset(),
                source,
            })?;
            let offset = batch.base_offset().0 + i64::from(record.offset_delta);
            let retain = match &record.key {
                None => false,
                Some(key) => {
                    let latest =
                        offset >= end_offset.0 || map.get(key).is_none_or(|found| offset >= *found);
                    let is_tombstone = record.value.is_none();
                    let tombstone_alive = horizon.is_none_or(|h| now < h);
                    latest && (!is_tombstone || tombstone_alive)
                }
            };
            if retain {
                keeps_tombstone |= record.value.is_none();
                kept.push(record);
            } else {
                removed += 1;
            }
        }
        let needs_horizon = keeps_tombstone && horizon.is_none();
        if removed == 0 && !needs_horizon {
            return Ok((Some(batch.as_bytes().clone()), 0));
        }
        if kept.is_empty() {
            return Ok((None, removed));
        }
        let mut builder = RecordBatchBuilder::new(batch.compression())
            .base_offset(batch.base_offset())
            .partition_leader_epoch(batch.partition_leader_epoch())
            .producer(
                batch.producer_id(),
                batch.producer_epoch(),
                batch.base_sequence(),
            )
            .min_last_offset_delta(batch.last_offset_delta());
        if batch.timestamp_type() == spate_protocol::records::TimestampType::LogAppendTime {
            builder = builder.log_append_time(batch.max_timestamp());
        }
        match horizon {
            Some(h) => builder = builder.delete_horizon(h),
            None if needs_horizon => {
                builder = builder.delete_horizon(now.saturating_add(delete_retention_ms));
            }
            None => {}
        }
        let base_timestamp = batch.base_timestamp();
        for record in &kept {
            builder
                .append_record(record, record.timestamp(base_timestamp))
                .map_err(|e| {
                    StorageError::corrupt(
                        segment.log_path(),
                        format!("re-encoding batch {}: {e}", batch.base_offset()),
                    )
                })?;
        }
        let bytes = builder.build().map_err(|e| {
            StorageError::corrupt(
                segment.log_path(),
                format!("re-encoding batch {}: {e}", batch.base_offset()),
            )
        })?;
        Ok((Some(bytes), removed))
    }

    fn high_watermark_for_cleaner(&self) -> Offset {
        self.high_watermark_offset()
    }
}

/// Max timestamp of a segment's first batch.
fn first_batch_timestamp(segment: &Segment) -> i64 {
    segment
        .view()
        .ok()
        .and_then(|data| BatchHeader::parse(&data, 0).ok())
        .map_or(-1, |h| h.max_timestamp)
}

/// Every batch header of a segment view; an unparsable batch is an error naming the file.
fn headers(data: &Bytes, segment: &Segment) -> Result<Vec<BatchHeader>> {
    let mut out = Vec::new();
    let mut position = 0u64;
    while position < data.len() as u64 {
        let header = BatchHeader::parse(data, position)
            .map_err(|problem| StorageError::corrupt(segment.log_path(), problem.to_string()))?;
        position = header.end();
        out.push(header);
    }
    Ok(out)
}

/// `(offset, key)` of every record of a batch; keys are copied so the map holds no large
/// decompressed buffers alive.
fn records_of(batch: &RecordBatch, segment: &Segment) -> Result<Vec<(i64, Option<Bytes>)>> {
    let iter = batch
        .records(BATCH_INFLATED_BYTES_MAX)
        .map_err(|source| StorageError::Records {
            path: segment.log_path().to_path_buf(),
            batch_offset: batch.base_offset(),
            source,
        })?;
    let mut out = Vec::with_capacity(iter.remaining());
    for record in iter {
        let record = record.map_err(|source| StorageError::Records {
            path: segment.log_path().to_path_buf(),
            batch_offset: batch.base_offset(),
            source,
        })?;
        let offset = batch.base_offset().0 + i64::from(record.offset_delta);
        out.push((offset, record.key.map(|k| Bytes::copy_from_slice(&k))));
    }
    Ok(out)
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose data fits one segment and whose
/// offsets fit 32-bit relative offsets from the group's base.
fn group_segments(segments: &[Arc<Segment>], segment_bytes: u64) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let upper = segments
            .get(i + 1)
            .map_or(segment.next_offset(), |n| n.base_offset);
        if let Some(group) = groups.last_mut() {
            let size: u64 = group.iter().map(|s| s.size_bytes()).sum();
            let base = group[0].base_offset;
            if size + segment.size_bytes() <= segment_bytes
                && upper.0 - base.0 <= i64::from(i32::MAX)
            {
                group.push(segment.clone());
                continue;
            }
        }
        groups.push(vec![segment.clone()]);
    }
    groups
}

/// Checks a cleaned file end to end (sizes, offsets, CRCs) and builds its indexes.
fn verify_cleaned(
    file: &File,
    path: &std::path::Path,
    base: Offset,
    config: &crate::config::LogConfig,
) -> Result<crate::segment::Scan> {
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let data = map_prefix(file, len, path)?;
    let scanned = scan(&data, base, base, config.index_interval_bytes, true);
    if let Some(problem) = &scanned.problem {
        return Err(StorageError::corrupt(
            path,
            format!("cleaned segment failed its check: {problem}"),
        ));
    }
    Ok(scanned)
}
