//! Online migration of live groups between the classic protocol and KIP-848's consumer
//! protocol (`group.consumer.migration.policy`), at the protocol level over a real socket:
//! JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14), ListGroups (16) v5,
//! OffsetCommit (8), OffsetFetch (9), ConsumerGroupHeartbeat (68) v1 and ConsumerGroupDescribe
//! (69) v1. Each test checks what Apache Kafka 4.x's `GroupMetadataManager` does: a
//! ConsumerGroupHeartbeat upgrades a classic group whose members all use the `consumer`
//! protocol type, classic members of a consumer group are served by the server-side assignor
//! and learn of new assignments from REBALANCE_IN_PROGRESS, and the group turns back into a
//! classic group when its last consumer-protocol member leaves. Conversions keep committed
//! offsets and survive a restart, which rebuilds the group from `__consumer_offsets`.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use spate_protocol::error::ErrorCode;
use support::groups::{create_topic, fetch_offsets, find_coordinator, s};
use support::{Client, TestBroker};
use uuid::Uuid;

/// A broker with fast group settings and the given migration policy.
async fn start_broker(policy: &str) -> TestBroker {
    TestBroker::start_with_configs(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("offsets.topic.num.partitions", "4"),
        ("offsets.topic.replication.factor", "1"),
        ("group.consumer.migration.policy", policy),
    ])
    .await
}

/// A ConsumerProtocolSubscription v1 (KIP-429: with owned partitions), as the Java client
/// writes it in JoinGroup metadata.
fn subscription(topics: &[&str], owned: &[(&str, Vec<i32>)]) -> Bytes {
    let value = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .with_owned_partitions(
            owned
                .iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(ps.clone())
                })
                .collect(),
        );
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    value.encode(&mut buf, 1).expect("encodes");
    buf.freeze()
}

/// A ConsumerProtocolAssignment v1, as a classic group leader writes it.
fn assignment(partitions: &[(&str, Vec<i32>)]) -> Bytes {
    let value = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    value.encode(&mut buf, 1).expect("encodes");
    buf.freeze()
}

/// The partitions of a SyncGroup assignment, decoded with the client's own schema at the
/// version the bytes announce.
fn decode_assignment(bytes: &Bytes) -> BTreeSet<(String, i32)> {
    if bytes.is_empty() {
        return BTreeSet::new();
    }
    let mut body = bytes.clone();
    let version = i16::from_be_bytes([body[0], body[1]]);
    let _ = body.split_to(2);
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version).expect("decodes");
    decoded
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(|p| (tp.topic.0.as_str().to_string(), *p))
        })
        .collect()
}

fn join_request(group: &str, member: &str, metadata: Bytes) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(metadata),
        ])
}

async fn join(client: &mut Client, request: &JoinGroupRequest) -> JoinGroupResponse {
    loop {
        let response: JoinGroupResponse = client.send(ApiKey::JoinGroup, 9, request).await;
        if response.error_code != ErrorCode::CoordinatorLoadInProgress.code() {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A new dynamic member joins through KIP-394's two steps; returns its first answer with an
/// id (which, in a classic group, is parked until the rebalance completes).
async fn join_new(client: &mut Client, group: &str, metadata: Bytes) -> JoinGroupResponse {
    let first = join(client, &join_request(group, "", metadata.clone())).await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    join(
        client,
        &join_request(group, first.member_id.as_str(), metadata),
    )
    .await
}

async fn sync(
    client: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, Bytes)],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(a.clone())
                })
                .collect(),
        );
    client.send(ApiKey::SyncGroup, 5, &request).await
}

async fn heartbeat(client: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.send(ApiKey::Heartbeat, 4, &request).await;
    response.error_code
}

async fn consumer_heartbeat(
    client: &mut Client,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    loop {
        let response: ConsumerGroupHeartbeatResponse = client
            .send(ApiKey::ConsumerGroupHeartbeat, 1, &request)
            .await;
        if response.error_code != ErrorCode::CoordinatorLoadInProgress.code() {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn consumer_join(group: &str, member: &str, topic: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s(topic))]))
        .with_topic_partitions(Some(Vec::new()))
}

