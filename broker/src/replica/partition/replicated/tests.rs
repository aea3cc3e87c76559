//! Replication between real partition logs in temp dirs, with the follower's fetch loop run by
//! hand (no sockets) and a manual clock, so every step and every timeout is deterministic.
//! The last test is a seeded random simulation of produces, fetches, ISR changes and leader
//! changes, checked against what was acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use spate_protocol::records::{Compression, RecordBatch, builder::RecordBatchBuilder};
use spate_protocol::types::{LeaderEpoch, NodeId, Offset, ProducerEpoch, ProducerId};
use spate_storage::{LogOpenOptions, ManualClock, PartitionLog};
use tokio::sync::mpsc;

use super::*;
use crate::replica::partition::{AppendOutcome, Durability};
use crate::replica::producer_state::SequenceError;
use crate::replica::replication::divergence_truncation_offset;
use crate::replica::settings::TopicSettings;

const LAG_MS: i64 = 10_000;

struct Replica {
    id: NodeId,
    partition: Arc<Partition>,
    proposals: mpsc::UnboundedReceiver<IsrProposal>,
    _dir: tempfile::TempDir,
}

fn replica(id: i32, clock: &Arc<ManualClock>, min_isr: i32) -> Replica {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = TopicSettings {
        min_insync_replicas: min_isr,
        ..TopicSettings::default()
    };
    let log = PartitionLog::open(
        dir.path(),
        settings.log.clone(),
        clock.clone(),
        LogOpenOptions::default(),
    )
    .expect("log opens");
    let partition = Arc::new(Partition::new(
        Arc::from("t"),
        Uuid::nil(),
        0,
        Arc::new(log),
        LeaderEpoch::UNKNOWN,
        Arc::new(settings),
    ));
    partition.set_replica_lag_time_max_ms(LAG_MS);
    let (sender, proposals) = mpsc::unbounded_channel();
    partition.set_isr_proposals(sender);
    Replica {
        id: NodeId(id),
        partition,
        proposals,
        _dir: dir,
    }
}

fn ids(list: &[i32]) -> Vec<NodeId> {
    list.iter().map(|id| NodeId(*id)).collect()
}

fn state(
    leader: i32,
    epoch: i32,
    partition_epoch: i32,
    replicas: &[i32],
    isr: &[i32],
) -> LeaderAndIsr {
    LeaderAndIsr {
        leader: (leader >= 0).then_some(NodeId(leader)),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch,
        replicas: ids(replicas),
        isr: ids(isr),
    }
}

fn all_live(replicas: &[i32]) -> BTreeSet<NodeId> {
    replicas.iter().map(|id| NodeId(*id)).collect()
}

fn batch(values: &[&str], producer: Option<(i64, i32)>) -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    if let Some((id, sequence)) = producer {
        builder = builder.producer(ProducerId(id), ProducerEpoch(0), sequence);
    }
    for value in values {
        builder
            .append(
                1_000,
                None,
                Some(Bytes::copy_from_slice(value.as_bytes())),
                Vec::new(),
            )
            .expect("record fits");
    }
    builder.build().expect("batch builds")
}

fn produce(
    leader: &Replica,
    values: &[&str],
    durability: Durability,
) -> Result<AppendOutcome, ProduceError> {
    leader
        .partition
        .append_from_client_as(batch(values, None), 1_000, 1 << 20, durability)
}

/// One follower fetch against `leader`, applied as the replica fetcher applies it.
fn fetch_once(leader: &Replica, follower: &Replica) -> Result<(), ReadError> {
    let epoch = follower.partition.leader_epoch();
    let (fetch_offset, last_fetched_epoch) = follower.partition.follower_fetch_position();
    let fetch = FollowerFetch {
        replica: follower.id,
        fetch_offset: fetch_offset.0,
        log_start_offset: follower.partition.log.log_start_offset().0,
        last_fetched_epoch,
        current_leader_epoch: epoch.0,
        max_bytes: 1 << 20,
    };
    match leader.partition.read_for_follower(&fetch, true)? {
        FollowerRead::Records(read) => {
            if !read.records.is_empty() {
                follower
                    .partition
                    .append_as_follower(epoch, read.records)
                    .expect("follower appends");
            }
            follower
                .partition
                .update_follower_offsets(epoch, read.high_watermark, read.log_start_offset)
                .expect("follower adopts offsets");
        }
        FollowerRead::Diverging {
            epoch: leader_epoch,
            end_offset,
            ..
        } => {
            let log = &follower.partition.log;
            let (local_epoch, local_end) = log.end_offset_for_epoch(LeaderEpoch(leader_epoch));
            let target = divergence_truncation_offset(
                leader_epoch,
                end_offset,
                (local_epoch.0, local_end.0),
                log.log_end_offset().0,
            );
            follower
                .partition
                .truncate_as_follower(epoch, Offset(target))
                .expect("follower truncates");
        }
    }
    Ok(())
}

