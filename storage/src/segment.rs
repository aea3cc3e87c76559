//! One segment: a `.log` file of whole batches, its two indexes, and the memory map readers use.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{IoSlice, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use spate_protocol::records::{BATCH_HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2, RecordBatch};
use spate_protocol::types::{LeaderEpoch, Offset};

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::files::{
    DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, map_shared_prefix,
    offset_file_name, remove_if_exists, rename_if_exists, with_suffix, write_all_vectored,
};
use crate::index::{Index, OffsetEntry, TimeEntry};

/// Kafka's "no timestamp" value.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// The fixed header fields of one batch, read in place from a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchHeader {
    /// First byte of the batch in the segment.
    pub position: u64,
    /// Whole size, log overhead included.
    pub size_bytes: u64,
    /// `baseOffset`.
    pub base_offset: Offset,
    /// `baseOffset + lastOffsetDelta`.
    pub last_offset: Offset,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// `partitionLeaderEpoch`.
    pub leader_epoch: LeaderEpoch,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Why the bytes at a position are not a whole batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Fewer bytes left than the header or the batch needs (a torn tail).
    Torn {
        /// Bytes needed.
        needed_bytes: u64,
        /// Bytes left.
        available_bytes: u64,
    },
    /// A field that no valid batch has (bad length, magic, offsets).
    Invalid(String),
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::Torn {
                needed_bytes,
                available_bytes,
            } => write!(
                f,
                "torn batch: needs {needed_bytes} bytes, {available_bytes} left"
            ),
            HeaderProblem::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl BatchHeader {
    /// Reads the header of the batch starting at `position`, checking that the whole batch is
    /// present and the fields are plausible. Never panics on any input.
    pub(crate) fn parse(data: &[u8], position: u64) -> Result<BatchHeader, HeaderProblem> {
        let available_bytes = (data.len() as u64).saturating_sub(position);
        check_header_fits(available_bytes)?;
        let at = position as usize;
        BatchHeader::from_bytes(
            &data[at..at + BATCH_HEADER_SIZE_BYTES],
            position,
            available_bytes,
        )
    }

    /// Reads a header from its [`BATCH_HEADER_SIZE_BYTES`] bytes `b`, found at `position` with
    /// `available_bytes` from there to the end of the data.
    fn from_bytes(
        b: &[u8],
        position: u64,
        available_bytes: u64,
    ) -> Result<BatchHeader, HeaderProblem> {
        let batch_length = be_i32(b, 8);
        let min_length = (BATCH_HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32;
        if batch_length < min_length {
            return Err(HeaderProblem::Invalid(format!(
                "batch length {batch_length} at position {position}"
            )));
        }
        let size_bytes = LOG_OVERHEAD_BYTES as u64 + batch_length as u64;
        if size_bytes > available_bytes {
            return Err(HeaderProblem::Torn {
                needed_bytes: size_bytes,
                available_bytes,
            });
        }
        let magic = b[16] as i8;
        if magic != MAGIC_V2 {
            return Err(HeaderProblem::Invalid(format!(
                "magic {magic} at position {position}"
            )));
        }
        let base_offset = be_i64(b, 0);
        let last_offset_delta = be_i32(b, 23);
        if base_offset < 0 || last_offset_delta < 0 {
            return Err(HeaderProblem::Invalid(format!(
                "base offset {base_offset} / last offset delta {last_offset_delta} at position \
                 {position}"
            )));
        }
        let Some(last_offset) = base_offset.checked_add(i64::from(last_offset_delta)) else {
            return Err(HeaderProblem::Invalid(format!(
                "last offset overflows at position {position}"
            )));
        };
        Ok(BatchHeader {
            position,
            size_bytes,
            base_offset: Offset(base_offset),
            last_offset: Offset(last_offset),
            max_timestamp: be_i64(b, 35),
            leader_epoch: LeaderEpoch(be_i32(b, 12)),
        })
    }

    /// One past the batch's last byte.
    pub(crate) fn end(&self) -> u64 {
        self.position + self.size_bytes
    }
}

fn check_header_fits(available_bytes: u64) -> Result<(), HeaderProblem> {
    if available_bytes < BATCH_HEADER_SIZE_BYTES as u64 {
        return Err(HeaderProblem::Torn {
            needed_bytes: BATCH_HEADER_SIZE_BYTES as u64,
            available_bytes,
        });
    }
    Ok(())
}

/// Where batch headers are read from: a segment's bytes in memory, or its file.
pub(crate) trait Headers {
    /// Bytes of data.
    fn len(&self) -> u64;
    /// The header of the batch at `position`, as [`BatchHeader::parse`].
    fn header(&mut self, position: u64) -> Result<BatchHeader, HeaderProblem>;
}

impl Headers for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn header(&mut self, position: u64) -> Result<BatchHeader, HeaderProblem> {
        BatchHeader::parse(self, position)
    }
}

