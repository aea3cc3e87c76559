//! Producer-state snapshots (opaque bytes owned by the broker) and the `partition.metadata` file.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use spate_protocol::types::Offset;

use crate::error::{Result, StorageError};
use crate::files::{
    SNAPSHOT_SUFFIX, offset_file_name, parse_offset_file_name, read_if_exists, remove_if_exists,
    write_atomically,
};

/// Snapshots kept after pruning: the newest one is what recovery loads, the one before it is a
/// fallback should the newest be lost with a truncation.
pub const PRODUCER_SNAPSHOTS_KEPT_MAX: usize = 2;

/// File name of the partition metadata file.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Offsets of the producer snapshots in `dir`, ascending.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<Offset>> {
    let mut offsets = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some(offset) = parse_offset_file_name(name, SNAPSHOT_SUFFIX)
        {
            offsets.push(offset);
        }
    }
    offsets.sort();
    Ok(offsets)
}

pub(crate) fn snapshot_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(offset_file_name(offset, SNAPSHOT_SUFFIX))
}

/// Writes a snapshot atomically, then prunes old ones.
pub(crate) fn write_snapshot(dir: &Path, offset: Offset, contents: &[u8]) -> Result<()> {
    write_atomically(&snapshot_path(dir, offset), contents)?;
    let offsets = list_snapshots(dir)?;
    if offsets.len() > PRODUCER_SNAPSHOTS_KEPT_MAX {
        for old in &offsets[..offsets.len() - PRODUCER_SNAPSHOTS_KEPT_MAX] {
            remove_if_exists(&snapshot_path(dir, *old))?;
        }
    }
    Ok(())
}

/// The newest snapshot and its offset.
pub(crate) fn latest_snapshot(dir: &Path) -> Result<Option<(Offset, Bytes)>> {
    for offset in list_snapshots(dir)?.into_iter().rev() {
        if let Some(raw) = read_if_exists(&snapshot_path(dir, offset))? {
            return Ok(Some((offset, Bytes::from(raw))));
        }
    }
    Ok(None)
}

/// Deletes snapshots whose offset is in `range` (by a predicate).
pub(crate) fn delete_snapshots_where(dir: &Path, doomed: impl Fn(Offset) -> bool) -> Result<()> {
    for offset in list_snapshots(dir)? {
        if doomed(offset) {
            remove_if_exists(&snapshot_path(dir, offset))?;
        }
    }
    Ok(())
}

/// A Kafka topic id: a 16-byte UUID, shown as 22 characters of URL-safe base64 without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicId(pub [u8; 16]);

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl TopicId {
    /// Kafka's `Uuid.toString()`: URL-safe base64 without padding.
    pub fn to_base64(&self) -> String {
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(BASE64_URL[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            }
        }
        out
    }

    /// Parses Kafka's `Uuid.fromString` form.
    pub fn from_base64(text: &str) -> Option<TopicId> {
        let raw = text.as_bytes();
        if raw.len() != 22 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut filled = 0;
        for chunk in raw.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                let v = BASE64_URL.iter().position(|b| b == c)? as u32;
                n |= v << (18 - 6 * i);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            for b in bytes.iter().take(chunk.len() - 1) {
                *out.get_mut(filled)? = *b;
                filled += 1;
            }
        }
        (filled == 16).then_some(TopicId(out))
    }
}

/// Writes `partition.metadata` (`version: 0` / `topic_id: <id>`), atomically.
pub(crate) fn write_partition_metadata(dir: &Path, topic_id: TopicId) -> Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", topic_id.to_base64());
    write_atomically(&dir.join(PARTITION_METADATA_FILE), text.as_bytes())
}

/// Reads `partition.metadata`, if present; a malformed file is an error naming it.
pub(crate) fn read_partition_metadata(dir: &Path) -> Result<Option<TopicId>> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let Some(raw) = read_if_exists(&path)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&raw)
        .map_err(|_| StorageError::corrupt(&path, "partition metadata is not UTF-8"))?;
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| StorageError::corrupt(&path, format!("line {line:?} has no ':'")))?;
        match key.trim() {
            "version" => version = Some(value.trim().to_string()),
            "topic_id" => topic_id = Some(value.trim().to_string()),
            other => {
                return Err(StorageError::corrupt(
                    &path,
                    format!("unknown key {other:?}"),
                ));
            }
        }
    }
    if version.as_deref() != Some("0") {
        return Err(StorageError::corrupt(&path, "version must be 0"));
    }
    let topic_id = topic_id.ok_or_else(|| StorageError::corrupt(&path, "topic_id missing"))?;
    TopicId::from_base64(&topic_id)
        .map(Some)
        .ok_or_else(|| StorageError::corrupt(&path, format!("topic_id {topic_id:?} is malformed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_base64_matches_kafka() {
        // Kafka's Uuid.toString of the all-zero id and of a known id (UuidTest).
        assert_eq!(TopicId([0; 16]).to_base64(), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = TopicId([
            0xd4, 0x2d, 0x07, 0x1d, 0x5c, 0xba, 0x4c, 0x6f, 0x93, 0x7b, 0x5e, 0x2d, 0x1d, 0xf3,
            0x6a, 0x90,
        ]);
        let text = id.to_base64();
        assert_eq!(text.len(), 22);
        assert_eq!(TopicId::from_base64(&text), Some(id));
        assert_eq!(TopicId::from_base64("short"), None);
        assert_eq!(TopicId::from_base64("AAAAAAAAAAAAAAAAAAAAA*"), None);
    }

    #[test]
    fn partition_metadata_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_partition_metadata(dir.path()).expect("none"), None);
        let id = TopicId([7; 16]);
        write_partition_metadata(dir.path(), id).expect("write");
        let text = fs::read_to_string(dir.path().join(PARTITION_METADATA_FILE)).expect("read");
        assert!(text.starts_with("version: 0\ntopic_id: "), "{text}");
        assert_eq!(read_partition_metadata(dir.path()).expect("read"), Some(id));
        fs::write(dir.path().join(PARTITION_METADATA_FILE), "version: 1\n").expect("write");
        assert!(read_partition_metadata(dir.path()).is_err());
    }

    #[test]
    fn snapshots_are_pruned_to_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        for offset in [5, 10, 15] {
            write_snapshot(dir.path(), Offset(offset), format!("s{offset}").as_bytes())
                .expect("write");
        }
        assert_eq!(
            list_snapshots(dir.path()).expect("list"),
            vec![Offset(10), Offset(15)]
        );
        let (offset, bytes) = latest_snapshot(dir.path()).expect("read").expect("some");
        assert_eq!((offset, &bytes[..]), (Offset(15), &b"s15"[..]));
        assert!(dir.path().join("00000000000000000015.snapshot").exists());
    }
}
