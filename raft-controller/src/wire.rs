//! The controller port's wire format: `[u32 big-endian length][prost PeerFrame]`.
//!
//! The first frame on a connection is a [`Hello`] (cluster id, node id, voter ids); a node that
//! disagrees answers [`Refused`] and closes. After it: raft messages, forwarded commands and
//! their outcomes. Oneof tags are explicit and never reused, like the metadata records.
//!
//! Decoding is strict: a frame that does not decode, or decodes to something incomplete (a topic
//! id that is not 16 bytes, a missing oneof), is an error that closes that connection only.

use prost::{Message, Oneof};
use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::controller::{
    AlterPartition, AlterPartitionError, AlteredPartition, ControllerError, CreatedTopic,
    ElectionError, NewTopic,
};
use crate::frontend::{ControllerReply, ControllerRequest, QuorumDescription, QuorumReplica};
use crate::node::{Command, CommandReply, ForwardOutcome, PeerMessage};
use crate::records::{Endpoint, ReplicaList, ResourceRecord};

/// Version of this wire format, sent in [`Hello`].
pub const PEER_PROTOCOL_VERSION: u32 = 1;
/// Largest frame accepted, in bytes. A snapshot of the metadata image travels in one raft
/// message, so this bounds the image a cluster can have; raft appends are capped far lower.
pub const PEER_FRAME_SIZE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Bytes of the length prefix.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// A frame that does not decode into something meaningful.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a prost message of the expected shape.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A required part is missing or out of range.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl From<prost::DecodeError> for WireError {
    fn from(error: prost::DecodeError) -> Self {
        WireError::Decode(error.to_string())
    }
}

/// One frame.
#[derive(Clone, PartialEq, Message)]
pub struct PeerFrame {
    /// The content.
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5")]
    pub body: Option<Body>,
}

/// The kinds of frame.
#[derive(Clone, PartialEq, Oneof)]
pub enum Body {
    /// Opens a connection.
    #[prost(message, tag = "1")]
    Hello(Hello),
    /// Closes a connection whose hello was not accepted.
    #[prost(message, tag = "2")]
    Refused(Refused),
    /// A raft message.
    #[prost(message, tag = "3")]
    Raft(raft::eraftpb::Message),
    /// A forwarded command.
    #[prost(message, tag = "4")]
    Forward(ForwardMsg),
    /// A forwarded command's outcome.
    #[prost(message, tag = "5")]
    ForwardReply(ForwardReplyMsg),
}

/// Who is connecting.
#[derive(Clone, PartialEq, Message)]
pub struct Hello {
    /// [`PEER_PROTOCOL_VERSION`].
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    /// The cluster id; a node of another cluster is refused.
    #[prost(string, tag = "2")]
    pub cluster_id: String,
    /// The connecting node.
    #[prost(int32, tag = "3")]
    pub node_id: i32,
    /// Its configured voter ids, sorted; a node configured with other voters is refused.
    #[prost(int32, repeated, tag = "4")]
    pub voter_ids: Vec<i32>,
}

/// Why a hello was refused.
#[derive(Clone, PartialEq, Message)]
pub struct Refused {
    /// A sentence for the log of the refused node.
    #[prost(string, tag = "1")]
    pub reason: String,
}

/// A forwarded command.
#[derive(Clone, PartialEq, Message)]
pub struct ForwardMsg {
    /// The forwarder's id for it.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// The command.
    #[prost(oneof = "CommandBody", tags = "2, 3, 4")]
    pub command: Option<CommandBody>,
}

/// A command.
#[derive(Clone, PartialEq, Oneof)]
pub enum CommandBody {
    /// A controller request.
    #[prost(message, tag = "2")]
    Request(RequestMsg),
    /// Join as a learner.
    #[prost(message, tag = "3")]
    Join(JoinMsg),
    /// Describe the quorum.
    #[prost(message, tag = "4")]
    DescribeQuorum(Empty),
}

/// Nothing.
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

/// A learner's join request.
#[derive(Clone, PartialEq, Message)]
pub struct JoinMsg {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    /// Its controller address.
    #[prost(string, tag = "2")]
    pub address: String,
}

/// A controller request.
#[derive(Clone, PartialEq, Message)]
pub struct RequestMsg {
    /// Which one.
    #[prost(
        oneof = "RequestBody",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13"
    )]
    pub body: Option<RequestBody>,
}

/// The controller requests.
#[derive(Clone, PartialEq, Oneof)]
pub enum RequestBody {
    /// RegisterBroker.
    #[prost(message, tag = "1")]
    RegisterBroker(RegisterBrokerMsg),
    /// CreateTopics.
    #[prost(message, tag = "2")]
    CreateTopics(CreateTopicsMsg),
    /// DeleteTopics.
    #[prost(message, tag = "3")]
    DeleteTopics(DeleteTopicsMsg),
    /// CreatePartitions.
    #[prost(message, tag = "4")]
    CreatePartitions(CreatePartitionsMsg),
    /// AlterConfigs.
    #[prost(message, tag = "5")]
    AlterConfigs(AlterConfigsMsg),
    /// AllocateProducerIds.
    #[prost(message, tag = "6")]
    AllocateProducerIds(BrokerMsg),
    /// BrokerHeartbeat.
    #[prost(message, tag = "7")]
    BrokerHeartbeat(BrokerMsg),
    /// ControlledShutdown.
    #[prost(message, tag = "8")]
    ControlledShutdown(BrokerMsg),
    /// FenceBroker.
    #[prost(message, tag = "9")]
    FenceBroker(BrokerMsg),
    /// AlterPartition.
    #[prost(message, tag = "10")]
    AlterPartition(AlterPartitionMsg),
    /// ElectPreferredLeaders.
    #[prost(message, tag = "11")]
    ElectPreferredLeaders(ElectMsg),
    /// ElectUncleanLeaders.
    #[prost(message, tag = "12")]
    ElectUncleanLeaders(ElectMsg),
    /// PutResources.
    #[prost(message, tag = "13")]
    PutResources(PutResourcesMsg),
}