/// Reads the headers of a segment's first `len` bytes from its file with `pread`, so that a
/// reader that sends the records from the file (`sendfile`) never touches the memory map: the
/// map's pages are then never faulted in, and do not count in the broker's resident memory.
///
/// Small batches are read a window at a time, so walking many of them costs few calls; large
/// ones one header at a time, so the records between headers are never copied.
pub(crate) struct FileHeaders<'a> {
    file: &'a File,
    len: u64,
    window: Vec<u8>,
    window_start: u64,
    small_batches: bool,
    error: Option<std::io::Error>,
}

/// Bytes read at once while the batches are smaller than this.
const HEADER_WINDOW_BYTES: usize = 8 * 1024;

impl<'a> FileHeaders<'a> {
    /// Headers of the first `len` bytes of `file` (at most its size).
    pub(crate) fn new(file: &'a File, len: u64) -> FileHeaders<'a> {
        FileHeaders {
            file,
            len,
            window: Vec::new(),
            window_start: 0,
            small_batches: true,
            error: None,
        }
    }

    /// The first read that failed, if any: the walk ended there and was not a torn or invalid
    /// batch.
    pub(crate) fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }
}

impl Headers for FileHeaders<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn header(&mut self, position: u64) -> Result<BatchHeader, HeaderProblem> {
        let available_bytes = self.len.saturating_sub(position);
        check_header_fits(available_bytes)?;
        let window_end = self.window_start + self.window.len() as u64;
        if position < self.window_start || position + BATCH_HEADER_SIZE_BYTES as u64 > window_end {
            let want = if self.small_batches {
                HEADER_WINDOW_BYTES
            } else {
                BATCH_HEADER_SIZE_BYTES
            };
            let want = want.min(usize::try_from(available_bytes).unwrap_or(usize::MAX));
            self.window.resize(want, 0);
            if let Err(error) = self.file.read_exact_at(&mut self.window, position) {
                self.window.clear();
                let problem = HeaderProblem::Invalid(format!("unreadable: {error}"));
                self.error.get_or_insert(error);
                return Err(problem);
            }
            self.window_start = position;
        }
        let at = (position - self.window_start) as usize;
        let header = BatchHeader::from_bytes(
            &self.window[at..at + BATCH_HEADER_SIZE_BYTES],
            position,
            available_bytes,
        )?;
        self.small_batches = header.size_bytes < HEADER_WINDOW_BYTES as u64;
        Ok(header)
    }
}

/// What a full scan of a segment's bytes found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scan {
    /// Bytes of whole, valid batches from the start.
    pub valid_bytes: u64,
    /// Offset after the last valid batch, or `None` if there is none.
    pub next_offset: Option<Offset>,
    /// Largest batch max timestamp, or [`NO_TIMESTAMP`].
    pub max_timestamp: i64,
    /// Last offset of the first batch holding `max_timestamp`.
    pub offset_of_max_timestamp: Offset,
    /// Max timestamp of the first batch (what `segment.ms` counts from), or [`NO_TIMESTAMP`].
    pub first_batch_timestamp: i64,
    /// Rebuilt offset index.
    pub offset_entries: Vec<OffsetEntry>,
    /// Rebuilt time index (without the final entry added on seal).
    pub time_entries: Vec<TimeEntry>,
    /// Why the scan stopped before the end of the data, if it did.
    pub problem: Option<String>,
    /// First offset of the first invalid batch, when its header was readable.
    pub dropped_from_offset: Option<Offset>,
}

/// Index-building state shared by appends and scans, so both produce the same entries.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IndexCursor {
    /// Bytes appended since the last offset-index entry.
    pub bytes_since_entry: u64,
}

