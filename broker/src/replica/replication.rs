//! What a partition replica knows about replication: whether it leads or follows, and, as the
//! leader, where each follower stands (Kafka's `Partition`/`Replica` state, KIP-497's pending ISR).
//!
//! Everything here is plain data and pure decisions over it — the high watermark, which followers
//! fell out of sync, who may join the ISR — so the rules are tested without logs, sockets or time.
//! [`crate::replica::partition::Partition`] holds one [`Role`] behind its lock and acts on the
//! decisions.

use std::collections::{BTreeMap, BTreeSet};

use spate_protocol::types::{NodeId, Offset};

/// Kafka's "unknown offset" for a follower the leader has not heard from in this epoch.
pub const UNKNOWN_OFFSET: i64 = -1;
/// "Never", as a time in ms: far enough in the past that no lag bound reaches it, and far
/// enough from `i64::MIN` that subtracting it from a clock reading cannot overflow.
pub const NEVER_MS: i64 = i64::MIN / 4;

/// How long a leader waits before proposing another ISR change after the controller refused one,
/// so a follower that keeps fetching does not turn every fetch into a refused AlterPartition.
pub const ISR_CHANGE_RETRY_BACKOFF_MS: i64 = 500;

/// The leader's record of one follower, updated by the follower's fetches (Kafka's
/// `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch, since a follower fetches from
    /// its own log end. [`UNKNOWN_OFFSET`] until it fetches in this epoch.
    pub log_end_offset: i64,
    /// The follower's log start offset, as its last fetch reported it.
    pub log_start_offset: i64,
    /// The leader's log end offset when the previous fetch arrived.
    pub last_fetch_leader_end_offset: i64,
    /// When the previous fetch arrived, ms ([`NEVER_MS`] before the first).
    pub last_fetch_time_ms: i64,
    /// The last time the follower had everything the leader had, ms ([`NEVER_MS`]: not in this
    /// epoch).
    pub last_caught_up_time_ms: i64,
}

impl FollowerProgress {
    /// The state of a follower when a leader takes over: its position unknown, and counted as
    /// caught up now when it is in the ISR (so it has `replica.lag.time.max.ms` to fetch before
    /// it is dropped), never when it is not (so it cannot hold the high watermark back).
    pub fn at_leader_start(now_ms: i64, in_sync: bool) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_fetch_leader_end_offset: UNKNOWN_OFFSET,
            last_fetch_time_ms: NEVER_MS,
            last_caught_up_time_ms: if in_sync { now_ms } else { NEVER_MS },
        }
    }

    /// Records a fetch at `fetch_offset` that arrived at `now_ms` while the leader's log ended
    /// at `leader_end_offset` (Kafka's `Replica.updateFetchStateOrThrow`). A follower that asks
    /// for the leader's end offset is caught up now; one that asks for what the leader's end was
    /// at its previous fetch was caught up then. That second rule lets a follower stay in sync
    /// under a stream of small produces that always keep the leader a little ahead.
    pub fn record_fetch(
        &mut self,
        fetch_offset: i64,
        log_start_offset: i64,
        now_ms: i64,
        leader_end_offset: i64,
    ) {
        if fetch_offset >= leader_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(self.last_fetch_time_ms);
        }
        self.log_end_offset = fetch_offset;
        self.log_start_offset = log_start_offset;
        self.last_fetch_leader_end_offset =
            self.last_fetch_leader_end_offset.max(leader_end_offset);
        self.last_fetch_time_ms = now_ms;
    }

    /// Kafka's `isCaughtUp`: level with the leader, or caught up within the allowed lag.
    pub fn is_caught_up(&self, leader_end_offset: i64, now_ms: i64, lag_time_max_ms: i64) -> bool {
        self.log_end_offset == leader_end_offset
            || now_ms - self.last_caught_up_time_ms <= lag_time_max_ms
    }
}

/// An ISR change sent to the controller and not answered yet (KIP-497's `PendingExpandIsr` /
/// `PendingShrinkIsr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    /// The proposed ISR, followers only (the leader is always in it).
    pub followers: BTreeSet<NodeId>,
}