fn consumer_beat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: &BTreeMap<Uuid, Vec<i32>>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(
            owned
                .iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.clone())
                })
                .collect(),
        ))
}

/// The assignment of a ConsumerGroupHeartbeat answer, if it carries one.
fn heartbeat_assignment(
    response: &ConsumerGroupHeartbeatResponse,
) -> Option<BTreeMap<Uuid, Vec<i32>>> {
    response.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .filter(|tp| !tp.partitions.is_empty())
            .map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort_unstable();
                (tp.topic_id, ps)
            })
            .collect()
    })
}

#[allow(clippy::too_many_arguments)]
async fn commit(
    client: &mut Client,
    version: i16,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ]);
    let response: OffsetCommitResponse = client.send(ApiKey::OffsetCommit, version, &request).await;
    response.topics[0].partitions[0].error_code
}

/// ListGroups v5: (group type, protocol type, state) of `group`.
async fn listed(client: &mut Client, group: &str) -> Option<(String, String, String)> {
    let response: ListGroupsResponse = client
        .send(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await;
    response
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == group)
        .map(|g| {
            (
                g.group_type.as_str().to_string(),
                g.protocol_type.as_str().to_string(),
                g.group_state.as_str().to_string(),
            )
        })
}

/// ConsumerGroupDescribe v1: member id → (member type, member epoch).
async fn described_members(client: &mut Client, group: &str) -> BTreeMap<String, (i8, i32)> {
    let response: ConsumerGroupDescribeResponse = client
        .send(
            ApiKey::ConsumerGroupDescribe,
            1,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
        )
        .await;
    assert_eq!(response.groups[0].error_code, 0, "{:?}", response.groups[0]);
    response.groups[0]
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str().to_string(),
                (m.member_type, m.member_epoch),
            )
        })
        .collect()
}

/// ConsumerGroupDescribe `member_type` values (KIP-1099).
const CLASSIC: i8 = 0;
const CONSUMER: i8 = 1;

/// Asserts that the members' partitions cover `0..count` of `topic` without overlap.
fn assert_covers_without_overlap(owned: &[&BTreeSet<(String, i32)>], topic: &str, count: i32) {
    let mut seen = BTreeSet::new();
    for set in owned {
        for tp in set.iter() {
            assert!(seen.insert(tp.clone()), "{tp:?} is owned twice: {owned:?}");
        }
    }
    let all: BTreeSet<(String, i32)> = (0..count).map(|p| (topic.to_string(), p)).collect();
    assert_eq!(seen, all, "every partition is owned once");
}