/// Every record value in a log, by offset.
fn contents(partition: &Partition) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).expect("log reads");
        let mut bytes = read.records;
        if bytes.is_empty() {
            break;
        }
        while let Ok(batch) = RecordBatch::split_first(&mut bytes) {
            for (i, record) in batch.records(1 << 20).expect("records").enumerate() {
                let record = record.expect("record");
                let value = record
                    .value
                    .map(|v| String::from_utf8_lossy(&v).into_owned());
                out.insert(batch.base_offset().0 + i as i64, value.unwrap_or_default());
            }
            next = batch.next_offset();
        }
    }
    out
}

/// Applies an ISR proposal the way the controller would (fenced by leader and partition
/// epochs) and returns the new state.
fn commit_proposal(leader: &mut Replica, current: &LeaderAndIsr) -> Option<LeaderAndIsr> {
    let proposal = leader.proposals.try_recv().ok()?;
    if proposal.leader_epoch != current.leader_epoch
        || proposal.partition_epoch != current.partition_epoch
    {
        leader
            .partition
            .complete_isr_change(proposal.leader_epoch, Err("fenced".into()));
        return None;
    }
    let mut isr: Vec<NodeId> = vec![leader.id];
    isr.extend(proposal.followers.iter().copied());
    let next = LeaderAndIsr {
        partition_epoch: current.partition_epoch + 1,
        isr: isr.clone(),
        ..current.clone()
    };
    leader
        .partition
        .complete_isr_change(proposal.leader_epoch, Ok((next.partition_epoch, isr)));
    Some(next)
}

#[test]
fn acks_all_commits_once_every_isr_member_has_fetched_past_the_batch() {
    let clock = Arc::new(ManualClock::new(1_000));
    let leader = replica(0, &clock, 2);
    let follower = replica(1, &clock, 2);
    let s = state(0, 1, 0, &[0, 1], &[0, 1]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1]))
        .unwrap();
    follower.partition.make_follower(&s);

    let outcome = produce(&leader, &["a", "b"], Durability::InSync).expect("appended");
    assert_eq!(outcome.last_offset, Offset(1));
    assert_eq!(
        leader.partition.high_watermark(),
        0,
        "not committed before the follower has it"
    );
    assert_eq!(
        leader.partition.commit_status(2, outcome.leader_epoch),
        None
    );
    // The first fetch brings the records; only the next one tells the leader the follower has
    // them (Kafka's two round trips for acks=all).
    fetch_once(&leader, &follower).unwrap();
    assert_eq!(leader.partition.high_watermark(), 0);
    fetch_once(&leader, &follower).unwrap();
    assert_eq!(leader.partition.high_watermark(), 2);
    assert_eq!(
        leader.partition.commit_status(2, outcome.leader_epoch),
        Some(Ok(()))
    );
    // The follower learns the high watermark from the next response.
    assert_eq!(follower.partition.high_watermark(), 2);
    assert_eq!(contents(&follower.partition), contents(&leader.partition));
}

