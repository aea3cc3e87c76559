//! Consumer lag over the admin HTTP API and as Prometheus gauges.
//!
//! - `GET /v1/groups`: every group this node coordinates, with its state, members and total lag.
//! - `GET /v1/groups/{id}`: one group with committed offset, log end offset and lag per
//!   partition (404 when this node does not coordinate such a group).
//! - `spate_consumer_group_lag{group,topic,partition}` and
//!   `spate_consumer_group_lag_sum{group}`: refreshed on every `/metrics` scrape, so they are
//!   never staler than the scrape itself.
//!
//! The log end offset is the partition's high watermark on this node; a partition this node
//! does not host shows -1 (and no lag) — `spate groups describe` asks the partition leaders
//! through the Kafka protocol instead, as Kafka's own tools do.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::Broker;
use crate::group::GroupLag;

/// A group in the `/v1/groups` listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupSummary {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: String,
    /// `classic` or `consumer`.
    pub group_type: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Number of members.
    pub members: usize,
    /// Sum of the partitions' lag.
    pub total_lag: i64,
}

/// The `/v1/groups` body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupList {
    /// The groups, by id.
    pub groups: Vec<GroupSummary>,
}

/// `GET /v1/groups`.
pub async fn list(State(broker): State<Arc<Broker>>) -> Json<GroupList> {
    let groups = broker
        .groups
        .lag(&broker.replicas, None)
        .await
        .into_iter()
        .map(|g| GroupSummary {
            group_id: g.group_id,
            state: g.state,
            group_type: g.group_type,
            protocol_type: g.protocol_type,
            members: g.members,
            total_lag: g.total_lag,
        })
        .collect();
    Json(GroupList { groups })
}

/// `GET /v1/groups/{id}`.
pub async fn describe(State(broker): State<Arc<Broker>>, Path(group_id): Path<String>) -> Response {
    let mut found = broker.groups.lag(&broker.replicas, Some(&group_id)).await;
    match found.pop() {
        Some(group) => Json::<GroupLag>(group).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("group {group_id} is not coordinated by this node or does not exist")
            })),
        )
            .into_response(),
    }
}

/// Sets the lag gauges from the current committed offsets and high watermarks.
pub async fn refresh_metrics(broker: &Broker) {
    for group in broker.groups.lag(&broker.replicas, None).await {
        metrics::gauge!("spate_consumer_group_lag_sum", "group" => group.group_id.clone())
            .set(group.total_lag as f64);
        for p in &group.partitions {
            if p.lag < 0 {
                continue;
            }
            metrics::gauge!(
                "spate_consumer_group_lag",
                "group" => group.group_id.clone(),
                "topic" => p.topic.clone(),
                "partition" => p.partition.to_string()
            )
            .set(p.lag as f64);
        }
    }
}

/// `GET /metrics`: the lag gauges refreshed, then every metric in the Prometheus text format.
pub async fn metrics(State(broker): State<Arc<Broker>>) -> String {
    crate::metrics::install();
    refresh_metrics(&broker).await;
    crate::metrics::render().await
}
