//! Produce (0), v3-v13.
//!
//! `acks=0` gets no response, `acks=1` is answered once the leader appended, and `acks=all` is
//! appended at once (or refused with NOT_ENOUGH_REPLICAS when the ISR is under
//! `min.insync.replicas`) and answered later, when the high watermark has passed every
//! partition's batch or the request's `timeout_ms` ran out: Kafka's delayed produce.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use spate_protocol::records::validate::ValidationErrorKind;
use spate_protocol::records::{Compression, RecordBatch, peek_entry_size};
use spate_storage::error::StorageError;

use crate::Broker;
use crate::replica::partition::replicated::CommitError;
use crate::replica::partition::{AppendOutcome, Durability, Partition, ProduceError};
use crate::replica::producer_state::SequenceError;

/// Produce versions before this cannot carry zstd (KIP-110).
const ZSTD_MIN_PRODUCE_VERSION: i16 = 7;

/// The one place produce failures become Kafka error codes.
pub fn map_produce_error(error: &ProduceError) -> ErrorCode {
    match error {
        ProduceError::NotLeader => ErrorCode::NotLeaderOrFollower,
        ProduceError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        ProduceError::Corrupt(_) => ErrorCode::CorruptMessage,
        ProduceError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        ProduceError::Invalid { error } => match error.kind() {
            ValidationErrorKind::Corrupt => ErrorCode::CorruptMessage,
            ValidationErrorKind::InvalidRecord => ErrorCode::InvalidRecord,
            ValidationErrorKind::InvalidTimestamp => ErrorCode::InvalidTimestamp,
        },
        ProduceError::Sequence(SequenceError::StaleEpoch { .. }) => ErrorCode::InvalidProducerEpoch,
        ProduceError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ErrorCode::OutOfOrderSequenceNumber
        }
        ProduceError::Storage(StorageError::BatchTooLarge { .. }) => ErrorCode::RecordListTooLarge,
        ProduceError::Storage(_) => ErrorCode::KafkaStorageError,
    }
}

/// The one place `acks=all` waiting failures become Kafka error codes.
pub fn map_commit_error(error: &CommitError) -> ErrorCode {
    match error {
        CommitError::NotLeader => ErrorCode::NotLeaderOrFollower,
        CommitError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
        CommitError::InDoubt | CommitError::TimedOut { .. } => ErrorCode::RequestTimedOut,
    }
}

fn failed(index: i32, code: ErrorCode, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Checks the request-level rules of Produce v3+: exactly one v2 batch per partition, and no
/// zstd before v7 (Kafka's `ProduceRequest.validateRecords`).
fn check_single_batch(records: &Bytes, version: i16) -> Result<(), (ErrorCode, String)> {
    let size = match peek_entry_size(records) {
        Some(Ok(size)) => size,
        Some(Err(error)) => return Err((ErrorCode::CorruptMessage, error.to_string())),
        None => {
            return Err((
                ErrorCode::InvalidRecord,
                format!(
                    "Produce requests with version {version} must have exactly one record batch"
                ),
            ));
        }
    };
    if size != records.len() {
        return Err((
            ErrorCode::InvalidRecord,
            format!(
                "Produce requests with version {version} are only allowed to contain exactly one record batch"
            ),
        ));
    }
    if let Ok(batch) = RecordBatch::new(records.clone())
        && batch.compression() == Compression::Zstd
        && version < ZSTD_MIN_PRODUCE_VERSION
    {
        return Err((
            ErrorCode::UnsupportedCompressionType,
            "Produce requests with version below 7 cannot use zstd".into(),
        ));
    }
    Ok(())
}

/// How a produce is answered.
pub enum ProduceReply {
    /// Answer now.
    Now(ProduceResponse),
    /// `acks=all`: answer when this completes.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = ProduceResponse> + Send>>),
    /// `acks=0`: no answer.
    None,
    /// `acks=0` and a partition failed: no answer, and the connection closes, as Kafka's
    /// `KafkaApis` does, so that the producer refreshes its metadata rather than keep sending
    /// into the void.
    Close,
}

/// An `acks=all` append that must be committed before its partition is answered.
struct Pending {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    outcome: AppendOutcome,
}

/// Serves Produce.
pub fn handle(broker: &Arc<Broker>, request: ProduceRequest, version: i16) -> ProduceReply {
    let acks = request.acks;
    let durability = Durability::from_acks(acks);
    let valid_acks = durability.is_some();
    let durability = durability.unwrap_or(Durability::Leader);
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut pending: Vec<Pending> = Vec::new();
    let now_ms = broker.clock.now_ms();
    let image = broker.metadata.image();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if version >= 13 {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.0.as_str().to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let response = if !valid_acks {
                failed(index, ErrorCode::InvalidRequiredAcks, None)
            } else if request.transactional_id.is_some() {
                // Transactions need the transaction coordinator, which this broker does not
                // run yet; InitProducerId already refuses transactional ids.
                failed(
                    index,
                    ErrorCode::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported".into()),
                )
            } else {
                match name.as_deref() {
                    None => failed(index, ErrorCode::UnknownTopicId, None),
                    Some(name) => {
                        let (response, waiting) = produce_partition(
                            broker,
                            name,
                            index,
                            data.records,
                            version,
                            now_ms,
                            durability,
                        );
                        if let Some((partition, outcome)) = waiting {
                            pending.push(Pending {
                                topic: responses.len(),
                                slot: partitions.len(),
                                partition,
                                outcome,
                            });
                        }
                        response
                    }
                }
            };
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        let failed = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0);
        return if failed {
            ProduceReply::Close
        } else {
            ProduceReply::None
        };
    }
    let response = ProduceResponse::default().with_responses(responses);
    if pending.is_empty() {
        return ProduceReply::Now(response);
    }
    let broker = broker.clone();
    ProduceReply::Later(Box::pin(async move {
        wait_for_commits(&broker, response, pending, timeout).await
    }))
}