/// Forms a Stable classic group of two members with the given assignments; returns their ids
/// and the generation.
async fn stable_classic_group(
    a: &mut Client,
    b: &mut Client,
    group: &str,
    topic: &str,
    a_parts: Vec<i32>,
    b_parts: Vec<i32>,
) -> (String, String, i32) {
    let metadata = subscription(&[topic], &[]);
    let first = join_new(a, group, metadata.clone()).await;
    assert_eq!(first.error_code, 0);
    let a_id = first.member_id.as_str().to_string();
    let a_sync = sync(
        a,
        group,
        &a_id,
        first.generation_id,
        &[(a_id.as_str(), assignment(&[(topic, a_parts.clone())]))],
    )
    .await;
    assert_eq!(a_sync.error_code, 0);
    // B joins: A must rejoin too; both answers arrive when the join phase completes.
    let b_first = join(b, &join_request(group, "", metadata.clone())).await;
    assert_eq!(b_first.error_code, ErrorCode::MemberIdRequired.code());
    let b_id = b_first.member_id.as_str().to_string();
    let b_join = {
        let request = join_request(group, &b_id, metadata.clone());
        let pending = async { join(b, &request).await };
        let a_request = join_request(group, &a_id, metadata.clone());
        let a_rejoin = async {
            // A learns of the rebalance from its heartbeat, then rejoins.
            loop {
                let code = heartbeat(a, group, &a_id, first.generation_id).await;
                if code == ErrorCode::RebalanceInProgress.code() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            join(a, &a_request).await
        };
        let (b_join, a_join) = tokio::join!(pending, a_rejoin);
        assert_eq!(a_join.error_code, 0);
        assert_eq!(a_join.leader.as_str(), a_id, "A stays leader");
        b_join
    };
    assert_eq!(b_join.error_code, 0);
    let generation = b_join.generation_id;
    let leader_sync = sync(
        a,
        group,
        &a_id,
        generation,
        &[
            (a_id.as_str(), assignment(&[(topic, a_parts)])),
            (b_id.as_str(), assignment(&[(topic, b_parts)])),
        ],
    )
    .await;
    assert_eq!(leader_sync.error_code, 0);
    let follower_sync = sync(b, group, &b_id, generation, &[]).await;
    assert_eq!(follower_sync.error_code, 0);
    (a_id, b_id, generation)
}

/// KIP-848 online upgrade (Kafka's `convertToConsumerGroup`): a ConsumerGroupHeartbeat that
/// joins a Stable classic group of `consumer` members converts it. The classic members stay
/// at their generation with their partitions, get REBALANCE_IN_PROGRESS on Heartbeat, rejoin
/// through JoinGroup and receive their server-side assignment from SyncGroup; with the new
/// member's, the assignments cover every partition exactly once. Committed offsets survive,
/// and a restart rebuilds the mixed group from `__consumer_offsets`.
#[tokio::test]
async fn consumer_heartbeat_upgrades_a_live_classic_group() {
    let mut broker = start_broker("bidirectional").await;
    let mut a = broker.client().await;
    let mut b = broker.client().await;
    create_topic(&mut a, "up", 6).await;
    find_coordinator(&mut a, "mig").await;
    let (a_id, b_id, generation) =
        stable_classic_group(&mut a, &mut b, "mig", "up", vec![0, 1, 2], vec![3, 4, 5]).await;
    assert_eq!(
        commit(&mut a, 8, "mig", &a_id, generation, "up", 0, 42).await,
        0
    );
    assert_eq!(
        listed(&mut a, "mig").await,
        Some(("classic".into(), "consumer".into(), "Stable".into()))
    );

    // A consumer-protocol member joins: the group converts.
    let mut c = broker.client().await;
    let c_join = consumer_heartbeat(&mut c, consumer_join("mig", "member-c", "up")).await;
    assert_eq!(c_join.error_code, 0, "{:?}", c_join.error_message);
    assert_eq!(
        c_join.member_epoch,
        generation + 1,
        "the group epoch continues from the generation"
    );
    assert_eq!(
        heartbeat_assignment(&c_join).map(|a| a.len()),
        Some(0),
        "its partitions are still owned by the classic members"
    );
    let (group_type, protocol_type, _) = listed(&mut a, "mig").await.expect("listed");
    assert_eq!(
        (group_type.as_str(), protocol_type.as_str()),
        ("consumer", "consumer")
    );
    let members = described_members(&mut a, "mig").await;
    assert_eq!(members[&a_id], (CLASSIC, generation));
    assert_eq!(members[&b_id], (CLASSIC, generation));
    assert_eq!(members["member-c"], (CONSUMER, generation + 1));
    // The classic members' offsets commits are checked against their generation.
    assert_eq!(
        commit(&mut a, 8, "mig", &a_id, generation + 7, "up", 1, 1).await,
        ErrorCode::IllegalGeneration.code()
    );

    // Each classic member is told to rejoin, rejoins (having revoked everything, as an eager
    // client does) and syncs its new assignment.
    let mut owned = Vec::new();
    for (client, id) in [(&mut a, &a_id), (&mut b, &b_id)] {
        assert_eq!(
            heartbeat(client, "mig", id, generation).await,
            ErrorCode::RebalanceInProgress.code()
        );
        let rejoined = join(client, &join_request("mig", id, subscription(&["up"], &[]))).await;
        assert_eq!(rejoined.error_code, 0);
        assert_eq!(rejoined.generation_id, generation + 1);
        assert_eq!(
            rejoined.protocol_name.as_ref().map(|p| p.as_str()),
            Some("range")
        );
        assert!(rejoined.leader.is_empty(), "classic members are followers");
        let synced = sync(client, "mig", id, rejoined.generation_id, &[]).await;
        assert_eq!(synced.error_code, 0);
        let partitions = decode_assignment(&synced.assignment);
        assert_eq!(partitions.len(), 2, "{id}: {partitions:?}");
        assert_eq!(
            heartbeat(client, "mig", id, rejoined.generation_id).await,
            0
        );
        owned.push(partitions);
    }
    // The consumer member now gets the partitions the classic members released.
    let c_beat = consumer_heartbeat(
        &mut c,
        consumer_beat("mig", "member-c", c_join.member_epoch, &BTreeMap::new()),
    )
    .await;
    assert_eq!(c_beat.error_code, 0);
    let c_owned: BTreeSet<(String, i32)> = heartbeat_assignment(&c_beat)
        .expect("a new assignment")
        .values()
        .flat_map(|ps| ps.iter().map(|p| ("up".to_string(), *p)))
        .collect();
    assert_covers_without_overlap(&[&owned[0], &owned[1], &c_owned], "up", 6);
    assert_eq!(
        fetch_offsets(&mut a, "mig", "up", &[0]).await,
        vec![(0, 42)]
    );

    // After a restart the group comes back from its records: the same members and types.
    broker.restart().await;
    let mut a = broker.client().await;
    find_coordinator(&mut a, "mig").await;
    let members = described_members(&mut a, "mig").await;
    assert_eq!(members[&a_id], (CLASSIC, generation + 1));
    assert_eq!(members[&b_id], (CLASSIC, generation + 1));
    assert_eq!(members["member-c"].0, CONSUMER);
    assert_eq!(heartbeat(&mut a, "mig", &a_id, generation + 1).await, 0);
    assert_eq!(
        fetch_offsets(&mut a, "mig", "up", &[0]).await,
        vec![(0, 42)]
    );
}

/// A classic JoinGroup to a live consumer group (Kafka's `classicGroupJoinToConsumerGroup`)
/// is served by the consumer group: the member gets an id (KIP-394), joins as a follower at
/// its member epoch, and SyncGroup answers with what it owns. When the consumer member
/// releases partitions, the classic member's Heartbeat answers REBALANCE_IN_PROGRESS and its
/// rejoin and sync return the new assignment. When the last consumer-protocol member leaves,
/// the group converts back to a classic group in PreparingRebalance (Kafka's
/// `convertToClassicGroup`); the classic member rejoins and leads it. Offsets survive both,
/// and the classic group survives a restart.
#[tokio::test]
async fn classic_members_in_a_consumer_group_and_the_downgrade() {
    let mut broker = start_broker("bidirectional").await;
    let mut c = broker.client().await;
    create_topic(&mut c, "down", 4).await;
    find_coordinator(&mut c, "mixed").await;
    let c_join = consumer_heartbeat(&mut c, consumer_join("mixed", "member-c", "down")).await;
    assert_eq!(c_join.error_code, 0);
    let c_owned = heartbeat_assignment(&c_join).expect("assignment");
    let topic_id = *c_owned.keys().next().expect("one topic");
    assert_eq!(c_owned[&topic_id].len(), 4);
    let c_stable = consumer_heartbeat(
        &mut c,
        consumer_beat("mixed", "member-c", c_join.member_epoch, &c_owned),
    )
    .await;
    assert_eq!(c_stable.error_code, 0);
    assert_eq!(
        commit(
            &mut c,
            9,
            "mixed",
            "member-c",
            c_join.member_epoch,
            "down",
            3,
            33
        )
        .await,
        0
    );

    // A classic member joins the consumer group.
    let mut a = broker.client().await;
    let mismatched = join(
        &mut a,
        &join_request("mixed", "", subscription(&["down"], &[])).with_protocol_type(s("other")),
    )
    .await;
    assert_eq!(
        mismatched.error_code,
        ErrorCode::InconsistentGroupProtocol.code()
    );
    let joined = join_new(&mut a, "mixed", subscription(&["down"], &[])).await;
    assert_eq!(joined.error_code, 0);
    let a_id = joined.member_id.as_str().to_string();
    let a_epoch = joined.generation_id;
    assert_eq!(a_epoch, c_join.member_epoch + 1);
    assert_eq!(
        joined.protocol_type.as_ref().map(|p| p.as_str()),
        Some("consumer")
    );
    assert!(joined.members.is_empty() && joined.leader.is_empty());
    let first_sync = sync(&mut a, "mixed", &a_id, a_epoch, &[]).await;
    assert_eq!(first_sync.error_code, 0);
    assert!(
        decode_assignment(&first_sync.assignment).is_empty(),
        "the consumer member still owns everything"
    );
    assert_eq!(heartbeat(&mut a, "mixed", &a_id, a_epoch).await, 0);
    let members = described_members(&mut c, "mixed").await;
    assert_eq!(members[&a_id].0, CLASSIC);
    assert_eq!(members["member-c"].0, CONSUMER);

    // The consumer member revokes half and acknowledges.
    let revoke = consumer_heartbeat(
        &mut c,
        consumer_beat("mixed", "member-c", c_join.member_epoch, &c_owned),
    )
    .await;
    assert_eq!(revoke.error_code, 0);
    let kept = heartbeat_assignment(&revoke).expect("revocation");
    assert_eq!(kept[&topic_id].len(), 2);
    let acked = consumer_heartbeat(
        &mut c,
        consumer_beat("mixed", "member-c", revoke.member_epoch, &kept),
    )
    .await;
    assert_eq!(acked.error_code, 0);
    assert_eq!(acked.member_epoch, a_epoch);

    // The classic member learns from its heartbeat that partitions are free for it.
    assert_eq!(
        heartbeat(&mut a, "mixed", &a_id, a_epoch).await,
        ErrorCode::RebalanceInProgress.code()
    );
    let rejoined = join(
        &mut a,
        &join_request("mixed", &a_id, subscription(&["down"], &[])),
    )
    .await;
    assert_eq!(rejoined.error_code, 0);
    let synced = sync(&mut a, "mixed", &a_id, rejoined.generation_id, &[]).await;
    assert_eq!(synced.error_code, 0);
    let a_owned = decode_assignment(&synced.assignment);
    let c_kept: BTreeSet<(String, i32)> = kept[&topic_id]
        .iter()
        .map(|p| ("down".to_string(), *p))
        .collect();
    assert_covers_without_overlap(&[&a_owned, &c_kept], "down", 4);
    assert_eq!(
        heartbeat(&mut a, "mixed", &a_id, rejoined.generation_id).await,
        0
    );
    assert_eq!(
        commit(
            &mut a,
            8,
            "mixed",
            &a_id,
            rejoined.generation_id,
            "down",
            0,
            10
        )
        .await,
        0
    );

    // The last consumer-protocol member leaves: the group becomes classic and rebalances.
    let left = consumer_heartbeat(
        &mut c,
        consumer_beat("mixed", "member-c", acked.member_epoch, &kept).with_member_epoch(-1),
    )
    .await;
    assert_eq!(left.error_code, 0);
    assert_eq!(
        listed(&mut a, "mixed").await,
        Some((
            "classic".into(),
            "consumer".into(),
            "PreparingRebalance".into()
        ))
    );
    assert_eq!(
        heartbeat(&mut a, "mixed", &a_id, rejoined.generation_id).await,
        ErrorCode::RebalanceInProgress.code()
    );
    let classic_join = join(
        &mut a,
        &join_request("mixed", &a_id, subscription(&["down"], &[])),
    )
    .await;
    assert_eq!(classic_join.error_code, 0);
    assert_eq!(classic_join.leader.as_str(), a_id, "the only member leads");
    assert_eq!(classic_join.members.len(), 1);
    let all = assignment(&[("down", vec![0, 1, 2, 3])]);
    let leader_sync = sync(
        &mut a,
        "mixed",
        &a_id,
        classic_join.generation_id,
        &[(a_id.as_str(), all.clone())],
    )
    .await;
    assert_eq!(leader_sync.error_code, 0);
    assert_eq!(leader_sync.assignment, all);
    assert_eq!(
        listed(&mut a, "mixed").await,
        Some(("classic".into(), "consumer".into(), "Stable".into()))
    );
    assert_eq!(
        fetch_offsets(&mut a, "mixed", "down", &[0, 3]).await,
        vec![(0, 10), (3, 33)]
    );

    broker.restart().await;
    let mut a = broker.client().await;
    find_coordinator(&mut a, "mixed").await;
    assert_eq!(
        listed(&mut a, "mixed").await,
        Some(("classic".into(), "consumer".into(), "Stable".into()))
    );
    assert_eq!(
        heartbeat(&mut a, "mixed", &a_id, classic_join.generation_id).await,
        0
    );
    assert_eq!(
        fetch_offsets(&mut a, "mixed", "down", &[0, 3]).await,
        vec![(0, 10), (3, 33)]
    );
}

/// `group.consumer.migration.policy=disabled` (case-insensitive, as Kafka parses it): a
/// ConsumerGroupHeartbeat to a classic group with members gets GROUP_ID_NOT_FOUND and the
/// group is untouched; a consumer group whose last consumer-protocol member leaves stays a
/// consumer group. Classic members are still served inside a consumer group, as in Kafka,
/// where the policy only governs conversions; their LeaveGroup removes them.
#[tokio::test]
async fn disabled_policy_keeps_each_group_on_its_protocol() {
    let broker = start_broker("DISABLED").await;
    let mut a = broker.client().await;
    let mut b = broker.client().await;
    create_topic(&mut a, "stay", 2).await;
    find_coordinator(&mut a, "old").await;
    let (a_id, _b_id, generation) =
        stable_classic_group(&mut a, &mut b, "old", "stay", vec![0], vec![1]).await;
    let mut c = broker.client().await;
    let refused = consumer_heartbeat(&mut c, consumer_join("old", "member-c", "stay")).await;
    assert_eq!(refused.error_code, ErrorCode::GroupIdNotFound.code());
    assert_eq!(heartbeat(&mut a, "old", &a_id, generation).await, 0);
    assert_eq!(
        listed(&mut a, "old").await,
        Some(("classic".into(), "consumer".into(), "Stable".into()))
    );

    // A consumer group with a classic member does not turn back into a classic group.
    find_coordinator(&mut c, "new").await;
    let c_join = consumer_heartbeat(&mut c, consumer_join("new", "member-c", "stay")).await;
    assert_eq!(c_join.error_code, 0);
    let mut d = broker.client().await;
    let joined = join_new(&mut d, "new", subscription(&["stay"], &[])).await;
    assert_eq!(joined.error_code, 0);
    let d_id = joined.member_id.as_str().to_string();
    let left = consumer_heartbeat(
        &mut c,
        consumer_beat("new", "member-c", c_join.member_epoch, &BTreeMap::new())
            .with_member_epoch(-1),
    )
    .await;
    assert_eq!(left.error_code, 0);
    let (group_type, _, _) = listed(&mut c, "new").await.expect("listed");
    assert_eq!(group_type, "consumer");
    assert_eq!(described_members(&mut c, "new").await.len(), 1);
    let leave: LeaveGroupResponse = d
        .send(
            ApiKey::LeaveGroup,
            4,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("new")))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&d_id)),
                    MemberIdentity::default().with_member_id(s("nobody")),
                ]),
        )
        .await;
    assert_eq!(leave.members[0].error_code, 0);
    assert_eq!(
        leave.members[1].error_code,
        ErrorCode::UnknownMemberId.code()
    );
    assert_eq!(
        listed(&mut c, "new").await,
        Some(("consumer".into(), "consumer".into(), "Empty".into()))
    );
}
