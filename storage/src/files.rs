//! File names, atomic file replacement, directory fsync and the memory-map wrapper.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};
use spate_protocol::types::Offset;

use crate::error::{Result, StorageError};

/// Segment data file suffix.
pub(crate) const LOG_SUFFIX: &str = ".log";
/// Offset index suffix.
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Time index suffix.
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Producer-state snapshot suffix.
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Added to a retired segment's files until they are unlinked.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";
/// Added to files the cleaner or a truncation is still writing.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Added to complete replacement files that are about to take a segment's place.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Added to a file being written before it is renamed into place.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Digits of the zero-padded offset in segment and snapshot file names, as Kafka.
pub(crate) const OFFSET_NAME_DIGITS: usize = 20;

/// `00000000000000000042.log` for base offset 42 and suffix `.log`.
pub(crate) fn offset_file_name(offset: Offset, suffix: &str) -> String {
    format!("{:020}{suffix}", offset.0)
}

/// The offset in a name like `00000000000000000042.log`, if `name` has exactly that shape.
pub(crate) fn parse_offset_file_name(name: &str, suffix: &str) -> Option<Offset> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != OFFSET_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(Offset)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// fsyncs a directory so that creations, renames and unlinks inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    handle.sync_all().map_err(|e| StorageError::io(dir, e))
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file, never a
/// mix: write a temporary file, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = with_suffix(path, TMP_SUFFIX);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StorageError::io(&tmp, e))?;
        file.write_all(contents)
            .map_err(|e| StorageError::io(&tmp, e))?;
        file.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => Ok(()),
    }
}

/// Reads a whole file, or `None` if it does not exist.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Renames a file, treating a missing source as success (it was already moved or removed).
pub(crate) fn rename_if_exists(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(from, e)),
    }
}

/// Writes every byte of `bufs` at the file's cursor, retrying short writes.
pub(crate) fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned zero bytes",
                ));
            }
            Ok(written) => IoSlice::advance_slices(&mut bufs, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Keeps a memory map alive for as long as any `Bytes` slice of it exists. A map of a segment
/// that readers send to sockets is also listed in [`MAPPED`] with its file, from creation until
/// it is dropped.
struct MapOwner {
    map: Mmap,
    listed: bool,
}

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MapOwner {
    fn drop(&mut self) {
        if self.listed {
            MAPPED.lock().remove(&(self.map.as_ptr() as usize));
        }
    }
}

/// The listed maps by start address: their length and the file they map from byte 0. An entry
/// lives exactly as long as its map, so an address inside a live slice finds the map it came
/// from and nothing else (live mappings never overlap).
static MAPPED: parking_lot::Mutex<BTreeMap<usize, (usize, Arc<File>)>> =
    parking_lot::Mutex::new(BTreeMap::new());

/// A byte range of an open file: where a slice of a segment's memory map lies on disk.
#[derive(Debug, Clone)]
pub struct FileRegion {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRegion {
    /// The file (open for reading).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Position of the first byte in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where `bytes` lies on disk, when it is (part of) a slice this crate handed out of a segment's
/// memory map, such as [`crate::ReadResult::records`]. The file's bytes in the region are the
/// slice's bytes and stay so while the slice is held (crate docs, "Memory maps"), so a sender
/// may copy them from the file (`sendfile`) instead of from memory. `None` for any other slice.
pub fn file_region(bytes: &[u8]) -> Option<FileRegion> {
    let start = bytes.as_ptr() as usize;
    let end = start.checked_add(bytes.len())?;
    let maps = MAPPED.lock();
    let (&map_start, (map_len, file)) = maps.range(..=start).next_back()?;
    (end <= map_start + map_len).then(|| FileRegion {
        file: file.clone(),
        position: (start - map_start) as u64,
        len: bytes.len(),
    })
}

/// Maps the first `len_bytes` of `file` read-only and wraps the map in `Bytes`, so that slices
/// handed to readers keep the map (and with it the file's inode) alive.
///
/// Callers guarantee `len_bytes` is at most the file's current size and that this process never
/// shrinks the file below it nor rewrites bytes inside it (see the crate docs, "Memory maps").
pub(crate) fn map_prefix(file: &File, len_bytes: u64, path: &Path) -> Result<Bytes> {
    Ok(match map_raw(file, len_bytes, path)? {
        Some(map) => Bytes::from_owner(MapOwner { map, listed: false }),
        None => Bytes::new(),
    })
}

/// [`map_prefix`] for a map whose slices may be sent to sockets: it is listed, so
/// [`file_region`] finds `file` from any of its slices.
pub(crate) fn map_shared_prefix(file: &Arc<File>, len_bytes: u64, path: &Path) -> Result<Bytes> {
    let Some(map) = map_raw(file, len_bytes, path)? else {
        return Ok(Bytes::new());
    };
    MAPPED
        .lock()
        .insert(map.as_ptr() as usize, (map.len(), file.clone()));
    Ok(Bytes::from_owner(MapOwner { map, listed: true }))
}

fn map_raw(file: &File, len_bytes: u64, path: &Path) -> Result<Option<Mmap>> {
    if len_bytes == 0 {
        return Ok(None);
    }
    let len = usize::try_from(len_bytes).map_err(|_| {
        StorageError::corrupt(path, format!("{len_bytes} bytes do not fit in memory"))
    })?;
    // SAFETY: the map is read-only and covers only bytes that exist in the file. This crate
    // never truncates a file below a length it has mapped, and never writes into a mapped range
    // (appends go past it; truncation and compaction write new files and rename them), so the
    // mapped bytes stay valid and unchanged for the map's whole life. Other processes must not
    // modify the data directory while it is open; the log manager holds a lock file for that.
    let map =
        unsafe { MmapOptions::new().len(len).map(file) }.map_err(|e| StorageError::io(path, e))?;
    Ok(Some(map))
}

/// Maps a whole file read-only (used for sealed index files), or `None` when it is empty.
pub(crate) fn map_whole(file: &File, path: &Path) -> Result<Option<Mmap>> {
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .map_err(|_| StorageError::corrupt(path, format!("{len} bytes do not fit in memory")))?;
    // SAFETY: as in `map_prefix`; sealed index files are immutable until unlinked.
    let map =
        unsafe { MmapOptions::new().len(len).map(file) }.map_err(|e| StorageError::io(path, e))?;
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_names_round_trip() {
        let name = offset_file_name(Offset(42), LOG_SUFFIX);
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_offset_file_name(&name, LOG_SUFFIX), Some(Offset(42)));
        assert_eq!(parse_offset_file_name("42.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_offset_file_name("0000000000000000004x.log", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_offset_file_name("00000000000000000042.index", LOG_SUFFIX),
            None
        );
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write_atomically(&path, b"one").expect("write");
        write_atomically(&path, b"two two").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two two");
        assert!(!with_suffix(&path, TMP_SUFFIX).exists());
    }
}