/// How long a produce waits for this node to take up a leadership its own metadata already
/// gives it ([`await_own_leaderships`]).
const TAKE_UP_LEADERSHIP_WAIT: Duration = Duration::from_secs(2);

/// Before a produce is served: while this node's metadata names it the leader of a requested
/// partition that its replica has not taken up yet (after a failover the node applies the change
/// partition by partition, which takes a moment when there are many), waits for it to finish,
/// within [`TAKE_UP_LEADERSHIP_WAIT`]. The node's Metadata answers already send producers here;
/// refusing their batches with NOT_LEADER_OR_FOLLOWER in that moment while taking the next
/// ones a moment later leaves a gap in a producer's sequence numbers, on which librdkafka bumps
/// its producer epoch and sends the refused records again under it, duplicating any that the
/// old leader had written and this one holds. The connection's later requests wait behind this
/// one, so their order is kept.
pub async fn await_own_leaderships(broker: &Broker, request: &ProduceRequest, version: i16) {
    let image = broker.metadata.image();
    if *broker.reconciled_offset.borrow() >= image.offset {
        // The node has applied this metadata: whatever a replica is now, waiting changes nothing.
        return;
    }
    let taking_up = request.topic_data.iter().any(|topic| {
        let topic_image = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.0.as_str())
        };
        let Some(topic_image) = topic_image else {
            return false;
        };
        topic.partition_data.iter().any(|data| {
            topic_image
                .partitions
                .get(&data.index)
                .is_some_and(|state| {
                    state.leader == Some(broker.node_id)
                        && broker
                            .replicas
                            .get(&topic_image.name, data.index)
                            .is_none_or(|replica| {
                                !replica.is_leader() || replica.leader_epoch() < state.leader_epoch
                            })
                })
        })
    });
    if !taking_up {
        return;
    }
    let target = image.offset;
    let mut reconciled = broker.reconciled_offset.subscribe();
    let took_up = tokio::time::timeout(
        TAKE_UP_LEADERSHIP_WAIT,
        reconciled.wait_for(|o| *o >= target),
    )
    .await;
    tracing::debug!(
        metadata_offset = target,
        in_time = took_up.is_ok(),
        "a produce waited for this node to take up its leaderships"
    );
}

/// Completes an `acks=all` produce: each appended partition waits (concurrently, within the one
/// request timeout) for its high watermark; a failure replaces that partition's answer.
async fn wait_for_commits(
    broker: &Arc<Broker>,
    mut response: ProduceResponse,
    pending: Vec<Pending>,
    timeout: Duration,
) -> ProduceResponse {
    let waits = pending.iter().map(|p| wait_for_commit(broker, p, timeout));
    let results = futures::future::join_all(waits).await;
    for (p, result) in pending.iter().zip(results) {
        if let Err(error) = result
            && let Some(slot) = response
                .responses
                .get_mut(p.topic)
                .and_then(|t| t.partition_responses.get_mut(p.slot))
        {
            *slot = failed(
                slot.index,
                map_commit_error(&error),
                Some(error.to_string()),
            );
        }
    }
    response
}

