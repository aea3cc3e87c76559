//! Metadata quorum commit latency and throughput: three voters in this process on loopback TCP,
//! each with its own log directory (real files, fsync per ready cycle), default timing.
//!
//! Before the Criterion runs, three figures are printed from one measured pass each:
//! - commit latency p50/p99 of one small metadata change (a broker config) submitted on the
//!   leader and awaited before the next: one leader fsync, one round trip, one follower fsync;
//! - the same submitted on a follower, which forwards it and replies once it applied it;
//! - throughput in records/s with many changes in flight at once, which the leader decides in
//!   batches (one log entry, one fsync, one round trip per batch).
//!
//! Smoke-run with `cargo bench -p spate-benches --bench quorum -- --test`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use spate_controller::controller::ControllerSettings;
use spate_controller::frontend::{ControllerReply, ControllerRequest, MetadataFrontend};
use spate_controller::quorum::{QuorumOptions, QuorumTiming, RaftQuorum};
use spate_controller::records::CONFIG_RESOURCE_BROKER;
use spate_protocol::types::NodeId;
use tokio::runtime::Runtime;

/// Commits per latency measurement (full run / `--test` smoke run).
const LATENCY_COMMITS: usize = 500;
const SMOKE_LATENCY_COMMITS: usize = 20;
/// Changes in flight at once for the throughput figure.
const CONCURRENT_CHANGES: usize = 256;
/// Changes per throughput measurement (full run / smoke run).
const THROUGHPUT_CHANGES: usize = 20_000;
const SMOKE_THROUGHPUT_CHANGES: usize = 512;

fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Arc<RaftQuorum>>,
    leader: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_cluster() -> Cluster {
    let voters: Vec<(NodeId, String)> = (0..3)
        .map(|id| (NodeId(id), format!("127.0.0.1:{}", free_port())))
        .collect();
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut nodes = Vec::new();
    for (id, dir) in dirs.iter().enumerate() {
        let node = RaftQuorum::start(QuorumOptions {
            node_id: NodeId(id as i32),
            data_dir: dir.path().to_path_buf(),
            cluster_id: "bench".into(),
            listen: voters[id].1.clone(),
            voters: voters.clone(),
            advertised_host: None,
            timing: QuorumTiming::default(),
            controller: ControllerSettings {
                default_partitions: 1,
                default_replication_factor: 3,
            },
        })
        .await
        .expect("quorum starts");
        nodes.push(node);
    }
    let registrations: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            tokio::spawn(async move { node.register_broker(Vec::new(), None).await })
        })
        .collect();
    for registration in registrations {
        registration.await.expect("task").expect("broker registers");
    }
    let leader = loop {
        if let Some(leader) = nodes[0].status().leader {
            break leader.0 as usize;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Cluster {
        _dirs: dirs,
        nodes,
        leader,
    }
}

/// One small metadata change: a dynamic broker config, one record.
fn change(sequence: usize) -> ControllerRequest {
    ControllerRequest::AlterConfigs {
        resource_type: CONFIG_RESOURCE_BROKER,
        resource_name: String::new(),
        changes: vec![(
            format!("bench.key.{}", sequence % 1000),
            Some(sequence.to_string()),
        )],
    }
}

async fn commit(node: &RaftQuorum, sequence: usize) {
    match node.submit(change(sequence)).await {
        Ok(ControllerReply::ConfigsAltered) => {}
        other => panic!("unexpected {other:?}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn latency(node: &RaftQuorum, commits: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(commits);
    for sequence in 0..commits {
        let started = Instant::now();
        commit(node, sequence).await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    samples
}

async fn throughput(node: &Arc<RaftQuorum>, changes: usize) -> Duration {
    let started = Instant::now();
    let mut next = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    while next < changes || !in_flight.is_empty() {
        while next < changes && in_flight.len() < CONCURRENT_CHANGES {
            let node = node.clone();
            let sequence = next;
            in_flight.spawn(async move { commit(&node, sequence).await });
            next += 1;
        }
        in_flight
            .join_next()
            .await
            .expect("a task")
            .expect("commit");
    }
    started.elapsed()
}

fn figures(runtime: &Runtime, cluster: &Cluster) {
    let commits = if smoke() {
        SMOKE_LATENCY_COMMITS
    } else {
        LATENCY_COMMITS
    };
    let follower = (cluster.leader + 1) % 3;
    for (what, node) in [
        ("on the leader", &cluster.nodes[cluster.leader]),
        ("through a follower", &cluster.nodes[follower]),
    ] {
        let samples = runtime.block_on(latency(node, commits));
        println!(
            "quorum commit latency {what} ({commits} sequential changes, 3 voters): p50 {:?}, p99 {:?}, max {:?}",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            samples[samples.len() - 1]
        );
    }
    let changes = if smoke() {
        SMOKE_THROUGHPUT_CHANGES
    } else {
        THROUGHPUT_CHANGES
    };
    let elapsed = runtime.block_on(throughput(&cluster.nodes[cluster.leader], changes));
    println!(
        "quorum throughput ({changes} one-record changes, {CONCURRENT_CHANGES} in flight, 3 voters): {:.0} records/s",
        changes as f64 / elapsed.as_secs_f64()
    );
}

fn benches(c: &mut Criterion, runtime: &Runtime, cluster: &Cluster) {
    let leader = cluster.nodes[cluster.leader].clone();
    let mut group = c.benchmark_group("quorum");
    group.sample_size(20);
    group.bench_function("commit_one_change_on_the_leader", |bench| {
        bench.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                for sequence in 0..iterations as usize {
                    commit(&leader, sequence).await;
                }
                started.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(CONCURRENT_CHANGES as u64));
    group.bench_function("commit_256_concurrent_changes", |bench| {
        bench.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += throughput(&leader, CONCURRENT_CHANGES).await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(criterion_benches, criterion_entry);

fn criterion_entry(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = runtime.block_on(start_cluster());
    figures(&runtime, &cluster);
    benches(c, &runtime, &cluster);
    runtime.block_on(async {
        for node in &cluster.nodes {
            node.shutdown().await;
        }
    });
}

fn main() {
    criterion_benches();
    Criterion::default().configure_from_args().final_summary();
}
