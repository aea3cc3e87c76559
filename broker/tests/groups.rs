//! The group coordinator at the protocol level, over a real socket against an in-process broker:
//! FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14),
//! DescribeGroups (15), ListGroups (16), DeleteGroups (42), OffsetCommit (8), OffsetFetch (9),
//! OffsetDelete (47) and ConsumerGroupHeartbeat (68), with OffsetCommit and OffsetFetch v10
//! naming topics by id. Bad input — unknown member ids, stale
//! generations, fenced static members, commits for unknown topics, oversized metadata — gets
//! Kafka's error codes, and the group keeps working afterwards.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use spate_protocol::error::ErrorCode;
use support::groups::{create_topic, fetch_offsets, find_coordinator, s};
use support::{Client, TestBroker};
use uuid::Uuid;

/// Group settings that keep the tests fast: no initial rebalance delay, four offsets partitions.
const GROUP_CONFIGS: [(&str, &str); 3] = [
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "4"),
    ("offsets.topic.replication.factor", "1"),
];

async fn start_group_broker() -> TestBroker {
    TestBroker::start_with_configs(&GROUP_CONFIGS).await
}

fn join_request(
    group: &str,
    member: &str,
    instance: Option<&str>,
    metadata: &[u8],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::copy_from_slice(metadata)),
        ])
}

async fn join(client: &mut Client, version: i16, request: &JoinGroupRequest) -> JoinGroupResponse {
    // Retry while the offsets partition loads.
    loop {
        let response: JoinGroupResponse = client.send(ApiKey::JoinGroup, version, request).await;
        if response.error_code != ErrorCode::CoordinatorLoadInProgress.code() {
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Joins one dynamic member through KIP-394's two steps; returns (member id, generation).
async fn join_alone(client: &mut Client, group: &str) -> (String, i32) {
    let first = join(client, 9, &join_request(group, "", None, b"m")).await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    let member = first.member_id.as_str().to_string();
    let joined = join(client, 9, &join_request(group, &member, None, b"m")).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    (member, joined.generation_id)
}

async fn sync(
    client: &mut Client,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    client.send(ApiKey::SyncGroup, 5, &request).await
}

async fn heartbeat(
    client: &mut Client,
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.send(ApiKey::Heartbeat, 4, &request).await;
    response.error_code
}

fn commit_request(
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ])
}

async fn commit(client: &mut Client, version: i16, request: &OffsetCommitRequest) -> i16 {
    let response: OffsetCommitResponse = client.send(ApiKey::OffsetCommit, version, request).await;
    response.topics[0].partitions[0].error_code
}

/// FindCoordinator (10) v0-v6: group keys are served by this broker once `__consumer_offsets`
/// exists (batched from v4); transaction keys get COORDINATOR_NOT_AVAILABLE (no transaction
/// coordinator), unknown key types INVALID_REQUEST.
#[tokio::test]
async fn find_coordinator_all_versions_and_key_types() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    let first = find_coordinator(&mut client, "g").await;
    assert_eq!(first.node_id.0, 0);
    for version in 0..=3 {
        let response: FindCoordinatorResponse = client
            .send(
                ApiKey::FindCoordinator,
                version,
                &FindCoordinatorRequest::default().with_key(s("g")),
            )
            .await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.node_id.0, 0);
        assert!(response.port > 0);
    }
    for version in 4..=6 {
        let response: FindCoordinatorResponse = client
            .send(
                ApiKey::FindCoordinator,
                version,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![s("a"), s("b"), s("c")]),
            )
            .await;
        assert_eq!(response.coordinators.len(), 3, "v{version}");
        assert!(
            response
                .coordinators
                .iter()
                .all(|c| c.error_code == 0 && c.node_id.0 == 0)
        );
    }
    let txn: FindCoordinatorResponse = client
        .send(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("txn")]),
        )
        .await;
    assert_eq!(
        txn.coordinators[0].error_code,
        ErrorCode::CoordinatorNotAvailable.code()
    );
    let bad: FindCoordinatorResponse = client
        .send(
            ApiKey::FindCoordinator,
            2,
            &FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_key_type(9),
        )
        .await;
    assert_eq!(bad.error_code, ErrorCode::InvalidRequest.code());
}

