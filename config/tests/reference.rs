//! The checked-in configuration reference and example files must equal what the tables
//! generate, and the examples must load as real node configurations.

use std::path::{Path, PathBuf};

use spate_config::reference;
use spate_config::{NodeArgs, NodeConfig};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn assert_current(relative: &str, generated: &str) {
    let checked_in = std::fs::read_to_string(repo_path(relative)).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{relative} differs from the config tables; regenerate it with \
         `cargo run -p spate-config --example config-reference`"
    );
}

#[test]
fn configuration_reference_is_current() {
    assert_current(reference::REFERENCE_PATH, &reference::render_reference());
}

#[test]
fn example_files_are_current() {
    assert_current(
        reference::SINGLE_NODE_EXAMPLE_PATH,
        &reference::render_single_node_example(),
    );
    assert_current(
        reference::THREE_NODE_EXAMPLE_PATH,
        &reference::render_three_node_example(),
    );
}

fn load_example(relative: &str) -> NodeConfig {
    let args = NodeArgs {
        config: Some(repo_path(relative)),
        ..NodeArgs::default()
    };
    NodeConfig::load_with_env(&args, &|_| None)
        .unwrap_or_else(|e| panic!("{relative} does not load: {e}"))
}

#[test]
fn single_node_example_equals_the_built_in_defaults() {
    let from_file = load_example(reference::SINGLE_NODE_EXAMPLE_PATH);
    let defaults =
        NodeConfig::load_with_env(&NodeArgs::default(), &|_| None).expect("defaults load");
    assert_eq!(from_file.node_id, defaults.node_id);
    assert_eq!(from_file.data_dir, defaults.data_dir);
    assert_eq!(from_file.kafka_listen, defaults.kafka_listen);
    assert_eq!(from_file.controller_voters, defaults.controller_voters);
    assert_eq!(from_file.broker, defaults.broker);
    assert_eq!(
        from_file.static_broker_configs(),
        defaults.static_broker_configs()
    );
}

#[test]
fn three_node_example_loads_for_every_node() {
    let node0 = load_example(reference::THREE_NODE_EXAMPLE_PATH);
    assert_eq!(node0.controller_voters.len(), 3);
    assert!(node0.is_voter());
    assert_eq!(node0.broker.default_replication_factor, 3);
    assert_eq!(node0.broker.topic_defaults.min_insync_replicas, 2);
    assert_eq!(node0.broker.offsets_topic_replication_factor, 3);
    assert!(node0.warnings.is_empty(), "{:?}", node0.warnings);
    // Node 2: the same file with its own id, directory and addresses from the environment.
    let env = |name: &str| match name {
        "SPATE_NODE_ID" => Some("2".to_string()),
        "SPATE_DATA_DIR" => Some("./data-2".to_string()),
        "SPATE_KAFKA_LISTEN" => Some("127.0.0.3:9092".to_string()),
        "SPATE_CONTROLLER_LISTEN" => Some("127.0.0.3:9093".to_string()),
        "SPATE_CLOUDEVENTS_LISTEN" => Some("127.0.0.3:8080".to_string()),
        "SPATE_ADMIN_LISTEN" => Some("127.0.0.3:9644".to_string()),
        _ => None,
    };
    let args = NodeArgs {
        config: Some(repo_path(reference::THREE_NODE_EXAMPLE_PATH)),
        ..NodeArgs::default()
    };
    let node2 = NodeConfig::load_with_env(&args, &env).expect("node 2 loads");
    assert_eq!(node2.node_id, 2);
    assert!(node2.is_voter());
    assert_eq!(
        node2.advertised_kafka_address().to_string(),
        "127.0.0.3:9092"
    );
    assert!(node2.warnings.is_empty(), "{:?}", node2.warnings);
}
