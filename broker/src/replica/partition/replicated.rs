//! The replication half of a [`Partition`]: becoming leader or follower, the leader's side of a
//! follower's fetch (its position, the ISR, the high watermark), the follower's appends and
//! truncations, and waiting until an `acks=all` append is committed.
//!
//! Kafka's `Partition` is the model: the leader tracks each follower's log end offset from its
//! fetches; the high watermark is the smallest of them over the ISR (never advancing while the
//! ISR is under `min.insync.replicas`); a follower that has not caught up for
//! `replica.lag.time.max.ms` leaves the ISR and one that reaches the high watermark joins it,
//! both through an AlterPartition the replica manager sends to the controller. Followers find
//! where they diverged from the leader through leader epochs (KIP-101/KIP-279), reported in
//! fetch responses (KIP-595's `DivergingEpoch`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use spate_protocol::records::{BatchError, RecordBatch};
use spate_protocol::types::{LeaderEpoch, NodeId, Offset};
use spate_storage::StorageError;
use uuid::Uuid;

use super::{
    Durability, Isolation, Partition, PartitionRead, ProduceError, ReadError, load_producer_state,
};
use crate::replica::producer_state::BatchMetadata;
use crate::replica::replication::{
    FollowerProgress, ISR_CHANGE_RETRY_BACKOFF_MS, LeaderState, PendingIsr, Role,
};
use crate::replica::settings::TopicSettings;

/// Kafka's default `replica.lag.time.max.ms`, until the replica manager sets the configured one.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: i64 = 30_000;

/// A partition's leadership and ISR as the metadata image states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    /// The leader, if the partition has one.
    pub leader: Option<NodeId>,
    /// The leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch (bumped by every change, ISR changes included).
    pub partition_epoch: i32,
    /// Every replica, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// The in-sync replicas, the leader included.
    pub isr: Vec<NodeId>,
}

/// An ISR change a leader decided, for the replica manager to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// Topic name.
    pub topic: Arc<str>,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the proposal was made in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch it is based on.
    pub partition_epoch: i32,
    /// The proposed ISR, followers only; the leader adds itself.
    pub followers: BTreeSet<NodeId>,
    /// Whether it removes members (a shrink) rather than adding one.
    pub shrink: bool,
}

/// Why an `acks=all` append did not become committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// Leadership moved (or the epoch changed) before the append was committed; the records may
    /// be truncated by the new leader: NOT_LEADER_OR_FOLLOWER.
    #[error("this broker stopped leading the partition before the append was committed")]
    NotLeader,
    /// Committed, but the ISR shrank below `min.insync.replicas` meanwhile:
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    #[error("the ISR shrank below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    /// This node lost contact with the cluster (its broker session lapsed) while another in-sync
    /// replica may have taken over; the records were appended here and may survive there, so the
    /// answer must not say they were not written: REQUEST_TIMED_OUT, which clients read as
    /// "possibly persisted" and retry with the same sequence numbers.
    #[error(
        "this broker lost contact with the cluster before the append was committed; the records may or may not be kept"
    )]
    InDoubt,
    /// Not committed in time: REQUEST_TIMED_OUT.
    #[error("the append was not replicated to the ISR within {timeout_ms} ms")]
    TimedOut {
        /// The bound that passed.
        timeout_ms: u64,
    },
}

/// Why a follower-side operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    /// This replica no longer follows in that leader epoch; the data is dropped.
    #[error("the replica no longer follows in leader epoch {epoch}")]
    Fenced {
        /// The epoch the operation was for.
        epoch: i32,
    },
    /// The leader sent bytes that are not record batches.
    #[error("corrupt records from the leader: {0}")]
    Corrupt(String),
    /// The log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A follower's fetch of one partition, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The follower.
    pub replica: NodeId,
    /// Its log end offset, where it reads from.
    pub fetch_offset: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// The epoch of the last batch it has (-1: unknown, Fetch before v12).
    pub last_fetched_epoch: i32,
    /// The leader epoch it believes current (-1: unknown).
    pub current_leader_epoch: i32,
    /// Most record bytes to return.
    pub max_bytes: usize,
}

/// The leader's answer to a follower's fetch of one partition.
#[derive(Debug, Clone)]
pub enum FollowerRead {
    /// Records from the fetch offset up to the log end.
    Records(PartitionRead),
    /// The follower's log diverged: it must truncate (KIP-595 `DivergingEpoch`).
    Diverging {
        /// The largest leader epoch at or below the follower's last fetched epoch.
        epoch: i32,
        /// Where that epoch ends in the leader's log.
        end_offset: i64,
        /// The leader's high watermark.
        high_watermark: i64,
        /// The leader's log start offset.
        log_start_offset: i64,
    },
}