/// Scans `data` from the start: checks every batch (sizes, magic, offsets increasing from
/// `min_offset`, relative offsets that fit the index, CRC-32C when `verify_crc`) and rebuilds
/// the indexes. Stops at the first bad batch.
pub(crate) fn scan(
    data: &Bytes,
    base_offset: Offset,
    min_offset: Offset,
    index_interval_bytes: u64,
    verify_crc: bool,
) -> Scan {
    let mut out = Scan {
        max_timestamp: NO_TIMESTAMP,
        offset_of_max_timestamp: base_offset,
        first_batch_timestamp: NO_TIMESTAMP,
        ..Scan::default()
    };
    let mut cursor = IndexCursor::default();
    let mut expected = min_offset.max(base_offset);
    let mut position = 0u64;
    let len = data.len() as u64;
    while position < len {
        let header = match BatchHeader::parse(data, position) {
            Ok(header) => header,
            Err(problem) => {
                out.problem = Some(problem.to_string());
                break;
            }
        };
        if header.base_offset < expected {
            out.problem = Some(format!(
                "batch at position {position} has base offset {} below {expected}",
                header.base_offset
            ));
            out.dropped_from_offset = Some(header.base_offset);
            break;
        }
        if header.last_offset.0 - base_offset.0 > i64::from(i32::MAX)
            || header.end() > u64::from(u32::MAX)
        {
            out.problem = Some(format!(
                "batch at position {position} (offsets {}..={}) does not fit segment {base_offset}",
                header.base_offset, header.last_offset
            ));
            out.dropped_from_offset = Some(header.base_offset);
            break;
        }
        if verify_crc {
            let bytes = data.slice(position as usize..header.end() as usize);
            let checked = RecordBatch::new(bytes).and_then(|batch| batch.verify_crc());
            if let Err(err) = checked {
                out.problem = Some(format!("batch at position {position}: {err}"));
                out.dropped_from_offset = Some(header.base_offset);
                break;
            }
        }
        if out.next_offset.is_none() {
            out.first_batch_timestamp = header.max_timestamp;
        }
        let last_time = out.time_entries.last().map(|e| e.timestamp);
        note_batch(
            &header,
            base_offset,
            index_interval_bytes,
            &mut cursor,
            &mut out.max_timestamp,
            &mut out.offset_of_max_timestamp,
            |entry| out.offset_entries.push(entry),
            |entry| out.time_entries.push(entry),
            last_time,
        );
        expected = header.last_offset.plus(1);
        out.next_offset = Some(expected);
        position = header.end();
        out.valid_bytes = position;
    }
    out
}

/// The per-batch bookkeeping of Kafka's `LogSegment.append`: track the max timestamp, and once
/// more than `index.interval.bytes` have passed since the last entry, add an offset-index entry
/// (the batch's last offset to its position) and a time-index entry if the max timestamp grew.
#[allow(clippy::too_many_arguments)]
pub(crate) fn note_batch(
    header: &BatchHeader,
    base_offset: Offset,
    index_interval_bytes: u64,
    cursor: &mut IndexCursor,
    max_timestamp: &mut i64,
    offset_of_max_timestamp: &mut Offset,
    mut push_offset: impl FnMut(OffsetEntry),
    mut push_time: impl FnMut(TimeEntry),
    last_time_entry: Option<i64>,
) {
    if header.max_timestamp > *max_timestamp {
        *max_timestamp = header.max_timestamp;
        *offset_of_max_timestamp = header.last_offset;
    }
    if cursor.bytes_since_entry > index_interval_bytes {
        push_offset(OffsetEntry {
            relative_offset: (header.last_offset.0 - base_offset.0) as u32,
            position: header.position as u32,
        });
        if *max_timestamp > last_time_entry.unwrap_or(NO_TIMESTAMP) {
            push_time(TimeEntry {
                timestamp: *max_timestamp,
                relative_offset: (offset_of_max_timestamp.0 - base_offset.0) as u32,
            });
        }
        cursor.bytes_since_entry = 0;
    }
    cursor.bytes_since_entry += header.size_bytes;
}

/// Paths of a segment's three files.
pub(crate) fn segment_paths(dir: &Path, base_offset: Offset) -> [PathBuf; 3] {
    [
        dir.join(offset_file_name(base_offset, LOG_SUFFIX)),
        dir.join(offset_file_name(base_offset, INDEX_SUFFIX)),
        dir.join(offset_file_name(base_offset, TIME_INDEX_SUFFIX)),
    ]
}

