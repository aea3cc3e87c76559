//! The raft log as raft-rs reads it: an in-memory copy of the entries since the last snapshot,
//! kept in step with a durable [`LogBackend`].
//!
//! The metadata log is small (a snapshot every few thousand entries bounds it), so every entry
//! after the snapshot stays in memory and reads never touch the disk. Writes go to the backend
//! first and only then into memory: raft-rs must never see an entry as stable that a crash could
//! take back.
//!
//! Two backends exist: [`crate::disk::FileBackend`] (files under `__cluster_metadata/`, fsynced)
//! and [`MemBackend`] (the deterministic simulation's "disk", which survives a simulated crash
//! because the test keeps it).

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::disk::StoreError;

/// What a backend found on recovery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// The newest durable snapshot; `metadata.index == 0` when there is none.
    pub snapshot: Snapshot,
    /// The newest durable hard state.
    pub hard_state: HardState,
    /// The durable entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// Durable storage for the raft log, the hard state and the latest snapshot.
///
/// Every method returns only once its data is on stable storage: raft-rs acknowledges entries to
/// the leader (and counts them towards a commit) as soon as `persist` returns.
pub trait LogBackend: Send + 'static {
    /// Reads back everything durable, repairing a torn tail; refuses corrupt files.
    fn recover(&mut self) -> Result<Recovered, StoreError>;

    /// Appends `entries` (an entry replaces any stored entry with the same or a later index) and
    /// then records `hard_state`, both durably.
    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError>;

    /// Durably replaces everything with `snapshot`, the `entries` after it that stay, and
    /// `hard_state`. Either all of it is durable afterwards or, after a crash, none of it.
    fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: &HardState,
    ) -> Result<(), StoreError>;
}

/// The raft-rs [`Storage`] of one quorum member.
pub struct MetadataStorage<B> {
    backend: B,
    /// The newest snapshot, data included, as sent to lagging followers.
    snapshot: Snapshot,
    /// Entries after the snapshot: `entries[i].index == snapshot index + 1 + i`.
    entries: Vec<Entry>,
    hard_state: HardState,
    /// The voters every member starts from, before any snapshot exists.
    bootstrap: ConfState,
}

/// The index and term of a snapshot (0, 0 for "none").
fn snapshot_position(snapshot: &Snapshot) -> (u64, u64) {
    snapshot
        .metadata
        .as_ref()
        .map_or((0, 0), |m| (m.index, m.term))
}

impl<B: LogBackend> MetadataStorage<B> {
    /// Recovers the log from `backend`. `bootstrap` is the membership before any snapshot: the
    /// configured voters, identical on every member.
    pub fn open(mut backend: B, bootstrap: ConfState) -> Result<Self, StoreError> {
        let recovered = backend.recover()?;
        let (snapshot_index, _) = snapshot_position(&recovered.snapshot);
        let mut entries = Vec::with_capacity(recovered.entries.len());
        for entry in recovered.entries {
            if entry.index <= snapshot_index {
                continue;
            }
            let expected = snapshot_index + 1 + entries.len() as u64;
            if entry.index != expected {
                return Err(StoreError::Inconsistent(format!(
                    "entry {} follows entry {}",
                    entry.index,
                    expected - 1
                )));
            }
            entries.push(entry);
        }
        Ok(MetadataStorage {
            backend,
            snapshot: recovered.snapshot,
            entries,
            hard_state: recovered.hard_state,
            bootstrap,
        })
    }

    /// Index of the newest snapshot (0 when there is none).
    pub fn snapshot_index(&self) -> u64 {
        snapshot_position(&self.snapshot).0
    }

    /// The newest snapshot.
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Durably appends `entries` and records `hard_state`, then makes them visible to raft-rs.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        if let Some(first) = entries.first() {
            // raft-rs never rewrites what a snapshot covers, nor leaves a gap.
            assert!(
                first.index >= self.first() && first.index <= self.last() + 1,
                "append of entry {} outside [{}, {}]",
                first.index,
                self.first(),
                self.last() + 1
            );
        }
        self.backend.persist(entries, hard_state)?;
        if let Some(first) = entries.first() {
            let keep = (first.index - self.first()) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        Ok(())
    }

    /// Notes a newer commit index; it becomes durable with the next write. (A lost commit index
    /// is relearnt from the leader; nothing acknowledged depends on it.)
    pub fn note_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// Installs a snapshot received from the leader: everything before it is replaced.
    pub fn install_received(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (index, term) = snapshot_position(&snapshot);
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(term);
        hard_state.commit = hard_state.commit.max(index);
        self.backend.install_snapshot(&snapshot, &[], &hard_state)?;
        self.snapshot = snapshot;
        self.entries.clear();
        self.hard_state = hard_state;
        Ok(())
    }

    /// Replaces the log up to `snapshot`'s index (already applied here) with the snapshot,
    /// keeping the entries after it.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (index, _) = snapshot_position(&snapshot);
        assert!(
            index >= self.snapshot_index() && index <= self.last(),
            "snapshot at {index} outside [{}, {}]",
            self.snapshot_index(),
            self.last()
        );
        let drop = (index - self.snapshot_index()) as usize;
        let retained = self.entries[drop..].to_vec();
        self.backend
            .install_snapshot(&snapshot, &retained, &self.hard_state)?;
        self.snapshot = snapshot;
        self.entries = retained;
        Ok(())
    }

    /// The entry at `index`, if it is held.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index < self.first() {
            return None;
        }
        self.entries.get((index - self.first()) as usize)
    }
}

impl<B: LogBackend> Storage for MetadataStorage<B> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let conf_state = match &self.snapshot.metadata {
            Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index,
                ..
            }) if *index > 0 => conf_state.clone(),
            _ => self.bootstrap.clone(),
        };
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state,
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let start = (low - self.first()) as usize;
        let end = (high - self.first()) as usize;
        let mut entries = self.entries[start..end].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let (snapshot_index, snapshot_term) = snapshot_position(&self.snapshot);
        if index == snapshot_index {
            return Ok(snapshot_term);
        }
        if index < snapshot_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entry(index)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // raft-rs asks only when the entries a follower needs are compacted, so the newest
        // snapshot (taken at the compaction point) always covers them.
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

/// Durable state of a [`MemBackend`].
#[derive(Debug, Clone, Default)]
struct MemDurable {
    recovered: Recovered,
}

/// An in-memory backend for the deterministic simulation. Clones share one "disk": a test keeps
/// a clone, drops the node to simulate a crash, and reopens the node from the clone. Writes are
/// synchronous, so what a node acknowledged is exactly what survives.
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    durable: Arc<Mutex<MemDurable>>,
}

impl MemBackend {
    /// An empty disk.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Index of the durable snapshot, for tests that check compaction happened.
    pub fn snapshot_index(&self) -> u64 {
        snapshot_position(&self.durable.lock().recovered.snapshot).0
    }
}

impl LogBackend for MemBackend {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        Ok(self.durable.lock().recovered.clone())
    }

    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError> {
        let mut durable = self.durable.lock();
        let state = &mut durable.recovered;
        if let Some(first) = entries.first() {
            state.entries.retain(|e| e.index < first.index);
            state.entries.extend_from_slice(entries);
        }
        if let Some(hard_state) = hard_state {
            state.hard_state = hard_state.clone();
        }
        Ok(())
    }

    fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: &HardState,
    ) -> Result<(), StoreError> {
        let mut durable = self.durable.lock();
        durable.recovered = Recovered {
            snapshot: snapshot.clone(),
            hard_state: hard_state.clone(),
            entries: entries.to_vec(),
        };
        Ok(())
    }
}