/// JoinGroup (11) v0-v3 joins a new member directly; v4+ first answers MEMBER_ID_REQUIRED
/// (KIP-394). Bad session timeouts, empty group ids and a mismatched protocol type are refused.
#[tokio::test]
async fn join_group_member_ids_and_bad_joins() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    find_coordinator(&mut client, "old-client").await;
    let v3 = join(&mut client, 3, &join_request("old-client", "", None, b"m")).await;
    assert_eq!(v3.error_code, 0);
    assert!(!v3.member_id.is_empty());
    assert_eq!(v3.generation_id, 1);

    let (member, generation) = join_alone(&mut client, "new-client").await;
    assert_eq!(generation, 1);
    assert!(
        member.starts_with("spate-test-"),
        "member id {member} starts with the client id"
    );

    let mut timeout = join_request("new-client", "", None, b"m");
    timeout.session_timeout_ms = 10;
    let response = join(&mut client, 9, &timeout).await;
    assert_eq!(response.error_code, ErrorCode::InvalidSessionTimeout.code());
    let response = join(&mut client, 9, &join_request("", "", None, b"m")).await;
    assert_eq!(response.error_code, ErrorCode::InvalidGroupId.code());
    let mut other_type = join_request("new-client", "", None, b"m");
    other_type.protocol_type = s("connect");
    let response = join(&mut client, 9, &other_type).await;
    assert_eq!(
        response.error_code,
        ErrorCode::InconsistentGroupProtocol.code()
    );
    let response = join(
        &mut client,
        9,
        &join_request("new-client", "no-such-member", None, b"m"),
    )
    .await;
    assert_eq!(response.error_code, ErrorCode::UnknownMemberId.code());
}

/// A two-member rebalance over two connections: both JoinGroups park until the join phase
/// ends, the leader's SyncGroup (14) assignment reaches the follower; Heartbeat (12) and
/// SyncGroup then check generations and member ids.
#[tokio::test]
async fn two_members_rebalance_and_generation_checks() {
    let broker = start_group_broker().await;
    let mut a = broker.client().await;
    let mut b = broker.client().await;
    find_coordinator(&mut a, "pair").await;
    let (member_a, _) = join_alone(&mut a, "pair").await;
    let sync_a = sync(&mut a, "pair", &member_a, None, 1, &[(&member_a, b"all")]).await;
    assert_eq!(sync_a.assignment.as_ref(), b"all");

    // b joins; a learns of the rebalance through its heartbeat and rejoins.
    let b_first = join(&mut b, 9, &join_request("pair", "", None, b"m")).await;
    let member_b = b_first.member_id.as_str().to_string();
    let b_join = async { join(&mut b, 9, &join_request("pair", &member_b, None, b"m")).await };
    let a_rejoin = async {
        loop {
            let code = heartbeat(&mut a, "pair", &member_a, None, 1).await;
            if code == ErrorCode::RebalanceInProgress.code() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        join(&mut a, 9, &join_request("pair", &member_a, None, b"m")).await
    };
    let (b_joined, a_joined) = tokio::join!(b_join, a_rejoin);
    assert_eq!(a_joined.error_code, 0);
    assert_eq!(b_joined.error_code, 0);
    assert_eq!(a_joined.generation_id, 2);
    assert_eq!(
        a_joined.leader.as_str(),
        member_a,
        "the old leader stays leader"
    );
    assert_eq!(a_joined.members.len(), 2, "the leader sees every member");
    assert!(b_joined.members.is_empty(), "followers see no members");

    let follower = async { sync(&mut b, "pair", &member_b, None, 2, &[]).await };
    let leader = async {
        sync(
            &mut a,
            "pair",
            &member_a,
            None,
            2,
            &[(&member_a, b"first-half"), (&member_b, b"second-half")],
        )
        .await
    };
    let (b_sync, a_sync) = tokio::join!(follower, leader);
    assert_eq!(b_sync.error_code, 0);
    assert_eq!(b_sync.assignment.as_ref(), b"second-half");
    assert_eq!(a_sync.assignment.as_ref(), b"first-half");
    assert_eq!(
        b_sync.protocol_name.as_ref().map(|p| p.as_str()),
        Some("range")
    );

    assert_eq!(heartbeat(&mut a, "pair", &member_a, None, 2).await, 0);
    assert_eq!(
        heartbeat(&mut a, "pair", &member_a, None, 1).await,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut a, "pair", "stranger", None, 2).await,
        ErrorCode::UnknownMemberId.code()
    );
    assert_eq!(
        heartbeat(&mut a, "nonexistent-group", "stranger", None, 2).await,
        ErrorCode::UnknownMemberId.code()
    );
    let stale = sync(&mut b, "pair", &member_b, None, 1, &[]).await;
    assert_eq!(stale.error_code, ErrorCode::IllegalGeneration.code());

    // DescribeGroups (15) shows the Stable group with its members and assignments.
    let described: DescribeGroupsResponse = a
        .send(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("pair"))]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.protocol_data.as_str(), "range");
    assert_eq!(group.members.len(), 2);

    // LeaveGroup (13) v3 batch: one real member, one unknown.
    let leave: LeaveGroupResponse = b
        .send(
            ApiKey::LeaveGroup,
            3,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("pair")))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&member_b)),
                    MemberIdentity::default().with_member_id(s("ghost")),
                ]),
        )
        .await;
    assert_eq!(leave.error_code, 0);
    assert_eq!(leave.members[0].error_code, 0);
    assert_eq!(
        leave.members[1].error_code,
        ErrorCode::UnknownMemberId.code()
    );
}

