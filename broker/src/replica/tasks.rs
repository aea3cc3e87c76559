//! The replication task of a running broker: it sends the ISR changes leaders decide to the
//! controller (AlterPartition), runs the periodic ISR shrink check (every half
//! `replica.lag.time.max.ms`, as Kafka's `isr-expiration` task), writes the high-watermark
//! checkpoint, and publishes the replication metrics.
//!
//! Metrics (Prometheus names; Kafka's MBean in brackets):
//! - `spate_leader_partitions` — partitions led here [`LeaderCount`];
//! - `spate_under_replicated_partitions` — led here with an ISR smaller than the replica set
//!   [`UnderReplicatedPartitions`];
//! - `spate_under_min_isr_partitions` — led here with an ISR under `min.insync.replicas`
//!   [`UnderMinIsrPartitionCount`];
//! - `spate_offline_partitions` — partitions of the cluster without a leader, from this node's
//!   metadata image [`OfflinePartitionsCount`, reported by every node rather than the controller
//!   alone];
//! - `spate_isr_shrinks_total` / `spate_isr_expands_total` — ISR changes this node's leaders
//!   made [`IsrShrinksPerSec`/`IsrExpandsPerSec`];
//! - `spate_replica_fetcher_lag_records{topic,partition}` — set by the fetchers: the leader's
//!   high watermark minus the local log end [`ConsumerLag` of the fetcher].

use std::sync::Arc;
use std::time::Duration;

use spate_controller::controller::AlterPartition;
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_protocol::types::NodeId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Broker;
use crate::replica::partition::replicated::IsrProposal;

/// How often the replication metrics are recomputed.
pub const METRICS_INTERVAL_MS: u64 = 1_000;
/// Shortest interval of the ISR shrink check, whatever `replica.lag.time.max.ms` says.
const ISR_CHECK_INTERVAL_MIN_MS: u64 = 100;

/// Runs until `shutdown`.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let Some(mut proposals) = broker.replicas.take_isr_proposals() else {
        tracing::error!("the replication task runs once per broker");
        return;
    };
    let settings = broker.replicas.replication_settings();
    let isr_check_ms = (settings.lag_time_max_ms.max(0) as u64 / 2).max(ISR_CHECK_INTERVAL_MIN_MS);
    let mut isr_check = tokio::time::interval(Duration::from_millis(isr_check_ms));
    let mut checkpoint = tokio::time::interval(Duration::from_millis(
        settings.high_watermark_checkpoint_interval_ms,
    ));
    let mut metrics_tick = tokio::time::interval(Duration::from_millis(METRICS_INTERVAL_MS));
    for interval in [&mut isr_check, &mut checkpoint, &mut metrics_tick] {
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut submissions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            proposal = proposals.recv() => {
                let Some(proposal) = proposal else { break };
                submissions.spawn(submit(broker.clone(), proposal));
            }
            _ = isr_check.tick() => {
                for partition in broker.replicas.all() {
                    partition.maybe_shrink_isr();
                }
            }
            _ = checkpoint.tick() => {
                let broker = broker.clone();
                let written = tokio::task::spawn_blocking(move || broker.replicas.checkpoint_high_watermarks()).await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(%error, "high-watermark checkpoint failed");
                }
            }
            _ = metrics_tick.tick() => publish_metrics(&broker),
            Some(_) = submissions.join_next(), if !submissions.is_empty() => {}
        }
    }
    submissions.abort_all();
}

/// Sends one ISR change to the controller and applies the answer to the partition.
async fn submit(broker: Arc<Broker>, proposal: IsrProposal) {
    let Some(partition) = broker.replicas.get(&proposal.topic, proposal.partition) else {
        return;
    };
    let local = broker.node_id;
    // The ISR in replica order, leader included, so tools list it the way Kafka does.
    let image = broker.metadata.image();
    let replicas: Vec<NodeId> = image
        .topic_by_id(&proposal.topic_id)
        .and_then(|t| t.partitions.get(&proposal.partition))
        .map(|p| p.replicas.clone())
        .unwrap_or_default();
    let mut new_isr: Vec<NodeId> = replicas
        .iter()
        .copied()
        .filter(|id| *id == local || proposal.followers.contains(id))
        .collect();
    if !new_isr.contains(&local) {
        new_isr.insert(0, local);
    }
    let request = ControllerRequest::AlterPartition(AlterPartition {
        broker_id: local,
        broker_epoch: broker.broker_epoch,
        topic_id: proposal.topic_id,
        partition: proposal.partition,
        leader_epoch: proposal.leader_epoch.0,
        partition_epoch: proposal.partition_epoch,
        new_isr: new_isr.clone(),
    });
    let outcome = match broker.metadata.submit(request).await {
        Ok(ControllerReply::PartitionAltered(Ok(altered))) => {
            let counter = if proposal.shrink {
                "spate_isr_shrinks_total"
            } else {
                "spate_isr_expands_total"
            };
            metrics::counter!(counter).increment(1);
            tracing::info!(
                topic = %proposal.topic,
                partition = proposal.partition,
                isr = ?altered.isr.iter().map(|id| id.0).collect::<Vec<_>>(),
                partition_epoch = altered.partition_epoch,
                "ISR changed"
            );
            Ok((altered.partition_epoch, altered.isr))
        }
        Ok(ControllerReply::PartitionAltered(Err(error))) => Err(error.to_string()),
        Ok(other) => Err(format!("unexpected controller reply {other:?}")),
        Err(error) => Err(error.to_string()),
    };
    partition.complete_isr_change(proposal.leader_epoch, outcome);
}

fn publish_metrics(broker: &Broker) {
    let mut leaders = 0u64;
    let mut under_replicated = 0u64;
    let mut under_min_isr = 0u64;
    for partition in broker.replicas.all() {
        let status = partition.replication_status();
        if !status.leader {
            continue;
        }
        leaders += 1;
        if status.in_sync < status.replicas {
            under_replicated += 1;
        }
        if status.under_min_isr {
            under_min_isr += 1;
        }
    }
    let image = broker.metadata.image();
    let offline = image
        .topics()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader.is_none())
        .count();
    metrics::gauge!("spate_leader_partitions").set(leaders as f64);
    metrics::gauge!("spate_under_replicated_partitions").set(under_replicated as f64);
    metrics::gauge!("spate_under_min_isr_partitions").set(under_min_isr as f64);
    metrics::gauge!("spate_offline_partitions").set(offline as f64);
}
