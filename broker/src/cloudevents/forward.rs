//! What this node sends to another for CloudEvents, over the Kafka protocol as any Kafka client
//! would send it: an append to a partition another node leads goes to that leader as a Produce
//! (v9, `acks=all`), and an offset commit or fetch for a group another node coordinates goes to
//! the coordinator as an OffsetCommit (v8, a simple commit: generation -1, no member, which
//! Kafka accepts for a group without members) or an OffsetFetch (v8).
//!
//! Connections are pooled per peer. A request takes an idle connection (or opens one), owns it
//! for one round trip and gives it back only when the round trip completed, so a failed, timed
//! out or cancelled request never leaves a late answer on a pooled connection. At most
//! [`PEER_CONNECTIONS_MAX`] requests are in flight to one peer; requests to different peers never
//! wait for each other.
//!
//! The error codes of the answers become [`LogError`]s here, in one function per API.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use parking_lot::Mutex;
use spate_cloudevents::log::LogError;
use spate_controller::image::MetadataImage;
use spate_protocol::error::ErrorCode;
use spate_protocol::types::NodeId;
use tokio::sync::Semaphore;

use crate::kafka_client::{ClientError, KafkaConnection};

/// Requests in flight to one peer at once, each on its own connection. Bounds the sockets one
/// node opens to another (the ingress admits thousands of requests at once), while appends to
/// different partitions led by one peer still overlap.
pub const PEER_CONNECTIONS_MAX: usize = 8;
/// How long opening a connection to a peer (TCP connect and ApiVersions) may take. Far shorter
/// than a request's bound: a peer that does not accept a connection in this time is down or
/// partitioned away, and the event's sender should get its 503 and retry soon.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long past the time a peer may spend waiting on its own replicas (a Produce's
/// `timeout_ms`, the coordinator's `offsets.commit.timeout.ms`) its answer may take to arrive,
/// for the network and the peer's queue. Past it, the round trip counts as failed.
pub const PEER_RESPONSE_GRACE_MS: u64 = 5_000;
/// The client id forwarded requests carry, so the peer's logs tell them from clients' own.
pub const PEER_CLIENT_ID: &str = "spate-cloudevents";
/// The Produce version sent: flexible, with the record batch as produced; Kafka 2.4+ and Spate
/// serve it.
pub const PRODUCE_VERSION: i16 = 9;
/// The OffsetCommit version sent: the last one that names topics rather than topic ids.
pub const OFFSET_COMMIT_VERSION: i16 = 8;
/// The OffsetFetch version sent: the first that batches groups, the last before member epochs.
pub const OFFSET_FETCH_VERSION: i16 = 8;
/// Requests sent to another node, by `api` (`Produce`, `OffsetCommit`, `OffsetFetch`).
pub const FORWARDED_METRIC: &str = "spate_cloudevents_forwarded_requests_total";
/// Forwarded requests that got no answer, by `api`: the peer could not be reached, dropped
/// the connection or did not answer in time, or does not serve the version sent.
pub const FORWARD_FAILED_METRIC: &str = "spate_cloudevents_forwarded_request_failures_total";
/// Kafka's `acks=all`.
const ACKS_ALL: i16 = -1;
/// The generation of a simple (admin) offset commit, outside any group membership.
const SIMPLE_COMMIT_GENERATION: i32 = -1;
/// The leader epoch of a committed offset when the committer does not track it.
const NO_LEADER_EPOCH: i32 = -1;

/// Another node, as the metadata image advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub node: NodeId,
    /// Its Kafka listener, `host:port`.
    pub address: String,
}

impl Peer {
    /// Node `node` as registered in `image`: unfenced, with a Kafka endpoint (`PLAINTEXT` before
    /// others, as replica fetchers choose). `None` when it is fenced or not registered; the
    /// controller then moves what it led, and the caller's retry finds the new leader.
    pub fn in_image(image: &MetadataImage, node: NodeId) -> Option<Peer> {
        let broker = image.broker(node).filter(|b| !b.fenced)?;
        let endpoint = broker
            .endpoints
            .iter()
            .find(|e| e.name == "PLAINTEXT")
            .or_else(|| broker.endpoints.first())?;
        Some(Peer {
            node,
            address: format!("{}:{}", endpoint.host, endpoint.port),
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} at {}", self.node, self.address)
    }
}

/// The connections to one peer.
struct PeerConnections {
    /// One permit per request in flight to the peer.
    permits: Semaphore,
    /// Connections whose last round trip completed, ready for the next.
    idle: Mutex<Vec<KafkaConnection>>,
}

impl PeerConnections {
    fn new() -> PeerConnections {
        PeerConnections {
            permits: Semaphore::new(PEER_CONNECTIONS_MAX),
            idle: Mutex::new(Vec::with_capacity(PEER_CONNECTIONS_MAX)),
        }
    }