/// KIP-345 static membership: a second JoinGroup with the same `group.instance.id` takes over;
/// the old member id is fenced for Heartbeat, SyncGroup, OffsetCommit and LeaveGroup.
#[tokio::test]
async fn static_members_fence_their_old_incarnation() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    find_coordinator(&mut client, "static").await;
    let first = join(
        &mut client,
        9,
        &join_request("static", "", Some("i-1"), b"m"),
    )
    .await;
    assert_eq!(
        first.error_code, 0,
        "static members need no MEMBER_ID_REQUIRED round"
    );
    let old = first.member_id.as_str().to_string();
    let synced = sync(&mut client, "static", &old, Some("i-1"), 1, &[(&old, b"a")]).await;
    assert_eq!(synced.error_code, 0);

    let restarted = join(
        &mut client,
        9,
        &join_request("static", "", Some("i-1"), b"m"),
    )
    .await;
    assert_eq!(restarted.error_code, 0);
    assert_eq!(
        restarted.generation_id, 1,
        "a static restart causes no rebalance"
    );
    assert!(
        restarted.skip_assignment,
        "the static leader keeps the assignment (KIP-814)"
    );
    let new = restarted.member_id.as_str().to_string();
    assert_ne!(new, old);
    let synced = sync(&mut client, "static", &new, Some("i-1"), 1, &[]).await;
    assert_eq!(
        synced.assignment.as_ref(),
        b"a",
        "the assignment carries over"
    );

    let fenced = ErrorCode::FencedInstanceId.code();
    assert_eq!(
        heartbeat(&mut client, "static", &old, Some("i-1"), 1).await,
        fenced
    );
    assert_eq!(
        sync(&mut client, "static", &old, Some("i-1"), 1, &[])
            .await
            .error_code,
        fenced
    );
    let mut stale_commit = commit_request("static", &old, 1, "__consumer_offsets", 0, 1);
    stale_commit.group_instance_id = Some(s("i-1"));
    assert_eq!(commit(&mut client, 8, &stale_commit).await, fenced);
    let leave: LeaveGroupResponse = client
        .send(
            ApiKey::LeaveGroup,
            4,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("static")))
                .with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(s(&old))
                        .with_group_instance_id(Some(s("i-1"))),
                ]),
        )
        .await;
    assert_eq!(leave.members[0].error_code, fenced);
    assert_eq!(
        heartbeat(&mut client, "static", &new, Some("i-1"), 1).await,
        0
    );
}