/// PutResources.
#[derive(Clone, PartialEq, Message)]
pub struct PutResourcesMsg {
    /// The changes, in order.
    #[prost(message, repeated, tag = "1")]
    pub changes: Vec<ResourceRecord>,
}

/// RegisterBroker.
#[derive(Clone, PartialEq, Message)]
pub struct RegisterBrokerMsg {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// Incarnation, 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub incarnation_id: Vec<u8>,
    /// Listeners.
    #[prost(message, repeated, tag = "3")]
    pub endpoints: Vec<Endpoint>,
    /// Rack.
    #[prost(string, optional, tag = "4")]
    pub rack: Option<String>,
}

/// One topic of a CreateTopics.
#[derive(Clone, PartialEq, Message)]
pub struct NewTopicMsg {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Partitions.
    #[prost(int32, optional, tag = "2")]
    pub partitions: Option<i32>,
    /// Replication factor.
    #[prost(int32, optional, tag = "3")]
    pub replication_factor: Option<i32>,
    /// Explicit assignments.
    #[prost(message, repeated, tag = "4")]
    pub assignments: Vec<AssignmentMsg>,
    /// Configs.
    #[prost(message, repeated, tag = "5")]
    pub configs: Vec<ConfigMsg>,
}

/// One partition's replicas.
#[derive(Clone, PartialEq, Message)]
pub struct AssignmentMsg {
    /// Partition index.
    #[prost(int32, tag = "1")]
    pub partition: i32,
    /// Replica ids.
    #[prost(int32, repeated, tag = "2")]
    pub replicas: Vec<i32>,
}

/// A config name and (optional) value.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigMsg {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value; absent removes.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// CreateTopics.
#[derive(Clone, PartialEq, Message)]
pub struct CreateTopicsMsg {
    /// Topics.
    #[prost(message, repeated, tag = "1")]
    pub topics: Vec<NewTopicMsg>,
    /// Validate only.
    #[prost(bool, tag = "2")]
    pub validate_only: bool,
}

/// DeleteTopics.
#[derive(Clone, PartialEq, Message)]
pub struct DeleteTopicsMsg {
    /// Topic ids, 16 bytes each.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub topic_ids: Vec<Vec<u8>>,
}

/// CreatePartitions.
#[derive(Clone, PartialEq, Message)]
pub struct CreatePartitionsMsg {
    /// Topic name.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// New total.
    #[prost(int32, tag = "2")]
    pub new_total: i32,
    /// Whether assignments are given (an empty list differs from none).
    #[prost(bool, tag = "3")]
    pub has_assignments: bool,
    /// Assignments of the new partitions.
    #[prost(message, repeated, tag = "4")]
    pub assignments: Vec<ReplicaList>,
    /// Validate only.
    #[prost(bool, tag = "5")]
    pub validate_only: bool,
}

/// AlterConfigs.
#[derive(Clone, PartialEq, Message)]
pub struct AlterConfigsMsg {
    /// Resource type.
    #[prost(int32, tag = "1")]
    pub resource_type: i32,
    /// Resource name.
    #[prost(string, tag = "2")]
    pub resource_name: String,
    /// Changes.
    #[prost(message, repeated, tag = "3")]
    pub changes: Vec<ConfigMsg>,
}

/// A request naming a broker and its epoch.
#[derive(Clone, PartialEq, Message)]
pub struct BrokerMsg {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// Registration epoch.
    #[prost(int64, tag = "2")]
    pub broker_epoch: i64,
    /// Applied metadata offset (heartbeats only).
    #[prost(int64, tag = "3")]
    pub metadata_offset: i64,
}

/// AlterPartition.
#[derive(Clone, PartialEq, Message)]
pub struct AlterPartitionMsg {
    /// Requesting broker.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// Its epoch.
    #[prost(int64, tag = "2")]
    pub broker_epoch: i64,
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub topic_id: Vec<u8>,
    /// Partition.
    #[prost(int32, tag = "4")]
    pub partition: i32,
    /// Leader epoch.
    #[prost(int32, tag = "5")]
    pub leader_epoch: i32,
    /// Partition epoch.
    #[prost(int32, tag = "6")]
    pub partition_epoch: i32,
    /// Proposed ISR.
    #[prost(int32, repeated, tag = "7")]
    pub new_isr: Vec<i32>,
}

/// A topic id and partition.
#[derive(Clone, PartialEq, Message)]
pub struct TopicPartitionMsg {
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    /// Partition.
    #[prost(int32, tag = "2")]
    pub partition: i32,
}

