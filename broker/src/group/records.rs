//! The records of `__consumer_offsets`, in Apache Kafka's own key and value schemas, so Kafka's
//! tools (and a Kafka broker reading a copied log) understand what Spate writes.
//!
//! Every key starts with an int16 *key version* that names the record type (Kafka's
//! `CoordinatorRecordType`): 0 and 1 an offset commit, 2 classic group metadata, 3 to 8 the
//! KIP-848 consumer group records. Every value starts with its own int16 schema version. A null
//! value is a tombstone: it deletes what the key names, and compaction eventually drops both.
//!
//! Written versions: OffsetCommitKey v1, OffsetCommitValue v3 (v1 when the commit carries an
//! explicit expiry, as Kafka writes it), GroupMetadataKey v2, GroupMetadataValue v3, and version
//! 0 of every consumer group value. Reading accepts every version Kafka 4.x defines, skipping
//! tagged fields it does not know, and skips record types it does not host (share and streams
//! groups) instead of failing the load.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// Key version (record type) of an offset commit written by Kafka before 0.10.
pub const OFFSET_COMMIT_KEY_V0: i16 = 0;
/// Key version (record type) of an offset commit.
pub const OFFSET_COMMIT_KEY_V1: i16 = 1;
/// Key version (record type) of classic group metadata.
pub const GROUP_METADATA_KEY: i16 = 2;
/// Key version (record type) of a consumer group's epoch.
pub const CONSUMER_GROUP_METADATA_KEY: i16 = 3;
/// Key version (record type) of a consumer group's subscription metadata (unused since Kafka 4.0).
pub const CONSUMER_GROUP_PARTITION_METADATA_KEY: i16 = 4;
/// Key version (record type) of a consumer group member's subscription.
pub const CONSUMER_GROUP_MEMBER_METADATA_KEY: i16 = 5;
/// Key version (record type) of a consumer group's target assignment epoch.
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY: i16 = 6;
/// Key version (record type) of one member's target assignment.
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY: i16 = 7;
/// Key version (record type) of one member's current assignment.
pub const CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY: i16 = 8;

/// OffsetCommitValue version written when the commit has no explicit expiry.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// OffsetCommitValue version that carries an explicit expiry (OffsetCommit v2-v4 retention).
pub const OFFSET_COMMIT_VALUE_EXPIRING_VERSION: i16 = 1;
/// GroupMetadataValue version written (Kafka writes v3 since 2.3).
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// Newest OffsetCommitValue version understood.
const OFFSET_COMMIT_VALUE_VERSION_MAX: i16 = 4;
/// Newest GroupMetadataValue version understood.
const GROUP_METADATA_VALUE_VERSION_MAX: i16 = 4;
/// Flexible (compact, tagged) encoding starts at this OffsetCommitValue/GroupMetadataValue version.
const CLASSIC_VALUE_FLEXIBLE_VERSION: i16 = 4;

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordCodecError {
    /// The bytes end inside a field.
    #[error("{field} truncated at byte {at_byte} of {len_bytes}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it started.
        at_byte: usize,
        /// Bytes in the buffer.
        len_bytes: usize,
    },
    /// A length or count below its allowed minimum.
    #[error("{field} has invalid length {length}")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The length read.
        length: i64,
    },
    /// A string that is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A null where the schema allows none.
    #[error("{field} is null")]
    UnexpectedNull {
        /// The field being read.
        field: &'static str,
    },
    /// A value schema version this broker does not know.
    #[error("{record} value version {version} is not supported")]
    UnsupportedVersion {
        /// The record type.
        record: &'static str,
        /// The version read.
        version: i16,
    },
}

