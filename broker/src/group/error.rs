//! Why a group operation failed. The handlers turn each variant into a Kafka error code in one
//! `map_group_error`; the names follow Kafka's errors so the mapping stays obvious.

/// Why appending coordinator records to `__consumer_offsets` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendFailure {
    /// This node no longer leads the offsets partition.
    #[error("this node does not lead the offsets partition")]
    NotLeader,
    /// The records exceed the offsets topic's `max.message.bytes`.
    #[error("records of {size_bytes} bytes exceed max.message.bytes {max_bytes}")]
    TooLarge {
        /// The batch size.
        size_bytes: usize,
        /// The limit.
        max_bytes: i64,
    },
    /// The log refused the write.
    #[error("offsets log write failed: {0}")]
    Storage(String),
    /// Appended, but the in-sync replicas did not all have it in time (or too few are in
    /// sync): Kafka's NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT on the offsets topic.
    #[error("offsets not replicated: {0}")]
    NotReplicated(String),
}

/// Why a group request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// NOT_COORDINATOR: this node does not lead the group's offsets partition.
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    /// COORDINATOR_LOAD_IN_PROGRESS: the offsets partition is being read.
    #[error("the coordinator is loading the group's offsets partition")]
    LoadInProgress,
    /// COORDINATOR_NOT_AVAILABLE: the offsets topic or its leader is not there (yet).
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// INVALID_GROUP_ID.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// UNKNOWN_MEMBER_ID.
    #[error("unknown member id {0:?}")]
    UnknownMemberId(String),
    /// ILLEGAL_GENERATION.
    #[error("generation {received} is not the group's generation {current}")]
    IllegalGeneration {
        /// The generation the client sent.
        received: i32,
        /// The group's generation.
        current: i32,
    },
    /// REBALANCE_IN_PROGRESS.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// INCONSISTENT_GROUP_PROTOCOL.
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    /// FENCED_INSTANCE_ID (KIP-345): another member now holds the static instance id.
    #[error("instance id {instance_id:?} is now held by another member than {member_id:?}")]
    FencedInstanceId {
        /// The instance id.
        instance_id: String,
        /// The fenced member id.
        member_id: String,
    },
    /// MEMBER_ID_REQUIRED (KIP-394): rejoin with the member id in the response.
    #[error("a member id is required; rejoin with the one given")]
    MemberIdRequired,
    /// INVALID_SESSION_TIMEOUT.
    #[error("session timeout {timeout_ms} ms lies outside [{min_ms}, {max_ms}]")]
    InvalidSessionTimeout {
        /// The requested timeout.
        timeout_ms: i32,
        /// `group.min.session.timeout.ms`.
        min_ms: i32,
        /// `group.max.session.timeout.ms`.
        max_ms: i32,
    },
    /// GROUP_MAX_SIZE_REACHED.
    #[error("the group has reached its maximum size of {0} members")]
    GroupMaxSizeReached(i32),
    /// GROUP_ID_NOT_FOUND.
    #[error("group {0:?} does not exist")]
    GroupIdNotFound(String),
    /// NON_EMPTY_GROUP.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// FENCED_MEMBER_EPOCH (KIP-848).
    #[error("member epoch {received} does not match the coordinator's {current}")]
    FencedMemberEpoch {
        /// The epoch the client sent.
        received: i32,
        /// The member's epoch.
        current: i32,
    },
    /// STALE_MEMBER_EPOCH (KIP-848 offset commits and fetches).
    #[error("member epoch {received} is stale; the member is at {current}")]
    StaleMemberEpoch {
        /// The epoch the client sent.
        received: i32,
        /// The member's epoch.
        current: i32,
    },
    /// UNRELEASED_INSTANCE_ID (KIP-848 static membership).
    #[error("instance id {0:?} is still owned by another member")]
    UnreleasedInstanceId(String),
    /// UNSUPPORTED_ASSIGNOR.
    #[error("server assignor {0:?} is not supported; supported: uniform, range")]
    UnsupportedAssignor(String),
    /// INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// INVALID_REGULAR_EXPRESSION (a KIP-848 subscription regex that does not compile).
    #[error("invalid subscription regex: {0}")]
    InvalidRegularExpression(String),
    /// UNSUPPORTED_VERSION.
    #[error("{0}")]
    UnsupportedVersion(String),
    /// Writing the group's records failed.
    #[error(transparent)]
    Append(#[from] AppendFailure),
}