/// ElectPreferredLeaders.
#[derive(Clone, PartialEq, Message)]
pub struct ElectMsg {
    /// Every partition.
    #[prost(bool, tag = "1")]
    pub all: bool,
    /// These partitions (when not `all`).
    #[prost(message, repeated, tag = "2")]
    pub partitions: Vec<TopicPartitionMsg>,
}

/// A forwarded command's outcome.
#[derive(Clone, PartialEq, Message)]
pub struct ForwardReplyMsg {
    /// The forwarder's id.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// Outcome.
    #[prost(oneof = "OutcomeBody", tags = "2, 3")]
    pub outcome: Option<OutcomeBody>,
}

/// Outcomes.
#[derive(Clone, PartialEq, Oneof)]
pub enum OutcomeBody {
    /// Decided.
    #[prost(message, tag = "2")]
    Done(DoneMsg),
    /// Not the leader.
    #[prost(message, tag = "3")]
    NotLeader(NotLeaderMsg),
}

/// A decided command.
#[derive(Clone, PartialEq, Message)]
pub struct DoneMsg {
    /// Applied index to wait for.
    #[prost(uint64, tag = "1")]
    pub applied_index: u64,
    /// Result.
    #[prost(oneof = "ResultBody", tags = "2, 3")]
    pub result: Option<ResultBody>,
}

/// Success or error.
#[derive(Clone, PartialEq, Oneof)]
pub enum ResultBody {
    /// Success.
    #[prost(message, tag = "2")]
    Reply(ReplyMsg),
    /// Error.
    #[prost(message, tag = "3")]
    Error(ErrorMsg),
}

/// Not the leader.
#[derive(Clone, PartialEq, Message)]
pub struct NotLeaderMsg {
    /// The leader, if known.
    #[prost(int32, optional, tag = "1")]
    pub leader: Option<i32>,
}

/// A controller error.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorMsg {
    /// Which [`ControllerError`] (see `error_code`).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Its message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A reply.
#[derive(Clone, PartialEq, Message)]
pub struct ReplyMsg {
    /// Which one.
    #[prost(
        oneof = "ReplyBody",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14"
    )]
    pub body: Option<ReplyBody>,
}

/// The replies.
#[derive(Clone, PartialEq, Oneof)]
pub enum ReplyBody {
    /// BrokerRegistered (the epoch).
    #[prost(int64, tag = "1")]
    BrokerRegistered(i64),
    /// TopicsCreated.
    #[prost(message, tag = "2")]
    TopicsCreated(TopicsCreatedMsg),
    /// TopicsDeleted.
    #[prost(message, tag = "3")]
    TopicsDeleted(TopicsDeletedMsg),
    /// PartitionsCreated.
    #[prost(message, tag = "4")]
    PartitionsCreated(Empty),
    /// ConfigsAltered.
    #[prost(message, tag = "5")]
    ConfigsAltered(Empty),
    /// ProducerIdsAllocated (the first id).
    #[prost(int64, tag = "6")]
    ProducerIdsAllocated(i64),
    /// BrokerHeartbeat (fenced).
    #[prost(bool, tag = "7")]
    BrokerHeartbeat(bool),
    /// StaleBrokerEpoch.
    #[prost(message, tag = "8")]
    StaleBrokerEpoch(Empty),
    /// BrokerFenced.
    #[prost(message, tag = "9")]
    BrokerFenced(Empty),
    /// PartitionAltered.
    #[prost(message, tag = "10")]
    PartitionAltered(PartitionAlteredMsg),
    /// LeadersElected.
    #[prost(message, tag = "11")]
    LeadersElected(LeadersElectedMsg),
    /// Joined.
    #[prost(message, tag = "12")]
    Joined(Empty),
    /// QuorumDescribed.
    #[prost(message, tag = "13")]
    QuorumDescribed(QuorumMsg),
    /// ResourcesChanged.
    #[prost(message, tag = "14")]
    ResourcesChanged(Empty),
}

/// Per-topic CreateTopics results.
#[derive(Clone, PartialEq, Message)]
pub struct TopicsCreatedMsg {
    /// Results.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<CreatedTopicResultMsg>,
}

/// One CreateTopics result.
#[derive(Clone, PartialEq, Message)]
pub struct CreatedTopicResultMsg {
    /// The error, if it failed.
    #[prost(message, optional, tag = "1")]
    pub error: Option<ErrorMsg>,
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub topic_id: Vec<u8>,
    /// Partitions.
    #[prost(int32, tag = "3")]
    pub partitions: i32,
    /// Replication factor.
    #[prost(int32, tag = "4")]
    pub replication_factor: i32,
}

/// Per-topic DeleteTopics results.
#[derive(Clone, PartialEq, Message)]
pub struct TopicsDeletedMsg {
    /// Results (an absent error is success).
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<MaybeErrorMsg>,
}

/// An optional error.
#[derive(Clone, PartialEq, Message)]
pub struct MaybeErrorMsg {
    /// The error, if any.
    #[prost(message, optional, tag = "1")]
    pub error: Option<ErrorMsg>,
}