/// Whether this node's leadership of the partition is in doubt ([`Broker::leadership_in_doubt`]).
/// The image is looked at only once the session lapsed (rare), not on every append.
fn in_doubt(broker: &Broker, topic: &str, index: i32) -> bool {
    broker.metadata.broker_session_lapsed() && {
        let image = broker.metadata.image();
        image
            .topic(topic)
            .and_then(|t| t.partitions.get(&index))
            .is_some_and(|state| broker.leadership_in_doubt(&image, state))
    }
}

/// How long an `acks=all` append waits before it starts checking whether this node's leadership
/// came into doubt, and how often it checks then.
const DOUBT_CHECK_AFTER: Duration = Duration::from_millis(200);
const DOUBT_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Waits for one partition's append to be committed. If this node's leadership of the partition
/// comes into doubt meanwhile ([`Broker::leadership_in_doubt`]: cut off from the other nodes,
/// which have likely elected another leader), the append fails at once rather than at the
/// request timeout, so the producer moves on. It fails with REQUEST_TIMED_OUT, not
/// NOT_LEADER_OR_FOLLOWER: the records may have reached a follower that now leads, and a client
/// told they were not written (librdkafka) may send them again under a new producer epoch,
/// which no broker can deduplicate. Told they may be written, it retries them with the same
/// sequence numbers, and the new leader answers with their offsets.
async fn wait_for_commit(
    broker: &Arc<Broker>,
    pending: &Pending,
    timeout: Duration,
) -> Result<(), CommitError> {
    let partition = &pending.partition;
    let commit = partition.wait_for_commit(
        pending.outcome.last_offset,
        pending.outcome.leader_epoch,
        timeout,
    );
    tokio::pin!(commit);
    let mut check_at = tokio::time::Instant::now() + DOUBT_CHECK_AFTER;
    loop {
        tokio::select! {
            result = &mut commit => return result,
            _ = tokio::time::sleep_until(check_at) => {
                check_at += DOUBT_CHECK_EVERY;
                if in_doubt(broker, &partition.topic, partition.index) {
                    return Err(CommitError::InDoubt);
                }
            }
        }
    }
}

/// What an `acks=all` partition waits for before it is answered.
type Commit = Option<(Arc<Partition>, AppendOutcome)>;

/// Appends one partition's batch; for `acks=all`, also what to wait for before answering.
fn produce_partition(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    version: i16,
    now_ms: i64,
    durability: Durability,
) -> (PartitionProduceResponse, Commit) {
    let Some(partition) = broker.replicas.get(topic, index) else {
        let code = if broker
            .metadata
            .image()
            .topic(topic)
            .is_some_and(|t| t.partitions.contains_key(&index))
        {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        return (failed(index, code, None), None);
    };
    if in_doubt(broker, topic, index) {
        let message = "this broker lost contact with the controller; its leadership may have moved";
        return (
            failed(index, ErrorCode::NotLeaderOrFollower, Some(message.into())),
            None,
        );
    }
    let Some(records) = records else {
        return (
            failed(
                index,
                ErrorCode::CorruptMessage,
                Some("null records".into()),
            ),
            None,
        );
    };
    if let Err((code, message)) = check_single_batch(&records, version) {
        return (failed(index, code, Some(message)), None);
    }
    match partition.append_from_client_as(
        records,
        now_ms,
        broker.settings.decompressed_batch_max_bytes,
        durability,
    ) {
        Ok(outcome) => (
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(outcome.base_offset.0)
                .with_log_append_time_ms(outcome.log_append_time_ms)
                .with_log_start_offset(outcome.log_start_offset.0),
            (durability == Durability::InSync).then_some((partition, outcome)),
        ),
        Err(error) => {
            let code = map_produce_error(&error);
            if matches!(error, ProduceError::Storage(_)) {
                tracing::error!(topic, partition = index, %error, "append failed");
            }
            let mut response = failed(index, code, Some(error.to_string()));
            if let ProduceError::Invalid { error } = &error {
                response.record_errors = vec![
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(record_index(error))
                        .with_batch_index_error_message(Some(StrBytes::from_string(
                            error.to_string(),
                        ))),
                ];
            }
            (response, None)
        }
    }
}

/// The index of the offending record, for `record_errors` (KIP-467).
fn record_index(error: &spate_protocol::records::validate::ValidationError) -> i32 {
    use spate_protocol::records::validate::ValidationError as E;
    match error {
        E::OffsetDeltaNotConsecutive { record_index, .. }
        | E::MissingKey { record_index }
        | E::TimestampOutOfRange { record_index, .. } => *record_index,
        _ => 0,
    }
}