/// A topic partition assignment by topic id, as the consumer group records store it.
pub type TopicIdPartitions = Vec<(Uuid, Vec<i32>)>;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// A committed offset of one partition.
    OffsetCommit {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A classic group's metadata.
    GroupMetadata {
        /// Group id.
        group: String,
    },
    /// A consumer group's epoch.
    ConsumerGroupMetadata {
        /// Group id.
        group: String,
    },
    /// A consumer group's subscription metadata; read and ignored (Kafka 4 stopped using it).
    ConsumerGroupPartitionMetadata {
        /// Group id.
        group: String,
    },
    /// A consumer group member's subscription.
    ConsumerGroupMemberMetadata {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A consumer group's target assignment epoch.
    ConsumerGroupTargetAssignmentMetadata {
        /// Group id.
        group: String,
    },
    /// One member's target assignment.
    ConsumerGroupTargetAssignmentMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// One member's current assignment and epoch.
    ConsumerGroupCurrentMemberAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A record type this broker does not host (share groups, streams groups): skipped on load.
    Other {
        /// The key version read.
        version: i16,
    },
}

impl RecordKey {
    /// The group the record belongs to (`None` for record types not hosted here).
    pub fn group(&self) -> Option<&str> {
        match self {
            RecordKey::OffsetCommit { group, .. }
            | RecordKey::GroupMetadata { group }
            | RecordKey::ConsumerGroupMetadata { group }
            | RecordKey::ConsumerGroupPartitionMetadata { group }
            | RecordKey::ConsumerGroupMemberMetadata { group, .. }
            | RecordKey::ConsumerGroupTargetAssignmentMetadata { group }
            | RecordKey::ConsumerGroupTargetAssignmentMember { group, .. }
            | RecordKey::ConsumerGroupCurrentMemberAssignment { group, .. } => Some(group),
            RecordKey::Other { .. } => None,
        }
    }

    /// Encodes the key with its version prefix.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        match self {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.i16(OFFSET_COMMIT_KEY_V1);
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            RecordKey::GroupMetadata { group } => {
                w.i16(GROUP_METADATA_KEY);
                w.string(group);
            }
            RecordKey::ConsumerGroupMetadata { group } => {
                w.i16(CONSUMER_GROUP_METADATA_KEY);
                w.string(group);
            }
            RecordKey::ConsumerGroupPartitionMetadata { group } => {
                w.i16(CONSUMER_GROUP_PARTITION_METADATA_KEY);
                w.string(group);
            }
            RecordKey::ConsumerGroupMemberMetadata { group, member } => {
                w.i16(CONSUMER_GROUP_MEMBER_METADATA_KEY);
                w.string(group);
                w.string(member);
            }
            RecordKey::ConsumerGroupTargetAssignmentMetadata { group } => {
                w.i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY);
                w.string(group);
            }
            RecordKey::ConsumerGroupTargetAssignmentMember { group, member } => {
                w.i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY);
                w.string(group);
                w.string(member);
            }
            RecordKey::ConsumerGroupCurrentMemberAssignment { group, member } => {
                w.i16(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY);
                w.string(group);
                w.string(member);
            }
            RecordKey::Other { version } => w.i16(*version),
        }
        w.finish()
    }

    /// Decodes a key. Every key schema is non-flexible (int16-prefixed strings).
    pub fn decode(bytes: &[u8]) -> Result<RecordKey, RecordCodecError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("key version")?;
        let key = match version {
            OFFSET_COMMIT_KEY_V0 | OFFSET_COMMIT_KEY_V1 => RecordKey::OffsetCommit {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            },
            GROUP_METADATA_KEY => RecordKey::GroupMetadata {
                group: r.string("group")?,
            },
            CONSUMER_GROUP_METADATA_KEY => RecordKey::ConsumerGroupMetadata {
                group: r.string("group")?,
            },
            CONSUMER_GROUP_PARTITION_METADATA_KEY => RecordKey::ConsumerGroupPartitionMetadata {
                group: r.string("group")?,
            },
            CONSUMER_GROUP_MEMBER_METADATA_KEY => RecordKey::ConsumerGroupMemberMetadata {
                group: r.string("group")?,
                member: r.string("member id")?,
            },
            CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY => {
                RecordKey::ConsumerGroupTargetAssignmentMetadata {
                    group: r.string("group")?,
                }
            }
            CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY => {
                RecordKey::ConsumerGroupTargetAssignmentMember {
                    group: r.string("group")?,
                    member: r.string("member id")?,
                }
            }
            CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY => {
                RecordKey::ConsumerGroupCurrentMemberAssignment {
                    group: r.string("group")?,
                    member: r.string("member id")?,
                }
            }
            other => RecordKey::Other { version: other },
        };
        Ok(key)
    }
}

