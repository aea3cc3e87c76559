//! The sparse offset index and the time index of one segment.
//!
//! Formats, as Kafka's (all big-endian):
//! - `.index`: entries of `relative offset u32, file position u32`. One entry is added after at
//!   least `index.interval.bytes` of batches, keyed by the batch's last offset and pointing at the
//!   batch's first byte.
//! - `.timeindex`: entries of `timestamp i64, relative offset u32`, appended with the offset
//!   index when the segment's max timestamp grew; keyed by timestamp.
//!
//! The active segment's index lives in memory (readers search it under a short read lock) and is
//! written to its preallocated file in bulk on flush, roll and close; it never needs to be exact
//! on disk, because after an unclean stop the active segment is always rescanned and its indexes
//! rebuilt. A sealed index is trimmed to its entries, fsynced, and afterwards immutable: readers
//! map it lazily on first lookup and check it once then; an index that fails the check is
//! ignored (lookups fall back to scanning the segment) rather than trusted.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use parking_lot::RwLock;

use crate::error::{Result, StorageError};
use crate::files::{map_whole, remove_if_exists};

/// Size of one `.index` entry.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Size of one `.timeindex` entry.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;

/// One entry of an index file.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Encoded size.
    const BYTES: usize;
    /// Decodes from exactly `Self::BYTES` bytes.
    fn decode(raw: &[u8]) -> Self;
    /// Encodes into exactly `Self::BYTES` bytes.
    fn encode(&self, out: &mut [u8]);
    /// The key lookups search by.
    fn key(&self) -> i64;
    /// Whether `self` may follow `prev` in a well-formed index.
    fn follows(&self, prev: &Self) -> bool;
}

/// Offset index entry: batch last offset (relative to the segment base) to batch position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// Time index entry: max timestamp so far to the offset (relative) of the batch that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Largest timestamp in the segment up to this entry.
    pub timestamp: i64,
    /// Offset (relative to the segment base) of the batch holding that timestamp.
    pub relative_offset: u32,
}