/// The max timestamp of a segment and the offset where it first appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaxTimestamp {
    /// Largest batch max timestamp, or [`NO_TIMESTAMP`].
    pub timestamp: i64,
    /// Last offset of the first batch holding it.
    pub offset: Offset,
}

/// Values a segment is opened or created with.
pub(crate) struct SegmentInit {
    /// Bytes of valid batches.
    pub size_bytes: u64,
    /// Offset after the last batch (the base offset when empty).
    pub next_offset: Offset,
    /// Max timestamp and its offset.
    pub max_timestamp: MaxTimestamp,
    /// Max timestamp of the first batch, or [`NO_TIMESTAMP`].
    pub first_batch_timestamp: i64,
    /// Creation time for `segment.ms` when the segment has no timestamps.
    pub created_ms: i64,
}

/// A segment. Shared through `Arc` by the log and every reader that is using it; the files are
/// unlinked only by the log (after retirement), and the inode lives on until the last reader's
/// map is dropped.
pub(crate) struct Segment {
    /// Offset of the first batch this segment may hold (its file name).
    pub base_offset: Offset,
    log_path: PathBuf,
    /// Shared with the segment's memory maps, which let senders reach the file (`sendfile`).
    log: Arc<File>,
    /// Bytes of whole batches readers may see.
    size_bytes: AtomicU64,
    /// Offset after the last batch.
    next_offset: AtomicI64,
    max_timestamp: Mutex<MaxTimestamp>,
    first_batch_timestamp: AtomicI64,
    created_ms: i64,
    /// This segment's share of `segment.jitter.ms`.
    pub roll_jitter_ms: i64,
    /// Offset index.
    pub offset_index: Index<OffsetEntry>,
    /// Time index.
    pub time_index: Index<TimeEntry>,
    /// The current map of the file's prefix, shared by readers; re-created when a reader needs
    /// more than it covers.
    map: Mutex<Bytes>,
    /// Set once the segment has left the log (its files renamed to `.deleted`).
    retired: AtomicBool,
    /// Whether the file was extended past its data by `preallocate`.
    preallocated: AtomicBool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("size_bytes", &self.size_bytes())
            .field("next_offset", &self.next_offset())
            .finish()
    }
}

fn jitter_ms(config: &LogConfig, base_offset: Offset) -> i64 {
    if config.segment_jitter_ms <= 0 {
        return 0;
    }
    // A per-process random hasher gives an unpredictable but cheap draw without a dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(base_offset.0);
    let bound = config.segment_jitter_ms.min(config.segment_ms).max(1) as u64;
    (hasher.finish() % bound) as i64
}