    /// An idle connection to `address` the peer has not closed. Connections to an address the
    /// peer no longer advertises, or closed by it, are dropped on the way.
    fn take_idle(&self, address: &str) -> Option<KafkaConnection> {
        let mut idle = self.idle.lock();
        while let Some(connection) = idle.pop() {
            if connection.address() == address && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, connection: KafkaConnection) {
        let mut idle = self.idle.lock();
        // Never more idle connections than permits: each was in use under one.
        if idle.len() < PEER_CONNECTIONS_MAX {
            idle.push(connection);
        }
    }
}

/// Pooled connections to the other nodes, shared by every forwarded request of this node.
#[derive(Default)]
pub struct PeerPool {
    peers: Mutex<HashMap<NodeId, Arc<PeerConnections>>>,
}

impl PeerPool {
    /// An empty pool; connections open on first use.
    pub fn new() -> PeerPool {
        PeerPool::default()
    }

    /// Sends one request to `peer` at exactly `version` and decodes the answer, which must
    /// arrive within `timeout`.
    async fn round_trip<Req: Encodable, Resp: Decodable>(
        &self,
        peer: &Peer,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, LogError> {
        let connections = self
            .peers
            .lock()
            .entry(peer.node)
            .or_insert_with(|| Arc::new(PeerConnections::new()))
            .clone();
        // The semaphore is never closed.
        let _permit = connections
            .permits
            .acquire()
            .await
            .map_err(|e| unreachable(peer, e.to_string()))?;
        let api_name = format!("{api:?}");
        metrics::counter!(FORWARDED_METRIC, "api" => api_name.clone()).increment(1);
        let answered = async {
            let mut connection = match connections.take_idle(&peer.address) {
                Some(connection) => connection,
                None => connect(peer).await?,
            };
            connection
                .version(api, (version, version))
                .map_err(|e| LogError::Other(e.to_string()))?;
            let response = connection
                .send_within(api, version, request, timeout)
                .await
                .map_err(|e| map_client_error(peer, e))?;
            Ok((connection, response))
        };
        match answered.await {
            Ok((connection, response)) => {
                connections.put_idle(connection);
                Ok(response)
            }
            Err(e) => {
                metrics::counter!(FORWARD_FAILED_METRIC, "api" => api_name).increment(1);
                Err(e)
            }
        }
    }

    /// Appends `batch`, one record batch, to `topic`-`partition` on its leader `peer` with
    /// `acks=all`, waiting up to `timeout_ms` there; the first record's offset.
    /// `max_message_bytes` names the topic's limit when the leader refuses the batch as too
    /// large (the answer does not carry it).
    pub async fn produce(
        &self,
        peer: &Peer,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout_ms: u64,
        max_message_bytes: impl FnOnce() -> usize,
    ) -> Result<i64, LogError> {
        let size_bytes = batch.len();
        let request = ProduceRequest::default()
            .with_acks(ACKS_ALL)
            .with_timeout_ms(i32::try_from(timeout_ms).unwrap_or(i32::MAX))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let timeout = Duration::from_millis(timeout_ms + PEER_RESPONSE_GRACE_MS);
        let response: ProduceResponse = self
            .round_trip(peer, ApiKey::Produce, PRODUCE_VERSION, &request, timeout)
            .await?;
        let answer = response
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| missing_answer(peer, topic, partition))?;
        match ErrorCode::try_from_code(answer.error_code) {
            None => Ok(answer.base_offset),
            Some(code) => Err(map_produce_answer(
                topic,
                partition,
                code,
                answer.error_message.as_ref().map(|m| m.as_str()),
                size_bytes,
                max_message_bytes,
            )),
        }
    }