#[test]
fn acks_all_is_refused_under_min_insync_replicas_while_acks_1_still_appends() {
    let clock = Arc::new(ManualClock::new(1_000));
    let leader = replica(0, &clock, 2);
    let s = state(0, 1, 0, &[0, 1, 2], &[0]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0]))
        .unwrap();
    let refused = produce(&leader, &["x"], Durability::InSync).unwrap_err();
    assert!(
        matches!(
            refused,
            ProduceError::NotEnoughReplicas {
                in_sync: 1,
                min_insync_replicas: 2
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        leader.partition.log.log_end_offset(),
        Offset(0),
        "refused before appending"
    );
    produce(&leader, &["y"], Durability::Leader).expect("acks=1 appends");
    assert_eq!(leader.partition.log.log_end_offset(), Offset(1));
    // Under min ISR nothing counts as committed (Kafka 3.7+), so consumers do not see it yet.
    assert_eq!(leader.partition.high_watermark(), 0);
}

#[test]
fn a_stuck_follower_leaves_the_isr_after_the_lag_time_and_unblocks_acks_all() {
    let clock = Arc::new(ManualClock::new(1_000));
    let mut leader = replica(0, &clock, 2);
    let f1 = replica(1, &clock, 2);
    let f2 = replica(2, &clock, 2);
    let s = state(0, 1, 0, &[0, 1, 2], &[0, 1, 2]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1, 2]))
        .unwrap();
    f1.partition.make_follower(&s);
    f2.partition.make_follower(&s);
    let outcome = produce(&leader, &["a"], Durability::InSync).unwrap();
    fetch_once(&leader, &f1).unwrap();
    fetch_once(&leader, &f1).unwrap();
    // f2 never fetches: the high watermark waits for it.
    assert_eq!(leader.partition.high_watermark(), 0);
    assert!(
        !leader.partition.maybe_shrink_isr(),
        "within the lag time nothing shrinks"
    );
    clock.advance(LAG_MS + 1);
    fetch_once(&leader, &f1).unwrap();
    assert!(leader.partition.maybe_shrink_isr());
    assert!(
        !leader.partition.maybe_shrink_isr(),
        "one change in flight at a time"
    );
    let s = commit_proposal(&mut leader, &s).expect("shrink accepted");
    assert_eq!(s.isr, ids(&[0, 1]));
    assert_eq!(leader.partition.high_watermark(), 1);
    assert_eq!(
        leader.partition.commit_status(1, outcome.leader_epoch),
        Some(Ok(()))
    );
}

#[test]
fn a_follower_that_catches_up_rejoins_the_isr() {
    let clock = Arc::new(ManualClock::new(1_000));
    let mut leader = replica(0, &clock, 1);
    let follower = replica(1, &clock, 1);
    let s = state(0, 1, 0, &[0, 1], &[0]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1]))
        .unwrap();
    follower.partition.make_follower(&s);
    produce(&leader, &["a", "b", "c"], Durability::Leader).unwrap();
    // Alone in the ISR, the leader commits at once.
    assert_eq!(leader.partition.high_watermark(), 3);
    fetch_once(&leader, &follower).unwrap();
    assert!(
        leader.proposals.is_empty(),
        "behind the high watermark: not yet"
    );
    fetch_once(&leader, &follower).unwrap();
    let s = commit_proposal(&mut leader, &s).expect("expansion proposed and accepted");
    assert_eq!(s.isr, ids(&[0, 1]));
    assert_eq!(leader.partition.replication_status().in_sync, 2);
}

#[test]
fn a_new_leaders_followers_truncate_their_divergent_tail() {
    // KIP-101: a's unreplicated tail from epoch 1 is replaced by b's epoch-2 records.
    let clock = Arc::new(ManualClock::new(1_000));
    let a = replica(0, &clock, 1);
    let b = replica(1, &clock, 1);
    let s1 = state(0, 1, 0, &[0, 1], &[0, 1]);
    a.partition
        .make_leader(a.id, &s1, &all_live(&[0, 1]))
        .unwrap();
    b.partition.make_follower(&s1);
    produce(&a, &["1", "2", "3"], Durability::Leader).unwrap();
    fetch_once(&a, &b).unwrap();
    fetch_once(&a, &b).unwrap();
    assert_eq!(a.partition.high_watermark(), 3);
    produce(&a, &["lost-4", "lost-5"], Durability::Leader).unwrap();
    // a is cut off; b leads epoch 2 and takes new writes.
    let s2 = state(1, 2, 1, &[0, 1], &[1]);
    b.partition.make_leader(b.id, &s2, &all_live(&[1])).unwrap();
    produce(&b, &["new-4"], Durability::Leader).unwrap();
    a.partition.make_follower(&s2);
    // First fetch: b answers a diverging epoch, a truncates to where epoch 1 ended at b.
    fetch_once(&b, &a).unwrap();
    assert_eq!(a.partition.log.log_end_offset(), Offset(3));
    fetch_once(&b, &a).unwrap();
    fetch_once(&b, &a).unwrap();
    assert_eq!(contents(&a.partition), contents(&b.partition));
    assert_eq!(
        contents(&a.partition).get(&3).map(String::as_str),
        Some("new-4")
    );
}

