//! Partition replication seen from outside a three-node Spate cluster on loopback (issue 6):
//!
//! - with two of three nodes down (clean stops, which take them out of the ISR first), Produce
//!   with `acks=all` is refused with NOT_ENOUGH_REPLICAS while `acks=1` still appends (Kafka's
//!   `min.insync.replicas` semantics), and writes resume once the nodes are back;
//! - Apache Kafka's `kafka-topics --describe` lists the leaders, replicas and ISRs Spate's
//!   Metadata reports;
//! - Apache Kafka's `kafka-leader-election` (ElectLeaders, API 43) moves leadership back to the
//!   preferred replica, and reports "not needed" when it leads already;
//! - after a leader dies, a node whose Metadata names it the new leader takes a produce at once,
//!   even while it is still taking up many leaderships.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use spate_e2e::cluster::{ClusterOptions, SpateCluster, targets_spate};
use spate_e2e::kafka::{TOPIC_COMMAND, run_tool};
use spate_e2e::workload::{self, PartitionView};

/// Kafka's `kafka-leader-election` main class.
const LEADER_ELECTION_COMMAND: &str = "org.apache.kafka.tools.LeaderElectionCommand";
/// Kafka's NOT_ENOUGH_REPLICAS.
const NOT_ENOUGH_REPLICAS: i16 = 19;
/// Bound on waiting for the cluster to converge.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