/// OffsetCommit (8) and OffsetFetch (9): simple commits from `assign()` consumers (generation
/// -1), unknown topics and partitions, stale generations, a missing group (ILLEGAL_GENERATION
/// before v9, GROUP_ID_NOT_FOUND from v9), oversized metadata; then a broker restart keeps what
/// was committed.
#[tokio::test]
async fn offset_commit_and_fetch_errors_and_restart() {
    let mut broker = start_group_broker().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "orders", 3).await;
    find_coordinator(&mut client, "simple").await;
    find_coordinator(&mut client, "members").await;

    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("simple", "", -1, "orders", 1, 17)
        )
        .await,
        0
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("simple", "", -1, "no-such-topic", 0, 1)
        )
        .await,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("simple", "", -1, "orders", 99, 1)
        )
        .await,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("nobody-home", "m", 3, "orders", 0, 1)
        )
        .await,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        commit(
            &mut client,
            9,
            &commit_request("nobody-home", "m", 3, "orders", 0, 1)
        )
        .await,
        ErrorCode::GroupIdNotFound.code()
    );
    let mut big = commit_request("simple", "", -1, "orders", 0, 1);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5000)));
    assert_eq!(
        commit(&mut client, 8, &big).await,
        ErrorCode::OffsetMetadataTooLarge.code()
    );

    let (member, generation) = join_alone(&mut client, "members").await;
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("members", &member, generation, "orders", 0, 5)
        )
        .await,
        ErrorCode::RebalanceInProgress.code(),
        "commits wait for SyncGroup (CompletingRebalance)"
    );
    sync(
        &mut client,
        "members",
        &member,
        None,
        generation,
        &[(&member, b"x")],
    )
    .await;
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("members", &member, generation, "orders", 0, 5)
        )
        .await,
        0
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("members", &member, generation + 7, "orders", 0, 6)
        )
        .await,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("members", "intruder", generation, "orders", 0, 6)
        )
        .await,
        ErrorCode::UnknownMemberId.code()
    );
    assert_eq!(
        commit(
            &mut client,
            8,
            &commit_request("members", "", -1, "orders", 0, 6)
        )
        .await,
        ErrorCode::UnknownMemberId.code(),
        "simple commits need an empty group"
    );

    // OffsetFetch v1 (per-partition) and v8 (batched groups).
    let v1: OffsetFetchResponse = client
        .send(
            ApiKey::OffsetFetch,
            1,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("simple")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("orders")))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        )
        .await;
    let got: Vec<(i32, i64)> = v1.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(got, vec![(0, -1), (1, 17)]);
    assert_eq!(
        fetch_offsets(&mut client, "members", "orders", &[0]).await,
        vec![(0, 5)]
    );
    assert_eq!(
        fetch_offsets(&mut client, "unknown-group", "orders", &[0]).await,
        vec![(0, -1)]
    );

    drop(client);
    broker.restart().await;
    let mut client = broker.client().await;
    find_coordinator(&mut client, "simple").await;
    assert_eq!(
        fetch_offsets(&mut client, "simple", "orders", &[1]).await,
        vec![(1, 17)]
    );
    assert_eq!(
        fetch_offsets(&mut client, "members", "orders", &[0]).await,
        vec![(0, 5)]
    );
    // The group itself came back too: the member may heartbeat in its generation.
    assert_eq!(
        heartbeat(&mut client, "members", &member, None, generation).await,
        0
    );
}

/// Group metadata that does not fit the offsets topic's `max.message.bytes` fails the leader's
/// SyncGroup with UNKNOWN_SERVER_ERROR (Kafka's mapping of RECORD_TOO_LARGE), and the group
/// recovers with a smaller assignment instead of being corrupted.
/// A group's answer in OffsetFetch v8: id, error, and (topic, partition, offset) sorted.
type GroupOffsets = (String, i16, Vec<(String, i32, i64)>);

