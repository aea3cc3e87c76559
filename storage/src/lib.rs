//! The partition log: segments of RecordBatch v2 bytes on local disk, read through memory maps.
//!
//! Owns segment files (`.log`, `.index`, `.timeindex`), the partition log built from them,
//! retention, compaction, crash recovery and checkpoints. Depends only on `spate-protocol` for the
//! RecordBatch byte format; never on the broker, the controller or any wire message struct.
//!
//! # Layout
//! - [`config`]: [`LogConfig`], Kafka's topic settings for a log.
//! - [`clock`]: the [`Clock`] every time-based rule reads.
//! - [`log`]: [`PartitionLog`]: append, read, lookups, truncation, retention, flush, recovery.
//! - `segment`, `index`: one segment's files, its offset and time indexes, its memory map.
//! - [`epoch`]: the leader-epoch cache and `leader-epoch-checkpoint`.
//! - [`checkpoint`]: Kafka's offset checkpoint files and [`TopicPartition`].
//! - [`snapshot`]: producer-state snapshots and `partition.metadata`.
//! - [`cleaner`]: log compaction.
//! - [`manager`]: [`LogManager`], every partition of a data directory and the background work.
//!
//! # Memory maps
//! Appends go through the file (`writev` at the end of the active segment). Readers get
//! [`bytes::Bytes`] slices of a read-only memory map of a segment's published prefix; each slice
//! holds the map, and the map holds the file's inode, so a slice stays valid and unchanged for as
//! long as it is held. The rules that make this true (and rule out SIGBUS):
//! - A map never covers more than the bytes published to readers, which always exist in the file.
//! - No byte inside a published range is ever written again. Appends write past it.
//! - No file is ever shrunk below a length that may be mapped. Recovery trims files before any
//!   map exists; sealing trims only a preallocated tail nobody mapped.
//! - Retention, truncation and compaction *retire* a segment: its files are renamed to
//!   `.deleted` and unlinked after `file.delete.delay.ms`. Unlinking a mapped file is safe; the
//!   inode goes when the last map does. Truncation inside a segment writes the kept prefix to a
//!   new file and renames it over the old name (the old inode lives on for its readers) instead of
//!   shrinking the file; when no byte is dropped the file is reused as is.
//! - The active segment's map is re-created when a reader needs more than it covers; older maps
//!   stay alive in the slices that use them.
//!
//! Because a slice's bytes are fixed for as long as it is held, a sender need not read them
//! through the map: [`file_region`] names the file and position a segment slice came from, and
//! the broker hands large record slices to the kernel with `sendfile` from there (no copy
//! through user memory, no page faults on the map).
#![deny(missing_docs)]

pub mod checkpoint;
pub mod cleaner;
pub mod clock;
pub mod config;
pub mod epoch;
pub mod error;
mod files;
mod index;
pub mod log;
pub mod manager;
mod segment;
pub mod snapshot;

pub use checkpoint::{OffsetCheckpointFile, TopicPartition};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CleanupPolicy, LogConfig};
pub use epoch::{EpochEntry, UNDEFINED_EPOCH_OFFSET};
pub use error::StorageError;
pub use files::{FileRegion, file_region};
pub use log::{AppendInfo, LogOpenOptions, PartitionLog, ReadResult, TimestampAndOffset};
pub use manager::{BackgroundHandle, LogManager, LogManagerConfig};
pub use snapshot::TopicId;
