//! The partition log: an ordered list of segments, the last one active.
//!
//! Concurrency: every mutation (append, roll, truncation, retention, compaction's swap, close)
//! holds the writer mutex; readers never take it. Readers load the current segment list from an
//! [`ArcSwap`] (a pointer copy and a reference count), read the published size of a segment and
//! slice its shared memory map. A mutation publishes a new list; the old one lives on for readers
//! that still hold it.

use std::fs::{self, OpenOptions};
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, RecordBatch, RecordBatchMut, TimestampType,
};
use spate_protocol::types::{LeaderEpoch, Offset};

use crate::clock::Clock;
use crate::config::LogConfig;
use crate::epoch::{EpochEntry, LeaderEpochCache};
use crate::error::{Result, StorageError};
use crate::files::{
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
    TMP_SUFFIX, fsync_dir, map_prefix, parse_offset_file_name, read_if_exists, remove_if_exists,
    with_suffix, write_atomically,
};
use crate::index::{Index, OffsetEntry, TimeEntry};
use crate::segment::{
    BatchHeader, FileHeaders, Headers, IndexCursor, MaxTimestamp, NO_TIMESTAMP, Scan, Segment,
    SegmentInit, scan, segment_paths,
};
use crate::snapshot::{self, TopicId};

/// Written by [`PartitionLog::close`] after everything is fsynced; its presence at open means no
/// recovery scan is needed. Holds the log end offset, checked against what the files say.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Most bytes one batch may inflate to when its records are read (timestamp lookups,
/// compaction). Kafka's default `message.max.bytes` is 1 MiB compressed; this leaves room for
/// highly compressible batches without letting a hostile one exhaust memory.
pub const BATCH_INFLATED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// What the caller knows from its checkpoints when opening a log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOpenOptions {
    /// Offset below which the log is known to be fsynced (from the recovery-point checkpoint).
    /// `None` scans every segment after an unclean stop.
    pub recovery_point: Option<Offset>,
    /// Log start offset from the log-start checkpoint (DeleteRecords may have moved it past the
    /// first segment's base offset).
    pub log_start_offset: Option<Offset>,
    /// First offset the cleaner has not compacted yet (from the cleaner checkpoint).
    pub cleaner_offset: Option<Offset>,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// Log end offset after the append.
    pub log_end_offset: Offset,
    /// Largest batch max timestamp appended (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Last offset of the first batch holding `max_timestamp` (Kafka's shallow offset).
    pub offset_of_max_timestamp: Offset,
    /// The broker time stamped into LogAppendTime batches, if any.
    pub log_append_time_ms: Option<i64>,
    /// Log start offset at the time of the append.
    pub log_start_offset: Offset,
}

/// Whole batches read from one segment.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Contiguous whole batches, a slice of the segment's memory map (no copy). The first batch
    /// is the one that contains the requested offset, so it may start before it.
    pub records: Bytes,
    /// Log start offset at the time of the read.
    pub log_start_offset: Offset,
    /// Log end offset at the time of the read.
    pub log_end_offset: Offset,
}

/// A record found by a timestamp lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The record's offset.
    pub offset: Offset,
    /// Leader epoch of the batch holding it (`-1` when unknown).
    pub leader_epoch: LeaderEpoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    Closed,
    Failed,
}

struct PendingDelete {
    due_ms: i64,
    paths: Vec<PathBuf>,
}

/// State only mutations touch, behind the writer mutex.
struct Writer {
    state: WriterState,
    cursor: IndexCursor,
    pending_deletes: Vec<PendingDelete>,
    last_flush_ms: i64,
}

/// A partition's log. `Send + Sync`; share it through `Arc`.
pub struct PartitionLog {
    dir: PathBuf,
    config: ArcSwap<LogConfig>,
    clock: Arc<dyn Clock>,
    segments: ArcSwap<Vec<Arc<Segment>>>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    /// Shared with the threads that fsync rolled segments.
    recovery_point: Arc<AtomicI64>,
    /// The directory was created by this process and neither it nor its entry in the parent
    /// has been fsynced yet.
    dirs_unsynced: AtomicBool,
    /// Set by the broker; retention never deletes past it. `i64::MAX` until set.
    high_watermark: AtomicI64,
    /// First offset not yet compacted.
    cleaner_offset: AtomicI64,
    writer: Mutex<Writer>,
    epochs: Mutex<LeaderEpochCache>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish()
    }
}