/// The id of `topic`, from Metadata.
async fn topic_id(client: &mut Client, topic: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    let response: MetadataResponse = client.send(ApiKey::Metadata, 12, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].topic_id
}

/// A simple (`assign()`) commit of one partition, naming the topic by id (OffsetCommit v10).
fn commit_by_id(group: &str, topic_id: Uuid, partition: i32, offset: i64) -> OffsetCommitRequest {
    let mut request = commit_request(group, "", -1, "", partition, offset);
    request.topics[0].topic_id = topic_id;
    request
}

/// (topic id, partition, committed offset, error) of every partition in a v10 group answer.
fn by_id_offsets(group: &OffsetFetchResponseGroup) -> Vec<(Uuid, i32, i64, i16)> {
    group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic_id,
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )
            })
        })
        .collect()
}

/// OffsetCommit v10 and OffsetFetch v10 name topics by id (Kafka 4.x's consumer uses them
/// whenever it knows every id): an id no topic has is UNKNOWN_TOPIC_ID for its partitions,
/// while the rest of the request is served; answers carry the ids. OffsetFetch v8+ answers
/// several groups in one request, each with its own topics, errors and "all topics" choice.
#[tokio::test]
async fn offset_fetch_batches_groups_and_names_topics_by_id() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "orders", 2).await;
    create_topic(&mut client, "ledger", 1).await;
    let orders = topic_id(&mut client, "orders").await;
    let ledger = topic_id(&mut client, "ledger").await;
    let unknown = Uuid::from_u128(0x5EED);
    for group in ["by-name", "by-id"] {
        find_coordinator(&mut client, group).await;
    }

    // By name (v9) and by id (v10) commit the same way.
    let by_name = commit_request("by-name", "", -1, "orders", 0, 5);
    assert_eq!(commit(&mut client, 9, &by_name).await, 0);
    let by_name = commit_request("by-name", "", -1, "ledger", 0, 7);
    assert_eq!(commit(&mut client, 9, &by_name).await, 0);
    assert_eq!(
        commit(&mut client, 10, &commit_by_id("by-id", orders, 1, 11)).await,
        0
    );
    assert_eq!(
        commit(&mut client, 10, &commit_by_id("by-id", ledger, 0, 3)).await,
        0
    );
    // An unknown id fails its partitions only; a known id with a missing partition is
    // UNKNOWN_TOPIC_OR_PARTITION, as by name.
    let mut mixed = commit_by_id("by-id", unknown, 0, 1);
    mixed
        .topics
        .push(commit_by_id("by-id", orders, 9, 1).topics.remove(0));
    mixed
        .topics
        .push(commit_by_id("by-id", orders, 0, 2).topics.remove(0));
    let response: OffsetCommitResponse = client.send(ApiKey::OffsetCommit, 10, &mixed).await;
    let answered: Vec<(Uuid, i16)> = response
        .topics
        .iter()
        .map(|t| (t.topic_id, t.partitions[0].error_code))
        .collect();
    assert_eq!(
        answered,
        vec![
            (unknown, ErrorCode::UnknownTopicId.code()),
            (orders, ErrorCode::UnknownTopicOrPartition.code()),
            (orders, 0),
        ]
    );

    // v8: three groups in one request — all topics, chosen partitions, a group with no commits.
    let group = |id: &str, topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_topics(topics)
    };
    let named = |topic: &str, partitions: Vec<i32>| {
        OffsetFetchRequestTopics::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions)
    };
    let request = OffsetFetchRequest::default().with_groups(vec![
        group("by-name", None),
        group("by-id", Some(vec![named("orders", vec![0, 1])])),
        group("never-committed", Some(vec![named("orders", vec![1])])),
    ]);
    let response: OffsetFetchResponse = client.send(ApiKey::OffsetFetch, 8, &request).await;
    let answered: Vec<GroupOffsets> = response
        .groups
        .iter()
        .map(|g| {
            let mut offsets: Vec<(String, i32, i64)> = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        assert_eq!(p.error_code, 0);
                        (t.name.0.to_string(), p.partition_index, p.committed_offset)
                    })
                })
                .collect();
            offsets.sort();
            (g.group_id.0.to_string(), g.error_code, offsets)
        })
        .collect();
    let row = |t: &str, p: i32, o: i64| (t.to_string(), p, o);
    assert_eq!(
        answered,
        vec![
            (
                "by-name".to_string(),
                0,
                vec![row("ledger", 0, 7), row("orders", 0, 5)]
            ),
            (
                "by-id".to_string(),
                0,
                vec![row("orders", 0, 2), row("orders", 1, 11)]
            ),
            ("never-committed".to_string(), 0, vec![row("orders", 1, -1)]),
        ]
    );

    // v10: the same by id; an unknown id answers UNKNOWN_TOPIC_ID beside the known ones.
    let with_id = |id: Uuid, partitions: Vec<i32>| {
        OffsetFetchRequestTopics::default()
            .with_topic_id(id)
            .with_partition_indexes(partitions)
    };
    let request = OffsetFetchRequest::default().with_groups(vec![
        group("by-name", None),
        group(
            "by-id",
            Some(vec![with_id(orders, vec![1]), with_id(unknown, vec![0])]),
        ),
    ]);
    let response: OffsetFetchResponse = client.send(ApiKey::OffsetFetch, 10, &request).await;
    let mut all = by_id_offsets(&response.groups[0]);
    all.sort();
    let mut expected = vec![(orders, 0, 5, 0), (ledger, 0, 7, 0)];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(
        by_id_offsets(&response.groups[1]),
        vec![
            (orders, 1, 11, 0),
            (unknown, 0, -1, ErrorCode::UnknownTopicId.code())
        ]
    );
}