#[test]
fn a_retried_batch_is_deduplicated_by_the_new_leader() {
    let clock = Arc::new(ManualClock::new(1_000));
    let a = replica(0, &clock, 1);
    let b = replica(1, &clock, 1);
    let s1 = state(0, 1, 0, &[0, 1], &[0, 1]);
    a.partition
        .make_leader(a.id, &s1, &all_live(&[0, 1]))
        .unwrap();
    b.partition.make_follower(&s1);
    let first = a
        .partition
        .append_from_client_as(
            batch(&["p0"], Some((7, 0))),
            1_000,
            1 << 20,
            Durability::InSync,
        )
        .unwrap();
    fetch_once(&a, &b).unwrap();
    // Leadership moves before the producer saw its answer; it retries the same batch at b.
    let s2 = state(1, 2, 1, &[0, 1], &[0, 1]);
    b.partition
        .make_leader(b.id, &s2, &all_live(&[0, 1]))
        .unwrap();
    let retried = b
        .partition
        .append_from_client_as(
            batch(&["p0"], Some((7, 0))),
            1_000,
            1 << 20,
            Durability::InSync,
        )
        .unwrap();
    assert_eq!(retried.base_offset, first.base_offset);
    assert_eq!(
        b.partition.log.log_end_offset(),
        Offset(1),
        "not appended twice"
    );
    // The next sequence is accepted in order.
    b.partition
        .append_from_client_as(
            batch(&["p1"], Some((7, 1))),
            1_000,
            1 << 20,
            Durability::InSync,
        )
        .expect("next sequence appends");
}

#[test]
fn a_batch_behind_one_refused_for_want_of_replicas_is_refused_alike_not_out_of_order() {
    // A new leader starts with only itself in sync; the producer's pipelined batches 1 and 2
    // arrive on either side of the ISR growing back.
    let clock = Arc::new(ManualClock::new(1_000));
    let leader = replica(0, &clock, 2);
    let s = state(0, 1, 0, &[0, 1], &[0]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1]))
        .unwrap();
    let acks_all = |producer: (i64, i32)| {
        leader.partition.append_from_client_as(
            batch(&[&format!("s{}", producer.1)], Some(producer)),
            1_000,
            1 << 20,
            Durability::InSync,
        )
    };
    leader
        .partition
        .append_from_client_as(
            batch(&["s0"], Some((7, 0))),
            1_000,
            1 << 20,
            Durability::Leader,
        )
        .expect("acks=1 appends under min ISR");
    let head = acks_all((7, 1)).unwrap_err();
    assert!(
        matches!(head, ProduceError::NotEnoughReplicas { .. }),
        "{head:?}"
    );
    let grown = state(0, 1, 1, &[0, 1], &[0, 1]);
    leader
        .partition
        .make_leader(leader.id, &grown, &all_live(&[0, 1]))
        .unwrap();
    let behind = acks_all((7, 2)).unwrap_err();
    assert!(
        matches!(behind, ProduceError::NotEnoughReplicas { .. }),
        "the batch behind the refused head is refused alike, not as out of order: {behind:?}"
    );
    // Another producer's gap, and this producer's gap past a batch nobody refused, stay errors
    // of sequence.
    acks_all((8, 0)).expect("a new producer appends");
    assert!(matches!(
        acks_all((8, 2)),
        Err(ProduceError::Sequence(SequenceError::OutOfOrder { .. }))
    ));
    // The producer retries in order: the head, then the batch behind it.
    acks_all((7, 1)).expect("the refused head appends once the ISR is whole");
    acks_all((7, 2)).expect("and the batch behind it follows");
    assert!(
        matches!(
            acks_all((7, 4)),
            Err(ProduceError::Sequence(SequenceError::OutOfOrder { .. }))
        ),
        "once the head is in, a real gap is out of order again"
    );
    assert_eq!(
        contents(&leader.partition)
            .into_values()
            .collect::<Vec<_>>(),
        ["s0", "s0", "s1", "s2"]
    );
}