/// A partition leader's view of its followers and its ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// Every assigned follower (the replicas but this one), with what their fetches told.
    pub followers: BTreeMap<NodeId, FollowerProgress>,
    /// The committed ISR, followers only.
    pub isr: BTreeSet<NodeId>,
    /// The change in flight, if any.
    pub pending: Option<PendingIsr>,
    /// The partition epoch the committed ISR belongs to; AlterPartition is fenced by it.
    pub partition_epoch: i32,
    /// The leader's log end offset when this leader epoch began. A follower joins the ISR only
    /// once it has everything before it, or committed data between the old high watermark and
    /// this offset could be lost if it led next.
    pub epoch_start_offset: Offset,
    /// Followers whose brokers are registered and unfenced: only they may join the ISR.
    pub eligible: BTreeSet<NodeId>,
    /// No new ISR proposal before this time, ms (after a refused one).
    pub retry_after_ms: i64,
}

impl LeaderState {
    /// A leader that is its partition's only replica: its ISR is itself.
    pub fn sole(epoch_start_offset: Offset) -> LeaderState {
        LeaderState {
            followers: BTreeMap::new(),
            isr: BTreeSet::new(),
            pending: None,
            partition_epoch: 0,
            epoch_start_offset,
            eligible: BTreeSet::new(),
            retry_after_ms: 0,
        }
    }

    /// Followers the high watermark waits for: the committed ISR plus any proposed additions
    /// (KIP-497's "maximal ISR": assuming a proposed member early is the safe direction).
    pub fn maximal_isr(&self) -> BTreeSet<NodeId> {
        let mut members = self.isr.clone();
        if let Some(pending) = &self.pending {
            members.extend(pending.followers.iter().copied());
        }
        members
    }

    /// Replicas in total, this leader included.
    pub fn replication_factor(&self) -> usize {
        self.followers.len() + 1
    }

    /// `min.insync.replicas` as it applies: never more than there are replicas (Kafka's
    /// `effectiveMinIsr`), so a single-replica topic with the cluster default of 2 still works.
    pub fn effective_min_isr(&self, min_insync_replicas: i32) -> usize {
        (min_insync_replicas.max(1) as usize).min(self.replication_factor())
    }

    /// Whether the committed ISR (with the leader) is smaller than `min.insync.replicas`.
    pub fn is_under_min_isr(&self, min_insync_replicas: i32) -> bool {
        self.isr.len() + 1 < self.effective_min_isr(min_insync_replicas)
    }

    /// The high watermark the leader may advance to (Kafka's `maybeIncrementLeaderHW`): the
    /// smallest log end offset over the leader and the maximal ISR, also waiting for a follower
    /// that is caught up and eligible but not in the ISR yet (otherwise, under steady produce, it
    /// could never reach the high watermark and join). `None` while the ISR is under
    /// `min.insync.replicas`: then nothing new counts as committed.
    pub fn high_watermark_bound(
        &self,
        leader_end_offset: i64,
        now_ms: i64,
        lag_time_max_ms: i64,
        min_insync_replicas: i32,
    ) -> Option<i64> {
        if self.is_under_min_isr(min_insync_replicas) {
            return None;
        }
        let maximal = self.maximal_isr();
        let mut bound = leader_end_offset;
        for (id, follower) in &self.followers {
            let waits_for = maximal.contains(id)
                || (self.eligible.contains(id)
                    && follower.is_caught_up(leader_end_offset, now_ms, lag_time_max_ms));
            if waits_for {
                bound = bound.min(follower.log_end_offset.max(0));
            }
        }
        Some(bound)
    }

    /// ISR followers that have not been caught up within `lag_time_max_ms` (Kafka's
    /// `getOutOfSyncReplicas`); empty while a change is in flight.
    pub fn out_of_sync(
        &self,
        leader_end_offset: i64,
        now_ms: i64,
        lag_time_max_ms: i64,
    ) -> BTreeSet<NodeId> {
        if self.pending.is_some() {
            return BTreeSet::new();
        }
        self.isr
            .iter()
            .copied()
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|f| !f.is_caught_up(leader_end_offset, now_ms, lag_time_max_ms))
            })
            .collect()
    }

    /// Whether `follower` should join the ISR (Kafka's `needsExpandIsr`): not in it, no change in
    /// flight, eligible, and holding everything up to the high watermark and to this epoch's
    /// start.
    pub fn should_expand(&self, follower: NodeId, high_watermark: i64) -> bool {
        if self.pending.is_some() || self.isr.contains(&follower) {
            return false;
        }
        if !self.eligible.contains(&follower) {
            return false;
        }
        self.followers.get(&follower).is_some_and(|f| {
            f.log_end_offset >= high_watermark && f.log_end_offset >= self.epoch_start_offset.0
        })
    }
}