/// A segment loaded from disk, before its indexes are finalized.
struct Loaded {
    base: Offset,
    log_path: PathBuf,
    log: fs::File,
    init: SegmentInit,
    /// Rebuilt entries when the segment was scanned; `None` when its index files were trusted.
    rebuilt: Option<(Vec<OffsetEntry>, Vec<TimeEntry>)>,
    opened: Option<(Index<OffsetEntry>, Index<TimeEntry>)>,
    scanned: bool,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering it if it was not closed cleanly:
    /// leftovers of interrupted operations are finished or removed, every segment past the
    /// recovery point is scanned (sizes, offsets, CRC-32C) and cut at the first bad batch, later
    /// segments are then dropped, and missing or corrupt indexes are rebuilt.
    pub fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        options: LogOpenOptions,
    ) -> Result<PartitionLog> {
        let dir = dir.into();
        config.validate()?;
        // A new directory (and its entry in the parent) is made durable by the first flush, roll
        // or close, not here: as in Kafka, creating thousands of partitions must not cost two
        // journal commits each. A crash before that loses only an empty log, which the broker
        // creates again from the metadata.
        let created = !dir.exists();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let now = clock.now_ms();
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_leo = read_if_exists(&marker)?
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| text.trim().parse::<i64>().ok())
            .map(Offset);

        let bases = tidy_directory(&dir, &config)?;
        let mut loaded = None;
        if let Some(expected_leo) = clean_leo {
            match load_segments(&dir, &bases, &config, now, None, true) {
                Ok(segments) if leo_of(&segments) == Some(expected_leo) || segments.is_empty() => {
                    loaded = Some(segments);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "clean-shutdown marker does not match the segments; recovering"
                    );
                }
            }
        }
        let loaded = match loaded {
            Some(segments) => segments,
            None => load_segments(&dir, &bases, &config, now, options.recovery_point, false)?,
        };
        let recovered_any = loaded.iter().any(|l| l.scanned);
        let mut segments = finalize_segments(&dir, loaded, &config)?;
        if segments.is_empty() {
            let start = options.log_start_offset.unwrap_or(Offset(0)).max(Offset(0));
            segments.push(Arc::new(Segment::create(&dir, start, &config, now)?));
        }
        if recovered_any {
            for segment in &segments {
                segment.flush()?;
            }
        }
        if !created {
            fsync_dir(&dir)?;
        }

        let first_base = segments[0].base_offset;
        let leo = segments[segments.len() - 1].next_offset();
        let log_start = options
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base)
            .min(leo);
        let mut epochs = LeaderEpochCache::load(&dir)?;
        epochs.truncate_from_end(leo)?;
        epochs.truncate_from_start(log_start)?;
        snapshot::delete_snapshots_where(&dir, |offset| offset > leo)?;
        if clean_leo.is_some() {
            remove_if_exists(&marker)?;
            // The marker's removal must be durable before any append, or a later crash would
            // skip the recovery the unflushed appends need.
            fsync_dir(&dir)?;
        }
        let cleaner_offset = options
            .cleaner_offset
            .unwrap_or(log_start)
            .max(log_start)
            .min(leo);
        Ok(PartitionLog {
            dir,
            config: ArcSwap::from_pointee(config),
            clock,
            segments: ArcSwap::from_pointee(segments),
            log_start_offset: AtomicI64::new(log_start.0),
            log_end_offset: AtomicI64::new(leo.0),
            recovery_point: Arc::new(AtomicI64::new(leo.0)),
            dirs_unsynced: AtomicBool::new(created),
            high_watermark: AtomicI64::new(i64::MAX),
            cleaner_offset: AtomicI64::new(cleaner_offset.0),
            writer: Mutex::new(Writer {
                state: WriterState::Open,
                cursor: IndexCursor::default(),
                pending_deletes: Vec::new(),
                last_flush_ms: now,
            }),
            epochs: Mutex::new(epochs),
        })
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current settings.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.load_full()
    }

    /// Replaces the settings (a topic config change); takes effect on the next operation.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// The clock the log reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// First offset a reader may ask for.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset.load(Ordering::Acquire))
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.log_end_offset.load(Ordering::Acquire))
    }

    /// Offset below which every byte is known to be fsynced.
    pub fn recovery_point(&self) -> Offset {
        Offset(self.recovery_point.load(Ordering::Acquire))
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.load().iter().map(|s| s.size_bytes()).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.load().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.load().iter().map(|s| s.base_offset).collect()
    }

    /// Tells the log the partition's high watermark: retention never deletes data at or past it
    /// and the cleaner never compacts past it.
    pub fn set_high_watermark(&self, high_watermark: Offset) {
        self.high_watermark
            .store(high_watermark.0, Ordering::Release);
    }

    pub(crate) fn high_watermark_offset(&self) -> Offset {
        self.high_watermark()
    }

    fn high_watermark(&self) -> Offset {
        Offset(
            self.high_watermark
                .load(Ordering::Acquire)
                .min(self.log_end_offset().0),
        )
    }

    /// First offset the cleaner has not compacted (the value for the cleaner checkpoint).
    pub fn cleaner_offset(&self) -> Offset {
        Offset(self.cleaner_offset.load(Ordering::Acquire))
    }

    pub(crate) fn set_cleaner_offset(&self, offset: Offset) {
        self.cleaner_offset.store(offset.0, Ordering::Release);
    }

    pub(crate) fn segments_snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.load_full()
    }

    fn check_open(&self, writer: &Writer) -> Result<()> {
        match writer.state {
            WriterState::Open => Ok(()),
            WriterState::Closed => Err(StorageError::Closed {
                dir: self.dir.clone(),
            }),
            WriterState::Failed => Err(StorageError::Failed {
                dir: self.dir.clone(),
            }),
        }
    }

    /// Appends batches produced to this leader: assigns offsets from the log end offset
    /// (rewriting `baseOffset`), stamps `leader_epoch`, and for LogAppendTime topics sets the
    /// timestamp type and max timestamp and recomputes the CRC. Every batch's CRC is checked
    /// before anything is written; the append is all or nothing.
    pub fn append_as_leader(
        &self,
        batches: &[RecordBatch],
        leader_epoch: LeaderEpoch,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendInfo> {
        let config = self.config.load_full();
        check_batches(batches, &config)?;
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let leo = self.log_end_offset();
        let mut plans = Vec::with_capacity(batches.len());
        let mut next = leo;
        let mut max_timestamp = NO_TIMESTAMP;
        let mut offset_of_max = leo;
        for batch in batches {
            let base = next;
            let last = base
                .0
                .checked_add(i64::from(batch.last_offset_delta()))
                .ok_or(StorageError::OffsetOverflow { log_end: leo })?;
            let batch_max = log_append_time_ms.unwrap_or_else(|| batch.max_timestamp());
            if batch_max > max_timestamp {
                max_timestamp = batch_max;
                offset_of_max = Offset(last);
            }
            plans.push((base, Offset(last), batch_max));
            next = Offset(last + 1);
        }
        if plans.is_empty() {
            return Ok(self.empty_append_info(leo, log_append_time_ms));
        }
        let total_bytes: u64 = batches.iter().map(|b| b.size_bytes() as u64).sum();
        let last_offset = Offset(next.0 - 1);
        let active = self.maybe_roll(
            &mut writer,
            &config,
            total_bytes,
            max_timestamp,
            last_offset,
            leo,
        )?;

        // Offsets and the epoch sit outside the CRC, so only a copy of the 61-byte header is
        // edited and the records are written straight from the request buffer. LogAppendTime
        // changes CRC-covered fields, so those batches are copied whole and re-CRCed.
        let mut headers: Vec<[u8; BATCH_HEADER_SIZE_BYTES]> = Vec::with_capacity(batches.len());
        let mut rewritten: Vec<BytesMut> = Vec::new();
        for (batch, (base, _, _)) in batches.iter().zip(&plans) {
            if let Some(append_time) = log_append_time_ms {
                let mut copy = BytesMut::from(batch.as_bytes().as_ref());
                let mut edit = RecordBatchMut::new(&mut copy).map_err(|source| {
                    StorageError::InvalidBatch {
                        batch_index: rewritten.len(),
                        source,
                    }
                })?;
                edit.set_base_offset(*base);
                edit.set_partition_leader_epoch(leader_epoch);
                edit.set_log_append_time(append_time);
                rewritten.push(copy);
            } else {
                let mut header = [0u8; BATCH_HEADER_SIZE_BYTES];
                header.copy_from_slice(&batch.as_bytes()[..BATCH_HEADER_SIZE_BYTES]);
                let mut edit = RecordBatchMut::new(&mut header).map_err(|source| {
                    StorageError::InvalidBatch {
                        batch_index: headers.len(),
                        source,
                    }
                })?;
                edit.set_base_offset(*base);
                edit.set_partition_leader_epoch(leader_epoch);
                headers.push(header);
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
        if log_append_time_ms.is_some() {
            slices.extend(rewritten.iter().map(|b| IoSlice::new(b)));
        } else {
            for (header, batch) in headers.iter().zip(batches) {
                slices.push(IoSlice::new(header));
                slices.push(IoSlice::new(&batch.as_bytes()[BATCH_HEADER_SIZE_BYTES..]));
            }
        }
        self.write_locked(&mut writer, &active, &mut slices)?;

        let mut position = active.size_bytes();
        for (batch, (base, last, batch_max)) in batches.iter().zip(&plans) {
            let header = BatchHeader {
                position,
                size_bytes: batch.size_bytes() as u64,
                base_offset: *base,
                last_offset: *last,
                max_timestamp: *batch_max,
                leader_epoch,
            };
            active.note_appended(&header, config.index_interval_bytes, &mut writer.cursor);
            position = header.end();
        }
        active.publish(position, next);
        self.log_end_offset.store(next.0, Ordering::Release);
        if leader_epoch.0 >= 0 {
            self.maybe_assign_epoch(leader_epoch, leo)?;
        }
        self.maybe_flush_by_messages(&mut writer, &config)?;
        Ok(AppendInfo {
            first_offset: leo,
            last_offset,
            log_end_offset: next,
            max_timestamp,
            offset_of_max_timestamp: offset_of_max,
            log_append_time_ms,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Appends batches replicated from the leader, offsets and epochs as the leader assigned
    /// them. The first batch must start at or after the log end offset and each batch after the
    /// previous one; gaps are allowed, because a compacted leader log has them (as Kafka).
    pub fn append_as_follower(&self, batches: &[RecordBatch]) -> Result<AppendInfo> {
        let config = self.config.load_full();
        check_batches(batches, &config)?;
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let leo = self.log_end_offset();
        let Some(first) = batches.first() else {
            return Ok(self.empty_append_info(leo, None));
        };
        let mut expected = leo;
        let mut max_timestamp = NO_TIMESTAMP;
        let mut offset_of_max = first.base_offset();
        for batch in batches {
            if batch.base_offset() < expected {
                return Err(StorageError::OffsetsOutOfOrder {
                    first_offset: batch.base_offset(),
                    expected_at_least: expected,
                });
            }
            let last = batch
                .base_offset()
                .0
                .checked_add(i64::from(batch.last_offset_delta()))
                .filter(|last| *last < i64::MAX)
                .ok_or(StorageError::OffsetOverflow { log_end: leo })?;
            if batch.max_timestamp() > max_timestamp {
                max_timestamp = batch.max_timestamp();
                offset_of_max = Offset(last);
            }
            expected = Offset(last + 1);
        }
        let first_offset = first.base_offset();
        let last_offset = Offset(expected.0 - 1);
        let total_bytes: u64 = batches.iter().map(|b| b.size_bytes() as u64).sum();
        let active = self.maybe_roll(
            &mut writer,
            &config,
            total_bytes,
            max_timestamp,
            last_offset,
            first_offset,
        )?;
        let mut slices: Vec<IoSlice<'_>> =
            batches.iter().map(|b| IoSlice::new(b.as_bytes())).collect();
        self.write_locked(&mut writer, &active, &mut slices)?;
        let mut position = active.size_bytes();
        for batch in batches {
            let header = BatchHeader {
                position,
                size_bytes: batch.size_bytes() as u64,
                base_offset: batch.base_offset(),
                last_offset: batch.last_offset(),
                max_timestamp: batch.max_timestamp(),
                leader_epoch: batch.partition_leader_epoch(),
            };
            active.note_appended(&header, config.index_interval_bytes, &mut writer.cursor);
            position = header.end();
        }
        active.publish(position, expected);
        self.log_end_offset.store(expected.0, Ordering::Release);
        for batch in batches {
            if batch.partition_leader_epoch().0 >= 0 {
                self.maybe_assign_epoch(batch.partition_leader_epoch(), batch.base_offset())?;
            }
        }
        self.maybe_flush_by_messages(&mut writer, &config)?;
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_end_offset: expected,
            max_timestamp,
            offset_of_max_timestamp: offset_of_max,
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset(),
        })
    }

    fn empty_append_info(&self, leo: Offset, log_append_time_ms: Option<i64>) -> AppendInfo {
        AppendInfo {
            first_offset: leo,
            last_offset: Offset(leo.0 - 1),
            log_end_offset: leo,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: Offset(leo.0 - 1),
            log_append_time_ms,
            log_start_offset: self.log_start_offset(),
        }
    }

    fn write_locked(
        &self,
        writer: &mut Writer,
        active: &Segment,
        slices: &mut [IoSlice<'_>],
    ) -> Result<()> {
        if let Err(err) = active.write(slices) {
            // Bytes past the published size may have been written. Put the cursor back so the
            // next append overwrites them (no reader can see them); if even that fails, refuse
            // writes until the log is reopened and recovered.
            if active.seek_to_end().is_err() {
                writer.state = WriterState::Failed;
            }
            return Err(err);
        }
        Ok(())
    }

    fn maybe_assign_epoch(&self, epoch: LeaderEpoch, start_offset: Offset) -> Result<()> {
        let mut epochs = self.epochs.lock();
        if epochs.latest_epoch().is_none_or(|latest| epoch > latest) {
            epochs.assign(epoch, start_offset)?;
        }
        Ok(())
    }

    fn maybe_flush_by_messages(&self, writer: &mut Writer, config: &LogConfig) -> Result<()> {
        let unflushed = self.log_end_offset().0 - self.recovery_point().0;
        if config.flush_messages != i64::MAX && unflushed >= config.flush_messages {
            self.flush_locked(writer)?;
        }
        Ok(())
    }

    /// Kafka's `maybeRoll`: rolls before an append of `messages_bytes` when the active segment
    /// would pass `segment.bytes`, has waited `segment.ms` (less its jitter), has a full index, or
    /// cannot express `max_offset` relative to its base. Returns the segment to append to.
    fn maybe_roll(
        &self,
        writer: &mut Writer,
        config: &LogConfig,
        messages_bytes: u64,
        max_timestamp: i64,
        max_offset: Offset,
        new_base: Offset,
    ) -> Result<Arc<Segment>> {
        let segments = self.segments.load_full();
        let active = segments[segments.len() - 1].clone();
        let size = active.size_bytes();
        let now = self.clock.now_ms();
        let reached_ms = active.time_waited_for_roll_ms(now, max_timestamp)
            > config.segment_ms.saturating_sub(active.roll_jitter_ms);
        let should_roll = size + messages_bytes > config.segment_bytes
            || (size > 0 && reached_ms)
            || active.offset_index.is_full(0)
            || active.time_index.is_full(1)
            || max_offset.0 - active.base_offset.0 > i64::from(i32::MAX)
            || new_base < active.base_offset;
        if !should_roll {
            return Ok(active);
        }
        self.roll_locked(writer, new_base)
    }

    /// Seals the active segment and starts a new one at `new_base`. An empty active segment is
    /// replaced instead (or kept, when it already starts at `new_base`).
    fn roll_locked(&self, writer: &mut Writer, new_base: Offset) -> Result<Arc<Segment>> {
        self.roll_with(writer, new_base, false)
    }

    /// [`PartitionLog::roll_locked`], optionally keeping an empty active segment as a sealed
    /// one (truncation into a gap keeps it so that the log start stays inside a segment).
    fn roll_with(
        &self,
        writer: &mut Writer,
        new_base: Offset,
        keep_empty: bool,
    ) -> Result<Arc<Segment>> {
        let config = self.config.load_full();
        let segments = self.segments.load_full();
        let active = segments[segments.len() - 1].clone();
        let mut kept: Vec<Arc<Segment>> = segments[..segments.len() - 1].to_vec();
        let replace_active =
            active.size_bytes() == 0 && !(keep_empty && active.base_offset < new_base);
        if replace_active && active.base_offset == new_base {
            return Ok(active);
        }
        // Check before changing anything, so a refused roll leaves the log as it was.
        let previous_end = if replace_active {
            kept.last().map(|s| s.next_offset())
        } else {
            Some(active.next_offset())
        };
        if let Some(previous_end) = previous_end
            && previous_end > new_base
        {
            return Err(StorageError::OffsetsOutOfOrder {
                first_offset: new_base,
                expected_at_least: previous_end,
            });
        }
        if replace_active {
            self.retire(writer, std::slice::from_ref(&active))?;
        } else {
            active.seal_with(false)?;
            kept.push(active.clone());
        }
        let created = Segment::create(&self.dir, new_base, &config, self.clock.now_ms())
            .and_then(|segment| self.sync_new_dirs().map(|()| segment))
            .and_then(|segment| fsync_dir(&self.dir).map(|()| segment));
        let segment = match created {
            Ok(segment) => Arc::new(segment),
            Err(err) => {
                if replace_active {
                    // The list still names the retired segment; only a reopen sets it right.
                    writer.state = WriterState::Failed;
                }
                return Err(err);
            }
        };
        let recovery_point = self.recovery_point();
        let unflushed: Vec<Arc<Segment>> = kept
            .iter()
            .filter(|s| s.next_offset() > recovery_point)
            .cloned()
            .collect();
        kept.push(segment.clone());
        self.segments.store(Arc::new(kept));
        writer.cursor = IndexCursor::default();
        if active.size_bytes() > 0 && !active.is_retired() {
            self.fsync_rolled(unflushed);
        }
        Ok(segment)
    }

    /// fsyncs a just-rolled segment on a background thread (as Kafka's scheduler does), then
    /// advances the recovery point past it; the append that rolled does not wait for the disk.
    /// The recovery point only moves forward, and a failed fsync leaves it behind, so a restart
    /// rescans that segment.
    fn fsync_rolled(&self, unflushed: Vec<Arc<Segment>>) {
        let recovery_point = self.recovery_point.clone();
        let dir = self.dir.clone();
        // Every sealed segment past the recovery point is fsynced, not just the one rolled now,
        // so threads finishing out of order never move the recovery point past unsynced data.
        let task = move || {
            for segment in &unflushed {
                if segment.is_retired() {
                    continue;
                }
                if let Err(err) = segment.fsync_sealed() {
                    tracing::error!(dir = %dir.display(), %err, "fsync of a rolled segment failed");
                    return;
                }
            }
            if let Some(last) = unflushed.last()
                && !last.is_retired()
            {
                recovery_point.fetch_max(last.next_offset().0, Ordering::AcqRel);
            }
        };
        let spawned = std::thread::Builder::new()
            .name("spate-segment-fsync".to_owned())
            .spawn(task);
        if let Err(err) = spawned {
            tracing::warn!(%err, "no thread for the roll fsync; the next flush covers it");
        }
    }

    /// Rolls the active segment now if it holds any data (Kafka's `roll()`).
    pub fn roll(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let leo = self.log_end_offset();
        self.roll_locked(&mut writer, leo)?;
        Ok(())
    }

    /// Reads whole batches from one segment, starting with the batch that contains `from` (a
    /// Fetch returns whole batches; clients skip records before their offset), up to
    /// `max_bytes`, and never a batch with a record at or past `upper_bound` (the high watermark
    /// or last stable offset). With `min_one_batch`, the first batch is returned even when it is
    /// larger than `max_bytes`. `from` equal to the log end offset (or past `upper_bound`) reads
    /// nothing; outside `[log start, log end]` is [`StorageError::OffsetOutOfRange`].
    ///
    /// Never waits for an append: it slices the shared map of the published bytes.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        let log_end = self.log_end_offset();
        let log_start = self.log_start_offset();
        let out_of_range = || StorageError::OffsetOutOfRange {
            requested: from,
            log_start,
            log_end,
        };
        if from < log_start || from > log_end {
            return Err(out_of_range());
        }
        let mut result = ReadResult {
            records: Bytes::new(),
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if from == log_end || from >= upper_bound {
            return Ok(result);
        }
        let segments = self.segments.load();
        let first = segments.partition_point(|s| s.base_offset <= from);
        if first == 0 {
            return Err(out_of_range());
        }
        for segment in &segments[first - 1..] {
            let data = segment.view()?;
            // Headers come from the file, not the map: the records are usually sent from the
            // file too, and then the map's pages are never touched.
            let mut headers = FileHeaders::new(segment.log_file(), data.len() as u64);
            let header = segment.find_batch_in(&mut headers, from);
            let Some(header) = header else {
                fail_on_read_error(&mut headers, segment)?;
                continue;
            };
            let start = header.position;
            let mut end = start;
            let mut next = Some(header);
            while let Some(h) = next {
                if h.last_offset >= upper_bound {
                    break;
                }
                let taken = h.end() - start;
                if taken > max_bytes as u64 && !(end == start && min_one_batch) {
                    break;
                }
                end = h.end();
                next = if end < data.len() as u64 {
                    headers.header(end).ok()
                } else {
                    None
                };
            }
            fail_on_read_error(&mut headers, segment)?;
            result.records = data.slice(start as usize..end as usize);
            return Ok(result);
        }
        Ok(result)
    }

    /// ListOffsets by timestamp (Kafka's `fetchOffsetByTimestamp` for a real timestamp): the
    /// first record with timestamp `>= timestamp` and offset `>=` the log start, found through
    /// the first segment whose max timestamp reaches it, its time index and a batch scan.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampAndOffset>> {
        let log_start = self.log_start_offset();
        let segments = self.segments.load_full();
        let Some(first) = segments
            .iter()
            .position(|s| s.max_timestamp().timestamp >= timestamp)
        else {
            return Ok(None);
        };
        for segment in &segments[first..] {
            let from = match segment.time_index.floor(timestamp)? {
                Some(entry) => segment.base_offset.plus(i64::from(entry.relative_offset)),
                None => segment.base_offset,
            };
            let data = segment.view()?;
            let Some(mut header) = segment.find_batch(&data, from.max(log_start)) else {
                continue;
            };
            loop {
                if header.max_timestamp >= timestamp && header.last_offset >= log_start {
                    let batch = batch_at(&data, &header, segment)?;
                    let records = batch.records(BATCH_INFLATED_BYTES_MAX).map_err(|source| {
                        StorageError::Records {
                            path: segment.log_path().to_path_buf(),
                            batch_offset: header.base_offset,
                            source,
                        }
                    })?;
                    for record in records {
                        let record = record.map_err(|source| StorageError::Records {
                            path: segment.log_path().to_path_buf(),
                            batch_offset: header.base_offset,
                            source,
                        })?;
                        let offset = header.base_offset.plus(i64::from(record.offset_delta));
                        let record_ts = record_timestamp(&batch, record.timestamp_delta);
                        if record_ts >= timestamp && offset >= log_start {
                            return Ok(Some(TimestampAndOffset {
                                timestamp: record_ts,
                                offset,
                                leader_epoch: header.leader_epoch,
                            }));
                        }
                    }
                }
                if header.end() >= data.len() as u64 {
                    break;
                }
                match BatchHeader::parse(&data, header.end()) {
                    Ok(next) => header = next,
                    Err(_) => break,
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734, as fixed by KAFKA-16310): the first record holding
    /// the largest timestamp in the log, with the epoch that wrote it. `None` for a log without
    /// timestamps.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampAndOffset>> {
        let segments = self.segments.load_full();
        let mut best: Option<(&Arc<Segment>, MaxTimestamp)> = None;
        for segment in segments.iter() {
            let max = segment.max_timestamp();
            if max.timestamp >= 0 && best.is_none_or(|(_, b)| max.timestamp > b.timestamp) {
                best = Some((segment, max));
            }
        }
        let Some((segment, max)) = best else {
            return Ok(None);
        };
        let data = segment.view()?;
        let Some(header) = segment.find_batch(&data, max.offset) else {
            return Ok(None);
        };
        let batch = batch_at(&data, &header, segment)?;
        let records =
            batch
                .records(BATCH_INFLATED_BYTES_MAX)
                .map_err(|source| StorageError::Records {
                    path: segment.log_path().to_path_buf(),
                    batch_offset: header.base_offset,
                    source,
                })?;
        for record in records {
            let record = record.map_err(|source| StorageError::Records {
                path: segment.log_path().to_path_buf(),
                batch_offset: header.base_offset,
                source,
            })?;
            if record_timestamp(&batch, record.timestamp_delta) == max.timestamp {
                let offset = header.base_offset.plus(i64::from(record.offset_delta));
                let epoch = self
                    .epochs
                    .lock()
                    .epoch_for_offset(offset)
                    .unwrap_or(header.leader_epoch);
                return Ok(Some(TimestampAndOffset {
                    timestamp: max.timestamp,
                    offset,
                    leader_epoch: epoch,
                }));
            }
        }
        Ok(None)
    }

    /// Removes every batch with a record at or past `offset` (replication divergence). Batches
    /// are atomic, so a batch containing `offset` goes whole and the log end becomes its base
    /// offset; otherwise the log end becomes `offset` (normally a batch boundary such as an
    /// epoch start), even inside a compaction gap. Returns whether anything was removed.
    pub fn truncate_to(&self, offset: Offset) -> Result<bool> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let leo = self.log_end_offset();
        if offset >= leo || offset.0 < 0 {
            if offset >= leo {
                // As Kafka's `truncateTo`: an epoch that begins at the log end holds nothing (this
                // replica led and wrote nothing in it) and goes, or a follower would keep telling
                // its leader about a history it does not have.
                self.epochs.lock().truncate_from_end(leo)?;
            }
            return Ok(false);
        }
        let segments = self.segments.load_full();
        if segments[0].base_offset > offset {
            self.truncate_fully_locked(&mut writer, offset)?;
            return Ok(true);
        }
        let keep_count = segments.partition_point(|s| s.base_offset <= offset);
        let doomed: Vec<Arc<Segment>> = segments[keep_count..].iter().rev().cloned().collect();
        let target = segments[keep_count - 1].clone();
        let truncated = self
            .retire(&mut writer, &doomed)
            .and_then(|()| self.truncate_segment(&mut writer, &target, offset));
        let (replacement, new_leo) = match truncated {
            Ok(done) => done,
            Err(err) => {
                // Segments may be retired while still listed; a reopen recovers the files.
                writer.state = WriterState::Failed;
                return Err(err);
            }
        };
        let data_end = replacement.next_offset();
        let mut kept: Vec<Arc<Segment>> = segments[..keep_count - 1].to_vec();
        kept.push(Arc::new(replacement));
        self.segments.store(Arc::new(kept));
        if data_end < new_leo {
            // The cut lies in a gap past the kept data (a compacted log): an empty segment at
            // the new log end records it, so a reopen finds the same log end (as Kafka).
            self.roll_with(&mut writer, new_leo, true)?;
        }
        self.log_end_offset.store(new_leo.0, Ordering::Release);
        self.log_start_offset.fetch_min(new_leo.0, Ordering::AcqRel);
        self.recovery_point.fetch_min(new_leo.0, Ordering::AcqRel);
        self.cleaner_offset.fetch_min(new_leo.0, Ordering::AcqRel);
        self.epochs.lock().truncate_from_end(new_leo)?;
        snapshot::delete_snapshots_where(&self.dir, |o| o > new_leo)?;
        tracing::info!(dir = %self.dir.display(), from = %leo, to = %new_leo, "truncated log");
        Ok(true)
    }

    /// Builds the active segment that replaces `target` when the log is cut at `offset`: the
    /// same file when no byte is dropped, else a new file holding the kept prefix, renamed into
    /// place (the old file is retired, never shrunk: readers may have it mapped).
    fn truncate_segment(
        &self,
        writer: &mut Writer,
        target: &Arc<Segment>,
        offset: Offset,
    ) -> Result<(Segment, Offset)> {
        // Returns the new segment (holding whole batches before the cut) and the new log end.
        let config = self.config.load_full();
        let data = target.view()?;
        let (cut, new_leo) = match target.find_batch(&data, offset) {
            Some(h) => (h.position, h.base_offset.min(offset)),
            None => (data.len() as u64, offset),
        };
        let base = target.base_offset;
        let [log_path, _, _] = segment_paths(&self.dir, base);
        let log = if cut == data.len() as u64 && !target.is_retired() {
            target
                .log_file()
                .try_clone()
                .map_err(|e| StorageError::io(&log_path, e))?
        } else {
            let cleaned = with_suffix(&log_path, CLEANED_SUFFIX);
            let swap = with_suffix(&log_path, SWAP_SUFFIX);
            write_file_synced(&cleaned, &data[..cut as usize])?;
            fs::rename(&cleaned, &swap).map_err(|e| StorageError::io(&swap, e))?;
            fsync_dir(&self.dir)?;
            self.retire(writer, std::slice::from_ref(target))?;
            fs::rename(&swap, &log_path).map_err(|e| StorageError::io(&log_path, e))?;
            fsync_dir(&self.dir)?;
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&log_path)
                .map_err(|e| StorageError::io(&log_path, e))?
        };
        let kept = data.slice(..cut as usize);
        let scanned = scan(&kept, base, base, config.index_interval_bytes, false);
        drop(data);
        let init = init_from_scan(&scanned, base, self.clock.now_ms());
        let segment = activate(
            &self.dir,
            base,
            log_path,
            log,
            init,
            scanned.offset_entries.clone(),
            scanned.time_entries.clone(),
            &config,
        )?;
        writer.cursor = IndexCursor {
            bytes_since_entry: 0,
        };
        Ok((segment, new_leo))
    }

    /// Empties the log and restarts it at `offset` (a follower far behind the leader's log
    /// start, or a replica being rebuilt).
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<()> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        self.truncate_fully_locked(&mut writer, offset)
    }

    fn truncate_fully_locked(&self, writer: &mut Writer, offset: Offset) -> Result<()> {
        let config = self.config.load_full();
        let segments = self.segments.load_full();
        let doomed: Vec<Arc<Segment>> = segments.iter().rev().cloned().collect();
        self.retire(writer, &doomed)?;
        let segment = Arc::new(Segment::create(
            &self.dir,
            offset,
            &config,
            self.clock.now_ms(),
        )?);
        fsync_dir(&self.dir)?;
        self.segments.store(Arc::new(vec![segment]));
        writer.cursor = IndexCursor::default();
        self.log_end_offset.store(offset.0, Ordering::Release);
        self.log_start_offset.store(offset.0, Ordering::Release);
        self.recovery_point.store(offset.0, Ordering::Release);
        self.cleaner_offset.store(offset.0, Ordering::Release);
        self.epochs.lock().clear()?;
        snapshot::delete_snapshots_where(&self.dir, |_| true)?;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never down, never past the
    /// high watermark) and deletes segments that lie wholly below it. Returns the log start.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let high_watermark = self.high_watermark();
        if offset > high_watermark {
            return Err(StorageError::LogStartBeyondHighWatermark {
                requested: offset,
                high_watermark,
            });
        }
        if offset > self.log_start_offset() {
            self.log_start_offset.store(offset.0, Ordering::Release);
            self.cleaner_offset.fetch_max(offset.0, Ordering::AcqRel);
            self.epochs.lock().truncate_from_start(offset)?;
        }
        self.delete_below_log_start(&mut writer)?;
        Ok(self.log_start_offset())
    }

    fn delete_below_log_start(&self, writer: &mut Writer) -> Result<usize> {
        let log_start = self.log_start_offset();
        self.delete_oldest(writer, |_, next| {
            next.is_some_and(|n| n.base_offset <= log_start)
        })
    }

    /// Applies `retention.ms` and `retention.bytes` (for `delete` policies) and deletes segments
    /// wholly below the log start offset. Whole segments only, oldest first, never past the high
    /// watermark; the active segment goes too when it has expired (a new one is rolled first).
    /// Returns the number of segments deleted.
    pub fn apply_retention(&self) -> Result<usize> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let config = self.config.load_full();
        let now = self.clock.now_ms();
        let mut deleted = 0;
        if config.cleanup_policy.deletes() {
            if config.retention_ms >= 0 {
                let retention_ms = config.retention_ms;
                deleted += self.delete_oldest(&mut writer, |segment, _| {
                    now.saturating_sub(segment.largest_timestamp_ms()) > retention_ms
                })?;
            }
            if config.retention_bytes >= 0 {
                let mut excess = self.size_bytes() as i64 - config.retention_bytes;
                deleted += self.delete_oldest(&mut writer, |segment, _| {
                    let size = segment.size_bytes() as i64;
                    if excess - size >= 0 {
                        excess -= size;
                        true
                    } else {
                        false
                    }
                })?;
            }
        }
        deleted += self.delete_below_log_start(&mut writer)?;
        self.delete_due_files(&mut writer, now, false);
        Ok(deleted)
    }

    /// Kafka's `deleteOldSegments`: deletes the longest prefix of segments satisfying
    /// `predicate`, stopping at the high watermark and at an empty active segment.
    fn delete_oldest(
        &self,
        writer: &mut Writer,
        mut predicate: impl FnMut(&Segment, Option<&Segment>) -> bool,
    ) -> Result<usize> {
        let segments = self.segments.load_full();
        let high_watermark = self.high_watermark();
        let leo = self.log_end_offset();
        let mut count = 0;
        for (i, segment) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map(|s| s.as_ref());
            let upper = next.map_or(leo, |n| n.base_offset);
            let last_and_empty = next.is_none() && segment.size_bytes() == 0;
            if last_and_empty || high_watermark < upper || !predicate(segment, next) {
                break;
            }
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        if count == segments.len() {
            self.roll_locked(writer, leo)?;
        }
        let segments = self.segments.load_full();
        let doomed: Vec<Arc<Segment>> = segments[..count].to_vec();
        let kept: Vec<Arc<Segment>> = segments[count..].to_vec();
        let new_start = kept[0].base_offset;
        if new_start > self.log_start_offset() {
            self.log_start_offset.store(new_start.0, Ordering::Release);
        }
        self.segments.store(Arc::new(kept));
        self.retire(writer, &doomed)?;
        let log_start = self.log_start_offset();
        self.cleaner_offset.fetch_max(log_start.0, Ordering::AcqRel);
        self.epochs.lock().truncate_from_start(log_start)?;
        snapshot::delete_snapshots_where(&self.dir, |o| o < log_start)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments = count,
            log_start = %log_start,
            "deleted old segments"
        );
        Ok(count)
    }

    /// Renames segments' files to `.deleted` and schedules the unlink after
    /// `file.delete.delay.ms`. Readers holding views keep their bytes either way.
    fn retire(&self, writer: &mut Writer, segments: &[Arc<Segment>]) -> Result<()> {
        let due_ms = self
            .clock
            .now_ms()
            .saturating_add(self.config.load().file_delete_delay_ms);
        for segment in segments {
            let paths = segment.retire()?;
            writer.pending_deletes.push(PendingDelete { due_ms, paths });
        }
        fsync_dir(&self.dir)
    }

    fn delete_due_files(&self, writer: &mut Writer, now: i64, all: bool) {
        writer.pending_deletes.retain(|pending| {
            if !all && pending.due_ms > now {
                return true;
            }
            for path in &pending.paths {
                if let Err(err) = remove_if_exists(path) {
                    tracing::warn!(%err, "could not delete a retired segment file");
                }
            }
            false
        });
    }

    /// fsyncs everything appended so far and advances the recovery point. Appends continue
    /// meanwhile (the writer lock is held only to pick the segment).
    pub fn flush(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        self.flush_locked(&mut writer)
    }

    fn flush_locked(&self, writer: &mut Writer) -> Result<()> {
        self.sync_new_dirs()?;
        let leo = self.log_end_offset();
        let segments = self.segments.load_full();
        let recovery_point = self.recovery_point();
        for segment in segments.iter().rev() {
            if segment.next_offset() <= recovery_point && segment.base_offset < recovery_point {
                break;
            }
            segment.flush()?;
        }
        self.recovery_point.fetch_max(leo.0, Ordering::AcqRel);
        writer.last_flush_ms = self.clock.now_ms();
        Ok(())
    }

    /// fsyncs a directory this process created, and the parent that names it, once.
    fn sync_new_dirs(&self) -> Result<()> {
        if !self.dirs_unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        fsync_dir(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            fsync_dir(parent)?;
        }
        self.dirs_unsynced.store(false, Ordering::Release);
        Ok(())
    }

    /// `flush.ms`: flushes when unflushed data is older than the setting. Called on a schedule.
    pub fn flush_if_due(&self) -> Result<bool> {
        let config = self.config.load_full();
        if config.flush_ms == i64::MAX || self.recovery_point() >= self.log_end_offset() {
            return Ok(false);
        }
        let mut writer = self.writer.lock();
        if writer.state != WriterState::Open {
            return Ok(false);
        }
        if self.clock.now_ms().saturating_sub(writer.last_flush_ms) < config.flush_ms {
            return Ok(false);
        }
        self.flush_locked(&mut writer)?;
        Ok(true)
    }

    /// Clean shutdown: seals the active segment's indexes, fsyncs everything, unlinks retired
    /// files and writes the clean-shutdown marker. Later writes fail; reads still work.
    pub fn close(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        if writer.state == WriterState::Closed {
            return Ok(());
        }
        let segments = self.segments.load_full();
        let now = self.clock.now_ms();
        if writer.state == WriterState::Open {
            self.sync_new_dirs()?;
            // Segments wholly below the recovery point are already sealed and fsynced.
            let recovery_point = self.recovery_point();
            for (i, segment) in segments.iter().rev().enumerate() {
                let active = i == 0;
                if !active
                    && segment.next_offset() <= recovery_point
                    && segment.base_offset < recovery_point
                {
                    break;
                }
                segment.seal()?;
            }
            self.recovery_point
                .fetch_max(self.log_end_offset().0, Ordering::AcqRel);
            write_atomically(
                &self.dir.join(CLEAN_SHUTDOWN_FILE),
                self.log_end_offset().0.to_string().as_bytes(),
            )?;
        }
        self.delete_due_files(&mut writer, now, true);
        writer.state = WriterState::Closed;
        Ok(())
    }

    /// Closes the log and removes its directory. Readers holding views keep their bytes.
    pub fn delete(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        writer.state = WriterState::Closed;
        writer.pending_deletes.clear();
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&self.dir, e)),
        }
    }

    /// Marks the log closed without touching its files (its directory was moved away).
    pub(crate) fn mark_closed(&self) {
        self.writer.lock().state = WriterState::Closed;
    }

    /// Whether writes are refused (closed or deleted).
    pub fn is_closed(&self) -> bool {
        self.writer.lock().state != WriterState::Open
    }

    /// Records that `epoch` starts at `start_offset` (a new leader's first offset).
    pub fn assign_epoch(&self, epoch: LeaderEpoch, start_offset: Offset) -> Result<()> {
        self.epochs.lock().assign(epoch, start_offset)?;
        Ok(())
    }

    /// The latest leader epoch in the log, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.lock().latest_epoch()
    }

    /// OffsetForLeaderEpoch: `(largest epoch <= requested, end offset of that epoch)` with
    /// Kafka's semantics (see [`crate::epoch`]).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let leo = self.log_end_offset();
        self.epochs.lock().end_offset_for(epoch, leo)
    }

    /// The leader-epoch entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// Stores a producer-state snapshot taken at `offset` (atomically), pruning old ones.
    pub fn write_producer_snapshot(&self, offset: Offset, contents: &[u8]) -> Result<()> {
        snapshot::write_snapshot(&self.dir, offset, contents)
    }

    /// The newest producer-state snapshot.
    pub fn latest_producer_snapshot(&self) -> Result<Option<(Offset, Bytes)>> {
        snapshot::latest_snapshot(&self.dir)
    }

    /// Offsets of the stored producer-state snapshots, oldest first.
    pub fn producer_snapshot_offsets(&self) -> Result<Vec<Offset>> {
        snapshot::list_snapshots(&self.dir)
    }

    /// Writes `partition.metadata` with the topic id.
    pub fn write_partition_metadata(&self, topic_id: TopicId) -> Result<()> {
        snapshot::write_partition_metadata(&self.dir, topic_id)
    }

    /// Reads the topic id from `partition.metadata`, if written.
    pub fn partition_metadata(&self) -> Result<Option<TopicId>> {
        snapshot::read_partition_metadata(&self.dir)
    }

    /// Replaces the contiguous run of segments `old` with the cleaned files in `swaps`, under
    /// the writer lock so appends, truncation and retention see either the old or the new list.
    /// Crash-safe in Kafka's order: `.cleaned` files become `.swap` (complete, fsynced), the old
    /// segments are retired, the swaps take the `.log` names. Returns false (touching nothing)
    /// when `old` is no longer in the log, e.g. after a truncation.
    pub(crate) fn swap_segments(&self, old: &[Arc<Segment>], swaps: Vec<SwapIn>) -> Result<bool> {
        let mut writer = self.writer.lock();
        self.check_open(&writer)?;
        let swapped = self.swap_segments_locked(&mut writer, old, swaps);
        if swapped.is_err() {
            // A swap that failed half-way is finished or undone by the swap recovery at open.
            writer.state = WriterState::Failed;
        }
        swapped
    }

    fn swap_segments_locked(
        &self,
        writer: &mut Writer,
        old: &[Arc<Segment>],
        swaps: Vec<SwapIn>,
    ) -> Result<bool> {
        let config = self.config.load_full();
        let current = self.segments.load_full();
        let Some(first) = old.first() else {
            return Ok(false);
        };
        let Some(at) = current.iter().position(|s| Arc::ptr_eq(s, first)) else {
            return Ok(false);
        };
        let still_there = old.len() < current.len() - at
            && old
                .iter()
                .zip(&current[at..])
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !still_there {
            return Ok(false);
        }
        let mut swap_paths = Vec::with_capacity(swaps.len());
        for swap in &swaps {
            let [log_path, _, _] = segment_paths(&self.dir, swap.base);
            let swap_path = with_suffix(&log_path, SWAP_SUFFIX);
            fs::rename(&swap.cleaned_path, &swap_path)
                .map_err(|e| StorageError::io(&swap_path, e))?;
            swap_paths.push((swap_path, log_path));
        }
        fsync_dir(&self.dir)?;
        self.retire(writer, old)?;
        let mut replacements = Vec::with_capacity(swaps.len());
        for (swap, (swap_path, log_path)) in swaps.into_iter().zip(swap_paths) {
            fs::rename(&swap_path, &log_path).map_err(|e| StorageError::io(&log_path, e))?;
            let [_, index_path, time_path] = segment_paths(&self.dir, swap.base);
            let mut times = swap.scan.time_entries.clone();
            if swap.scan.max_timestamp > times.last().map_or(NO_TIMESTAMP, |e| e.timestamp) {
                times.push(TimeEntry {
                    timestamp: swap.scan.max_timestamp,
                    relative_offset: (swap.scan.offset_of_max_timestamp.0 - swap.base.0) as u32,
                });
            }
            let offset_index = Index::write_sealed(&index_path, &swap.scan.offset_entries)?;
            let time_index = Index::write_sealed(&time_path, &times)?;
            let log = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&log_path)
                .map_err(|e| StorageError::io(&log_path, e))?;
            replacements.push(Arc::new(Segment::from_parts(
                swap.base,
                log_path,
                log,
                offset_index,
                time_index,
                init_from_scan(&swap.scan, swap.base, self.clock.now_ms()),
                &config,
                false,
            )));
        }
        fsync_dir(&self.dir)?;
        let mut list: Vec<Arc<Segment>> = current[..at].to_vec();
        list.extend(replacements);
        list.extend(current[at + old.len()..].iter().cloned());
        self.segments.store(Arc::new(list));
        Ok(true)
    }
}