    /// Commits `offset` for `group` on `topic`-`partition` at its coordinator `peer`, as a
    /// simple commit; the coordinator may wait up to `timeout_ms` for its replicas.
    pub async fn commit_offset(
        &self,
        peer: &Peer,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout_ms: u64,
    ) -> Result<(), LogError> {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(SIMPLE_COMMIT_GENERATION)
            .with_member_id(StrBytes::default())
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(NO_LEADER_EPOCH)
                            .with_committed_metadata(None),
                    ]),
            ]);
        let timeout = Duration::from_millis(timeout_ms + PEER_RESPONSE_GRACE_MS);
        let response: OffsetCommitResponse = self
            .round_trip(
                peer,
                ApiKey::OffsetCommit,
                OFFSET_COMMIT_VERSION,
                &request,
                timeout,
            )
            .await?;
        let code = response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .map(|p| p.error_code)
            .ok_or_else(|| missing_answer(peer, topic, partition))?;
        match ErrorCode::try_from_code(code) {
            None => Ok(()),
            Some(code) => Err(map_group_answer(group, code)),
        }
    }

    /// `group`'s committed offset for `topic`-`partition` at its coordinator `peer`, `None`
    /// when it has none.
    pub async fn fetch_offset(
        &self,
        peer: &Peer,
        group: &str,
        topic: &str,
        partition: i32,
        timeout_ms: u64,
    ) -> Result<Option<i64>, LogError> {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(vec![partition]),
                ])),
        ]);
        let timeout = Duration::from_millis(timeout_ms + PEER_RESPONSE_GRACE_MS);
        let response: OffsetFetchResponse = self
            .round_trip(
                peer,
                ApiKey::OffsetFetch,
                OFFSET_FETCH_VERSION,
                &request,
                timeout,
            )
            .await?;
        let answer = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| missing_answer(peer, topic, partition))?;
        if let Some(code) = ErrorCode::try_from_code(answer.error_code) {
            return Err(map_group_answer(group, code));
        }
        let fetched = answer
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing_answer(peer, topic, partition))?;
        if let Some(code) = ErrorCode::try_from_code(fetched.error_code) {
            return Err(map_group_answer(group, code));
        }
        // Kafka answers offset -1 for a partition the group has not committed.
        Ok((fetched.committed_offset >= 0).then_some(fetched.committed_offset))
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn unreachable(peer: &Peer, reason: String) -> LogError {
    LogError::Unreachable {
        peer: peer.to_string(),
        reason,
    }
}

fn missing_answer(peer: &Peer, topic: &str, partition: i32) -> LogError {
    LogError::Other(format!("{peer} did not answer for {topic}-{partition}"))
}

async fn connect(peer: &Peer) -> Result<KafkaConnection, LogError> {
    let connecting = KafkaConnection::connect_as(&peer.address, PEER_CLIENT_ID);
    match tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(map_client_error(peer, e)),
        Err(_) => Err(unreachable(
            peer,
            format!("no connection within {PEER_CONNECT_TIMEOUT_MS} ms"),
        )),
    }
}

/// A failed round trip: the connection failing is the peer being unreachable, and the answer
/// not arriving in time a timeout (both transient); an answer that cannot be understood or an
/// API the peer does not serve will not change by retrying.
fn map_client_error(peer: &Peer, error: ClientError) -> LogError {
    match error {
        ClientError::Io { source, .. } => unreachable(peer, source.to_string()),
        ClientError::Timeout { .. } => LogError::Timeout,
        other @ (ClientError::Unsupported { .. } | ClientError::Protocol { .. }) => {
            LogError::Other(other.to_string())
        }
    }
}

/// What a leader's Produce error code means to the ingress. Leadership that moved (or a leader
/// that has not yet applied the topic) is retried like a local partition this node does not
/// lead; the rest map as the local append's errors do.
fn map_produce_answer(
    topic: &str,
    partition: i32,
    code: ErrorCode,
    message: Option<&str>,
    size_bytes: usize,
    max_message_bytes: impl FnOnce() -> usize,
) -> LogError {
    match code {
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::FencedLeaderEpoch
        | ErrorCode::LeaderNotAvailable
        | ErrorCode::UnknownTopicOrPartition => LogError::NotLeader {
            topic: topic.to_owned(),
            partition,
        },
        ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
            LogError::NotEnoughReplicas {
                topic: topic.to_owned(),
                partition,
            }
        }
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => LogError::TooLarge {
            size_bytes,
            max_bytes: max_message_bytes(),
        },
        ErrorCode::RequestTimedOut => LogError::Timeout,
        other => LogError::Other(match message {
            Some(message) => format!("{topic}-{partition}: {other:?}: {message}"),
            None => format!("{topic}-{partition}: {other:?}"),
        }),
    }
}