/// What a leader's state looks like, for metrics and describe calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Whether this replica leads.
    pub leader: bool,
    /// Replicas in total (the leader's view; 0 when following).
    pub replicas: usize,
    /// Committed ISR size, the leader included (0 when following).
    pub in_sync: usize,
    /// Whether the ISR is below `min.insync.replicas` (leaders only).
    pub under_min_isr: bool,
}

impl Partition {
    /// The current role.
    pub fn role(&self) -> Role {
        self.role.lock().clone()
    }

    /// Whether this replica leads its partition.
    pub fn is_leader(&self) -> bool {
        matches!(*self.role.lock(), Role::Leader(_))
    }

    /// Leadership summary for metrics.
    pub fn replication_status(&self) -> ReplicationStatus {
        let settings = self.settings();
        match &*self.role.lock() {
            Role::Leader(state) => ReplicationStatus {
                leader: true,
                replicas: state.replication_factor(),
                in_sync: state.isr.len() + 1,
                under_min_isr: state.is_under_min_isr(settings.min_insync_replicas),
            },
            Role::Follower { .. } => ReplicationStatus {
                leader: false,
                replicas: 0,
                in_sync: 0,
                under_min_isr: false,
            },
        }
    }

    /// Sets `replica.lag.time.max.ms`.
    pub fn set_replica_lag_time_max_ms(&self, lag_ms: i64) {
        self.replica_lag_time_max_ms
            .store(lag_ms.max(1), Ordering::Release);
    }

    fn lag_time_max_ms(&self) -> i64 {
        self.replica_lag_time_max_ms.load(Ordering::Acquire)
    }

    /// Connects the partition to the replica manager's ISR-change sender (once).
    pub fn set_isr_proposals(&self, sender: tokio::sync::mpsc::UnboundedSender<IsrProposal>) {
        let _ = self.isr_proposals.set(sender);
    }

    fn now_ms(&self) -> i64 {
        self.log.clock().now_ms()
    }

    /// Sets the high watermark from the replication checkpoint at startup (never above the log
    /// end). The log end itself is not known to be committed after a restart.
    pub fn restore_high_watermark(&self, high_watermark: Offset) {
        let value = high_watermark.0.clamp(0, self.log.log_end_offset().0);
        self.set_high_watermark_exact(value);
    }

    /// Sets the high watermark to exactly `value` (a follower adopts the leader's, which may be
    /// behind its own for a while after a leader change).
    fn set_high_watermark_exact(&self, value: i64) {
        let previous = self.high_watermark.swap(value, Ordering::AcqRel);
        self.log.set_high_watermark(Offset(value));
        if previous != value {
            self.data_arrived.notify_waiters();
        }
    }