#[tokio::test]
async fn an_acks_all_waiter_fails_when_leadership_moves() {
    let clock = Arc::new(ManualClock::new(1_000));
    let leader = replica(0, &clock, 1);
    let s = state(0, 1, 0, &[0, 1], &[0, 1]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1]))
        .unwrap();
    let outcome = produce(&leader, &["a"], Durability::InSync).unwrap();
    let partition = leader.partition.clone();
    let waiter = tokio::spawn(async move {
        partition
            .wait_for_commit(
                outcome.last_offset,
                outcome.leader_epoch,
                std::time::Duration::from_secs(30),
            )
            .await
    });
    tokio::task::yield_now().await;
    leader
        .partition
        .make_follower(&state(1, 2, 1, &[0, 1], &[1]));
    assert_eq!(waiter.await.unwrap(), Err(CommitError::NotLeader));
    let timed_out = leader
        .partition
        .wait_for_commit(
            Offset(5),
            LeaderEpoch(2),
            std::time::Duration::from_millis(10),
        )
        .await;
    assert_eq!(timed_out, Err(CommitError::NotLeader));
}

#[test]
fn a_follower_fetch_from_an_unknown_replica_or_stale_epoch_is_refused() {
    let clock = Arc::new(ManualClock::new(1_000));
    let leader = replica(0, &clock, 1);
    let s = state(0, 3, 0, &[0, 1], &[0, 1]);
    leader
        .partition
        .make_leader(leader.id, &s, &all_live(&[0, 1]))
        .unwrap();
    let fetch = |replica: i32, epoch: i32| FollowerFetch {
        replica: NodeId(replica),
        fetch_offset: 0,
        log_start_offset: 0,
        last_fetched_epoch: -1,
        current_leader_epoch: epoch,
        max_bytes: 1024,
    };
    assert!(matches!(
        leader.partition.read_for_follower(&fetch(1, 2), true),
        Err(ReadError::FencedLeaderEpoch)
    ));
    assert!(matches!(
        leader.partition.read_for_follower(&fetch(1, 4), true),
        Err(ReadError::UnknownLeaderEpoch)
    ));
    assert!(matches!(
        leader.partition.read_for_follower(&fetch(5, 3), true),
        Err(ReadError::UnknownLeaderEpoch)
    ));
    assert!(
        leader
            .partition
            .read_for_follower(&fetch(1, 3), true)
            .is_ok()
    );
    // A follower replica does not serve consumers.
    let follower = replica(1, &clock, 1);
    follower.partition.make_follower(&s);
    assert!(matches!(
        follower.partition.check_leader(3),
        Err(ReadError::NotLeader)
    ));
}

