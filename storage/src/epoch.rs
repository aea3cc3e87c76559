//! The leader-epoch cache and its `leader-epoch-checkpoint` file.
//!
//! Each entry says "epoch E began at offset O". Followers use it through OffsetForLeaderEpoch to
//! find where their log diverged from the leader's (KIP-101, KIP-279). The file is Kafka's text
//! format, written atomically:
//!
//! ```text
//! 0              <- version
//! 2              <- number of entries
//! 0 0            <- epoch start_offset
//! 3 1200
//! ```

use std::path::{Path, PathBuf};

use spate_protocol::types::{LeaderEpoch, Offset};

use crate::error::{Result, StorageError};
use crate::files::{read_if_exists, write_atomically};

/// File name of the checkpoint in a partition directory.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: i32 = 0;

/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: Offset = Offset(-1);

/// One entry: `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// First offset written in that epoch.
    pub start_offset: Offset,
}

/// Epoch entries, strictly increasing in both epoch and start offset, persisted on every change.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir` (an absent file is an empty cache). A malformed file is
    /// refused with an error naming it: the history of epochs cannot be guessed.
    pub(crate) fn load(dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let entries = match read_if_exists(&path)? {
            None => Vec::new(),
            Some(raw) => parse_checkpoint(&path, &raw)?,
        };
        Ok(LeaderEpochCache { path, entries })
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub(crate) fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `LeaderEpochFileCache.assign`: records that `epoch` starts at `start_offset`,
    /// removing entries that would break monotonicity (an epoch at or above it, or a start offset
    /// at or above it). Negative values are ignored. Returns whether anything changed.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> Result<bool> {
        if epoch.0 < 0 || start_offset.0 < 0 {
            return Ok(false);
        }
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return Ok(false);
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.flush()?;
        Ok(true)
    }

    /// Kafka's `endOffsetFor` (OffsetForLeaderEpoch): the largest epoch `<=` the requested one
    /// and the start offset of the first epoch after it; the log end offset for the latest epoch;
    /// `(-1, -1)` for an undefined or unknown-and-newer epoch.
    pub(crate) fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end_offset: Offset,
    ) -> (LeaderEpoch, Offset) {
        if requested == LeaderEpoch::UNKNOWN {
            return (LeaderEpoch::UNKNOWN, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (LeaderEpoch::UNKNOWN, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// The epoch whose range holds `offset`, if known.
    pub(crate) fn epoch_for_offset(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Removes entries starting at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: Offset) -> Result<()> {
        if self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.retain(|e| e.start_offset < end_offset);
            self.flush()?;
        }
        Ok(())
    }

    /// Kafka's `truncateFromStart`: drops entries starting at or before `start_offset` except the
    /// latest of them, which is moved to start at `start_offset`.
    pub(crate) fn truncate_from_start(&mut self, start_offset: Offset) -> Result<()> {
        let before = self
            .entries
            .iter()
            .filter(|e| e.start_offset <= start_offset)
            .count();
        let Some(last_before) = before.checked_sub(1).map(|i| self.entries[i]) else {
            return Ok(());
        };
        if before == 1 && last_before.start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..before);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last_before.epoch,
                start_offset,
            },
        );
        self.flush()
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        self.flush()
    }

    fn flush(&self) -> Result<()> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch.0, entry.start_offset.0));
        }
        write_atomically(&self.path, text.as_bytes())
    }
}

fn parse_checkpoint(path: &Path, raw: &[u8]) -> Result<Vec<EpochEntry>> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| StorageError::corrupt(path, "checkpoint is not UTF-8"))?;
    let mut lines = text.lines();
    let version: i32 = parse_field(path, lines.next(), "version")?;
    if version != CHECKPOINT_VERSION {
        return Err(StorageError::corrupt(
            path,
            format!("unsupported checkpoint version {version}"),
        ));
    }
    let count: usize = parse_field(path, lines.next(), "entry count")?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| StorageError::corrupt(path, format!("entry {i} of {count} missing")))?;
        let mut fields = line.split_whitespace();
        let epoch: i32 = parse_field(path, fields.next(), "epoch")?;
        let start: i64 = parse_field(path, fields.next(), "start offset")?;
        if fields.next().is_some() {
            return Err(StorageError::corrupt(
                path,
                format!("entry {i}: extra fields"),
            ));
        }
        let entry = EpochEntry {
            epoch: LeaderEpoch(epoch),
            start_offset: Offset(start),
        };
        if let Some(prev) = entries.last()
            && (entry.epoch <= prev.epoch || entry.start_offset < prev.start_offset)
        {
            return Err(StorageError::corrupt(
                path,
                format!("entry {i} ({epoch} {start}) is not after the previous one"),
            ));
        }
        entries.push(entry);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(StorageError::corrupt(
            path,
            "more entries than the count says",
        ));
    }
    Ok(entries)
}