/// A cleaned segment file ready to replace old segments.
pub(crate) struct SwapIn {
    /// Base offset (the first replaced segment's).
    pub base: Offset,
    /// The complete, fsynced `.cleaned` file.
    pub cleaned_path: PathBuf,
    /// Its scan (for the indexes and stats).
    pub scan: Scan,
}

/// Timestamp of a record: the batch max timestamp for LogAppendTime batches, else the base
/// timestamp plus the delta.
pub(crate) fn record_timestamp(batch: &RecordBatch, timestamp_delta: i64) -> i64 {
    match batch.timestamp_type() {
        TimestampType::LogAppendTime => batch.max_timestamp(),
        TimestampType::CreateTime => batch.base_timestamp().wrapping_add(timestamp_delta),
    }
}

/// Turns a failed header read into the read's error (a walk that merely ended is not one).
fn fail_on_read_error(headers: &mut FileHeaders<'_>, segment: &Segment) -> Result<()> {
    match headers.take_error() {
        Some(error) => Err(StorageError::io(segment.log_path(), error)),
        None => Ok(()),
    }
}

/// The batch a header describes, as a `RecordBatch` view.
pub(crate) fn batch_at(
    data: &Bytes,
    header: &BatchHeader,
    segment: &Segment,
) -> Result<RecordBatch> {
    RecordBatch::new(data.slice(header.position as usize..header.end() as usize)).map_err(|err| {
        StorageError::corrupt(
            segment.log_path(),
            format!("batch at position {}: {err}", header.position),
        )
    })
}

