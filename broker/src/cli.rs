//! Command line: `spate serve` and friends.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spate_protocol::types::NodeId;

use crate::server::{self, ServeOptions};
use crate::settings::BrokerSettings;

/// Spate: a Kafka-compatible event broker.
#[derive(Debug, Parser)]
#[command(name = "spate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node.
    Serve {
        /// Node id.
        #[arg(long, env = "SPATE_NODE_ID", default_value_t = 0)]
        node_id: i32,
        /// Data directory.
        #[arg(long, env = "SPATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Kafka listener bind address.
        #[arg(long, env = "SPATE_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
        kafka_listen: String,
        /// Advertised Kafka address.
        #[arg(long, env = "SPATE_KAFKA_ADVERTISE")]
        kafka_advertise: Option<String>,
        /// Admin HTTP bind address.
        #[arg(long, env = "SPATE_ADMIN_LISTEN", default_value = "127.0.0.1:9644")]
        admin_listen: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    match cli.command {
        Command::Serve {
            node_id,
            data_dir,
            kafka_listen,
            kafka_advertise,
            admin_listen,
        } => runtime.block_on(async move {
            crate::metrics::install();
            let options = ServeOptions {
                node_id: NodeId(node_id),
                data_dir,
                kafka_listen,
                kafka_advertise,
                admin_listen,
                cluster_id: None,
                rack: None,
                settings: BrokerSettings::default(),
                static_configs: Default::default(),
            };
            let running = match server::start(options).await {
                Ok(running) => running,
                Err(error) => {
                    eprintln!("spate: {error}");
                    return ExitCode::FAILURE;
                }
            };
            wait_for_signal().await;
            running.shutdown().await;
            ExitCode::SUCCESS
        }),
    }
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
