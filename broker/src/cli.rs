//! Command line: `spate serve` (more subcommands follow the Kafka tools' verbs).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spate_config::node::{LogFormat, NodeArgs, NodeConfig};
use spate_protocol::types::NodeId;

use crate::server::{self, QuorumSettings, ServeOptions};
use crate::settings::BrokerSettings;
use spate_controller::quorum::QuorumTiming;

/// Spate: a Kafka-compatible event broker.
#[derive(Debug, Parser)]
#[command(name = "spate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node. With no configuration at all: node 0, one voter, data in ./data, Kafka on
    /// 127.0.0.1:9092, admin on 127.0.0.1:9644.
    Serve(NodeArgs),
    /// List and describe consumer groups with their lag, over the Kafka protocol (works against
    /// any Kafka cluster).
    Groups(crate::groups_cli::GroupsArgs),
    /// Manage CloudEvents brokers (create, get, list, delete) through a node's admin API.
    Broker(crate::cloudevents::cli::BrokerArgs),
    /// Manage CloudEvents triggers (create, get, list, delete) through a node's admin API.
    Trigger(crate::cloudevents::cli::TriggerArgs),
    /// Apply Knative Broker and Trigger YAML through a node's admin API.
    Apply(crate::cloudevents::cli::ApplyArgs),
}

fn init_logging(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

/// Converts the node configuration into what the server needs.
pub fn serve_options(config: &NodeConfig) -> ServeOptions {
    let broker = &config.broker;
    ServeOptions {
        node_id: NodeId(config.node_id),
        data_dir: config.data_dir.clone(),
        kafka_listen: config.kafka_listen.to_string(),
        kafka_advertise: config.kafka_advertise.as_ref().map(|a| a.to_string()),
        admin_listen: config.admin_listen.to_string(),
        cloudevents_listen: config.cloudevents_listen.to_string(),
        cluster_id: config.cluster_id.clone(),
        rack: config.rack.clone(),
        settings: BrokerSettings {
            socket_request_max_bytes: broker.socket_request_max_bytes.max(0) as usize,
            max_connections: broker.max_connections.max(1) as usize,
            auto_create_topics_enable: broker.auto_create_topics_enable,
            num_partitions: broker.num_partitions,
            default_replication_factor: broker.default_replication_factor as i16,
            message_max_bytes: broker.message_max_bytes,
            ..BrokerSettings::default()
        },
        static_configs: config.static_broker_configs(),
        quorum: QuorumSettings {
            listen: config.controller_listen.to_string(),
            voters: config
                .controller_voters
                .iter()
                .map(|voter| (NodeId(voter.id), voter.address.to_string()))
                .collect(),
            timing: QuorumTiming {
                election_timeout_ms: positive_ms(broker.controller_quorum_election_timeout_ms),
                broker_session_timeout_ms: positive_ms(broker.broker_session_timeout_ms),
                broker_heartbeat_interval_ms: positive_ms(broker.broker_heartbeat_interval_ms),
                initial_registration_timeout_ms: positive_ms(
                    broker.initial_broker_registration_timeout_ms,
                ),
                leader_rebalance_interval_ms: broker
                    .auto_leader_rebalance_enable
                    .then(|| (broker.leader_imbalance_check_interval_seconds.max(1) as u64) * 1000),
                ..QuorumTiming::default()
            },
        },
    }
}

/// A millisecond setting as the quorum takes it (at least 1).
fn positive_ms(value: i32) -> u64 {
    value.max(1) as u64
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Groups(args) => crate::groups_cli::run(args),
        Command::Broker(args) => crate::cloudevents::cli::broker(args),
        Command::Trigger(args) => crate::cloudevents::cli::trigger(args),
        Command::Apply(args) => crate::cloudevents::cli::apply(args),
    }
}

fn serve(args: &NodeArgs) -> ExitCode {
    let config = match NodeConfig::load(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("spate: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spate: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        crate::metrics::install();
        let running = match server::start(serve_options(&config)).await {
            Ok(running) => running,
            Err(error) => {
                tracing::error!(%error, "spate could not start");
                eprintln!("spate: {error}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