/// An AlterPartition outcome.
#[derive(Clone, PartialEq, Message)]
pub struct PartitionAlteredMsg {
    /// Error code (see `alter_error_code`); 0 for success.
    #[prost(int32, tag = "1")]
    pub error_code: i32,
    /// Error detail: requested epoch, node id, or text.
    #[prost(int32, tag = "2")]
    pub requested: i32,
    /// Error detail: current epoch.
    #[prost(int32, tag = "3")]
    pub current: i32,
    /// Error text.
    #[prost(string, tag = "4")]
    pub message: String,
    /// Leader, -1 for none.
    #[prost(int32, tag = "5")]
    pub leader: i32,
    /// Leader epoch.
    #[prost(int32, tag = "6")]
    pub leader_epoch: i32,
    /// Partition epoch.
    #[prost(int32, tag = "7")]
    pub partition_epoch: i32,
    /// ISR.
    #[prost(int32, repeated, tag = "8")]
    pub isr: Vec<i32>,
}

/// Preferred-leader election results.
#[derive(Clone, PartialEq, Message)]
pub struct LeadersElectedMsg {
    /// Results.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<ElectionResultMsg>,
}

/// One election result.
#[derive(Clone, PartialEq, Message)]
pub struct ElectionResultMsg {
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    /// Partition.
    #[prost(int32, tag = "2")]
    pub partition: i32,
    /// 0 ok, 1 not needed, 2 preferred leader not available, 3 unknown partition.
    #[prost(int32, tag = "3")]
    pub error_code: i32,
}

/// A quorum description.
#[derive(Clone, PartialEq, Message)]
pub struct QuorumMsg {
    /// Leader.
    #[prost(int32, tag = "1")]
    pub leader_id: i32,
    /// Leader epoch.
    #[prost(int64, tag = "2")]
    pub leader_epoch: i64,
    /// High watermark.
    #[prost(int64, tag = "3")]
    pub high_watermark: i64,
    /// Voters.
    #[prost(message, repeated, tag = "4")]
    pub voters: Vec<ReplicaMsg>,
    /// Observers.
    #[prost(message, repeated, tag = "5")]
    pub observers: Vec<ReplicaMsg>,
}

/// A replica's state.
#[derive(Clone, PartialEq, Message)]
pub struct ReplicaMsg {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    /// Log end offset.
    #[prost(int64, tag = "2")]
    pub log_end_offset: i64,
    /// Last fetch.
    #[prost(int64, tag = "3")]
    pub last_fetch_timestamp_ms: i64,
    /// Last caught up.
    #[prost(int64, tag = "4")]
    pub last_caught_up_timestamp_ms: i64,
}

/// A decoded frame.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Opens a connection.
    Hello(Hello),
    /// Refusal.
    Refused(String),
    /// Everything else.
    Peer(PeerMessage),
}

