//! Reading the `consumer` embedded protocol that classic consumer groups relay through the
//! broker: a version-prefixed ConsumerProtocolSubscription in JoinGroup metadata and a
//! ConsumerProtocolAssignment in SyncGroup assignments.
//!
//! A classic group does not need them to run; the broker reads them to answer OffsetDelete
//! (GROUP_SUBSCRIBED_TO_TOPIC) and to show which member owns which partition. They matter when
//! a group migrates between protocols (KIP-848): a classic group becoming a consumer group
//! takes each member's subscription and assignment from them, and a classic member of a
//! consumer group gets its server-side assignment written in this format. Unreadable bytes
//! (another protocol type, a client bug) simply yield `None`.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The classic protocol type of consumers (Kafka's `ConsumerProtocol.PROTOCOL_TYPE`).
pub const PROTOCOL_TYPE: &str = "consumer";

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

/// What a classic consumer's JoinGroup metadata says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Subscribed topics, in the client's order.
    pub topics: Vec<String>,
    /// Partitions the member still owns (v1+; empty before, or after an eager revocation).
    pub owned: Vec<(String, i32)>,
    /// The client's rack (v3+).
    pub rack_id: Option<String>,
}

/// The whole subscription.
pub fn subscription(metadata: &Bytes) -> Option<Subscription> {
    let (version, mut body) = version_and_body(metadata)?;
    let decoded = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(Subscription {
        topics: decoded
            .topics
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        owned: decoded
            .owned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(|p| (tp.topic.0.as_str().to_string(), *p))
            })
            .collect(),
        rack_id: decoded.rack_id.map(|r| r.as_str().to_string()),
    })
}

/// The version prefix of embedded protocol bytes, capped at the newest this broker writes
/// (Kafka's `ConsumerProtocol.deserializeVersion` then `checkAssignmentVersion`).
pub fn version(bytes: &Bytes) -> Option<i16> {
    version_and_body(bytes).map(|(version, _)| version)
}

/// A ConsumerProtocolAssignment at `version` (the version of the member's subscription, as
/// Kafka answers a classic member): topics in the order given, no user data.
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> Bytes {
    let version = version.clamp(0, CONSUMER_PROTOCOL_VERSION_MAX);
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(topic, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    if let Err(error) = assignment.encode(&mut buf, version) {
        // Every field fits every version; an encoder refusal is a broken invariant, and an
        // empty assignment is what a member gets when the leader leaves it out.
        tracing::error!(%error, version, "consumer protocol assignment does not encode");
        return Bytes::new();
    }
    buf.freeze()
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
    /// A v1 subscription with owned partitions (KIP-429) reads back whole, and an assignment
    /// this broker writes decodes with the client's own schema at the version it asked for.
    #[test]
    fn owned_partitions_and_written_assignments_round_trip() {
        use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;
        let subscription_v1 = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("a")])
            .with_owned_partitions(vec![
                Owned::default()
                    .with_topic(TopicName(StrBytes::from_static_str("a")))
                    .with_partitions(vec![1, 3]),
            ]);
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        subscription_v1.encode(&mut buf, 1).expect("encodes");
        let bytes = buf.freeze();
        assert_eq!(version(&bytes), Some(1));
        let read = subscription(&bytes).expect("decodes");
        assert_eq!(read.topics, vec!["a".to_string()]);
        assert_eq!(read.owned, vec![("a".to_string(), 1), ("a".to_string(), 3)]);

        let written = encode_assignment(1, &[("a".into(), vec![0, 2])]);
        assert_eq!(&written[..2], &[0, 1]);
        assert_eq!(
            assignment_partitions(&written),
            Some(vec![("a".to_string(), 0), ("a".to_string(), 2)])
        );
    }

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
        assert_eq!(super::subscription(&Bytes::from_static(&[0])), None);
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
            None
        );
    }
}
