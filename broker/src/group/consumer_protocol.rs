//! Reading the `consumer` embedded protocol that classic consumer groups relay through the
//! broker: a version-prefixed ConsumerProtocolSubscription in JoinGroup metadata and a
//! ConsumerProtocolAssignment in SyncGroup assignments.
//!
//! The broker does not need them to run a group; it reads them to answer OffsetDelete
//! (GROUP_SUBSCRIBED_TO_TOPIC) and to show which member owns which partition. Unreadable bytes
//! (another protocol type, a client bug) simply yield `None`.

use std::collections::BTreeSet;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// Newest version of both schemas the `kafka-protocol` crate decodes. A newer client writes a
/// newer version whose prefix of fields is the same (Kafka's own `ConsumerProtocol` reads newer
/// versions this way), so those are read at this version.
const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;

fn version_and_body(bytes: &Bytes) -> Option<(i16, Bytes)> {
    let mut body = bytes.clone();
    if body.remaining() < 2 {
        return None;
    }
    let version = body.get_i16();
    if version < 0 {
        return None;
    }
    Some((version.min(CONSUMER_PROTOCOL_VERSION_MAX), body))
}

/// The topics of a subscription.
pub fn subscription_topics(metadata: &Bytes) -> Option<BTreeSet<String>> {
    let (version, mut body) = version_and_body(metadata)?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(
        subscription
            .topics
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
    )
}

/// The partitions of an assignment, as `(topic, partition)`.
pub fn assignment_partitions(assignment: &Bytes) -> Option<Vec<(String, i32)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let (version, mut body) = version_and_body(assignment)?;
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version).ok()?;
    Some(
        decoded
            .assigned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(|p| (tp.topic.0.as_str().to_string(), *p))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn reads_subscriptions_and_assignments_and_refuses_garbage() {
        let subscription = ConsumerProtocolSubscription::default().with_topics(vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(1);
        subscription.encode(&mut buf, 1).expect("encodes");
        let topics = subscription_topics(&buf.freeze()).expect("decodes");
        assert_eq!(topics, BTreeSet::from(["a".to_string(), "b".to_string()]));

        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![0, 2]),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(0);
        assignment.encode(&mut buf, 0).expect("encodes");
        assert_eq!(
            assignment_partitions(&buf.freeze()),
            Some(vec![("a".to_string(), 0), ("a".to_string(), 2)])
        );
        assert_eq!(subscription_topics(&Bytes::from_static(&[0])), None);
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
            None
        );
    }
}