fn check_batches(batches: &[RecordBatch], config: &LogConfig) -> Result<()> {
    for (batch_index, batch) in batches.iter().enumerate() {
        batch
            .verify_crc()
            .map_err(|source| StorageError::InvalidBatch {
                batch_index,
                source,
            })?;
        if batch.size_bytes() as u64 > config.segment_bytes {
            return Err(StorageError::BatchTooLarge {
                batch_size_bytes: batch.size_bytes(),
                segment_bytes: config.segment_bytes,
            });
        }
    }
    Ok(())
}

pub(crate) fn write_file_synced(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.write_all(contents)
        .map_err(|e| StorageError::io(path, e))?;
    file.sync_all().map_err(|e| StorageError::io(path, e))
}

fn leo_of(loaded: &[Loaded]) -> Option<Offset> {
    loaded.last().map(|l| l.init.next_offset)
}

/// Removes leftovers of interrupted operations, completes interrupted swaps, removes orphan
/// indexes, and returns the base offsets of the segments, ascending.
fn tidy_directory(dir: &Path, config: &LogConfig) -> Result<Vec<Offset>> {
    let mut bases = Vec::new();
    let mut swaps = Vec::new();
    let mut indexes = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(DELETED_SUFFIX)
            || name.ends_with(TMP_SUFFIX)
            || name.ends_with(CLEANED_SUFFIX)
        {
            remove_if_exists(&path)?;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(base) = parse_offset_file_name(stem, LOG_SUFFIX) {
                swaps.push(base);
            } else {
                // Index swaps are not needed: indexes of a swapped-in segment are rebuilt.
                remove_if_exists(&path)?;
            }
        } else if let Some(base) = parse_offset_file_name(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if parse_offset_file_name(&name, INDEX_SUFFIX).is_some()
            || parse_offset_file_name(&name, TIME_INDEX_SUFFIX).is_some()
        {
            indexes.push(path);
        }
    }
    swaps.sort();
    for swap_base in swaps {
        complete_swap(dir, swap_base, &mut bases, config)?;
    }
    bases.sort();
    bases.dedup();
    for index in indexes {
        let name = index
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let base = parse_offset_file_name(&name, INDEX_SUFFIX)
            .or_else(|| parse_offset_file_name(&name, TIME_INDEX_SUFFIX));
        if base.is_some_and(|b| !bases.contains(&b)) {
            remove_if_exists(&index)?;
        }
    }
    Ok(bases)
}