/// SplitMix64: the simulation's only source of randomness, so a seed replays a run exactly.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Three replicas, min ISR 2: random acks=all produces, follower fetches, clock steps (ISR
/// shrinks), and leader changes to a random ISR member (the controller's clean election), with
/// followers sometimes "stalled" (not fetching). Every acknowledged record must be in the final
/// leader's log at its acknowledged offset, and every replica must agree with the leader up to
/// the high watermark.
fn simulate(seed: u64) {
    let mut rng = SplitMix(seed);
    let clock = Arc::new(ManualClock::new(1_000));
    let mut replicas: Vec<Replica> = (0..3).map(|id| replica(id, &clock, 2)).collect();
    let all = [0, 1, 2];
    let mut current = state(0, 1, 0, &all, &all);
    replicas[0]
        .partition
        .make_leader(NodeId(0), &current, &all_live(&all))
        .unwrap();
    replicas[1].partition.make_follower(&current);
    replicas[2].partition.make_follower(&current);
    // Acknowledged records: offset → value.
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut waiting: Vec<(AppendOutcome, String)> = Vec::new();
    let mut stalled: Option<usize> = None;
    for step in 0..400 {
        let leader_index = current.leader.map(|l| l.0 as usize);
        match rng.below(10) {
            0..=2 => {
                if let Some(l) = leader_index {
                    let value = format!("s{seed}-{step}");
                    if let Ok(outcome) = produce(&replicas[l], &[&value], Durability::InSync) {
                        waiting.push((outcome, value));
                    }
                }
            }
            3..=6 => {
                if let Some(l) = leader_index {
                    let f = rng.below(3) as usize;
                    if f != l && stalled != Some(f) {
                        let (leader, follower) = (&replicas[l], &replicas[f]);
                        let _ = fetch_once(leader, follower);
                    }
                }
            }
            7 => {
                clock.advance(rng.below(LAG_MS as u64) as i64);
                if let Some(l) = leader_index {
                    replicas[l].partition.maybe_shrink_isr();
                }
            }
            8 => {
                stalled = if rng.below(2) == 0 {
                    Some(rng.below(3) as usize)
                } else {
                    None
                };
            }
            _ => {
                // Clean leader election: a live ISR member other than the current leader.
                let candidates: Vec<NodeId> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| Some(id.0 as usize) != leader_index)
                    .collect();
                if !candidates.is_empty() {
                    let next = candidates[rng.below(candidates.len() as u64) as usize];
                    let isr: Vec<NodeId> = current.isr.clone();
                    current = LeaderAndIsr {
                        leader: Some(next),
                        leader_epoch: LeaderEpoch(current.leader_epoch.0 + 1),
                        partition_epoch: current.partition_epoch + 1,
                        replicas: current.replicas.clone(),
                        isr,
                    };
                    for (i, r) in replicas.iter().enumerate() {
                        if i == next.0 as usize {
                            r.partition
                                .make_leader(r.id, &current, &all_live(&all))
                                .unwrap();
                        } else {
                            r.partition.make_follower(&current);
                        }
                    }
                }
            }
        }
        // The controller answers ISR proposals; the answers reach the other replicas too.
        if let Some(l) = current.leader.map(|l| l.0 as usize)
            && let Some(next) = commit_proposal(&mut replicas[l], &current)
        {
            current = next;
            replicas[l]
                .partition
                .make_leader(replicas[l].id, &current, &all_live(&all))
                .unwrap();
        }
        // Producers learn outcomes as they are decided.
        waiting.retain(|(outcome, value)| {
            let l = outcome_leader(&replicas, outcome.leader_epoch);
            let status = match l {
                Some(l) => replicas[l]
                    .partition
                    .commit_status(outcome.last_offset.0 + 1, outcome.leader_epoch),
                None => Some(Err(CommitError::NotLeader)),
            };
            match status {
                None => true,
                Some(Ok(())) => {
                    acked.insert(outcome.base_offset.0, value.clone());
                    false
                }
                Some(Err(_)) => false,
            }
        });
    }
    // Heal: everyone fetches until level with the leader.
    let l = current.leader.expect("a leader").0 as usize;
    for _ in 0..10 {
        for f in 0..3 {
            if f != l
                && let Err(error) = fetch_once(&replicas[l], &replicas[f])
            {
                panic!("seed {seed}: replica {f} cannot fetch from the leader {l}: {error}");
            }
        }
    }
    let leader_log = contents(&replicas[l].partition);
    for (offset, value) in &acked {
        assert_eq!(
            leader_log.get(offset),
            Some(value),
            "seed {seed}: acknowledged offset {offset} lost or changed"
        );
    }
    let high_watermark = replicas[l].partition.high_watermark();
    for r in &replicas {
        let log = contents(&r.partition);
        for (offset, value) in leader_log.range(..high_watermark) {
            assert_eq!(
                log.get(offset),
                Some(value),
                "seed {seed}: replica {} differs at {offset}",
                r.id.0
            );
        }
    }
}

/// The replica leading in `epoch`, if that epoch is current.
fn outcome_leader(replicas: &[Replica], epoch: LeaderEpoch) -> Option<usize> {
    replicas
        .iter()
        .position(|r| r.partition.is_leader() && r.partition.leader_epoch() == epoch)
}

/// Eight seeds by default; `SPATE_REPLICATION_SEEDS=N` runs seeds `0..N`.
#[test]
fn random_produce_fetch_and_leader_changes_never_lose_an_acknowledged_record() {
    let seeds: u64 = std::env::var("SPATE_REPLICATION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 0..seeds {
        simulate(seed);
    }
}