fn options() -> ClusterOptions {
    ClusterOptions {
        voters: 3,
        sets: [
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "3000"),
            ("auto.leader.rebalance.enable", "false"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("admin client")?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = futures::executor::block_on(admin.create_topics(
        [&topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("creating {name}: {code:?}");
        }
    }
    Ok(())
}

fn addresses(cluster: &SpateCluster, nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| cluster.bootstrap(*i)).collect()
}

/// Waits until `addr` reports what `wanted` accepts for every partition of `topic`.
fn wait_for(
    addr: &str,
    topic: &str,
    what: &str,
    wanted: impl Fn(&PartitionView) -> bool,
) -> Result<Vec<PartitionView>> {
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        // A topic just created may not be in this node's metadata yet.
        let views = workload::partitions(addr, topic);
        if let Ok(views) = &views
            && !views.is_empty()
            && views.iter().all(&wanted)
        {
            return Ok(views.clone());
        }
        if std::time::Instant::now() > deadline {
            bail!("{topic} at {addr} never got {what}: {views:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `scenario` on a fresh three-node cluster (when the tests target Spate), failing with
/// the nodes' logs.
fn on_a_cluster(name: &str, scenario: fn(&mut SpateCluster) -> Result<()>) {
    if !targets_spate(name) {
        return;
    }
    let mut cluster = SpateCluster::start(options()).unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = scenario(&mut cluster) {
        panic!("{e:#}\n{}", cluster.logs());
    }
}

#[test]
fn with_two_of_three_nodes_down_acks_all_is_refused_and_acks_1_is_not() {
    on_a_cluster(
        "with_two_of_three_nodes_down_acks_all_is_refused_and_acks_1_is_not",
        two_down,
    );
}

/// An idempotent producer's batches reach every replica with their producer id, epoch and
/// sequence numbers: after the leader stops, the new leader serves the same records under the
/// same producer and sequences, which is what lets it deduplicate a retried batch.
#[test]
fn idempotent_batches_keep_their_producer_and_sequences_on_the_new_leader() {
    on_a_cluster(
        "idempotent_batches_keep_their_producer_and_sequences_on_the_new_leader",
        producer_state_moves,
    );
}

fn producer_state_moves(cluster: &mut SpateCluster) -> Result<()> {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    const TOPIC: &str = "idempotent-moves";
    const RECORDS: i32 = 12;
    create_topic(
        &cluster.bootstrap_all(),
        TOPIC,
        1,
        &[("min.insync.replicas", "2")],
    )?;
    workload::wait_fully_in_sync(&addresses(cluster, &[0, 1, 2]), TOPIC, WAIT_TIMEOUT)?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_all())
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .context("idempotent producer")?;
    for i in 0..RECORDS {
        let value = format!("record {i}");
        // One record per flush: one batch each, so sequences advance batch by batch.
        producer
            .send(
                BaseRecord::<(), str>::to(TOPIC)
                    .partition(0)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .context("send")?;
        producer.flush(Duration::from_secs(30)).context("flush")?;
    }
    drop(producer);
    let leader = workload::partitions(&cluster.bootstrap(0), TOPIC)?[0].leader as usize;
    let before = workload::record_origins(&cluster.bootstrap(leader), TOPIC, 0, 0, 100)?;
    cluster.stop(leader)?;
    let other = (leader + 1) % 3;
    let moved = wait_for(&cluster.bootstrap(other), TOPIC, "a new leader", |p| {
        p.leader >= 0 && p.leader != leader as i32
    })?;
    // The new leader serves the records once its high watermark has caught up: a follower
    // learns the high watermark one fetch late, and the remaining follower's next fetch moves
    // it on, as in Kafka.
    let new_leader = cluster.bootstrap(moved[0].leader as usize);
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    let after = loop {
        let after = workload::record_origins(&new_leader, TOPIC, 0, 0, 100)?;
        if after.len() >= before.len() || std::time::Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        before.len() == RECORDS as usize,
        "the old leader holds {} records: {before:?}",
        before.len()
    );
    ensure!(
        after == before,
        "the new leader's records differ from the old leader's:\n{before:?}\n{after:?}"
    );
    let producer_id = after[0].producer_id;
    ensure!(producer_id >= 0, "not an idempotent batch: {after:?}");
    for (i, o) in after.iter().enumerate() {
        ensure!(
            o.producer_id == producer_id && o.sequence == i as i32 && o.offset == i as i64,
            "record {i}: {o:?}"
        );
    }
    Ok(())
}

/// A node whose Metadata names it the leader of a partition accepts a produce to it at once,
/// even while it is still taking up the leaderships of a failed node: producers are sent there by
/// that very answer, and a batch refused in that moment (while the next one is taken) leaves a
/// gap in an idempotent producer's sequence numbers, on which librdkafka re-sends records under a
/// new producer epoch and duplicates any the old leader had written.
#[test]
fn a_node_named_leader_by_its_own_metadata_accepts_produce_at_once() {
    on_a_cluster(
        "a_node_named_leader_by_its_own_metadata_accepts_produce_at_once",
        takes_over_at_once,
    );
}

fn takes_over_at_once(cluster: &mut SpateCluster) -> Result<()> {
    const TOPIC: &str = "takeover";
    // Many partitions, so taking over a third of them takes the new leaders a moment.
    const PARTITIONS: i32 = 60;
    const VICTIM: i32 = 0;
    create_topic(&cluster.bootstrap_all(), TOPIC, PARTITIONS, &[])?;
    workload::wait_fully_in_sync(&addresses(cluster, &[0, 1, 2]), TOPIC, WAIT_TIMEOUT)?;
    let moved: Vec<i32> = workload::partitions(&cluster.bootstrap(1), TOPIC)?
        .iter()
        .filter(|p| p.leader == VICTIM)
        .map(|p| p.partition)
        .collect();
    ensure!(!moved.is_empty(), "node {VICTIM} leads nothing");
    cluster.kill9(VICTIM as usize);
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    let mut produced = std::collections::BTreeSet::new();
    while produced.len() < moved.len() {
        ensure!(
            std::time::Instant::now() < deadline,
            "only {produced:?} of {moved:?} got a new leader"
        );
        for node in [1, 2] {
            let addr = cluster.bootstrap(node);
            let Ok(views) = workload::partitions(&addr, TOPIC) else {
                continue;
            };
            let taken: Vec<i32> = views
                .iter()
                .filter(|v| v.leader == node as i32 && moved.contains(&v.partition))
                .map(|v| v.partition)
                .filter(|p| !produced.contains(p))
                .collect();
            for partition in taken {
                let (code, _) = workload::produce_raw(&addr, TOPIC, partition, 1, "moved")?;
                ensure!(
                    code == 0,
                    "node {node} named itself leader of partition {partition} and answered a \
                     produce there with error {code}"
                );
                produced.insert(partition);
            }
        }
    }
    Ok(())
}

/// Waits until node `id`'s Prometheus metrics satisfy `wanted` (gauges are refreshed on a
/// schedule, not on every change).
fn wait_metrics(
    cluster: &SpateCluster,
    id: usize,
    what: &str,
    wanted: impl Fn(&dyn Fn(&str) -> f64) -> bool,
) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        let read = |name: &str| cluster.metric(id, name).unwrap_or(f64::NAN);
        if wanted(&read) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "node {id}'s metrics never showed {what}: under-replicated {}, under min ISR {}, offline {}, ISR shrinks {}, expands {}",
                read("spate_under_replicated_partitions"),
                read("spate_under_min_isr_partitions"),
                read("spate_offline_partitions"),
                read("spate_isr_shrinks_total"),
                read("spate_isr_expands_total")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn two_down(cluster: &mut SpateCluster) -> Result<()> {
    const TOPIC: &str = "two-down";
    create_topic(
        &cluster.bootstrap_all(),
        TOPIC,
        1,
        &[("min.insync.replicas", "2")],
    )?;
    workload::wait_fully_in_sync(&addresses(cluster, &[0, 1, 2]), TOPIC, WAIT_TIMEOUT)?;
    let leader = workload::partitions(&cluster.bootstrap(0), TOPIC)?[0].leader as usize;
    let addr = cluster.bootstrap(leader);
    let (code, offset) = workload::produce_raw(&addr, TOPIC, 0, -1, "all three up")?;
    ensure!(
        code == 0 && offset == 0,
        "acks=all with three in sync: error {code}, offset {offset}"
    );

    // Stop the two others cleanly: each leaves the ISR through the controller before it exits
    // (the second one takes the metadata quorum's majority with it).
    let others: Vec<usize> = (0..3).filter(|n| *n != leader).collect();
    for node in &others {
        cluster.stop(*node)?;
    }
    let views = wait_for(&addr, TOPIC, "an ISR of the leader alone", |p| {
        p.leader == leader as i32 && p.isr == vec![leader as i32]
    })?;
    println!("with nodes {others:?} down: {views:?}");
    // The leader's metrics say so: one partition under-replicated and under its minimum ISR.
    // (Clean stops leave the ISR through the controller, so no leader-side shrink is counted.)
    wait_metrics(cluster, leader, "the leader alone in the ISR", |m| {
        m("spate_under_replicated_partitions") >= 1.0 && m("spate_under_min_isr_partitions") >= 1.0
    })?;
    let (code, _) = workload::produce_raw(&addr, TOPIC, 0, -1, "refused")?;
    ensure!(
        code == NOT_ENOUGH_REPLICAS,
        "acks=all with one in-sync replica of min.insync.replicas=2: error {code}, want {NOT_ENOUGH_REPLICAS}"
    );
    let (code, offset) = workload::produce_raw(&addr, TOPIC, 0, 1, "acks=1 still works")?;
    ensure!(code == 0, "acks=1 with one replica left: error {code}");
    ensure!(
        offset == 1,
        "acks=1 appended at {offset}, want 1 (the refused record was not appended)"
    );

    // Back to three: the ISR grows again and acks=all is accepted.
    for node in &others {
        cluster.restart(*node)?;
    }
    workload::wait_fully_in_sync(&addresses(cluster, &[0, 1, 2]), TOPIC, WAIT_TIMEOUT)?;
    let leader = workload::partitions(&cluster.bootstrap(0), TOPIC)?[0].leader as usize;
    // The followers rejoined through the leader: ISR expansions counted, nothing under-
    // replicated or offline.
    wait_metrics(cluster, leader, "the ISR whole again", |m| {
        m("spate_under_replicated_partitions") == 0.0
            && m("spate_under_min_isr_partitions") == 0.0
            && m("spate_offline_partitions") == 0.0
            && m("spate_isr_expands_total") >= 1.0
    })?;
    let (code, offset) =
        workload::produce_raw(&cluster.bootstrap(leader), TOPIC, 0, -1, "all three back")?;
    ensure!(
        code == 0,
        "acks=all after the nodes came back: error {code}"
    );
    ensure!(
        offset == 2,
        "appended at {offset}, want 2: the acks=1 record survived"
    );
    let log = workload::read_all(&cluster.bootstrap_all(), TOPIC, 1, WAIT_TIMEOUT)?;
    let values: Vec<&str> = log[&0].iter().map(|(_, v)| v.as_str()).collect();
    ensure!(
        values == ["all three up", "acks=1 still works", "all three back"],
        "partition holds {values:?}"
    );
    Ok(())
}

/// The per-partition lines of `kafka-topics --describe`: (partition, leader, replicas, isr).
fn described(text: &str) -> Vec<(i32, i32, Vec<i32>, Vec<i32>)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = line.split(&format!("{name}: ")).nth(1)?;
        Some(
            rest.split('\t')
                .next()?
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
        )
    };
    let ids = |text: Option<String>| -> Vec<i32> {
        text.unwrap_or_default()
            .split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    };
    text.lines()
        .filter(|l| l.contains("Partition: "))
        .filter_map(|line| {
            Some((
                field(line, "Partition")?.parse().ok()?,
                field(line, "Leader")?.parse().ok()?,
                ids(field(line, "Replicas")),
                ids(field(line, "Isr")),
            ))
        })
        .collect()
}

fn kafka_topics_describe(cluster: &SpateCluster, topic: &str, name: &str) -> Result<String> {
    let args: Vec<String> = [
        "--bootstrap-server",
        &cluster.bootstrap_all(),
        "--describe",
        "--topic",
        topic,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_tool(TOPIC_COMMAND, &args, cluster.dir(0), name)?.stdout_text()
}

fn leader_election(cluster: &SpateCluster, args: &[&str], name: &str) -> Result<String> {
    let mut full = vec!["--bootstrap-server".to_string(), cluster.bootstrap_all()];
    full.extend(args.iter().map(|s| s.to_string()));
    let output = run_tool(LEADER_ELECTION_COMMAND, &full, cluster.dir(0), name)?;
    let stdout = std::fs::read_to_string(&output.stdout).unwrap_or_default();
    let stderr = std::fs::read_to_string(&output.stderr).unwrap_or_default();
    Ok(format!("{stdout}{stderr}"))
}

#[test]
fn kafka_topics_describe_and_kafka_leader_election_work_against_spate() {
    on_a_cluster(
        "kafka_topics_describe_and_kafka_leader_election_work_against_spate",
        tools,
    );
}

fn tools(cluster: &mut SpateCluster) -> Result<()> {
    const TOPIC: &str = "elected";
    create_topic(
        &cluster.bootstrap_all(),
        TOPIC,
        3,
        &[("min.insync.replicas", "2")],
    )?;
    let all = addresses(cluster, &[0, 1, 2]);
    workload::wait_fully_in_sync(&all, TOPIC, WAIT_TIMEOUT)?;

    // kafka-topics --describe shows what Metadata says.
    let text = kafka_topics_describe(cluster, TOPIC, "kafka-topics-describe")?;
    println!("{text}");
    let views = workload::partitions(&cluster.bootstrap(0), TOPIC)?;
    let mut rows = described(&text);
    rows.sort();
    let expected: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = views
        .iter()
        .map(|v| (v.partition, v.leader, v.replicas.clone(), v.isr.clone()))
        .collect();
    ensure!(
        rows == expected,
        "kafka-topics says {rows:?}, Metadata says {expected:?}"
    );

    // Take leadership away from partition 0's preferred replica: stop it cleanly, start it again.
    let preferred = views[0].replicas[0] as usize;
    cluster.stop(preferred)?;
    let survivor = (0..3).find(|n| *n != preferred).context("a survivor")?;
    wait_for(
        &cluster.bootstrap(survivor),
        TOPIC,
        "a new leader for partition 0",
        |p| p.partition != 0 || (p.leader >= 0 && p.leader != preferred as i32),
    )?;
    cluster.restart(preferred)?;
    workload::wait_fully_in_sync(&all, TOPIC, WAIT_TIMEOUT)?;
    let moved = workload::partitions(&cluster.bootstrap(0), TOPIC)?;
    ensure!(
        moved[0].leader != preferred as i32,
        "automatic rebalancing is off, yet partition 0 went back: {moved:?}"
    );

    // The tool brings it back, and says so.
    let out = leader_election(
        cluster,
        &["--election-type", "PREFERRED", "--all-topic-partitions"],
        "leader-election-preferred",
    )?;
    println!("{out}");
    ensure!(
        out.contains("Successfully completed leader election (PREFERRED)")
            && out.contains(&format!("{TOPIC}-0")),
        "kafka-leader-election said:\n{out}"
    );
    let back = wait_for(
        &cluster.bootstrap(0),
        TOPIC,
        "every preferred replica leading",
        |p| p.leader == p.replicas[0],
    )?;
    println!("after the election: {back:?}");

    // Asked again for one partition: nothing to do.
    let out = leader_election(
        cluster,
        &[
            "--election-type",
            "PREFERRED",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
        "leader-election-not-needed",
    )?;
    println!("{out}");
    ensure!(
        out.contains("Valid replica already elected for partitions"),
        "kafka-leader-election said:\n{out}"
    );
    // An unclean election of a partition that has a leader is not needed either.
    let out = leader_election(
        cluster,
        &[
            "--election-type",
            "UNCLEAN",
            "--topic",
            TOPIC,
            "--partition",
            "1",
        ],
        "leader-election-unclean",
    )?;
    println!("{out}");
    ensure!(
        out.contains("Valid replica already elected for partitions"),
        "kafka-leader-election said:\n{out}"
    );
    let text = kafka_topics_describe(cluster, TOPIC, "kafka-topics-describe-after")?;
    let mut rows = described(&text);
    rows.sort();
    let views = workload::partitions(&cluster.bootstrap(0), TOPIC)?;
    let expected: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = views
        .iter()
        .map(|v| (v.partition, v.leader, v.replicas.clone(), v.isr.clone()))
        .collect();
    ensure!(
        rows == expected,
        "kafka-topics says {rows:?}, Metadata says {expected:?}"
    );
    Ok(())
}

#[test]
fn an_offset_commit_is_answered_once_the_offsets_replicas_have_it() {
    if !targets_spate("an_offset_commit_is_answered_once_the_offsets_replicas_have_it") {
        return;
    }
    let mut options = options();
    // Frozen followers stay in the ISR for the whole test: the commit must wait for them.
    options
        .sets
        .retain(|(key, _)| key != "replica.lag.time.max.ms");
    options
        .sets
        .push(("replica.lag.time.max.ms".into(), "30000".into()));
    let mut cluster = SpateCluster::start(options).unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = commit_waits(&mut cluster) {
        // Never leave a node frozen behind a failure.
        for id in 0..3 {
            cluster.resume(id);
        }
        panic!("{e:#}\n{}", cluster.logs());
    }
}

fn commit_waits(cluster: &mut SpateCluster) -> Result<()> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetFetchRequest,
        OffsetFetchResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use spate_e2e::cluster::request;

    const GROUP: &str = "replicated-commits";
    const TOPIC: &str = "committed";
    create_topic(&cluster.bootstrap_all(), TOPIC, 1, &[])?;

    // The coordinator, once the offsets topic exists and its partitions are fully in sync.
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    let coordinator = loop {
        let response: FindCoordinatorResponse = request(
            &cluster.bootstrap(0),
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![StrBytes::from_static_str(GROUP)]),
        )?;
        if let Some(c) = response.coordinators.first()
            && c.error_code == 0
        {
            break c.node_id.0 as usize;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no coordinator: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for(
        &cluster.bootstrap(coordinator),
        "__consumer_offsets",
        "full ISRs",
        |p| p.isr.len() == 3,
    )?;

    // The coordinator may still be loading the offsets partition: retriable codes.
    loop {
        let code = commit_to(&cluster.bootstrap(coordinator), GROUP, TOPIC, 7)?;
        if code == 0 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the first commit failed with error {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Freeze both followers of every offsets partition the coordinator leads, commit, and see
    // the answer wait for them.
    let followers: Vec<usize> = (0..3).filter(|id| *id != coordinator).collect();
    for id in &followers {
        cluster.pause(*id);
    }
    let started = std::time::Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = cluster.bootstrap(coordinator);
    let committer = std::thread::spawn(move || {
        let _ = tx.send(commit_to(&addr, GROUP, TOPIC, 42));
    });
    let early = rx.recv_timeout(Duration::from_millis(1_500));
    for id in &followers {
        cluster.resume(*id);
    }
    ensure!(
        early.is_err(),
        "the commit was answered ({early:?}) after {:?}, while no follower could have it",
        started.elapsed()
    );
    let answered = rx
        .recv_timeout(Duration::from_secs(10))
        .context("no answer to the commit after the followers resumed")??;
    let _ = committer.join();
    ensure!(answered == 0, "the commit failed with error {answered}");
    println!(
        "commit answered {:?} after it was sent (followers frozen for 1.5 s)",
        started.elapsed()
    );

    let fetched: OffsetFetchResponse = request(
        &cluster.bootstrap(coordinator),
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_indexes(vec![0]),
            ])),
    )?;
    let offset = fetched.topics[0].partitions[0].committed_offset;
    ensure!(offset == 42, "OffsetFetch says {offset}");
    Ok(())
}

/// One simple OffsetCommit (no generation) of `offset` for partition 0 of `topic`.
fn commit_to(addr: &str, group: &str, topic: &str, offset: i64) -> Result<i16> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let response: OffsetCommitResponse = spate_e2e::cluster::request(
        addr,
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]),
    )?;
    Ok(response.topics[0].partitions[0].error_code)
}