#[tokio::test]
async fn oversized_group_metadata_fails_the_sync_not_the_group() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    find_coordinator(&mut client, "huge").await;
    let (member, generation) = join_alone(&mut client, "huge").await;
    let too_big = vec![7u8; 2 * 1024 * 1024];
    let failed = sync(
        &mut client,
        "huge",
        &member,
        None,
        generation,
        &[(&member, &too_big)],
    )
    .await;
    assert_eq!(failed.error_code, ErrorCode::UnknownServerError.code());
    // The failed sync sent the group back to a rebalance; rejoining works.
    let rejoined = join(&mut client, 9, &join_request("huge", &member, None, b"m")).await;
    assert_eq!(rejoined.error_code, 0);
    let ok = sync(
        &mut client,
        "huge",
        &member,
        None,
        rejoined.generation_id,
        &[(&member, b"small")],
    )
    .await;
    assert_eq!(ok.error_code, 0);
    assert_eq!(ok.assignment.as_ref(), b"small");
}

/// ListGroups (16) with the v4 state filter and v5 type filter; DeleteGroups (42) refuses
/// non-empty and unknown groups and deletes empty ones with their offsets.
#[tokio::test]
async fn list_and_delete_groups() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    find_coordinator(&mut client, "busy").await;
    find_coordinator(&mut client, "idle").await;
    let (member, generation) = join_alone(&mut client, "busy").await;
    sync(
        &mut client,
        "busy",
        &member,
        None,
        generation,
        &[(&member, b"x")],
    )
    .await;
    assert_eq!(
        commit(&mut client, 8, &commit_request("idle", "", -1, "t", 0, 3)).await,
        0
    );

    let stable: ListGroupsResponse = client
        .send(
            ApiKey::ListGroups,
            4,
            &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
        )
        .await;
    let ids: Vec<&str> = stable
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    assert_eq!(ids, vec!["busy"]);
    let classic: ListGroupsResponse = client
        .send(
            ApiKey::ListGroups,
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
        )
        .await;
    assert_eq!(classic.groups.len(), 2);
    let consumer: ListGroupsResponse = client
        .send(
            ApiKey::ListGroups,
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        )
        .await;
    assert!(consumer.groups.is_empty());

    let deleted: DeleteGroupsResponse = client
        .send(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(s("busy")),
                GroupId(s("idle")),
                GroupId(s("never-was")),
            ]),
        )
        .await;
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::NonEmptyGroup.code(),
            0,
            ErrorCode::GroupIdNotFound.code()
        ]
    );
    assert_eq!(
        fetch_offsets(&mut client, "idle", "t", &[0]).await,
        vec![(0, -1)]
    );
}