fn parse_field<T: std::str::FromStr>(path: &Path, field: Option<&str>, what: &str) -> Result<T> {
    let raw = field.ok_or_else(|| StorageError::corrupt(path, format!("{what} missing")))?;
    raw.trim()
        .parse()
        .map_err(|_| StorageError::corrupt(path, format!("{what} {raw:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LeaderEpochCache::load(dir.path()).expect("load");
        (dir, cache)
    }

    #[test]
    fn end_offset_for_follows_kafka_semantics() {
        // Kafka's LeaderEpochFileCacheTest: epochs 2@6, 4@11, 5@15; LEO 20.
        let (_dir, mut cache) = cache();
        cache.assign(LeaderEpoch(2), Offset(6)).expect("assign");
        cache.assign(LeaderEpoch(4), Offset(11)).expect("assign");
        cache.assign(LeaderEpoch(5), Offset(15)).expect("assign");
        let leo = Offset(20);
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(5), leo),
            (LeaderEpoch(5), leo)
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(4), leo),
            (LeaderEpoch(4), Offset(15))
        );
        // An epoch between known ones answers with the floor epoch.
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(3), leo),
            (LeaderEpoch(2), Offset(11))
        );
        // Older than any known epoch: the requested epoch and the first start offset.
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(1), leo),
            (LeaderEpoch(1), Offset(6))
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(6), leo),
            (LeaderEpoch::UNKNOWN, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch::UNKNOWN, leo),
            (LeaderEpoch::UNKNOWN, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn assign_keeps_entries_monotonic_and_persists() {
        let (dir, mut cache) = cache();
        cache.assign(LeaderEpoch(1), Offset(0)).expect("assign");
        cache.assign(LeaderEpoch(3), Offset(10)).expect("assign");
        // Same epoch later: no change. Same epoch earlier start: replaces.
        assert!(!cache.assign(LeaderEpoch(3), Offset(12)).expect("assign"));
        assert!(cache.assign(LeaderEpoch(3), Offset(8)).expect("assign"));
        // A lower epoch at a higher offset removes the newer entries it contradicts.
        cache.assign(LeaderEpoch(2), Offset(9)).expect("assign");
        assert_eq!(
            cache.entries(),
            &[
                EpochEntry {
                    epoch: LeaderEpoch(1),
                    start_offset: Offset(0)
                },
                EpochEntry {
                    epoch: LeaderEpoch(2),
                    start_offset: Offset(9)
                }
            ]
        );
        let text =
            std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).expect("read");
        assert_eq!(text, "0\n2\n1 0\n2 9\n");
        let reloaded = LeaderEpochCache::load(dir.path()).expect("load");
        assert_eq!(reloaded.entries(), cache.entries());
    }

    #[test]
    fn truncation_from_both_ends() {
        let (_dir, mut cache) = cache();
        for (epoch, start) in [(1, 0), (2, 10), (3, 20)] {
            cache
                .assign(LeaderEpoch(epoch), Offset(start))
                .expect("assign");
        }
        cache.truncate_from_start(Offset(15)).expect("start");
        assert_eq!(cache.entries()[0].epoch, LeaderEpoch(2));
        assert_eq!(cache.entries()[0].start_offset, Offset(15));
        assert_eq!(cache.entries().len(), 2);
        cache.truncate_from_end(Offset(20)).expect("end");
        assert_eq!(cache.latest_epoch(), Some(LeaderEpoch(2)));
        assert_eq!(cache.epoch_for_offset(Offset(16)), Some(LeaderEpoch(2)));
    }

    #[test]
    fn malformed_checkpoint_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        for bad in [
            "",
            "0\n2\n1 0\n",
            "0\n1\nx 0\n",
            "7\n0\n",
            "0\n2\n3 10\n2 20\n",
        ] {
            std::fs::write(&path, bad).expect("write");
            let err = LeaderEpochCache::load(dir.path()).expect_err(bad);
            assert!(
                err.to_string().contains(LEADER_EPOCH_CHECKPOINT_FILE),
                "{err}"
            );
        }
    }
}