impl Segment {
    /// Creates an empty active segment at `base_offset`, replacing (by unlinking) any files with
    /// its names.
    pub(crate) fn create(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        let [log_path, index_path, time_path] = segment_paths(dir, base_offset);
        remove_if_exists(&log_path)?;
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        if config.preallocate {
            log.set_len(config.segment_bytes)
                .map_err(|e| StorageError::io(&log_path, e))?;
        }
        let offset_index =
            Index::create_active(&index_path, config.offset_index_entries_max(), &[], true)?;
        let time_index =
            Index::create_active(&time_path, config.time_index_entries_max(), &[], true)?;
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size_bytes: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset.0),
            max_timestamp: Mutex::new(MaxTimestamp {
                timestamp: NO_TIMESTAMP,
                offset: base_offset,
            }),
            first_batch_timestamp: AtomicI64::new(NO_TIMESTAMP),
            created_ms: now_ms,
            roll_jitter_ms: jitter_ms(config, base_offset),
            offset_index,
            time_index,
            map: Mutex::new(Bytes::new()),
            retired: AtomicBool::new(false),
            preallocated: AtomicBool::new(config.preallocate),
        })
    }

    /// Opens an existing `.log` with the given (already built or opened) indexes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        base_offset: Offset,
        log_path: PathBuf,
        log: File,
        offset_index: Index<OffsetEntry>,
        time_index: Index<TimeEntry>,
        init: SegmentInit,
        config: &LogConfig,
        preallocated: bool,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size_bytes: AtomicU64::new(init.size_bytes),
            next_offset: AtomicI64::new(init.next_offset.0),
            max_timestamp: Mutex::new(init.max_timestamp),
            first_batch_timestamp: AtomicI64::new(init.first_batch_timestamp),
            created_ms: init.created_ms,
            roll_jitter_ms: jitter_ms(config, base_offset),
            offset_index,
            time_index,
            map: Mutex::new(Bytes::new()),
            retired: AtomicBool::new(false),
            preallocated: AtomicBool::new(preallocated),
        }
    }

    /// The `.log` file path (as created; `.deleted` is appended on retirement).
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The open `.log` file.
    pub(crate) fn log_file(&self) -> &File {
        &self.log
    }

    /// Bytes of whole batches.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Offset after the last batch (the base offset when empty).
    pub(crate) fn next_offset(&self) -> Offset {
        Offset(self.next_offset.load(Ordering::Acquire))
    }

    /// Max timestamp and the offset where it first appears.
    pub(crate) fn max_timestamp(&self) -> MaxTimestamp {
        *self.max_timestamp.lock()
    }

    /// Kafka's `largestTimestamp`: the max timestamp, or the file's modification time when the
    /// segment holds no timestamps.
    pub(crate) fn largest_timestamp_ms(&self) -> i64 {
        let max = self.max_timestamp().timestamp;
        if max >= 0 {
            return max;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(self.created_ms)
    }

    /// Milliseconds this segment has waited for a `segment.ms` roll, as Kafka's
    /// `timeWaitedForRoll`: measured from the first batch's timestamp when it has one (comparing
    /// against the incoming batch's timestamp), else from the creation time.
    pub(crate) fn time_waited_for_roll_ms(&self, now_ms: i64, incoming_max_timestamp: i64) -> i64 {
        let first = self.first_batch_timestamp.load(Ordering::Acquire);
        if first >= 0 {
            incoming_max_timestamp.saturating_sub(first)
        } else {
            now_ms.saturating_sub(self.created_ms)
        }
    }

    /// Moves the write cursor to the end of the data (before the first append after opening).
    pub(crate) fn seek_to_end(&self) -> Result<()> {
        (&*self.log)
            .seek(SeekFrom::Start(self.size_bytes()))
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        Ok(())
    }

    /// Writes `bufs` at the write cursor (the end of the data). Not visible to readers until
    /// [`Segment::publish`].
    pub(crate) fn write(&self, bufs: &mut [IoSlice<'_>]) -> Result<()> {
        write_all_vectored(&self.log, bufs).map_err(|e| StorageError::io(&self.log_path, e))
    }

    /// Records a written batch in the indexes and timestamps (writer only).
    pub(crate) fn note_appended(
        &self,
        header: &BatchHeader,
        index_interval_bytes: u64,
        cursor: &mut IndexCursor,
    ) {
        let mut max = self.max_timestamp.lock();
        let mut max_ts = max.timestamp;
        let mut max_offset = max.offset;
        if self.first_batch_timestamp.load(Ordering::Acquire) == NO_TIMESTAMP
            && self.size_bytes() == 0
            && header.position == 0
        {
            self.first_batch_timestamp
                .store(header.max_timestamp, Ordering::Release);
        }
        let last_time = self.time_index_last_timestamp();
        note_batch(
            header,
            self.base_offset,
            index_interval_bytes,
            cursor,
            &mut max_ts,
            &mut max_offset,
            |entry| {
                // A full index was checked before the append (it rolls the segment).
                let _ = self.offset_index.append(entry);
            },
            |entry| {
                let _ = self.time_index.append(entry);
            },
            last_time,
        );
        *max = MaxTimestamp {
            timestamp: max_ts,
            offset: max_offset,
        };
    }

    fn time_index_last_timestamp(&self) -> Option<i64> {
        self.time_index.last().ok().flatten().map(|e| e.timestamp)
    }

    /// Makes bytes up to `size_bytes` and offsets up to `next_offset` visible to readers.
    pub(crate) fn publish(&self, size_bytes: u64, next_offset: Offset) {
        self.size_bytes.store(size_bytes, Ordering::Release);
        self.next_offset.store(next_offset.0, Ordering::Release);
    }

    /// A `Bytes` view of every published byte, sharing one memory map among readers. A view
    /// stays valid and unchanged for as long as it is held, whatever happens to the segment.
    pub(crate) fn view(&self) -> Result<Bytes> {
        let size = self.size_bytes();
        let mut map = self.map.lock();
        if (map.len() as u64) < size {
            *map = map_shared_prefix(&self.log, size, &self.log_path)?;
        }
        Ok(map.slice(..(size as usize).min(map.len())))
    }

    /// The position to start scanning from to find `offset`: the position of the batch in the
    /// offset index with the largest last offset `<= offset`, or 0.
    pub(crate) fn lookup_position(&self, offset: Offset) -> u64 {
        let relative = offset.0 - self.base_offset.0;
        if relative < 0 {
            return 0;
        }
        match self.offset_index.floor(relative) {
            Ok(Some(entry)) => u64::from(entry.position),
            _ => 0,
        }
    }

    /// Finds the first batch whose last offset is `>= offset` in `data` (a view of this
    /// segment), starting from the index hint and falling back to a scan from the start if the
    /// hint does not land on a plausible batch.
    pub(crate) fn find_batch(&self, mut data: &[u8], offset: Offset) -> Option<BatchHeader> {
        self.find_batch_in(&mut data, offset)
    }

    /// [`Segment::find_batch`] with headers from any source.
    pub(crate) fn find_batch_in(
        &self,
        data: &mut impl Headers,
        offset: Offset,
    ) -> Option<BatchHeader> {
        let hint = self.lookup_position(offset);
        if hint > 0 && hint < data.len() {
            match data.header(hint) {
                Ok(header) if header.base_offset <= offset || header.position == 0 => {
                    return scan_for(data, header.position, offset);
                }
                _ => {
                    tracing::warn!(
                        path = %self.log_path.display(),
                        hint,
                        "offset index points at no plausible batch; scanning the segment"
                    );
                }
            }
        }
        scan_for(data, 0, offset)
    }

    /// Writes pending index entries and fsyncs the log and both indexes.
    pub(crate) fn flush(&self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Seals the segment: adds the final time-index entry (the max timestamp), trims a
    /// preallocated log to its data and the indexes to their entries, and fsyncs all three.
    ///
    /// Trimming the log is safe: no map ever covers more than the published size.
    pub(crate) fn seal(&self) -> Result<()> {
        self.seal_with(true)
    }

    /// [`Segment::seal`] without the fsyncs, which [`Segment::fsync_sealed`] does later (a roll
    /// leaves them to a background thread so the append that rolled does not wait for them).
    pub(crate) fn seal_with(&self, fsync: bool) -> Result<()> {
        let max = self.max_timestamp();
        if max.timestamp > self.time_index_last_timestamp().unwrap_or(NO_TIMESTAMP) {
            let _ = self.time_index.append(TimeEntry {
                timestamp: max.timestamp,
                relative_offset: (max.offset.0 - self.base_offset.0) as u32,
            });
        }
        if self.preallocated.swap(false, Ordering::AcqRel) {
            self.log
                .set_len(self.size_bytes())
                .map_err(|e| StorageError::io(&self.log_path, e))?;
        }
        if fsync {
            self.log
                .sync_all()
                .map_err(|e| StorageError::io(&self.log_path, e))?;
        }
        self.offset_index.seal_with(fsync)?;
        self.time_index.seal_with(fsync)
    }

    /// fsyncs the log and both indexes of a sealed segment.
    pub(crate) fn fsync_sealed(&self) -> Result<()> {
        self.log
            .sync_all()
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.offset_index.fsync()?;
        self.time_index.fsync()
    }

    /// Renames the files to `<name>.deleted`. Readers holding views are unaffected.
    pub(crate) fn retire(&self) -> Result<Vec<PathBuf>> {
        if self.retired.swap(true, Ordering::AcqRel) {
            return Ok(Vec::new());
        }
        let mut renamed = Vec::with_capacity(3);
        for path in [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ] {
            let target = with_suffix(&path, DELETED_SUFFIX);
            rename_if_exists(&path, &target)?;
            renamed.push(target);
        }
        Ok(renamed)
    }

    /// Whether the segment has left the log.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// Walks batches from `position` until one whose last offset is `>= offset`.
fn scan_for(data: &mut impl Headers, mut position: u64, offset: Offset) -> Option<BatchHeader> {
    while position < data.len() {
        let header = data.header(position).ok()?;
        if header.last_offset >= offset {
            return Some(header);
        }
        position = header.end();
    }
    None
}