/// Encodes a frame with its length prefix.
pub fn encode_frame(body: Body) -> Vec<u8> {
    let frame = PeerFrame { body: Some(body) };
    let len = frame.encoded_len();
    let mut out = Vec::with_capacity(FRAME_LENGTH_BYTES + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    frame
        .encode(&mut out)
        .expect("a Vec grows to fit any prost message");
    out
}

/// Encodes a peer message as a frame.
pub fn encode_peer(message: &PeerMessage) -> Vec<u8> {
    encode_frame(peer_body(message))
}

/// Decodes a frame body (without the length prefix).
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, WireError> {
    let frame = PeerFrame::decode(bytes)?;
    match frame.body.ok_or(WireError::Malformed("empty frame"))? {
        Body::Hello(hello) => Ok(Frame::Hello(hello)),
        Body::Refused(refused) => Ok(Frame::Refused(refused.reason)),
        Body::Raft(message) => Ok(Frame::Peer(PeerMessage::Raft(Box::new(message)))),
        Body::Forward(forward) => Ok(Frame::Peer(PeerMessage::Forward {
            request_id: forward.request_id,
            command: command_from(forward.command.ok_or(WireError::Malformed("no command"))?)?,
        })),
        Body::ForwardReply(reply) => Ok(Frame::Peer(PeerMessage::ForwardReply {
            request_id: reply.request_id,
            outcome: outcome_from(reply.outcome.ok_or(WireError::Malformed("no outcome"))?)?,
        })),
    }
}

fn peer_body(message: &PeerMessage) -> Body {
    match message {
        PeerMessage::Raft(message) => Body::Raft((**message).clone()),
        PeerMessage::Forward {
            request_id,
            command,
        } => Body::Forward(ForwardMsg {
            request_id: *request_id,
            command: Some(command_to(command)),
        }),
        PeerMessage::ForwardReply {
            request_id,
            outcome,
        } => Body::ForwardReply(ForwardReplyMsg {
            request_id: *request_id,
            outcome: Some(outcome_to(outcome)),
        }),
    }
}

fn uuid_from(bytes: &[u8]) -> Result<Uuid, WireError> {
    Uuid::from_slice(bytes).map_err(|_| WireError::Malformed("an id is not 16 bytes"))
}

fn nodes(ids: &[i32]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

fn ids(nodes: &[NodeId]) -> Vec<i32> {
    nodes.iter().map(|n| n.0).collect()
}

fn command_to(command: &Command) -> CommandBody {
    match command {
        Command::Request(request) => CommandBody::Request(RequestMsg {
            body: Some(request_to(request)),
        }),
        Command::Join { node_id, address } => CommandBody::Join(JoinMsg {
            node_id: node_id.0,
            address: address.clone(),
        }),
        Command::DescribeQuorum => CommandBody::DescribeQuorum(Empty {}),
    }
}

fn command_from(body: CommandBody) -> Result<Command, WireError> {
    Ok(match body {
        CommandBody::Request(request) => Command::Request(request_from(
            request.body.ok_or(WireError::Malformed("no request"))?,
        )?),
        CommandBody::Join(join) => Command::Join {
            node_id: NodeId(join.node_id),
            address: join.address,
        },
        CommandBody::DescribeQuorum(_) => Command::DescribeQuorum,
    })
}

fn broker_msg(broker_id: NodeId, broker_epoch: i64, metadata_offset: i64) -> BrokerMsg {
    BrokerMsg {
        broker_id: broker_id.0,
        broker_epoch,
        metadata_offset,
    }
}

fn request_to(request: &ControllerRequest) -> RequestBody {
    match request {
        ControllerRequest::RegisterBroker {
            broker_id,
            incarnation_id,
            endpoints,
            rack,
        } => RequestBody::RegisterBroker(RegisterBrokerMsg {
            broker_id: broker_id.0,
            incarnation_id: incarnation_id.as_bytes().to_vec(),
            endpoints: endpoints.clone(),
            rack: rack.clone(),
        }),
        ControllerRequest::CreateTopics {
            topics,
            validate_only,
        } => RequestBody::CreateTopics(CreateTopicsMsg {
            topics: topics
                .iter()
                .map(|t| NewTopicMsg {
                    name: t.name.clone(),
                    partitions: t.partitions,
                    replication_factor: t.replication_factor.map(i32::from),
                    assignments: t
                        .assignments
                        .iter()
                        .map(|(partition, replicas)| AssignmentMsg {
                            partition: *partition,
                            replicas: ids(replicas),
                        })
                        .collect(),
                    configs: t
                        .configs
                        .iter()
                        .map(|(name, value)| ConfigMsg {
                            name: name.clone(),
                            value: Some(value.clone()),
                        })
                        .collect(),
                })
                .collect(),
            validate_only: *validate_only,
        }),
        ControllerRequest::DeleteTopics { topic_ids } => {
            RequestBody::DeleteTopics(DeleteTopicsMsg {
                topic_ids: topic_ids.iter().map(|id| id.as_bytes().to_vec()).collect(),
            })
        }
        ControllerRequest::CreatePartitions {
            topic,
            new_total,
            assignments,
            validate_only,
        } => RequestBody::CreatePartitions(CreatePartitionsMsg {
            topic: topic.clone(),
            new_total: *new_total,
            has_assignments: assignments.is_some(),
            assignments: assignments
                .iter()
                .flatten()
                .map(|replicas| ReplicaList { ids: ids(replicas) })
                .collect(),
            validate_only: *validate_only,
        }),
        ControllerRequest::AlterConfigs {
            resource_type,
            resource_name,
            changes,
        } => RequestBody::AlterConfigs(AlterConfigsMsg {
            resource_type: *resource_type,
            resource_name: resource_name.clone(),
            changes: changes
                .iter()
                .map(|(name, value)| ConfigMsg {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }),
        ControllerRequest::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => RequestBody::AllocateProducerIds(broker_msg(*broker_id, *broker_epoch, 0)),
        ControllerRequest::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
        } => RequestBody::BrokerHeartbeat(broker_msg(*broker_id, *broker_epoch, *metadata_offset)),
        ControllerRequest::ControlledShutdown {
            broker_id,
            broker_epoch,
        } => RequestBody::ControlledShutdown(broker_msg(*broker_id, *broker_epoch, 0)),
        ControllerRequest::FenceBroker {
            broker_id,
            broker_epoch,
        } => RequestBody::FenceBroker(broker_msg(*broker_id, *broker_epoch, 0)),
        ControllerRequest::AlterPartition(request) => {
            RequestBody::AlterPartition(AlterPartitionMsg {
                broker_id: request.broker_id.0,
                broker_epoch: request.broker_epoch,
                topic_id: request.topic_id.as_bytes().to_vec(),
                partition: request.partition,
                leader_epoch: request.leader_epoch,
                partition_epoch: request.partition_epoch,
                new_isr: ids(&request.new_isr),
            })
        }
        ControllerRequest::ElectPreferredLeaders { partitions } => {
            RequestBody::ElectPreferredLeaders(elect_msg(partitions))
        }
        ControllerRequest::ElectUncleanLeaders { partitions } => {
            RequestBody::ElectUncleanLeaders(elect_msg(partitions))
        }
        ControllerRequest::PutResources { changes } => RequestBody::PutResources(PutResourcesMsg {
            changes: changes.clone(),
        }),
    }
}

fn request_from(body: RequestBody) -> Result<ControllerRequest, WireError> {
    Ok(match body {
        RequestBody::RegisterBroker(r) => ControllerRequest::RegisterBroker {
            broker_id: NodeId(r.broker_id),
            incarnation_id: uuid_from(&r.incarnation_id)?,
            endpoints: r.endpoints,
            rack: r.rack,
        },
        RequestBody::CreateTopics(r) => ControllerRequest::CreateTopics {
            topics: r
                .topics
                .into_iter()
                .map(|t| {
                    let replication_factor = t
                        .replication_factor
                        .map(|rf| {
                            i16::try_from(rf).map_err(|_| {
                                WireError::Malformed("replication factor out of range")
                            })
                        })
                        .transpose()?;
                    Ok(NewTopic {
                        name: t.name,
                        partitions: t.partitions,
                        replication_factor,
                        assignments: t
                            .assignments
                            .into_iter()
                            .map(|a| (a.partition, nodes(&a.replicas)))
                            .collect(),
                        configs: t
                            .configs
                            .into_iter()
                            .map(|c| (c.name, c.value.unwrap_or_default()))
                            .collect(),
                    })
                })
                .collect::<Result<_, WireError>>()?,
            validate_only: r.validate_only,
        },
        RequestBody::DeleteTopics(r) => ControllerRequest::DeleteTopics {
            topic_ids: r
                .topic_ids
                .iter()
                .map(|id| uuid_from(id))
                .collect::<Result<_, _>>()?,
        },
        RequestBody::CreatePartitions(r) => ControllerRequest::CreatePartitions {
            topic: r.topic,
            new_total: r.new_total,
            assignments: r
                .has_assignments
                .then(|| r.assignments.iter().map(|list| nodes(&list.ids)).collect()),
            validate_only: r.validate_only,
        },
        RequestBody::AlterConfigs(r) => ControllerRequest::AlterConfigs {
            resource_type: r.resource_type,
            resource_name: r.resource_name,
            changes: r.changes.into_iter().map(|c| (c.name, c.value)).collect(),
        },
        RequestBody::AllocateProducerIds(r) => ControllerRequest::AllocateProducerIds {
            broker_id: NodeId(r.broker_id),
            broker_epoch: r.broker_epoch,
        },
        RequestBody::BrokerHeartbeat(r) => ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(r.broker_id),
            broker_epoch: r.broker_epoch,
            metadata_offset: r.metadata_offset,
        },
        RequestBody::ControlledShutdown(r) => ControllerRequest::ControlledShutdown {
            broker_id: NodeId(r.broker_id),
            broker_epoch: r.broker_epoch,
        },
        RequestBody::FenceBroker(r) => ControllerRequest::FenceBroker {
            broker_id: NodeId(r.broker_id),
            broker_epoch: r.broker_epoch,
        },
        RequestBody::AlterPartition(r) => ControllerRequest::AlterPartition(AlterPartition {
            broker_id: NodeId(r.broker_id),
            broker_epoch: r.broker_epoch,
            topic_id: uuid_from(&r.topic_id)?,
            partition: r.partition,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            new_isr: nodes(&r.new_isr),
        }),
        RequestBody::ElectPreferredLeaders(r) => ControllerRequest::ElectPreferredLeaders {
            partitions: elect_partitions(&r)?,
        },
        RequestBody::ElectUncleanLeaders(r) => ControllerRequest::ElectUncleanLeaders {
            partitions: elect_partitions(&r)?,
        },
        RequestBody::PutResources(r) => ControllerRequest::PutResources { changes: r.changes },
    })
}

/// The wire code of each [`ControllerError`] variant. Never reuse a code.
fn error_to(error: &ControllerError) -> ErrorMsg {
    let (code, message) = match error {
        ControllerError::TopicAlreadyExists(name) => (1, name.clone()),
        ControllerError::InvalidTopic(m) => (2, m.clone()),
        ControllerError::UnknownTopic => (3, String::new()),
        ControllerError::UnknownTopicId => (4, String::new()),
        ControllerError::InvalidPartitions(m) => (5, m.clone()),
        ControllerError::InvalidReplicationFactor(m) => (6, m.clone()),
        ControllerError::InvalidReplicaAssignment(m) => (7, m.clone()),
        ControllerError::InvalidRequest(m) => (8, m.clone()),
        ControllerError::Unavailable(m) => (9, m.clone()),
    };
    ErrorMsg { code, message }
}

fn error_from(error: ErrorMsg) -> ControllerError {
    match error.code {
        1 => ControllerError::TopicAlreadyExists(error.message),
        2 => ControllerError::InvalidTopic(error.message),
        3 => ControllerError::UnknownTopic,
        4 => ControllerError::UnknownTopicId,
        5 => ControllerError::InvalidPartitions(error.message),
        6 => ControllerError::InvalidReplicationFactor(error.message),
        7 => ControllerError::InvalidReplicaAssignment(error.message),
        8 => ControllerError::InvalidRequest(error.message),
        // An unknown code comes from a newer peer: report it as retriable.
        _ => ControllerError::Unavailable(error.message),
    }
}

fn outcome_to(outcome: &ForwardOutcome) -> OutcomeBody {
    match outcome {
        ForwardOutcome::Done {
            applied_index,
            result,
        } => OutcomeBody::Done(DoneMsg {
            applied_index: *applied_index,
            result: Some(match result {
                Ok(reply) => ResultBody::Reply(ReplyMsg {
                    body: Some(reply_to(reply)),
                }),
                Err(error) => ResultBody::Error(error_to(error)),
            }),
        }),
        ForwardOutcome::NotLeader { leader } => OutcomeBody::NotLeader(NotLeaderMsg {
            leader: leader.map(|l| l.0),
        }),
    }
}

fn outcome_from(body: OutcomeBody) -> Result<ForwardOutcome, WireError> {
    Ok(match body {
        OutcomeBody::Done(done) => ForwardOutcome::Done {
            applied_index: done.applied_index,
            result: match done.result.ok_or(WireError::Malformed("no result"))? {
                ResultBody::Reply(reply) => Ok(reply_from(
                    reply.body.ok_or(WireError::Malformed("no reply"))?,
                )?),
                ResultBody::Error(error) => Err(error_from(error)),
            },
        },
        OutcomeBody::NotLeader(not_leader) => ForwardOutcome::NotLeader {
            leader: not_leader.leader.map(NodeId),
        },
    })
}

fn replica_to(replica: &QuorumReplica) -> ReplicaMsg {
    ReplicaMsg {
        node_id: replica.node_id.0,
        log_end_offset: replica.log_end_offset,
        last_fetch_timestamp_ms: replica.last_fetch_timestamp_ms,
        last_caught_up_timestamp_ms: replica.last_caught_up_timestamp_ms,
    }
}

fn replica_from(replica: ReplicaMsg) -> QuorumReplica {
    QuorumReplica {
        node_id: NodeId(replica.node_id),
        log_end_offset: replica.log_end_offset,
        last_fetch_timestamp_ms: replica.last_fetch_timestamp_ms,
        last_caught_up_timestamp_ms: replica.last_caught_up_timestamp_ms,
    }
}

fn alter_to(result: &Result<AlteredPartition, AlterPartitionError>) -> PartitionAlteredMsg {
    let mut msg = PartitionAlteredMsg::default();
    match result {
        Ok(altered) => {
            msg.leader = altered.leader.map_or(-1, |l| l.0);
            msg.leader_epoch = altered.leader_epoch;
            msg.partition_epoch = altered.partition_epoch;
            msg.isr = ids(&altered.isr);
        }
        Err(error) => match error {
            AlterPartitionError::StaleBrokerEpoch => msg.error_code = 1,
            AlterPartitionError::UnknownTopicOrPartition => msg.error_code = 2,
            AlterPartitionError::NotLeaderOrFollower => msg.error_code = 3,
            AlterPartitionError::FencedLeaderEpoch { requested, current } => {
                msg.error_code = 4;
                msg.requested = *requested;
                msg.current = *current;
            }
            AlterPartitionError::InvalidUpdateVersion { requested, current } => {
                msg.error_code = 5;
                msg.requested = *requested;
                msg.current = *current;
            }
            AlterPartitionError::IneligibleReplica(node) => {
                msg.error_code = 6;
                msg.requested = node.0;
            }
            AlterPartitionError::InvalidRequest(text) => {
                msg.error_code = 7;
                msg.message = text.clone();
            }
        },
    }
    msg
}

fn alter_from(msg: PartitionAlteredMsg) -> Result<AlteredPartition, AlterPartitionError> {
    match msg.error_code {
        0 => Ok(AlteredPartition {
            leader: (msg.leader >= 0).then_some(NodeId(msg.leader)),
            leader_epoch: msg.leader_epoch,
            partition_epoch: msg.partition_epoch,
            isr: nodes(&msg.isr),
        }),
        1 => Err(AlterPartitionError::StaleBrokerEpoch),
        2 => Err(AlterPartitionError::UnknownTopicOrPartition),
        3 => Err(AlterPartitionError::NotLeaderOrFollower),
        4 => Err(AlterPartitionError::FencedLeaderEpoch {
            requested: msg.requested,
            current: msg.current,
        }),
        5 => Err(AlterPartitionError::InvalidUpdateVersion {
            requested: msg.requested,
            current: msg.current,
        }),
        6 => Err(AlterPartitionError::IneligibleReplica(NodeId(
            msg.requested,
        ))),
        _ => Err(AlterPartitionError::InvalidRequest(msg.message)),
    }
}

fn elect_msg(partitions: &Option<Vec<(Uuid, i32)>>) -> ElectMsg {
    ElectMsg {
        all: partitions.is_none(),
        partitions: partitions
            .iter()
            .flatten()
            .map(|(topic_id, partition)| TopicPartitionMsg {
                topic_id: topic_id.as_bytes().to_vec(),
                partition: *partition,
            })
            .collect(),
    }
}

fn elect_partitions(msg: &ElectMsg) -> Result<Option<Vec<(Uuid, i32)>>, WireError> {
    if msg.all {
        return Ok(None);
    }
    msg.partitions
        .iter()
        .map(|p| Ok((uuid_from(&p.topic_id)?, p.partition)))
        .collect::<Result<_, WireError>>()
        .map(Some)
}

fn election_code(result: &Result<(), ElectionError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(ElectionError::ElectionNotNeeded) => 1,
        Err(ElectionError::PreferredLeaderNotAvailable) => 2,
        Err(ElectionError::UnknownTopicOrPartition) => 3,
        Err(ElectionError::EligibleLeadersNotAvailable) => 4,
    }
}

fn election_from(code: i32) -> Result<(), ElectionError> {
    match code {
        0 => Ok(()),
        1 => Err(ElectionError::ElectionNotNeeded),
        3 => Err(ElectionError::UnknownTopicOrPartition),
        4 => Err(ElectionError::EligibleLeadersNotAvailable),
        _ => Err(ElectionError::PreferredLeaderNotAvailable),
    }
}

fn reply_to(reply: &CommandReply) -> ReplyBody {
    match reply {
        CommandReply::Joined => ReplyBody::Joined(Empty {}),
        CommandReply::Quorum(q) => ReplyBody::QuorumDescribed(QuorumMsg {
            leader_id: q.leader_id.0,
            leader_epoch: q.leader_epoch,
            high_watermark: q.high_watermark,
            voters: q.voters.iter().map(replica_to).collect(),
            observers: q.observers.iter().map(replica_to).collect(),
        }),
        CommandReply::Reply(reply) => match reply {
            ControllerReply::BrokerRegistered { broker_epoch } => {
                ReplyBody::BrokerRegistered(*broker_epoch)
            }
            ControllerReply::TopicsCreated(results) => ReplyBody::TopicsCreated(TopicsCreatedMsg {
                results: results
                    .iter()
                    .map(|r| match r {
                        Ok(created) => CreatedTopicResultMsg {
                            error: None,
                            topic_id: created.topic_id.as_bytes().to_vec(),
                            partitions: created.partitions,
                            replication_factor: i32::from(created.replication_factor),
                        },
                        Err(error) => CreatedTopicResultMsg {
                            error: Some(error_to(error)),
                            ..CreatedTopicResultMsg::default()
                        },
                    })
                    .collect(),
            }),
            ControllerReply::TopicsDeleted(results) => ReplyBody::TopicsDeleted(TopicsDeletedMsg {
                results: results
                    .iter()
                    .map(|r| MaybeErrorMsg {
                        error: r.as_ref().err().map(error_to),
                    })
                    .collect(),
            }),
            ControllerReply::PartitionsCreated => ReplyBody::PartitionsCreated(Empty {}),
            ControllerReply::ConfigsAltered => ReplyBody::ConfigsAltered(Empty {}),
            ControllerReply::ProducerIdsAllocated { first_producer_id } => {
                ReplyBody::ProducerIdsAllocated(*first_producer_id)
            }
            ControllerReply::BrokerHeartbeat { fenced } => ReplyBody::BrokerHeartbeat(*fenced),
            ControllerReply::StaleBrokerEpoch => ReplyBody::StaleBrokerEpoch(Empty {}),
            ControllerReply::BrokerFenced => ReplyBody::BrokerFenced(Empty {}),
            ControllerReply::PartitionAltered(result) => {
                ReplyBody::PartitionAltered(alter_to(result))
            }
            ControllerReply::LeadersElected(results) => {
                ReplyBody::LeadersElected(LeadersElectedMsg {
                    results: results
                        .iter()
                        .map(|((topic_id, partition), result)| ElectionResultMsg {
                            topic_id: topic_id.as_bytes().to_vec(),
                            partition: *partition,
                            error_code: election_code(result),
                        })
                        .collect(),
                })
            }
            ControllerReply::ResourcesChanged => ReplyBody::ResourcesChanged(Empty {}),
        },
    }
}

fn reply_from(body: ReplyBody) -> Result<CommandReply, WireError> {
    let reply = match body {
        ReplyBody::Joined(_) => return Ok(CommandReply::Joined),
        ReplyBody::QuorumDescribed(q) => {
            return Ok(CommandReply::Quorum(QuorumDescription {
                leader_id: NodeId(q.leader_id),
                leader_epoch: q.leader_epoch,
                high_watermark: q.high_watermark,
                voters: q.voters.into_iter().map(replica_from).collect(),
                observers: q.observers.into_iter().map(replica_from).collect(),
                voter_addresses: Vec::new(),
            }));
        }
        ReplyBody::BrokerRegistered(broker_epoch) => {
            ControllerReply::BrokerRegistered { broker_epoch }
        }
        ReplyBody::TopicsCreated(msg) => ControllerReply::TopicsCreated(
            msg.results
                .into_iter()
                .map(|r| match r.error {
                    Some(error) => Ok(Err(error_from(error))),
                    None => Ok(Ok(CreatedTopic {
                        topic_id: uuid_from(&r.topic_id)?,
                        partitions: r.partitions,
                        replication_factor: i16::try_from(r.replication_factor)
                            .map_err(|_| WireError::Malformed("replication factor out of range"))?,
                    })),
                })
                .collect::<Result<_, WireError>>()?,
        ),
        ReplyBody::TopicsDeleted(msg) => ControllerReply::TopicsDeleted(
            msg.results
                .into_iter()
                .map(|r| match r.error {
                    Some(error) => Err(error_from(error)),
                    None => Ok(()),
                })
                .collect(),
        ),
        ReplyBody::PartitionsCreated(_) => ControllerReply::PartitionsCreated,
        ReplyBody::ConfigsAltered(_) => ControllerReply::ConfigsAltered,
        ReplyBody::ProducerIdsAllocated(first_producer_id) => {
            ControllerReply::ProducerIdsAllocated { first_producer_id }
        }
        ReplyBody::BrokerHeartbeat(fenced) => ControllerReply::BrokerHeartbeat { fenced },
        ReplyBody::StaleBrokerEpoch(_) => ControllerReply::StaleBrokerEpoch,
        ReplyBody::BrokerFenced(_) => ControllerReply::BrokerFenced,
        ReplyBody::PartitionAltered(msg) => ControllerReply::PartitionAltered(alter_from(msg)),
        ReplyBody::LeadersElected(msg) => ControllerReply::LeadersElected(
            msg.results
                .into_iter()
                .map(|r| {
                    Ok((
                        (uuid_from(&r.topic_id)?, r.partition),
                        election_from(r.error_code),
                    ))
                })
                .collect::<Result<_, WireError>>()?,
        ),
        ReplyBody::ResourcesChanged(_) => ControllerReply::ResourcesChanged,
    };
    Ok(CommandReply::Reply(reply))
}