/// OffsetCommitValue: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata stored with the offset.
    pub metadata: String,
    /// When the commit was written, ms since the epoch.
    pub commit_timestamp_ms: i64,
    /// Explicit expiry from OffsetCommit v2-v4 `retention_time_ms`, if any.
    pub expire_timestamp_ms: Option<i64>,
}

impl OffsetCommitValue {
    /// Encodes as v3, or v1 when the commit carries an explicit expiry.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        match self.expire_timestamp_ms {
            Some(expire) => {
                w.i16(OFFSET_COMMIT_VALUE_EXPIRING_VERSION);
                w.i64(self.offset);
                w.string(&self.metadata);
                w.i64(self.commit_timestamp_ms);
                w.i64(expire);
            }
            None => {
                w.i16(OFFSET_COMMIT_VALUE_VERSION);
                w.i64(self.offset);
                w.i32(self.leader_epoch);
                w.string(&self.metadata);
                w.i64(self.commit_timestamp_ms);
            }
        }
        w.finish()
    }

    /// Decodes any version 0-4.
    pub fn decode(bytes: &[u8]) -> Result<OffsetCommitValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("offset commit value version")?;
        if !(0..=OFFSET_COMMIT_VALUE_VERSION_MAX).contains(&version) {
            return Err(RecordCodecError::UnsupportedVersion {
                record: "OffsetCommitValue",
                version,
            });
        }
        let flexible = version >= CLASSIC_VALUE_FLEXIBLE_VERSION;
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader epoch")?
        } else {
            -1
        };
        let metadata = r.string_flex("metadata", flexible)?;
        let commit_timestamp_ms = r.i64("commit timestamp")?;
        let expire_timestamp_ms = if version == 1 {
            Some(r.i64("expire timestamp")?).filter(|t| *t >= 0)
        } else {
            None
        };
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

/// One member of a classic group as GroupMetadataValue stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    /// Member id.
    pub member_id: String,
    /// Static membership instance id (KIP-345).
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The member's assignment in the current generation.
    pub assignment: Bytes,
}

/// GroupMetadataValue: a classic group's generation and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Protocol type (`consumer`, `connect`, ...); empty for groups that only commit offsets.
    pub protocol_type: String,
    /// Generation id.
    pub generation: i32,
    /// The selected protocol (assignor).
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// When the group entered its current state, ms since the epoch (-1 if unknown).
    pub current_state_timestamp_ms: i64,
    /// The members.
    pub members: Vec<MemberMetadata>,
}

impl GroupMetadataValue {
    /// Encodes as v3.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(GROUP_METADATA_VALUE_VERSION);
        w.string(&self.protocol_type);
        w.i32(self.generation);
        w.nullable_string(self.protocol.as_deref());
        w.nullable_string(self.leader.as_deref());
        w.i64(self.current_state_timestamp_ms);
        w.i32(self.members.len() as i32);
        for member in &self.members {
            w.string(&member.member_id);
            w.nullable_string(member.group_instance_id.as_deref());
            w.string(&member.client_id);
            w.string(&member.client_host);
            w.i32(member.rebalance_timeout_ms);
            w.i32(member.session_timeout_ms);
            w.bytes(&member.subscription);
            w.bytes(&member.assignment);
        }
        w.finish()
    }

    /// Decodes any version 0-4.
    pub fn decode(bytes: &[u8]) -> Result<GroupMetadataValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        let version = r.i16("group metadata value version")?;
        if !(0..=GROUP_METADATA_VALUE_VERSION_MAX).contains(&version) {
            return Err(RecordCodecError::UnsupportedVersion {
                record: "GroupMetadataValue",
                version,
            });
        }
        let flexible = version >= CLASSIC_VALUE_FLEXIBLE_VERSION;
        let protocol_type = r.string_flex("protocol type", flexible)?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string_flex("protocol", flexible)?;
        let leader = r.nullable_string_flex("leader", flexible)?;
        let current_state_timestamp_ms = if version >= 2 {
            r.i64("current state timestamp")?
        } else {
            -1
        };
        let count = r.array_len_flex("members", flexible)?;
        let mut members = Vec::with_capacity(count.min(r.remaining()));
        for _ in 0..count {
            let member_id = r.string_flex("member id", flexible)?;
            let group_instance_id = if version >= 3 {
                r.nullable_string_flex("group instance id", flexible)?
            } else {
                None
            };
            let client_id = r.string_flex("client id", flexible)?;
            let client_host = r.string_flex("client host", flexible)?;
            let rebalance_timeout_ms = if version >= 1 {
                r.i32("rebalance timeout")?
            } else {
                -1
            };
            let session_timeout_ms = r.i32("session timeout")?;
            let subscription = r.bytes_flex("subscription", flexible)?;
            let assignment = r.bytes_flex("assignment", flexible)?;
            if flexible {
                r.skip_tagged_fields()?;
            }
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// ConsumerGroupMetadataValue: a consumer group's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    /// The group epoch.
    pub epoch: i32,
}