fn be_u32(raw: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = OFFSET_ENTRY_BYTES;

    fn decode(raw: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: be_u32(raw, 0),
            position: be_u32(raw, 4),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }

    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = TIME_ENTRY_BYTES;

    fn decode(raw: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: be_u32(raw, 8),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn key(&self) -> i64 {
        self.timestamp
    }

    fn follows(&self, prev: &Self) -> bool {
        self.timestamp >= prev.timestamp && self.relative_offset >= prev.relative_offset
    }
}

enum State {
    /// Entries in memory; `file` is preallocated and holds the first `written` entries.
    Active {
        entries: Vec<u8>,
        written: usize,
        file: File,
    },
    /// Trimmed, fsynced and immutable. Mapped on first lookup; `usable` is false when the file
    /// failed its check (lookups then know nothing).
    Sealed {
        file: Option<File>,
        map: Option<Mmap>,
        entries: usize,
        checked: bool,
        usable: bool,
    },
}

/// One index file of one segment.
pub(crate) struct Index<E: IndexEntry> {
    path: PathBuf,
    max_entries: usize,
    state: RwLock<State>,
    _entry: PhantomData<E>,
}

impl<E: IndexEntry> Index<E> {
    /// Creates a fresh active index at `path` (replacing any file there by unlinking it, never by
    /// truncating a file someone may have mapped), preallocated to `max_entries`.
    pub(crate) fn create_active(
        path: &Path,
        max_entries: usize,
        initial: &[E],
        preallocate: bool,
    ) -> Result<Index<E>> {
        remove_if_exists(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        if preallocate {
            file.set_len((max_entries * E::BYTES) as u64)
                .map_err(|e| StorageError::io(path, e))?;
        }
        let mut entries = vec![0u8; initial.len() * E::BYTES];
        for (slot, entry) in entries.chunks_exact_mut(E::BYTES).zip(initial) {
            entry.encode(slot);
        }
        Ok(Index {
            path: path.to_path_buf(),
            max_entries,
            state: RwLock::new(State::Active {
                entries,
                written: 0,
                file,
            }),
            _entry: PhantomData,
        })
    }

    /// Opens an existing sealed index. Only the size is checked here; the entries are checked
    /// when the index is first mapped.
    pub(crate) fn open_sealed(path: &Path) -> Result<Index<E>> {
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        if len % E::BYTES as u64 != 0 {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "size {len} is not a multiple of the entry size {}",
                    E::BYTES
                ),
            ));
        }
        let entries = (len / E::BYTES as u64) as usize;
        Ok(Index {
            path: path.to_path_buf(),
            max_entries: entries,
            state: RwLock::new(State::Sealed {
                file: Some(file),
                map: None,
                entries,
                checked: false,
                usable: true,
            }),
            _entry: PhantomData,
        })
    }

    /// Writes a complete sealed index with `entries` (used when rebuilding), replacing any file
    /// there by unlinking it first.
    pub(crate) fn write_sealed(path: &Path, entries: &[E]) -> Result<Index<E>> {
        let index = Index::create_active(path, entries.len(), entries, false)?;
        index.seal()?;
        Ok(index)
    }

    /// Path of the file at creation (for messages; the file may since have been renamed).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether an append would exceed the preallocated size. `reserve` entries are kept free (the
    /// time index keeps one for the entry written when the segment is sealed, as Kafka does).
    pub(crate) fn is_full(&self, reserve: usize) -> bool {
        match &*self.state.read() {
            State::Active { entries, .. } => entries.len() / E::BYTES + reserve >= self.max_entries,
            State::Sealed { .. } => true,
        }
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Result<Option<E>> {
        let state = self.state.read();
        match &*state {
            State::Active { entries, .. } => Ok(entries
                .len()
                .checked_sub(E::BYTES)
                .map(|at| E::decode(&entries[at..]))),
            State::Sealed {
                file,
                map,
                entries,
                usable,
                ..
            } => {
                if *entries == 0 || !*usable {
                    return Ok(None);
                }
                let at = (*entries - 1) * E::BYTES;
                if let Some(map) = map {
                    return Ok(Some(E::decode(&map[at..at + E::BYTES])));
                }
                let Some(file) = file else { return Ok(None) };
                let mut raw = vec![0u8; E::BYTES];
                file.read_exact_at(&mut raw, at as u64)
                    .map_err(|e| StorageError::io(&self.path, e))?;
                Ok(Some(E::decode(&raw)))
            }
        }
    }

    /// Appends an entry to an active index. Returns false if the index is sealed or full.
    pub(crate) fn append(&self, entry: E) -> bool {
        let mut state = self.state.write();
        match &mut *state {
            State::Active { entries, .. } => {
                if entries.len() / E::BYTES >= self.max_entries {
                    return false;
                }
                let at = entries.len();
                entries.resize(at + E::BYTES, 0);
                entry.encode(&mut entries[at..]);
                true
            }
            State::Sealed { .. } => false,
        }
    }

    /// The entry with the largest key `<= key`, if any.
    pub(crate) fn floor(&self, key: i64) -> Result<Option<E>> {
        self.ensure_mapped()?;
        let state = self.state.read();
        let raw: &[u8] = match &*state {
            State::Active { entries, .. } => entries,
            State::Sealed {
                map: Some(map),
                usable: true,
                entries,
                ..
            } => &map[..entries * E::BYTES],
            State::Sealed { .. } => return Ok(None),
        };
        let count = raw.len() / E::BYTES;
        let entry_at = |i: usize| E::decode(&raw[i * E::BYTES..(i + 1) * E::BYTES]);
        // Binary search for the number of entries with key <= `key`.
        let (mut low, mut high) = (0usize, count);
        while low < high {
            let mid = low + (high - low) / 2;
            if entry_at(mid).key() <= key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low.checked_sub(1).map(entry_at))
    }

    /// All entries (for copying the kept part of an index on truncation).
    pub(crate) fn entries(&self) -> Result<Vec<E>> {
        self.ensure_mapped()?;
        let state = self.state.read();
        let raw: &[u8] = match &*state {
            State::Active { entries, .. } => entries,
            State::Sealed {
                map: Some(map),
                usable: true,
                entries,
                ..
            } => &map[..entries * E::BYTES],
            State::Sealed { .. } => return Ok(Vec::new()),
        };
        Ok(raw.chunks_exact(E::BYTES).map(E::decode).collect())
    }

    /// Maps and checks a sealed index on first use.
    fn ensure_mapped(&self) -> Result<()> {
        {
            let state = self.state.read();
            match &*state {
                State::Active { .. } => return Ok(()),
                State::Sealed { checked: true, .. } => return Ok(()),
                State::Sealed { .. } => {}
            }
        }
        let mut state = self.state.write();
        if let State::Sealed {
            file,
            map,
            entries,
            checked,
            usable,
        } = &mut *state
        {
            if *checked {
                return Ok(());
            }
            *checked = true;
            let Some(handle) = file.as_ref() else {
                *usable = false;
                return Ok(());
            };
            let mapped = map_whole(handle, &self.path)?;
            if let Some(mapped) = mapped {
                let count = (mapped.len() / E::BYTES).min(*entries);
                let mut prev: Option<E> = None;
                for raw in mapped[..count * E::BYTES].chunks_exact(E::BYTES) {
                    let entry = E::decode(raw);
                    if let Some(prev) = prev
                        && !entry.follows(&prev)
                    {
                        tracing::warn!(
                            path = %self.path.display(),
                            ?prev,
                            ?entry,
                            "index entries out of order; ignoring the index"
                        );
                        *usable = false;
                        return Ok(());
                    }
                    prev = Some(entry);
                }
                *entries = count;
                *map = Some(mapped);
            } else {
                *entries = 0;
            }
        }
        Ok(())
    }

    /// Writes entries not yet on disk and fsyncs the file (active index only).
    pub(crate) fn sync(&self) -> Result<()> {
        let mut state = self.state.write();
        if let State::Active {
            entries,
            written,
            file,
        } = &mut *state
        {
            let from = *written * E::BYTES;
            if from < entries.len() {
                file.write_all_at(&entries[from..], from as u64)
                    .map_err(|e| StorageError::io(&self.path, e))?;
                *written = entries.len() / E::BYTES;
            }
            file.sync_data()
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// fsyncs a sealed index file (after [`Index::seal`] without fsync).
    pub(crate) fn fsync(&self) -> Result<()> {
        match &*self.state.read() {
            State::Sealed {
                file: Some(file), ..
            } => file.sync_all().map_err(|e| StorageError::io(&self.path, e)),
            _ => Ok(()),
        }
    }

    /// Writes all entries, trims the file to them, fsyncs it and makes the index immutable.
    pub(crate) fn seal(&self) -> Result<()> {
        self.seal_with(true)
    }

    /// [`Index::seal`], leaving the fsync to a later [`Index::fsync`] when `fsync` is false.
    pub(crate) fn seal_with(&self, fsync: bool) -> Result<()> {
        let mut state = self.state.write();
        let State::Active {
            entries,
            written,
            file,
        } = &mut *state
        else {
            return Ok(());
        };
        let from = *written * E::BYTES;
        if from < entries.len() {
            file.write_all_at(&entries[from..], from as u64)
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        // Trimming is safe: an active index file is never mapped.
        file.set_len(entries.len() as u64)
            .map_err(|e| StorageError::io(&self.path, e))?;
        if fsync {
            file.sync_all()
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        let count = entries.len() / E::BYTES;
        let handle = file
            .try_clone()
            .map_err(|e| StorageError::io(&self.path, e))?;
        *state = State::Sealed {
            file: Some(handle),
            map: None,
            entries: count,
            checked: false,
            usable: true,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_finds_largest_entry_not_above_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let index: Index<OffsetEntry> = Index::create_active(&path, 10, &[], true).expect("create");
        assert_eq!(index.floor(5).expect("floor"), None);
        for i in 1..=4u32 {
            assert!(index.append(OffsetEntry {
                relative_offset: i * 10,
                position: i * 100,
            }));
        }
        assert_eq!(index.floor(9).expect("floor"), None);
        assert_eq!(
            index.floor(10).expect("floor").map(|e| e.position),
            Some(100)
        );
        assert_eq!(
            index.floor(35).expect("floor").map(|e| e.position),
            Some(300)
        );
        assert_eq!(
            index.floor(99).expect("floor").map(|e| e.position),
            Some(400)
        );
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            10 * OFFSET_ENTRY_BYTES as u64,
            "preallocated"
        );
        index.seal().expect("seal");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            4 * OFFSET_ENTRY_BYTES as u64,
            "trimmed"
        );
        assert_eq!(
            index.floor(35).expect("floor").map(|e| e.position),
            Some(300)
        );
        let reopened: Index<OffsetEntry> = Index::open_sealed(&path).expect("open");
        assert_eq!(reopened.entries().expect("entries").len(), 4);
        assert_eq!(
            reopened.last().expect("last").map(|e| e.relative_offset),
            Some(40)
        );
        assert_eq!(
            reopened.floor(25).expect("floor").map(|e| e.position),
            Some(200)
        );
    }

    #[test]
    fn full_index_refuses_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.timeindex");
        let index: Index<TimeEntry> = Index::create_active(&path, 2, &[], true).expect("create");
        assert!(!index.is_full(1));
        assert!(index.append(TimeEntry {
            timestamp: 1,
            relative_offset: 0
        }));
        assert!(index.is_full(1));
        assert!(index.append(TimeEntry {
            timestamp: 2,
            relative_offset: 1
        }));
        assert!(!index.append(TimeEntry {
            timestamp: 3,
            relative_offset: 2
        }));
    }

    #[test]
    fn garbage_sealed_index_is_ignored_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        // Two entries, the second going backwards.
        let mut raw = Vec::new();
        raw.extend_from_slice(&[0, 0, 0, 9, 0, 0, 1, 0]);
        raw.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 5]);
        std::fs::write(&path, &raw).expect("write");
        let index: Index<OffsetEntry> = Index::open_sealed(&path).expect("open");
        assert_eq!(index.floor(100).expect("floor"), None);
        std::fs::write(&path, [1u8, 2, 3]).expect("write");
        assert!(Index::<OffsetEntry>::open_sealed(&path).is_err());
    }
}
