//! Apache Kafka's `kafka-metadata-quorum` (MetadataQuorumCommand, over DescribeQuorum, API 55)
//! against a three-node Spate cluster: `describe --status` names the leader, the epoch, the high
//! watermark and the three voters; `describe --replication` lists each voter with its log end
//! offset and lag.

use spate_e2e::cluster::{ClusterOptions, SpateCluster, targets_spate};
use spate_e2e::kafka::run_tool;

/// Kafka's `kafka-metadata-quorum` main class.
const METADATA_QUORUM_COMMAND: &str = "org.apache.kafka.tools.MetadataQuorumCommand";

fn tool(cluster: &SpateCluster, node: usize, args: &[&str], name: &str) -> String {
    let mut full = vec!["--bootstrap-server".to_string(), cluster.bootstrap(node)];
    full.extend(args.iter().map(|a| a.to_string()));
    let work = cluster.dir(node);
    match run_tool(METADATA_QUORUM_COMMAND, &full, work, name).and_then(|o| o.stdout_text()) {
        Ok(text) => text,
        Err(e) => panic!("kafka-metadata-quorum {args:?}: {e:#}\n{}", cluster.logs()),
    }
}

#[test]
fn kafka_metadata_quorum_describes_the_spate_quorum() {
    if !targets_spate("kafka_metadata_quorum_describes_the_spate_quorum") {
        return;
    }
    let cluster =
        SpateCluster::start(ClusterOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let status = tool(
        &cluster,
        1,
        &["describe", "--status"],
        "metadata-quorum-status",
    );
    for field in [
        "LeaderId:",
        "LeaderEpoch:",
        "HighWatermark:",
        "CurrentVoters:",
    ] {
        assert!(status.contains(field), "no {field} in:\n{status}");
    }
    let line = |name: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .map(|l| l.trim_start()[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    let leader: i32 = line("LeaderId:").parse().expect("a numeric leader id");
    assert!((0..3).contains(&leader), "{status}");
    // Three configs that differ only in the node: one cluster id, derived from the voters.
    let cluster_id = line("ClusterId:");
    for node in 0..3 {
        let properties =
            std::fs::read_to_string(cluster.data_dir(node).join("meta.properties")).unwrap();
        assert!(
            properties.contains(&format!("cluster.id={cluster_id}")),
            "node {node} has another cluster id than {cluster_id}:\n{properties}"
        );
    }
    let voters = line("CurrentVoters:");
    for id in 0..3 {
        assert!(
            voters.contains(&format!("\"id\": {id}")) || voters.contains(&id.to_string()),
            "{status}"
        );
    }

    let replication = tool(
        &cluster,
        2,
        &["describe", "--replication"],
        "metadata-quorum-replication",
    );
    let rows: Vec<&str> = replication
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 3, "one row per voter:\n{replication}");
    assert!(
        replication.contains("Leader") && replication.contains("Follower"),
        "{replication}"
    );
}