impl ConsumerGroupMetadataValue {
    /// Encodes as v0 (flexible).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.i32(self.epoch);
        w.tagged_fields_none();
        w.finish()
    }

    /// Decodes v0.
    pub fn decode(bytes: &[u8]) -> Result<ConsumerGroupMetadataValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        r.flexible_version("ConsumerGroupMetadataValue")?;
        let epoch = r.i32("group epoch")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupMetadataValue { epoch })
    }
}

/// ConsumerGroupMemberMetadataValue: a consumer group member's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupMemberMetadataValue {
    /// Static membership instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regular expression.
    pub subscribed_topic_regex: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// The server assignor the member asked for.
    pub server_assignor: Option<String>,
    /// Tagged field 0: set for a member that uses the classic protocol inside a consumer group.
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
}

/// The `ClassicMemberMetadata` tagged field of ConsumerGroupMemberMetadataValue: what a member
/// joining through JoinGroup told the coordinator, kept so the group can serve its classic
/// requests and turn back into a classic group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    /// The member's JoinGroup session timeout.
    pub session_timeout_ms: i32,
    /// The member's JoinGroup protocols (name, metadata), in its order of preference.
    pub supported_protocols: Vec<(String, Bytes)>,
}

/// Tag of `ClassicMemberMetadata` in ConsumerGroupMemberMetadataValue.
const CLASSIC_MEMBER_METADATA_TAG: u64 = 0;

impl ClassicMemberMetadata {
    fn encode_into(&self, w: &mut Writer) {
        w.i32(self.session_timeout_ms);
        w.compact_array_len(self.supported_protocols.len());
        for (name, metadata) in &self.supported_protocols {
            w.compact_string(name);
            w.compact_bytes(metadata);
            w.tagged_fields_none();
        }
        w.tagged_fields_none();
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<ClassicMemberMetadata, RecordCodecError> {
        let session_timeout_ms = r.i32("classic session timeout")?;
        let count = r.array_len_flex("classic protocols", true)?;
        let mut supported_protocols = Vec::with_capacity(count.min(r.remaining()));
        for _ in 0..count {
            let name = r.string_flex("classic protocol name", true)?;
            let metadata = r.bytes_flex("classic protocol metadata", true)?;
            r.skip_tagged_fields()?;
            supported_protocols.push((name, metadata));
        }
        r.skip_tagged_fields()?;
        Ok(ClassicMemberMetadata {
            session_timeout_ms,
            supported_protocols,
        })
    }
}

impl ConsumerGroupMemberMetadataValue {
    /// Encodes as v0 (flexible).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.compact_nullable_string(self.instance_id.as_deref());
        w.compact_nullable_string(self.rack_id.as_deref());
        w.compact_string(&self.client_id);
        w.compact_string(&self.client_host);
        w.compact_array_len(self.subscribed_topic_names.len());
        for name in &self.subscribed_topic_names {
            w.compact_string(name);
        }
        w.compact_nullable_string(self.subscribed_topic_regex.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.compact_nullable_string(self.server_assignor.as_deref());
        match &self.classic_member_metadata {
            None => w.tagged_fields_none(),
            Some(classic) => {
                // A nullable struct in a tagged field: its size counts a leading presence byte.
                let mut body = Writer::default();
                body.i8(1);
                classic.encode_into(&mut body);
                let body = body.finish();
                w.uvarint(1);
                w.uvarint(CLASSIC_MEMBER_METADATA_TAG);
                w.uvarint(body.len() as u64);
                w.0.put_slice(&body);
            }
        }
        w.finish()
    }