/// What a replica is doing for its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It leads: clients produce and consume here; followers fetch from here.
    Leader(LeaderState),
    /// It follows `leader` (fetching from it), or no one while the partition has no leader.
    Follower {
        /// The current leader, if any.
        leader: Option<NodeId>,
    },
}

impl Role {
    /// The leader state, when leading.
    pub fn leader(&self) -> Option<&LeaderState> {
        match self {
            Role::Leader(state) => Some(state),
            Role::Follower { .. } => None,
        }
    }

    /// The leader state, when leading.
    pub fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match self {
            Role::Leader(state) => Some(state),
            Role::Follower { .. } => None,
        }
    }
}

/// Where a follower truncates after the leader reported a diverging epoch (Kafka's
/// `AbstractFetcherThread.getOffsetTruncationState`, KIP-320/KIP-595).
///
/// `leader_epoch`/`leader_end_offset` is the leader's answer: the largest epoch it has at or
/// below the follower's last fetched epoch, and where that epoch ends in the leader's log.
/// `local_epoch_end` is the follower's own `(epoch, end offset)` for `leader_epoch` (epoch -1
/// when the follower has no epoch at or below it). Returns the offset to truncate to; when the
/// follower does not know the leader's epoch it goes back to the end of its own older epoch and
/// the next fetch narrows it further.
pub fn divergence_truncation_offset(
    leader_epoch: i32,
    leader_end_offset: i64,
    local_epoch_end: (i32, i64),
    local_log_end_offset: i64,
) -> i64 {
    let (local_epoch, local_end) = local_epoch_end;
    if local_epoch < 0 {
        return leader_end_offset.min(local_log_end_offset);
    }
    if local_epoch != leader_epoch {
        return local_end.min(local_log_end_offset);
    }
    local_end.min(leader_end_offset).min(local_log_end_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 10_000;

    fn leader_with(followers: &[(i32, i64)], isr: &[i32]) -> LeaderState {
        let mut state = LeaderState::sole(Offset(0));
        for (id, leo) in followers {
            let mut progress = FollowerProgress::at_leader_start(0, true);
            progress.log_end_offset = *leo;
            state.followers.insert(NodeId(*id), progress);
            state.eligible.insert(NodeId(*id));
        }
        state.isr = isr.iter().map(|id| NodeId(*id)).collect();
        state
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_offset_in_the_isr() {
        let state = leader_with(&[(1, 40), (2, 25)], &[1, 2]);
        assert_eq!(state.high_watermark_bound(50, 0, LAG_MS, 1), Some(25));
        // Out of the ISR and not caught up: it no longer holds the high watermark back.
        let mut state = leader_with(&[(1, 40), (2, 25)], &[1]);
        state
            .followers
            .get_mut(&NodeId(2))
            .unwrap()
            .last_caught_up_time_ms = 0;
        assert_eq!(
            state.high_watermark_bound(50, LAG_MS + 1, LAG_MS, 1),
            Some(40)
        );
    }

    #[test]
    fn a_caught_up_follower_outside_the_isr_holds_the_high_watermark_until_it_joins() {
        // KAFKA-13091 behaviour: the leader alone in the ISR waits for a follower that is
        // catching up, so the follower can reach the high watermark and be added.
        let state = leader_with(&[(1, 45)], &[]);
        assert_eq!(state.high_watermark_bound(50, 5, LAG_MS, 1), Some(45));
    }

    #[test]
    fn nothing_commits_while_the_isr_is_under_min_insync_replicas() {
        // Kafka 3.7+: the high watermark only moves with at least min.insync.replicas in sync.
        let state = leader_with(&[(1, 40), (2, 40)], &[]);
        assert_eq!(state.high_watermark_bound(50, 0, LAG_MS, 2), None);
        assert!(
            leader_with(&[(1, 40), (2, 40)], &[1])
                .high_watermark_bound(50, 0, LAG_MS, 2)
                .is_some()
        );
        // min.insync.replicas above the replica count is capped at it (effectiveMinIsr).
        assert_eq!(
            LeaderState::sole(Offset(0)).high_watermark_bound(9, 0, LAG_MS, 3),
            Some(9)
        );
    }

    #[test]
    fn proposed_members_count_for_the_high_watermark() {
        let mut state = leader_with(&[(1, 40), (2, 10)], &[1]);
        state
            .followers
            .get_mut(&NodeId(2))
            .unwrap()
            .last_caught_up_time_ms = 0;
        state.pending = Some(PendingIsr {
            followers: [NodeId(1), NodeId(2)].into(),
        });
        assert_eq!(
            state.high_watermark_bound(50, LAG_MS + 1, LAG_MS, 1),
            Some(10)
        );
    }

    #[test]
    fn caught_up_time_follows_kafkas_two_rules() {
        let mut f = FollowerProgress::at_leader_start(0, false);
        // Fetching the leader's end: caught up now.
        f.record_fetch(10, 0, 100, 10);
        assert_eq!(f.last_caught_up_time_ms, 100);
        // Behind the current end but at the end of the previous fetch: caught up then.
        f.record_fetch(10, 0, 200, 15);
        assert_eq!(f.last_caught_up_time_ms, 100);
        f.record_fetch(15, 0, 300, 20);
        assert_eq!(f.last_caught_up_time_ms, 200);
        // Behind both: unchanged, and it ages out.
        f.record_fetch(16, 0, 20_000, 30);
        assert_eq!(f.last_caught_up_time_ms, 200);
        assert!(!f.is_caught_up(30, 20_000, LAG_MS));
        assert!(f.is_caught_up(16, 20_000, LAG_MS));
    }

    #[test]
    fn stuck_followers_fall_out_of_sync_unless_a_change_is_in_flight() {
        let mut state = leader_with(&[(1, 50), (2, 20)], &[1, 2]);
        state
            .followers
            .get_mut(&NodeId(2))
            .unwrap()
            .last_caught_up_time_ms = 1_000;
        state
            .followers
            .get_mut(&NodeId(1))
            .unwrap()
            .last_caught_up_time_ms = 1_000;
        let out = state.out_of_sync(50, 1_000 + LAG_MS + 1, LAG_MS);
        // Node 1 is level with the leader, so it is in sync however long ago it fetched.
        assert_eq!(out, [NodeId(2)].into());
        state.pending = Some(PendingIsr {
            followers: [NodeId(1)].into(),
        });
        assert!(state.out_of_sync(50, 100_000, LAG_MS).is_empty());
    }

    #[test]
    fn a_follower_joins_only_once_it_has_the_high_watermark_and_this_epochs_start() {
        let mut state = leader_with(&[(1, 30)], &[]);
        state.epoch_start_offset = Offset(35);
        assert!(!state.should_expand(NodeId(1), 30));
        state.followers.get_mut(&NodeId(1)).unwrap().log_end_offset = 35;
        assert!(state.should_expand(NodeId(1), 30));
        state.eligible.clear();
        assert!(
            !state.should_expand(NodeId(1), 30),
            "a fenced broker stays out"
        );
    }

    #[test]
    fn divergence_truncation_follows_the_leaders_epoch_history() {
        // Same epoch on both sides: cut where the shorter of the two ends it.
        assert_eq!(divergence_truncation_offset(3, 120, (3, 150), 200), 120);
        // The follower never saw the leader's epoch: back to the end of its own older epoch.
        assert_eq!(divergence_truncation_offset(3, 120, (1, 100), 200), 100);
        // The follower has no epochs that old: trust the leader's end offset.
        assert_eq!(divergence_truncation_offset(3, 120, (-1, -1), 200), 120);
        // Never past the follower's own end.
        assert_eq!(divergence_truncation_offset(3, 500, (3, 450), 200), 200);
    }
}
