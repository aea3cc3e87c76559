//! DescribeQuorum (API key 55, v0-v2) against an in-process single-node broker: the lone voter
//! leads, reports its log end offset and high watermark, v1 adds fetch timestamps and v2 the
//! controller endpoints; other topics or partitions are unknown.

mod support;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use support::TestBroker;

fn request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition),
            ]),
    ])
}

#[tokio::test]
async fn the_single_voter_describes_itself_at_every_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for version in 0..=2 {
        let response: DescribeQuorumResponse = client
            .send(
                ApiKey::DescribeQuorum,
                version,
                &request("__cluster_metadata", 0),
            )
            .await;
        assert_eq!(response.error_code, 0);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0, "v{version}");
        assert_eq!(partition.leader_id, BrokerId(0));
        assert!(partition.leader_epoch >= 1);
        // Registration and unfencing were committed: the log is not empty.
        assert!(partition.high_watermark >= 2, "{partition:?}");
        assert_eq!(partition.current_voters.len(), 1);
        let voter = &partition.current_voters[0];
        assert_eq!(voter.replica_id, BrokerId(0));
        assert!(voter.log_end_offset >= partition.high_watermark);
        assert!(partition.observers.is_empty());
        if version >= 1 {
            assert!(voter.last_fetch_timestamp > 0 && voter.last_caught_up_timestamp > 0);
        } else {
            assert_eq!(voter.last_fetch_timestamp, -1);
        }
        if version >= 2 {
            assert_eq!(response.nodes.len(), 1);
            let listener = &response.nodes[0].listeners[0];
            assert_eq!(listener.name.as_str(), "CONTROLLER");
            assert_eq!(listener.host.as_str(), "127.0.0.1");
            assert_eq!(
                listener.port,
                broker.server.as_ref().unwrap().controller_addr.port()
            );
        }
    }
}

#[tokio::test]
async fn other_partitions_are_unknown() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for (topic, partition) in [("__cluster_metadata", 1), ("orders", 0)] {
        let response: DescribeQuorumResponse = client
            .send(ApiKey::DescribeQuorum, 2, &request(topic, partition))
            .await;
        let data = &response.topics[0].partitions[0];
        assert_eq!(data.error_code, ErrorCode::UnknownTopicOrPartition.code());
        assert_eq!(data.partition_index, partition);
        assert!(data.error_message.is_some());
    }
}