    /// Decodes v0 with its classic-member tagged field; unknown tags are skipped.
    pub fn decode(bytes: &[u8]) -> Result<ConsumerGroupMemberMetadataValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        r.flexible_version("ConsumerGroupMemberMetadataValue")?;
        let instance_id = r.nullable_string_flex("instance id", true)?;
        let rack_id = r.nullable_string_flex("rack id", true)?;
        let client_id = r.string_flex("client id", true)?;
        let client_host = r.string_flex("client host", true)?;
        let count = r.array_len_flex("subscribed topic names", true)?;
        let mut subscribed_topic_names = Vec::with_capacity(count.min(r.remaining()));
        for _ in 0..count {
            subscribed_topic_names.push(r.string_flex("subscribed topic name", true)?);
        }
        let subscribed_topic_regex = r.nullable_string_flex("subscribed topic regex", true)?;
        let rebalance_timeout_ms = r.i32("rebalance timeout")?;
        let server_assignor = r.nullable_string_flex("server assignor", true)?;
        let mut classic_member_metadata = None;
        let tags = r.uvarint("tagged field count")?;
        for _ in 0..tags {
            let tag = r.uvarint("tag")?;
            let size = r.uvarint("tagged field size")?;
            let size = usize::try_from(size).map_err(|_| RecordCodecError::InvalidLength {
                field: "tagged field size",
                length: -1,
            })?;
            let field = r.take(size, "tagged field")?;
            if tag == CLASSIC_MEMBER_METADATA_TAG {
                let mut inner = Reader::new(field);
                if inner.i8("classic member metadata presence")? >= 0 {
                    classic_member_metadata = Some(ClassicMemberMetadata::decode_from(&mut inner)?);
                }
            }
        }
        Ok(ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
        })
    }
}

/// ConsumerGroupTargetAssignmentMetadataValue: the epoch of a consumer group's target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMetadataValue {
    /// The assignment epoch.
    pub assignment_epoch: i32,
}

impl ConsumerGroupTargetAssignmentMetadataValue {
    /// Encodes as v0 (flexible).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.i32(self.assignment_epoch);
        w.tagged_fields_none();
        w.finish()
    }

    /// Decodes v0.
    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupTargetAssignmentMetadataValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        r.flexible_version("ConsumerGroupTargetAssignmentMetadataValue")?;
        let assignment_epoch = r.i32("assignment epoch")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupTargetAssignmentMetadataValue { assignment_epoch })
    }
}

/// ConsumerGroupTargetAssignmentMemberValue: one member's target assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupTargetAssignmentMemberValue {
    /// Assigned partitions by topic id.
    pub topic_partitions: TopicIdPartitions,
}

impl ConsumerGroupTargetAssignmentMemberValue {
    /// Encodes as v0 (flexible).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.topic_partitions(&self.topic_partitions);
        w.tagged_fields_none();
        w.finish()
    }

    /// Decodes v0.
    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupTargetAssignmentMemberValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        r.flexible_version("ConsumerGroupTargetAssignmentMemberValue")?;
        let topic_partitions = r.topic_partitions("topic partitions")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupTargetAssignmentMemberValue { topic_partitions })
    }
}