/// What a coordinator's OffsetCommit or OffsetFetch error code means to the dispatcher: a
/// coordinator that moved or is loading is retried, as the local coordinator's are.
fn map_group_answer(group: &str, code: ErrorCode) -> LogError {
    match code {
        ErrorCode::NotCoordinator
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::CoordinatorLoadInProgress => LogError::CoordinatorNotAvailable {
            group: group.to_owned(),
        },
        other => LogError::Other(format!("group {group}: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    //! The forwarded requests against a fake peer on a real socket: the answers' error codes
    //! (Kafka protocol guide, "Error Codes"), connection reuse, and reconnecting after the peer
    //! closes a pooled connection.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use spate_protocol::header::{decode_request, encode_response};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const TOPIC: &str = "knative-broker-ns-b";
    const GROUP: &str = "knative-trigger-ns-t";
    const BASE_OFFSET: i64 = 42;
    const TIMEOUT_MS: u64 = 1_000;

    /// A fake peer: answers ApiVersions, and every other request with the next error code of
    /// its script (0 = success); when told to, closes the connection after each such answer.
    struct FakePeer {
        peer: Peer,
        codes: Arc<Mutex<VecDeque<i16>>>,
        connections: Arc<AtomicUsize>,
    }

    impl FakePeer {
        async fn start(close_after_answer: bool) -> FakePeer {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let peer = Peer {
                node: NodeId(7),
                address: listener.local_addr().expect("address").to_string(),
            };
            let codes = Arc::new(Mutex::new(VecDeque::new()));
            let connections = Arc::new(AtomicUsize::new(0));
            let (c, n) = (codes.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    n.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, c.clone(), close_after_answer));
                }
            });
            FakePeer {
                peer,
                codes,
                connections,
            }
        }

        fn answer(&self, codes: &[ErrorCode]) {
            self.codes.lock().extend(codes.iter().map(|c| c.code()));
        }
    }

    async fn serve(mut stream: TcpStream, codes: Arc<Mutex<VecDeque<i16>>>, close: bool) {
        loop {
            let Ok(size) = stream.read_u32().await else {
                return;
            };
            let mut frame = vec![0u8; size as usize];
            if stream.read_exact(&mut frame).await.is_err() {
                return;
            }
            let request = decode_request(Bytes::from(frame)).expect("request header");
            let (api, version) = (request.api_key, request.header.request_api_version);
            let correlation_id = request.header.correlation_id;
            let body = if api == ApiKey::ApiVersions {
                let keys = [
                    (ApiKey::Produce, PRODUCE_VERSION),
                    (ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION),
                    (ApiKey::OffsetFetch, OFFSET_FETCH_VERSION),
                ]
                .into_iter()
                .map(|(key, v)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(v)
                        .with_max_version(v)
                })
                .collect();
                let response = ApiVersionsResponse::default().with_api_keys(keys);
                encode_response(api, version, correlation_id, &response)
            } else {
                let code = codes.lock().pop_front().unwrap_or(0);
                answer(api, version, correlation_id, code)
            }
            .expect("response encodes");
            let mut framed = BytesMut::with_capacity(body.len() + 4);
            framed.put_u32(body.len() as u32);
            framed.extend_from_slice(&body);
            if stream.write_all(&framed).await.is_err() || (close && api != ApiKey::ApiVersions) {
                return;
            }
        }
    }

    fn answer(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        code: i16,
    ) -> Result<BytesMut, spate_protocol::header::EncodeError> {
        let name = topic_name(TOPIC);
        match api {
            ApiKey::Produce => {
                let partition = PartitionProduceResponse::default()
                    .with_index(0)
                    .with_error_code(code)
                    .with_base_offset(if code == 0 { BASE_OFFSET } else { -1 });
                let response = ProduceResponse::default().with_responses(vec![
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_partition_responses(vec![partition]),
                ]);
                encode_response(api, version, correlation_id, &response)
            }
            ApiKey::OffsetCommit => {
                let response = OffsetCommitResponse::default().with_topics(vec![
                    OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(vec![
                            OffsetCommitResponsePartition::default().with_error_code(code),
                        ]),
                ]);
                encode_response(api, version, correlation_id, &response)
            }
            ApiKey::OffsetFetch => {
                let group = OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                    .with_error_code(code)
                    .with_topics(vec![
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(vec![
                                OffsetFetchResponsePartitions::default()
                                    .with_committed_offset(BASE_OFFSET),
                            ]),
                    ]);
                let response = OffsetFetchResponse::default().with_groups(vec![group]);
                encode_response(api, version, correlation_id, &response)
            }
            other => panic!("the fake peer got {other:?}"),
        }
    }

    async fn produce(pool: &PeerPool, peer: &Peer) -> Result<i64, LogError> {
        pool.produce(
            peer,
            TOPIC,
            0,
            Bytes::from_static(b"batch"),
            TIMEOUT_MS,
            || 1000,
        )
        .await
    }

    // Produce v9 (API key 0): each error code of the partition answer.
    #[tokio::test]
    async fn produce_answers_map_to_log_errors() {
        let fake = FakePeer::start(false).await;
        let pool = PeerPool::new();
        let not_leader = LogError::NotLeader {
            topic: TOPIC.into(),
            partition: 0,
        };
        let not_enough = LogError::NotEnoughReplicas {
            topic: TOPIC.into(),
            partition: 0,
        };
        let too_large = LogError::TooLarge {
            size_bytes: 5,
            max_bytes: 1000,
        };
        let cases = [
            (ErrorCode::NotLeaderOrFollower, not_leader.clone()),
            (ErrorCode::FencedLeaderEpoch, not_leader.clone()),
            (ErrorCode::UnknownTopicOrPartition, not_leader),
            (ErrorCode::NotEnoughReplicas, not_enough.clone()),
            (ErrorCode::NotEnoughReplicasAfterAppend, not_enough),
            (ErrorCode::MessageTooLarge, too_large.clone()),
            (ErrorCode::RecordListTooLarge, too_large),
            (ErrorCode::RequestTimedOut, LogError::Timeout),
        ];
        for (code, expected) in cases {
            fake.answer(&[code]);
            assert_eq!(produce(&pool, &fake.peer).await, Err(expected), "{code:?}");
        }
        fake.answer(&[ErrorCode::CorruptMessage]);
        let other = produce(&pool, &fake.peer).await.unwrap_err();
        assert!(
            matches!(&other, LogError::Other(text) if text.contains("CorruptMessage")),
            "{other:?}"
        );
        assert_eq!(produce(&pool, &fake.peer).await, Ok(BASE_OFFSET));
        // Answered errors leave the connection usable: one connection served every request.
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    }

    // OffsetCommit v8 (API key 8) and OffsetFetch v8 (API key 9), simple commits.
    #[tokio::test]
    async fn group_answers_map_to_log_errors() {
        let fake = FakePeer::start(false).await;
        let pool = PeerPool::new();
        let unavailable = LogError::CoordinatorNotAvailable {
            group: GROUP.into(),
        };
        let commit = || pool.commit_offset(&fake.peer, GROUP, TOPIC, 0, 5, TIMEOUT_MS);
        let fetch = || pool.fetch_offset(&fake.peer, GROUP, TOPIC, 0, TIMEOUT_MS);
        for code in [
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::CoordinatorLoadInProgress,
        ] {
            fake.answer(&[code, code]);
            assert_eq!(commit().await, Err(unavailable.clone()), "{code:?}");
            assert_eq!(fetch().await, Err(unavailable.clone()), "{code:?}");
        }
        fake.answer(&[ErrorCode::IllegalGeneration]);
        assert!(matches!(commit().await, Err(LogError::Other(_))));
        assert_eq!(commit().await, Ok(()));
        assert_eq!(fetch().await, Ok(Some(BASE_OFFSET)));
    }

    #[tokio::test]
    async fn a_closed_connection_is_replaced_and_an_absent_peer_is_unreachable() {
        let fake = FakePeer::start(true).await;
        let pool = PeerPool::new();
        for _ in 0..3 {
            assert_eq!(produce(&pool, &fake.peer).await, Ok(BASE_OFFSET));
            // Let the peer's close arrive before the next request looks at the connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(fake.connections.load(Ordering::SeqCst), 3);
        // Nothing listens on a port just released.
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").to_string()
        };
        let gone = Peer {
            node: NodeId(8),
            address,
        };
        let error = produce(&pool, &gone).await.unwrap_err();
        assert!(
            matches!(&error, LogError::Unreachable { peer, .. } if peer.starts_with("node 8 at")),
            "{error:?}"
        );
        assert!(error.is_transient());
    }
}