async fn send(
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

fn consumer_heartbeat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names(if epoch == 0 {
            Some(vec![TopicName(s("kip848"))])
        } else {
            None
        })
        .with_topic_partitions(if epoch == 0 { Some(Vec::new()) } else { None })
}

/// ConsumerGroupHeartbeat (68) v1 (KIP-848): a joining member gets the whole topic from the
/// server assignor; bad requests are INVALID_REQUEST, an unknown assignor UNSUPPORTED_ASSIGNOR,
/// an unknown member UNKNOWN_MEMBER_ID, a future epoch FENCED_MEMBER_EPOCH; leaving works.
#[tokio::test]
async fn consumer_group_heartbeat_protocol() {
    let broker = start_group_broker().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "kip848", 4).await;
    find_coordinator(&mut client, "cg").await;
    let joined = send(&mut client, consumer_heartbeat("cg", "member-1", 0)).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert_eq!(joined.member_epoch, 1);
    let assignment = joined
        .assignment
        .expect("a full request gets the assignment");
    let partitions: Vec<i32> = assignment.topic_partitions[0].partitions.clone();
    assert_eq!(partitions.len(), 4);

    let owned = vec![
        TopicPartitions::default()
            .with_topic_id(assignment.topic_partitions[0].topic_id)
            .with_partitions(partitions),
    ];
    let steady = send(
        &mut client,
        consumer_heartbeat("cg", "member-1", 1).with_topic_partitions(Some(owned)),
    )
    .await;
    assert_eq!(steady.error_code, 0);
    assert_eq!(steady.member_epoch, 1);

    let no_member_id = send(&mut client, consumer_heartbeat("cg", "", 0)).await;
    assert_eq!(no_member_id.error_code, ErrorCode::InvalidRequest.code());
    let mut no_topics = consumer_heartbeat("cg", "member-2", 0);
    no_topics.subscribed_topic_names = None;
    assert_eq!(
        send(&mut client, no_topics).await.error_code,
        ErrorCode::InvalidRequest.code()
    );
    let bad_assignor =
        consumer_heartbeat("cg", "member-2", 0).with_server_assignor(Some(s("magic")));
    assert_eq!(
        send(&mut client, bad_assignor).await.error_code,
        ErrorCode::UnsupportedAssignor.code()
    );
    assert_eq!(
        send(&mut client, consumer_heartbeat("cg", "member-9", 4))
            .await
            .error_code,
        ErrorCode::UnknownMemberId.code()
    );
    assert_eq!(
        send(&mut client, consumer_heartbeat("cg", "member-1", 5))
            .await
            .error_code,
        ErrorCode::FencedMemberEpoch.code()
    );
    // OffsetCommit v9 with the member epoch; a stale epoch is STALE_MEMBER_EPOCH.
    assert_eq!(
        commit(
            &mut client,
            9,
            &commit_request("cg", "member-1", 1, "kip848", 0, 3)
        )
        .await,
        0
    );
    assert_eq!(
        commit(
            &mut client,
            9,
            &commit_request("cg", "member-1", 0, "kip848", 0, 3)
        )
        .await,
        ErrorCode::StaleMemberEpoch.code()
    );
    let left = send(&mut client, consumer_heartbeat("cg", "member-1", -1)).await;
    assert_eq!(left.error_code, 0);
    assert_eq!(left.member_epoch, -1);
    let listed: ListGroupsResponse = client
        .send(
            ApiKey::ListGroups,
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        )
        .await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Empty");
}