/// ConsumerGroupCurrentMemberAssignmentValue: one member's epoch, state and current assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    /// The member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump.
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` value: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    /// Partitions the member owns.
    pub assigned_partitions: TopicIdPartitions,
    /// Partitions the member must give up.
    pub partitions_pending_revocation: TopicIdPartitions,
}

impl ConsumerGroupCurrentMemberAssignmentValue {
    /// Encodes as v0 (flexible).
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::default();
        w.i16(0);
        w.i32(self.member_epoch);
        w.i32(self.previous_member_epoch);
        w.i8(self.state);
        w.topic_partitions(&self.assigned_partitions);
        w.topic_partitions(&self.partitions_pending_revocation);
        w.tagged_fields_none();
        w.finish()
    }

    /// Decodes v0.
    pub fn decode(
        bytes: &[u8],
    ) -> Result<ConsumerGroupCurrentMemberAssignmentValue, RecordCodecError> {
        let mut r = Reader::new(bytes);
        r.flexible_version("ConsumerGroupCurrentMemberAssignmentValue")?;
        let member_epoch = r.i32("member epoch")?;
        let previous_member_epoch = r.i32("previous member epoch")?;
        let state = r.i8("state")?;
        let assigned_partitions = r.topic_partitions("assigned partitions")?;
        let partitions_pending_revocation = r.topic_partitions("partitions pending revocation")?;
        r.skip_tagged_fields()?;
        Ok(ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            assigned_partitions,
            partitions_pending_revocation,
        })
    }
}

/// A record to append: a key and its value, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    /// The key.
    pub key: RecordKey,
    /// The encoded value; `None` is a tombstone.
    pub value: Option<Bytes>,
}

impl CoordinatorRecord {
    /// A record with a value.
    pub fn new(key: RecordKey, value: Bytes) -> CoordinatorRecord {
        CoordinatorRecord {
            key,
            value: Some(value),
        }
    }

    /// A tombstone for `key`.
    pub fn tombstone(key: RecordKey) -> CoordinatorRecord {
        CoordinatorRecord { key, value: None }
    }
}

/// Big-endian writer of Kafka's primitive types.
#[derive(Default)]
struct Writer(BytesMut);

impl Writer {
    fn finish(self) -> Bytes {
        self.0.freeze()
    }
    fn i8(&mut self, v: i8) {
        self.0.put_i8(v);
    }
    fn i16(&mut self, v: i16) {
        self.0.put_i16(v);
    }
    fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }
    fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }
    /// A non-null int16-length string. Names and ids longer than `i16::MAX` bytes are refused
    /// before they get here (Kafka's own request schemas cap them the same way).
    fn string(&mut self, s: &str) {
        self.0.put_i16(s.len().min(i16::MAX as usize) as i16);
        self.0
            .put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.0.put_i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.put_i32(b.len() as i32);
        self.0.put_slice(b);
    }
    fn compact_string(&mut self, s: &str) {
        self.uvarint(s.len() as u64 + 1);
        self.0.put_slice(s.as_bytes());
    }
    fn compact_bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64 + 1);
        self.0.put_slice(b);
    }
    fn compact_nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.compact_string(s),
            None => self.uvarint(0),
        }
    }
    fn compact_array_len(&mut self, len: usize) {
        self.uvarint(len as u64 + 1);
    }
    fn tagged_fields_none(&mut self) {
        self.uvarint(0);
    }
    fn topic_partitions(&mut self, topics: &TopicIdPartitions) {
        self.compact_array_len(topics.len());
        for (topic_id, partitions) in topics {
            self.0.put_slice(topic_id.as_bytes());
            self.compact_array_len(partitions.len());
            for p in partitions {
                self.i32(*p);
            }
            self.tagged_fields_none();
        }
    }
}

/// Bounds-checked reader of Kafka's primitive types; every read names its field for errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordCodecError> {
        if self.remaining() < n {
            return Err(RecordCodecError::Truncated {
                field,
                at_byte: self.pos,
                len_bytes: self.buf.len(),
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordCodecError> {
        Ok(self.take(1, field)?[0] as i8)
    }
    fn i16(&mut self, field: &'static str) -> Result<i16, RecordCodecError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, RecordCodecError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, RecordCodecError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn uvarint(&mut self, field: &'static str) -> Result<u64, RecordCodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1, field)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordCodecError::InvalidLength { field, length: -1 })
    }
    fn utf8(&mut self, n: usize, field: &'static str) -> Result<String, RecordCodecError> {
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| RecordCodecError::NotUtf8 { field })
    }

    /// A string, nullable or not, in the classic (int16) or compact (uvarint) form.
    fn nullable_string_flex(
        &mut self,
        field: &'static str,
        compact: bool,
    ) -> Result<Option<String>, RecordCodecError> {
        let len: i64 = if compact {
            self.uvarint(field)? as i64 - 1
        } else {
            i64::from(self.i16(field)?)
        };
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(RecordCodecError::InvalidLength { field, length: n }),
            n => self.utf8(n as usize, field).map(Some),
        }
    }
    fn string_flex(
        &mut self,
        field: &'static str,
        compact: bool,
    ) -> Result<String, RecordCodecError> {
        self.nullable_string_flex(field, compact)?
            .ok_or(RecordCodecError::UnexpectedNull { field })
    }
    fn string(&mut self, field: &'static str) -> Result<String, RecordCodecError> {
        self.string_flex(field, false)
    }
    fn bytes_flex(
        &mut self,
        field: &'static str,
        compact: bool,
    ) -> Result<Bytes, RecordCodecError> {
        let len: i64 = if compact {
            self.uvarint(field)? as i64 - 1
        } else {
            i64::from(self.i32(field)?)
        };
        if len < 0 {
            return Err(RecordCodecError::InvalidLength { field, length: len });
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, field)?))
    }
    fn array_len_flex(
        &mut self,
        field: &'static str,
        compact: bool,
    ) -> Result<usize, RecordCodecError> {
        let len: i64 = if compact {
            self.uvarint(field)? as i64 - 1
        } else {
            i64::from(self.i32(field)?)
        };
        if len < 0 {
            return Err(RecordCodecError::InvalidLength { field, length: len });
        }
        Ok(len as usize)
    }
    fn skip_tagged_fields(&mut self) -> Result<(), RecordCodecError> {
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            let size = usize::try_from(size).map_err(|_| RecordCodecError::InvalidLength {
                field: "tagged field size",
                length: -1,
            })?;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
    /// Reads the value version of a consumer group record (all have only v0, flexible).
    fn flexible_version(&mut self, record: &'static str) -> Result<(), RecordCodecError> {
        let version = self.i16("value version")?;
        if version != 0 {
            return Err(RecordCodecError::UnsupportedVersion { record, version });
        }
        Ok(())
    }
    fn topic_partitions(
        &mut self,
        field: &'static str,
    ) -> Result<TopicIdPartitions, RecordCodecError> {
        let count = self.array_len_flex(field, true)?;
        let mut topics = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            let id = self.take(16, "topic id")?;
            let mut raw = [0u8; 16];
            raw.copy_from_slice(id);
            let n = self.array_len_flex("partitions", true)?;
            let mut partitions = Vec::with_capacity(n.min(self.remaining()));
            for _ in 0..n {
                partitions.push(self.i32("partition")?);
            }
            self.skip_tagged_fields()?;
            topics.push((Uuid::from_bytes(raw), partitions));
        }
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OffsetCommitKey v1 as Kafka's generated `OffsetCommitKey.write` lays it out: version,
    /// int16-length group and topic, int32 partition.
    #[test]
    fn offset_commit_key_has_kafkas_layout() {
        let key = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t1".into(),
            partition: 7,
        };
        let bytes = key.encode();
        assert_eq!(
            &bytes[..],
            &[0, 1, 0, 1, b'g', 0, 2, b't', b'1', 0, 0, 0, 7]
        );
        assert_eq!(RecordKey::decode(&bytes), Ok(key));
    }

    /// OffsetCommitValue v3: offset, leader epoch, metadata, commit timestamp.
    #[test]
    fn offset_commit_value_v3_round_trips_and_v1_keeps_the_expiry() {
        let value = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: None,
        };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(bytes.len(), 2 + 8 + 4 + 2 + 1 + 8);
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(value.clone()));
        let expiring = OffsetCommitValue {
            expire_timestamp_ms: Some(1_700_000_100_000),
            leader_epoch: -1,
            ..value
        };
        let bytes = expiring.encode();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(expiring));
    }

    /// OffsetCommitValue v4 is flexible: compact metadata and a tagged-field section.
    #[test]
    fn offset_commit_value_v4_flexible_decodes_with_unknown_tags() {
        let mut w = Writer::default();
        w.i16(4);
        w.i64(9);
        w.i32(2);
        w.compact_string("meta");
        w.i64(5);
        // One unknown tagged field (tag 0, three bytes), as a newer Kafka could add.
        w.uvarint(1);
        w.uvarint(0);
        w.uvarint(3);
        w.0.put_slice(&[1, 2, 3]);
        let decoded = OffsetCommitValue::decode(&w.finish()).expect("v4 decodes");
        assert_eq!(decoded.offset, 9);
        assert_eq!(decoded.leader_epoch, 2);
        assert_eq!(decoded.metadata, "meta");
    }

    #[test]
    fn group_metadata_value_v3_round_trips() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp_ms: 77,
            members: vec![MemberMetadata {
                member_id: "m-1".into(),
                group_instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(GroupMetadataValue::decode(&bytes), Ok(value));
    }

    /// KIP-848's ConsumerGroupMemberMetadataValue v0 with its tagged `ClassicMemberMetadata`
    /// (tag 0), laid out as Kafka's generated writer does for a nullable struct: tag, size
    /// counting a presence byte, the presence byte 1, then the struct.
    #[test]
    fn classic_member_metadata_is_tagged_field_zero() {
        let member = ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: vec![],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            classic_member_metadata: Some(ClassicMemberMetadata {
                session_timeout_ms: 45_000,
                supported_protocols: vec![("range".into(), Bytes::from_static(&[0, 3]))],
            }),
        };
        let bytes = member.encode();
        // version, null instance, null rack, "c", "h", [], null regex, -1, null assignor.
        let head = [
            0, 0, 0, 0, 2, b'c', 2, b'h', 1, 0, 0xff, 0xff, 0xff, 0xff, 0,
        ];
        assert_eq!(&bytes[..head.len()], &head);
        let struct_bytes = [
            0, 0, 0xaf, 0xc8, // session timeout 45000
            2,    // one protocol
            6, b'r', b'a', b'n', b'g', b'e', 3, 0, 3, 0, // name, metadata, no tags
            0, // no tags
        ];
        let mut tagged = vec![1, 0, struct_bytes.len() as u8 + 1, 1];
        tagged.extend_from_slice(&struct_bytes);
        assert_eq!(&bytes[head.len()..], &tagged[..]);
        assert_eq!(ConsumerGroupMemberMetadataValue::decode(&bytes), Ok(member));
    }

    #[test]
    fn consumer_group_values_round_trip() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let member = ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 1000,
            server_assignor: Some("uniform".into()),
            classic_member_metadata: None,
        };
        assert_eq!(
            ConsumerGroupMemberMetadataValue::decode(&member.encode()),
            Ok(member)
        );
        let current = ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: 4,
            previous_member_epoch: 3,
            state: 1,
            assigned_partitions: vec![(id, vec![0, 2])],
            partitions_pending_revocation: vec![(id, vec![1])],
        };
        assert_eq!(
            ConsumerGroupCurrentMemberAssignmentValue::decode(&current.encode()),
            Ok(current)
        );
        let target = ConsumerGroupTargetAssignmentMemberValue {
            topic_partitions: vec![(id, vec![3])],
        };
        assert_eq!(
            ConsumerGroupTargetAssignmentMemberValue::decode(&target.encode()),
            Ok(target)
        );
        let epoch = ConsumerGroupMetadataValue { epoch: 12 };
        assert_eq!(
            ConsumerGroupMetadataValue::decode(&epoch.encode()),
            Ok(epoch)
        );
    }

    #[test]
    fn truncated_and_hostile_bytes_are_errors_not_panics() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: -1,
            members: vec![],
        }
        .encode();
        for cut in 0..value.len() {
            assert!(GroupMetadataValue::decode(&value[..cut]).is_err());
        }
        // A member count of two billion with nothing behind it.
        let mut w = Writer::default();
        w.i16(3);
        w.string("consumer");
        w.i32(1);
        w.nullable_string(None);
        w.nullable_string(None);
        w.i64(-1);
        w.i32(i32::MAX);
        assert!(GroupMetadataValue::decode(&w.finish()).is_err());
        assert!(RecordKey::decode(&[0]).is_err());
        assert_eq!(
            RecordKey::decode(&[0, 99]),
            Ok(RecordKey::Other { version: 99 })
        );
    }
}
