//! Group coordinator requests shared by the group tests.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;

use super::Client;

/// A protocol string.
pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Creates a topic with replication factor 1.
pub async fn create_topic(client: &mut Client, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = client.send(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
}

/// Finds the coordinator until it answers without error (the first call creates
/// `__consumer_offsets`), then waits for the group's partition to be loaded.
pub async fn find_coordinator(client: &mut Client, group: &str) -> FindCoordinatorResponse {
    for _ in 0..100 {
        let response: FindCoordinatorResponse = client
            .send(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default().with_key(s(group)),
            )
            .await;
        if response.error_code == 0 {
            // The coordinator is known; wait until it has loaded the group's partition.
            fetch_offsets(client, group, "any", &[]).await;
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no coordinator for {group}");
}

/// One group's committed offsets of `partitions` of `topic` (OffsetFetch v8), retried while
/// the coordinator loads.
pub async fn fetch_offsets(
    client: &mut Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i64)> {
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ])),
    ]);
    loop {
        let response: OffsetFetchResponse = client.send(ApiKey::OffsetFetch, 8, &request).await;
        let code = response.groups[0].error_code;
        // Retriable while a (re)started node loads its offsets partitions.
        if code == ErrorCode::CoordinatorLoadInProgress.code()
            || code == ErrorCode::NotCoordinator.code()
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(code, 0);
        return response.groups[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.committed_offset))
            })
            .collect();
    }
}
