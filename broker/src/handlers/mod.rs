//! One module per Kafka API. Each converts the request into domain calls and maps internal
//! errors to Kafka error codes in one place.

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod elect_leaders;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod log_admin;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod quorum;
pub mod replica_fetch;
pub mod topics;

use std::sync::Arc;

use kafka_protocol::messages::RequestKind;

use crate::Broker;
use crate::dispatch::{DispatchError, Reply, RequestContext, ResponseTo};

/// Routes a decoded request to its handler.
pub async fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    to: ResponseTo,
    request: RequestKind,
) -> Result<Reply, DispatchError> {
    let version = to.version;
    match request {
        RequestKind::ApiVersions(r) => to.ready(&api_versions::handle(&r, version)),
        RequestKind::Metadata(r) => {
            let response = metadata::handle(broker, r, version).await;
            // A node out of contact with the cluster answers, then lets the client go: a client
            // connected to this node alone (librdkafka connects only to the leaders it needs)
            // would otherwise keep asking it, and keep hearing that its partitions have no
            // leader, until the node is back; reconnecting, it asks another node and finds the
            // new leaders.
            if broker.out_of_contact(&broker.metadata.image()) {
                to.ready_then_close(&response)
            } else {
                to.ready(&response)
            }
        }
        RequestKind::CreateTopics(r) => to.ready(&topics::create_topics(broker, r, version).await),
        RequestKind::DeleteTopics(r) => to.ready(&topics::delete_topics(broker, r, version).await),
        RequestKind::Produce(r) => {
            produce::await_own_leaderships(broker, &r, version).await;
            match produce::handle(broker, r, version) {
                produce::ProduceReply::Now(response) => to.ready(&response),
                produce::ProduceReply::Later(future) => Ok(to.deferred(future)),
                produce::ProduceReply::None => Ok(Reply::None),
                // An empty frame closes the connection once the answers owed before it are
                // written.
                produce::ProduceReply::Close => Ok(Reply::Deferred(Box::pin(async {
                    crate::response_frame::ResponseFrame::default()
                }))),
            }
        }
        RequestKind::Fetch(r) => match fetch::handle(broker, r, version) {
            fetch::FetchReply::Now(response) => to.ready(&response),
            fetch::FetchReply::Later(future) => Ok(to.deferred(future)),
        },
        RequestKind::ListOffsets(r) => to.ready(&list_offsets::handle(broker, r, version)),
        RequestKind::DescribeConfigs(r) => to.ready(&configs::describe(broker, &r)),
        RequestKind::AlterConfigs(r) => to.ready(&configs::alter(broker, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            to.ready(&configs::incremental_alter(broker, r).await)
        }
        RequestKind::DeleteRecords(r) => to.ready(&log_admin::delete_records(broker, &r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            to.ready(&log_admin::offset_for_leader_epoch(broker, &r))
        }
        RequestKind::DescribeLogDirs(r) => to.ready(&log_admin::describe_log_dirs(broker, &r)),
        RequestKind::DescribeProducers(r) => {
            to.ready(&log_admin::describe_producers(broker, &r))
        }
        RequestKind::ElectLeaders(r) => {
            to.ready(&elect_leaders::elect_leaders(broker, r, version).await)
        }
        RequestKind::DescribeCluster(r) => to.ready(&cluster::describe_cluster(broker, &r)),
        RequestKind::DescribeQuorum(r) => {
            to.ready(&quorum::describe_quorum(broker, &r, version).await)
        }
        RequestKind::InitProducerId(r) => to.ready(&cluster::init_producer_id(broker, &r).await),
        RequestKind::CreatePartitions(r) => {
            to.ready(&topics::create_partitions(broker, r, version).await)
        }
        RequestKind::FindCoordinator(r) => {
            to.ready(&groups::find_coordinator(broker, r, version).await)
        }
        RequestKind::JoinGroup(r) => groups::join_group(broker, context, to, r).await,
        RequestKind::SyncGroup(r) => groups::sync_group(broker, to, r).await,
        RequestKind::Heartbeat(r) => to.ready(&groups::heartbeat(broker, r).await),
        RequestKind::LeaveGroup(r) => to.ready(&groups::leave_group(broker, r, version).await),
        RequestKind::DescribeGroups(r) => {
            to.ready(&groups::describe_groups(broker, r, version).await)
        }
        RequestKind::ListGroups(r) => to.ready(&groups::list_groups(broker, r, version).await),
        RequestKind::DeleteGroups(r) => to.ready(&groups::delete_groups(broker, r).await),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            to.ready(&groups::consumer_group_heartbeat(broker, context, r, version).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            to.ready(&groups::consumer_group_describe(broker, r, version).await)
        }
        RequestKind::OffsetCommit(r) => to.ready(&offsets::offset_commit(broker, r, version).await),
        RequestKind::OffsetFetch(r) => to.ready(&offsets::offset_fetch(broker, r, version).await),
        RequestKind::OffsetDelete(r) => to.ready(&offsets::offset_delete(broker, r).await),
        other => Err(DispatchError::UnsupportedVersion {
            api_key: to.api_key,
            api_version: version,
            correlation_id: to.correlation_id,
        })
        .inspect_err(|_| tracing::error!(request = ?std::mem::discriminant(&other), "request passed the version table but has no handler")),
    }
}