/// Finishes a replacement interrupted by a crash: a complete `<base>.log.swap` replaces every
/// segment whose base offset lies in `[base, swap end)`, as Kafka's swap recovery.
fn complete_swap(
    dir: &Path,
    swap_base: Offset,
    bases: &mut Vec<Offset>,
    config: &LogConfig,
) -> Result<()> {
    let [log_path, index_path, time_path] = segment_paths(dir, swap_base);
    let swap_path = with_suffix(&log_path, SWAP_SUFFIX);
    let file = fs::File::open(&swap_path).map_err(|e| StorageError::io(&swap_path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(&swap_path, e))?
        .len();
    let data = map_prefix(&file, len, &swap_path)?;
    let scanned = scan(
        &data,
        swap_base,
        swap_base,
        config.index_interval_bytes,
        true,
    );
    drop(data);
    if scanned.problem.is_some() {
        // Swap files are fsynced whole before they get their name; a bad one is not trusted
        // and the segments it would have replaced stay.
        tracing::warn!(path = %swap_path.display(), problem = ?scanned.problem, "discarding bad swap file");
        return remove_if_exists(&swap_path);
    }
    let end = scanned
        .next_offset
        .unwrap_or(swap_base)
        .max(swap_base.plus(1));
    for base in bases.iter().filter(|b| **b >= swap_base && **b < end) {
        for path in segment_paths(dir, *base) {
            remove_if_exists(&path)?;
        }
    }
    bases.retain(|b| *b < swap_base || *b >= end);
    remove_if_exists(&index_path)?;
    remove_if_exists(&time_path)?;
    fs::rename(&swap_path, &log_path).map_err(|e| StorageError::io(&log_path, e))?;
    fsync_dir(dir)?;
    bases.push(swap_base);
    tracing::warn!(path = %log_path.display(), "completed an interrupted segment swap");
    Ok(())
}

/// Loads segments. Segments before the one holding `recovery_point` (all of them when `trust_all`)
/// are opened from their index files when those pass a sanity check; the rest are scanned.
fn load_segments(
    dir: &Path,
    bases: &[Offset],
    config: &LogConfig,
    now: i64,
    recovery_point: Option<Offset>,
    trust_all: bool,
) -> Result<Vec<Loaded>> {
    let scan_from = if trust_all {
        bases.len()
    } else {
        match recovery_point {
            None => 0,
            Some(rp) => bases.partition_point(|b| *b <= rp).saturating_sub(1),
        }
    };
    let mut loaded: Vec<Loaded> = Vec::with_capacity(bases.len());
    let mut min_offset = Offset(0);
    for (i, &base) in bases.iter().enumerate() {
        let [log_path, index_path, time_path] = segment_paths(dir, base);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        if base < min_offset {
            tracing::warn!(
                path = %log_path.display(),
                previous_end = %min_offset,
                "segment overlaps the one before it; dropping it and every later segment"
            );
            drop_segments(dir, &bases[i..])?;
            break;
        }
        let len = log
            .metadata()
            .map_err(|e| StorageError::io(&log_path, e))?
            .len();
        if i < scan_from
            && let Some(fast) =
                load_trusted(&log, &log_path, &index_path, &time_path, base, len, now)?
        {
            min_offset = fast.init.next_offset;
            loaded.push(fast);
            continue;
        }
        let data = map_prefix(&log, len, &log_path)?;
        let scanned = scan(&data, base, min_offset, config.index_interval_bytes, true);
        let zero_tail = data[scanned.valid_bytes as usize..].iter().all(|b| *b == 0);
        drop(data);
        let truncated = scanned.valid_bytes < len;
        if truncated {
            if zero_tail {
                tracing::info!(
                    path = %log_path.display(),
                    valid_bytes = scanned.valid_bytes,
                    "trimming zero-filled tail"
                );
            } else {
                tracing::warn!(
                    path = %log_path.display(),
                    valid_bytes = scanned.valid_bytes,
                    dropped_bytes = len - scanned.valid_bytes,
                    log_end_offset = %scanned.next_offset.unwrap_or(base),
                    first_dropped_offset = ?scanned.dropped_from_offset,
                    problem = ?scanned.problem,
                    "recovery truncated the log at the first bad batch"
                );
            }
            // No map of this file exists yet, so shrinking it is safe.
            log.set_len(scanned.valid_bytes)
                .map_err(|e| StorageError::io(&log_path, e))?;
        }
        let next_offset = scanned.next_offset.unwrap_or(base);
        min_offset = next_offset;
        let mut time_entries = scanned.time_entries.clone();
        let is_last = i + 1 == bases.len() || truncated;
        if !is_last
            && scanned.max_timestamp > time_entries.last().map_or(NO_TIMESTAMP, |e| e.timestamp)
        {
            time_entries.push(TimeEntry {
                timestamp: scanned.max_timestamp,
                relative_offset: (scanned.offset_of_max_timestamp.0 - base.0) as u32,
            });
        }
        loaded.push(Loaded {
            base,
            log_path: log_path.clone(),
            log,
            init: init_from_scan(&scanned, base, now),
            rebuilt: Some((scanned.offset_entries.clone(), time_entries)),
            opened: None,
            scanned: true,
        });
        if truncated && i + 1 < bases.len() {
            tracing::warn!(
                dir = %dir.display(),
                first_dropped_segment = %bases[i + 1],
                "dropping every segment after the truncation point"
            );
            drop_segments(dir, &bases[i + 1..])?;
            break;
        }
    }
    Ok(loaded)
}

fn drop_segments(dir: &Path, bases: &[Offset]) -> Result<()> {
    for base in bases.iter().rev() {
        for path in segment_paths(dir, *base) {
            remove_if_exists(&path)?;
        }
    }
    Ok(())
}

fn init_from_scan(scanned: &Scan, base: Offset, now: i64) -> SegmentInit {
    SegmentInit {
        size_bytes: scanned.valid_bytes,
        next_offset: scanned.next_offset.unwrap_or(base),
        max_timestamp: MaxTimestamp {
            timestamp: scanned.max_timestamp,
            offset: scanned.offset_of_max_timestamp,
        },
        first_batch_timestamp: scanned.first_batch_timestamp,
        created_ms: now,
    }
}

/// Opens a segment below the recovery point from its index files, after Kafka's sanity checks
/// (sizes, last entries within the segment) and a header walk from the last offset-index entry
/// to the end of the file. `None` when anything fails: the caller then scans the segment.
fn load_trusted(
    log: &fs::File,
    log_path: &Path,
    index_path: &Path,
    time_path: &Path,
    base: Offset,
    len: u64,
    now: i64,
) -> Result<Option<Loaded>> {
    let (Ok(offset_index), Ok(time_index)) = (
        Index::<OffsetEntry>::open_sealed(index_path),
        Index::<TimeEntry>::open_sealed(time_path),
    ) else {
        tracing::warn!(path = %index_path.display(), "index missing or malformed; rebuilding");
        return Ok(None);
    };
    let last_entry = offset_index.last().ok().flatten();
    let start = last_entry.map_or(0, |e| u64::from(e.position));
    if start > len {
        tracing::warn!(path = %index_path.display(), "index points past the log; rebuilding");
        return Ok(None);
    }
    let data = map_prefix(log, len, log_path)?;
    let mut position = start;
    let mut next_offset = None;
    let mut first_batch_timestamp = NO_TIMESTAMP;
    if len > 0 {
        match BatchHeader::parse(&data, 0) {
            Ok(header) if header.base_offset >= base => {
                first_batch_timestamp = header.max_timestamp;
            }
            _ => return Ok(None),
        }
    }
    while position < len {
        match BatchHeader::parse(&data, position) {
            Ok(header) if header.base_offset >= base => {
                next_offset = Some(header.last_offset.plus(1));
                position = header.end();
            }
            _ => {
                tracing::warn!(path = %log_path.display(), position, "log tail does not parse; scanning");
                return Ok(None);
            }
        }
    }
    // The last offset-index entry must point at the start of the batch it names.
    if let Some(entry) = last_entry {
        let named = base.plus(i64::from(entry.relative_offset));
        match BatchHeader::parse(&data, start) {
            Ok(header) if header.last_offset == named => {}
            _ => {
                tracing::warn!(path = %index_path.display(), "last index entry does not match the log; rebuilding");
                return Ok(None);
            }
        }
    }
    let max_timestamp = match time_index.last().ok().flatten() {
        Some(entry) => MaxTimestamp {
            timestamp: entry.timestamp,
            offset: base.plus(i64::from(entry.relative_offset)),
        },
        None => MaxTimestamp {
            timestamp: NO_TIMESTAMP,
            offset: base,
        },
    };
    // The last time-index entry must name a batch holding exactly that timestamp; retention
    // trusts it, so a plausible-looking garbage entry must not get through.
    if max_timestamp.timestamp != NO_TIMESTAMP {
        if next_offset.is_none_or(|n| max_timestamp.offset >= n) {
            return Ok(None);
        }
        let relative = max_timestamp.offset.0 - base.0;
        let from = match offset_index.floor(relative) {
            Ok(Some(entry)) => u64::from(entry.position),
            _ => 0,
        };
        let mut position = from;
        let mut matched = false;
        while position < len {
            match BatchHeader::parse(&data, position) {
                Ok(header) if header.last_offset < max_timestamp.offset => position = header.end(),
                Ok(header) => {
                    matched = header.last_offset == max_timestamp.offset
                        && header.max_timestamp == max_timestamp.timestamp;
                    break;
                }
                Err(_) => break,
            }
        }
        if !matched {
            tracing::warn!(path = %time_path.display(), "time index does not match the log; rebuilding");
            return Ok(None);
        }
    }
    let handle = log.try_clone().map_err(|e| StorageError::io(log_path, e))?;
    Ok(Some(Loaded {
        base,
        log_path: log_path.to_path_buf(),
        log: handle,
        init: SegmentInit {
            size_bytes: len,
            next_offset: next_offset.unwrap_or(base),
            max_timestamp,
            first_batch_timestamp,
            created_ms: now,
        },
        rebuilt: None,
        opened: Some((offset_index, time_index)),
        scanned: false,
    }))
}

/// Turns loaded segments into live ones: sealed indexes written or opened for all but the last,
/// which becomes the active segment with in-memory indexes.
fn finalize_segments(
    dir: &Path,
    loaded: Vec<Loaded>,
    config: &LogConfig,
) -> Result<Vec<Arc<Segment>>> {
    let count = loaded.len();
    let mut segments = Vec::with_capacity(count);
    for (i, item) in loaded.into_iter().enumerate() {
        let [_, index_path, time_path] = segment_paths(dir, item.base);
        let is_last = i + 1 == count;
        let (offset_entries, time_entries, opened) = match (item.rebuilt, item.opened) {
            (Some((o, t)), _) => (Some(o), Some(t), None),
            (None, Some(opened)) => (None, None, Some(opened)),
            (None, None) => (Some(Vec::new()), Some(Vec::new()), None),
        };
        let segment = if is_last {
            let (offsets, times) = match opened {
                Some((o, t)) => (o.entries()?, t.entries()?),
                None => (
                    offset_entries.unwrap_or_default(),
                    time_entries.unwrap_or_default(),
                ),
            };
            activate(
                dir,
                item.base,
                item.log_path,
                item.log,
                item.init,
                offsets,
                times,
                config,
            )?
        } else {
            let (offset_index, time_index) = match opened {
                Some(pair) => pair,
                None => (
                    Index::write_sealed(&index_path, &offset_entries.unwrap_or_default())?,
                    Index::write_sealed(&time_path, &time_entries.unwrap_or_default())?,
                ),
            };
            Segment::from_parts(
                item.base,
                item.log_path,
                item.log,
                offset_index,
                time_index,
                item.init,
                config,
                false,
            )
        };
        segments.push(Arc::new(segment));
    }
    Ok(segments)
}

/// Builds the active segment over an existing log file with fresh, preallocated indexes
/// holding `offsets` and `times`, and moves the write cursor to the end of its data.
#[allow(clippy::too_many_arguments)]
fn activate(
    dir: &Path,
    base: Offset,
    log_path: PathBuf,
    log: fs::File,
    init: SegmentInit,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    config: &LogConfig,
) -> Result<Segment> {
    let [_, index_path, time_path] = segment_paths(dir, base);
    let offset_index = Index::create_active(
        &index_path,
        config.offset_index_entries_max().max(offsets.len()),
        &offsets,
        true,
    )?;
    let time_index = Index::create_active(
        &time_path,
        config.time_index_entries_max().max(times.len() + 1),
        &times,
        true,
    )?;
    let segment = Segment::from_parts(
        base,
        log_path,
        log,
        offset_index,
        time_index,
        init,
        config,
        false,
    );
    segment.seek_to_end()?;
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn open(dir: &Path) -> PartitionLog {
        PartitionLog::open(
            dir,
            LogConfig::default(),
            Arc::new(ManualClock::new(0)),
            LogOpenOptions::default(),
        )
        .expect("open")
    }

    #[test]
    fn a_new_directory_is_synced_by_the_first_flush_and_an_existing_one_at_open() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t-0");
        let log = open(&dir);
        assert!(log.dirs_unsynced.load(Ordering::Acquire));
        log.flush().expect("flush");
        assert!(!log.dirs_unsynced.load(Ordering::Acquire));
        log.close().expect("close");

        let reopened = open(&dir);
        assert!(!reopened.dirs_unsynced.load(Ordering::Acquire));
    }

    #[test]
    fn closing_a_new_log_syncs_its_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let log = open(&root.path().join("t-1"));
        log.close().expect("close");
        assert!(!log.dirs_unsynced.load(Ordering::Acquire));
    }
}