    /// Becomes (or stays) the leader described by `state`. A new leader epoch is recorded in the
    /// leader-epoch checkpoint at the log end, every follower starts unknown (ISR members counted
    /// caught up now), and the high watermark is recomputed, since the ISR may be this replica
    /// alone. In the same epoch only a newer ISR is adopted. Returns whether the epoch changed.
    pub fn make_leader(
        &self,
        local: NodeId,
        state: &LeaderAndIsr,
        eligible: &BTreeSet<NodeId>,
    ) -> Result<bool, StorageError> {
        let _appends = self.producers.lock();
        let mut role = self.role.lock();
        let now_ms = self.now_ms();
        let followers_of = |ids: &[NodeId]| -> BTreeSet<NodeId> {
            ids.iter().copied().filter(|id| *id != local).collect()
        };
        let isr = followers_of(&state.isr);
        let eligible: BTreeSet<NodeId> =
            eligible.iter().copied().filter(|id| *id != local).collect();
        let same_epoch = self.leader_epoch() == state.leader_epoch;
        if let (true, Role::Leader(current)) = (same_epoch, &mut *role) {
            current.eligible = eligible;
            if state.partition_epoch > current.partition_epoch {
                current.isr = isr;
                current.partition_epoch = state.partition_epoch;
                current.pending = None;
                let replicas = followers_of(&state.replicas);
                current.followers.retain(|id, _| replicas.contains(id));
                for id in replicas {
                    current
                        .followers
                        .entry(id)
                        .or_insert_with(|| FollowerProgress::at_leader_start(now_ms, false));
                }
            }
            self.maybe_advance_leader_high_watermark(current, now_ms);
            return Ok(false);
        }
        let start = self.log.log_end_offset();
        self.log.assign_epoch(state.leader_epoch, start)?;
        let followers = followers_of(&state.replicas)
            .into_iter()
            .map(|id| {
                (
                    id,
                    FollowerProgress::at_leader_start(now_ms, isr.contains(&id)),
                )
            })
            .collect();
        let mut leader = LeaderState {
            followers,
            isr,
            pending: None,
            partition_epoch: state.partition_epoch,
            epoch_start_offset: start,
            eligible,
            retry_after_ms: 0,
        };
        self.leader_epoch
            .store(i64::from(state.leader_epoch.0), Ordering::Release);
        self.maybe_advance_leader_high_watermark(&mut leader, now_ms);
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            epoch = state.leader_epoch.0,
            start_offset = start.0,
            high_watermark = self.high_watermark(),
            isr = ?state.isr,
            "leading partition"
        );
        *role = Role::Leader(leader);
        drop(role);
        // acks=all waiters of an older epoch learn it here.
        self.data_arrived.notify_waiters();
        Ok(true)
    }

    /// Becomes (or stays) a follower of `state.leader` (none: the partition is offline). Returns
    /// whether the leader or its epoch changed, i.e. whether fetching must restart.
    pub fn make_follower(&self, state: &LeaderAndIsr) -> bool {
        let _appends = self.producers.lock();
        let mut role = self.role.lock();
        let same_epoch = self.leader_epoch() == state.leader_epoch;
        if let (true, Role::Follower { leader }) = (same_epoch, &*role)
            && *leader == state.leader
        {
            return false;
        }
        let was_leader = matches!(*role, Role::Leader(_));
        *role = Role::Follower {
            leader: state.leader,
        };
        self.leader_epoch
            .store(i64::from(state.leader_epoch.0), Ordering::Release);
        drop(role);
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            epoch = state.leader_epoch.0,
            leader = ?state.leader.map(|l| l.0),
            log_end_offset = self.log.log_end_offset().0,
            high_watermark = self.high_watermark(),
            was_leader,
            "following partition"
        );
        self.data_arrived.notify_waiters();
        true
    }

    /// The append-side checks, under the append lock: only a leader appends, and `acks=all`
    /// needs `min.insync.replicas` in sync before anything is written (Kafka's
    /// `appendRecordsToLeader`).
    pub(super) fn check_leader_for_append(
        &self,
        settings: &TopicSettings,
        durability: Durability,
    ) -> Result<(), ProduceError> {
        let role = self.role.lock();
        let Role::Leader(state) = &*role else {
            return Err(ProduceError::NotLeader);
        };
        if durability == Durability::InSync && state.is_under_min_isr(settings.min_insync_replicas)
        {
            return Err(ProduceError::NotEnoughReplicas {
                in_sync: state.isr.len() + 1,
                min_insync_replicas: state.effective_min_isr(settings.min_insync_replicas),
            });
        }
        Ok(())
    }

    /// After a leader append: the high watermark may move (an ISR of one), and followers
    /// long-polling for data must wake.
    pub(super) fn after_leader_append(&self) {
        let now_ms = self.now_ms();
        if let Role::Leader(state) = &mut *self.role.lock() {
            self.maybe_advance_leader_high_watermark(state, now_ms);
        }
        self.data_arrived.notify_waiters();
    }

    /// Moves the high watermark up to what the ISR holds; called with the role lock held.
    fn maybe_advance_leader_high_watermark(&self, state: &mut LeaderState, now_ms: i64) -> bool {
        let settings = self.settings();
        let Some(bound) = state.high_watermark_bound(
            self.log.log_end_offset().0,
            now_ms,
            self.lag_time_max_ms(),
            settings.min_insync_replicas,
        ) else {
            return false;
        };
        if bound > self.high_watermark() {
            self.advance_high_watermark(bound);
            return true;
        }
        false
    }

    /// Whether `[.., required_end)` is committed: `Some(result)` when decided, `None` while
    /// waiting (Kafka's `checkEnoughReplicasReachOffset`).
    fn commit_status(
        &self,
        required_end: i64,
        epoch: LeaderEpoch,
    ) -> Option<Result<(), CommitError>> {
        let settings = self.settings();
        let role = self.role.lock();
        let Role::Leader(state) = &*role else {
            return Some(Err(CommitError::NotLeader));
        };
        if self.leader_epoch() != epoch {
            return Some(Err(CommitError::NotLeader));
        }
        if self.high_watermark() < required_end {
            return None;
        }
        let in_sync = state.maximal_isr().len() + 1;
        if in_sync >= state.effective_min_isr(settings.min_insync_replicas) {
            Some(Ok(()))
        } else {
            Some(Err(CommitError::NotEnoughReplicasAfterAppend))
        }
    }

    /// Waits until the high watermark passes `last_offset` (appended in `epoch`), for at most
    /// `timeout`: Kafka's delayed produce for `acks=all`, and what the group coordinator awaits
    /// before answering a commit on a replicated offsets topic.
    pub async fn wait_for_commit(
        &self,
        last_offset: Offset,
        epoch: LeaderEpoch,
        timeout: Duration,
    ) -> Result<(), CommitError> {
        let required_end = last_offset.0 + 1;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a change between the check and the wait wakes it.
            let notified = self.data_arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.commit_status(required_end, epoch) {
                return result;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.commit_status(required_end, epoch).unwrap_or(Err(
                    CommitError::TimedOut {
                        timeout_ms: timeout.as_millis() as u64,
                    },
                ));
            }
        }
    }

    /// Checks a client request that only a leader serves: the client's epoch first (fenced or
    /// unknown), then that this replica leads (Kafka's `localLogWithEpochOrThrow`).
    pub fn check_leader(&self, client_epoch: i32) -> Result<(), ReadError> {
        self.check_leader_epoch(client_epoch)?;
        if !self.is_leader() {
            return Err(ReadError::NotLeader);
        }
        Ok(())
    }

    /// The leader's side of a follower's fetch (Kafka's `Partition.fetchRecords` for a
    /// follower): checks epochs, reports a diverging epoch, reads up to the log end (not the
    /// high watermark), and — with `update_state` — records the follower's position, which may
    /// move the high watermark or add the follower to the ISR.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        update_state: bool,
    ) -> Result<FollowerRead, ReadError> {
        self.check_leader(fetch.current_leader_epoch)?;
        {
            let role = self.role.lock();
            let known = role
                .leader()
                .is_some_and(|s| s.followers.contains_key(&fetch.replica));
            if !known {
                // Kafka: a replica the leader does not know in this epoch retries.
                return Err(if fetch.current_leader_epoch >= 0 {
                    ReadError::UnknownLeaderEpoch
                } else {
                    ReadError::NotLeader
                });
            }
        }
        // The log end before the read: appends during the read must not count against the
        // follower's catching up.
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log.log_start_offset().0;
        let log_end_offset = self.log.log_end_offset().0;
        if fetch.last_fetched_epoch >= 0 {
            let (epoch, end) = self
                .log
                .end_offset_for_epoch(LeaderEpoch(fetch.last_fetched_epoch));
            if epoch.0 < 0 || end.0 < 0 || fetch.fetch_offset < log_start_offset {
                return Err(ReadError::OutOfRange {
                    requested: fetch.fetch_offset,
                });
            }
            if epoch.0 < fetch.last_fetched_epoch || end.0 < fetch.fetch_offset {
                return Ok(FollowerRead::Diverging {
                    epoch: epoch.0,
                    end_offset: end.0,
                    high_watermark,
                    log_start_offset,
                });
            }
        }
        if fetch.fetch_offset < log_start_offset || fetch.fetch_offset > log_end_offset {
            return Err(ReadError::OutOfRange {
                requested: fetch.fetch_offset,
            });
        }
        let records = if fetch.fetch_offset == log_end_offset {
            Bytes::new()
        } else {
            self.log
                .read(
                    Offset(fetch.fetch_offset),
                    fetch.max_bytes,
                    Offset(log_end_offset),
                    true,
                )
                .map_err(|e| match e {
                    StorageError::OffsetOutOfRange { .. } => ReadError::OutOfRange {
                        requested: fetch.fetch_offset,
                    },
                    other => ReadError::Storage(other),
                })?
                .records
        };
        if update_state {
            self.update_follower_progress(fetch, log_end_offset);
        }
        Ok(FollowerRead::Records(PartitionRead {
            records,
            high_watermark: self.high_watermark(),
            last_stable_offset: self.last_stable_offset(),
            log_start_offset,
        }))
    }

    /// Records a follower's fetch position (Kafka's `updateFollowerFetchState`): may add it to
    /// the ISR and may move the high watermark.
    fn update_follower_progress(&self, fetch: &FollowerFetch, leader_end_offset: i64) {
        let now_ms = self.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return;
        };
        let Some(progress) = state.followers.get_mut(&fetch.replica) else {
            return;
        };
        let moved = progress.log_end_offset != fetch.fetch_offset;
        progress.record_fetch(
            fetch.fetch_offset,
            fetch.log_start_offset,
            now_ms,
            leader_end_offset,
        );
        if moved {
            self.maybe_advance_leader_high_watermark(state, now_ms);
        }
        if now_ms >= state.retry_after_ms
            && state.should_expand(fetch.replica, self.high_watermark())
        {
            let mut followers = state.isr.clone();
            followers.insert(fetch.replica);
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                replica = fetch.replica.0,
                log_end_offset = fetch.fetch_offset,
                high_watermark = self.high_watermark(),
                "follower caught up: expanding the ISR"
            );
            self.propose_isr(state, followers, false);
        }
    }

    /// Sends an ISR proposal and marks it in flight. Without a sender (a partition outside a
    /// replica manager) nothing is proposed.
    fn propose_isr(&self, state: &mut LeaderState, followers: BTreeSet<NodeId>, shrink: bool) {
        let Some(sender) = self.isr_proposals.get() else {
            return;
        };
        let proposal = IsrProposal {
            topic: self.topic.clone(),
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: self.leader_epoch(),
            partition_epoch: state.partition_epoch,
            followers: followers.clone(),
            shrink,
        };
        if sender.send(proposal).is_ok() {
            state.pending = Some(PendingIsr { followers });
        }
    }

    /// Drops ISR members that have not caught up within `replica.lag.time.max.ms` (Kafka's
    /// `maybeShrinkIsr`, run periodically by the replica manager). Returns whether a shrink was
    /// proposed.
    pub fn maybe_shrink_isr(&self) -> bool {
        let now_ms = self.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return false;
        };
        if now_ms < state.retry_after_ms {
            return false;
        }
        let leader_end_offset = self.log.log_end_offset().0;
        let out = state.out_of_sync(leader_end_offset, now_ms, self.lag_time_max_ms());
        if out.is_empty() {
            return false;
        }
        let followers: BTreeSet<NodeId> = state.isr.difference(&out).copied().collect();
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            out_of_sync = ?out.iter().map(|id| id.0).collect::<Vec<_>>(),
            high_watermark = self.high_watermark(),
            log_end_offset = leader_end_offset,
            "followers fell behind: shrinking the ISR"
        );
        self.propose_isr(state, followers, true);
        true
    }

    /// Applies the controller's answer to an ISR proposal made in `leader_epoch`: the committed
    /// ISR and partition epoch on success (which may move the high watermark: a shrink can
    /// complete `acks=all` waiters), a backoff before the next proposal on refusal.
    pub fn complete_isr_change(
        &self,
        leader_epoch: LeaderEpoch,
        outcome: Result<(i32, Vec<NodeId>), String>,
    ) {
        let now_ms = self.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return;
        };
        if self.leader_epoch() != leader_epoch {
            return;
        }
        match outcome {
            Ok((partition_epoch, isr)) => {
                if partition_epoch >= state.partition_epoch {
                    state.isr = isr
                        .into_iter()
                        .filter(|id| state.followers.contains_key(id))
                        .collect();
                    state.partition_epoch = partition_epoch;
                }
                state.pending = None;
                self.maybe_advance_leader_high_watermark(state, now_ms);
            }
            Err(reason) => {
                tracing::info!(topic = %self.topic, partition = self.index, %reason, "ISR change refused");
                state.pending = None;
                state.retry_after_ms = now_ms + ISR_CHANGE_RETRY_BACKOFF_MS;
            }
        }
        drop(role);
        self.data_arrived.notify_waiters();
    }

    /// The follower-side epoch check, under the append lock.
    fn check_follower(&self, epoch: LeaderEpoch) -> Result<(), FollowerError> {
        let following = matches!(*self.role.lock(), Role::Follower { .. });
        if !following || self.leader_epoch() != epoch {
            return Err(FollowerError::Fenced { epoch: epoch.0 });
        }
        Ok(())
    }

    /// Appends batches fetched from the leader in `epoch`, with the leader's offsets and epochs,
    /// and replays them into the producer state so a new leader deduplicates retries. Batches
    /// already held are skipped; a trailing partial batch is ignored. Returns the log end.
    pub fn append_as_follower(
        &self,
        epoch: LeaderEpoch,
        mut records: Bytes,
    ) -> Result<Offset, FollowerError> {
        let mut producers = self.producers.lock();
        self.check_follower(epoch)?;
        let log_end = self.log.log_end_offset();
        let mut batches = Vec::new();
        while !records.is_empty() {
            match RecordBatch::split_first(&mut records) {
                Ok(batch) => {
                    if batch.last_offset() >= log_end {
                        batches.push(batch);
                    }
                }
                Err(BatchError::Truncated { .. }) => break,
                Err(error) => return Err(FollowerError::Corrupt(error.to_string())),
            }
        }
        let Some(first) = batches.first() else {
            return Ok(log_end);
        };
        if first.base_offset() < log_end {
            // A batch straddling our end means our tail is not the leader's: the leader's batch
            // is the truth, so ours goes.
            self.log.truncate_to(first.base_offset())?;
            *producers = load_producer_state(&self.log);
        }
        let info = self.log.append_as_follower(&batches)?;
        for batch in &batches {
            if batch.producer_id().0 >= 0 && !batch.is_control() {
                producers.record(
                    batch.producer_id(),
                    batch.producer_epoch(),
                    BatchMetadata {
                        first_sequence: batch.base_sequence(),
                        last_sequence: batch.last_sequence(),
                        first_offset: batch.base_offset(),
                        last_offset: batch.last_offset(),
                        max_timestamp: batch.max_timestamp(),
                    },
                );
            }
        }
        Ok(info.log_end_offset)
    }

    /// Adopts the leader's high watermark (never past the local log end) and log start offset
    /// after a fetch in `epoch`.
    pub fn update_follower_offsets(
        &self,
        epoch: LeaderEpoch,
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
    ) -> Result<(), FollowerError> {
        let _appends = self.producers.lock();
        self.check_follower(epoch)?;
        let log_end = self.log.log_end_offset().0;
        if leader_high_watermark >= 0 {
            self.set_high_watermark_exact(leader_high_watermark.min(log_end));
        }
        if leader_log_start_offset > self.log.log_start_offset().0 {
            // DeleteRecords and retention on the leader move the log start; never past what is
            // committed here.
            let target = leader_log_start_offset.min(self.high_watermark());
            if target > self.log.log_start_offset().0 {
                self.log.delete_records_before(Offset(target))?;
            }
        }
        Ok(())
    }

    /// Truncates the local log to `offset` (divergence from the leader of `epoch`), rebuilding
    /// the producer state and lowering the high watermark with it.
    pub fn truncate_as_follower(
        &self,
        epoch: LeaderEpoch,
        offset: Offset,
    ) -> Result<bool, FollowerError> {
        let mut producers = self.producers.lock();
        self.check_follower(epoch)?;
        let truncated = self.log.truncate_to(offset)?;
        if truncated {
            *producers = load_producer_state(&self.log);
            let end = self.log.log_end_offset().0;
            if self.high_watermark() > end {
                self.set_high_watermark_exact(end);
            }
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                epoch = epoch.0,
                log_end_offset = end,
                "truncated to the leader's history"
            );
        }
        Ok(truncated)
    }

    /// Empties the local log and restarts it at `offset`: the leader no longer has what would
    /// follow the local end (its log start moved past it).
    pub fn truncate_fully_as_follower(
        &self,
        epoch: LeaderEpoch,
        offset: Offset,
    ) -> Result<(), FollowerError> {
        let mut producers = self.producers.lock();
        self.check_follower(epoch)?;
        self.log.truncate_fully_and_start_at(offset)?;
        *producers = load_producer_state(&self.log);
        self.set_high_watermark_exact(offset.0);
        tracing::info!(
            topic = %self.topic,
            partition = self.index,
            offset = offset.0,
            "restarted the log at the leader's log start"
        );
        Ok(())
    }

    /// The follower's position for its next fetch: its log end and the epoch of its last batch.
    pub fn follower_fetch_position(&self) -> (Offset, i32) {
        let end = self.log.log_end_offset();
        let epoch = self.log.latest_epoch().map_or(-1, |e| e.0);
        (end, epoch)
    }

    /// Reads committed records, as consumers see them: only a leader serves them.
    pub fn read_as_leader(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
        min_one_batch: bool,
    ) -> Result<PartitionRead, ReadError> {
        if !self.is_leader() {
            return Err(ReadError::NotLeader);
        }
        self.read(fetch_offset, max_bytes, isolation, min_one_batch)
    }
}

#[cfg(test)]
mod tests;
