//! A consumer group outlives its coordinator (issue 4): in a three-node cluster a librdkafka
//! consumer joins a group, consumes and commits; the node leading the group's
//! `__consumer_offsets` partition is SIGKILLed. The partition's new leader rebuilds the group
//! from the replicated records, so, as on Kafka,
//!
//! - FindCoordinator names the new leader, which answers OffsetFetch with the commits made
//!   before the kill and DescribeGroups with the same Stable group and member;
//! - the consumer's heartbeats are accepted by the new coordinator: no rebalance (its
//!   assignment callback ran once), and it goes on consuming and committing there;
//! - once the killed node is back, the group is still served and nothing was consumed twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_e2e::cluster::{ClusterOptions, SpateCluster, create_topic, request, targets_spate};

const TOPIC: &str = "moving";
const GROUP: &str = "movers";
const PARTITIONS: i32 = 3;
/// Records produced before and again after the kill.
const RECORDS: usize = 30;
/// Bound on waiting for anything.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

fn options() -> ClusterOptions {
    ClusterOptions {
        voters: 3,
        sets: [
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "3000"),
            ("auto.leader.rebalance.enable", "false"),
            ("group.initial.rebalance.delay.ms", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

/// Counts the consumer's assignments (each rebalance that hands it partitions).
struct CountingContext {
    assignments: Arc<AtomicUsize>,
}

impl ClientContext for CountingContext {}

impl ConsumerContext for CountingContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assignments.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_group_is_rebuilt_by_the_new_leader_of_its_offsets_partition() {
    if !targets_spate("a_group_is_rebuilt_by_the_new_leader_of_its_offsets_partition") {
        return;
    }
    let mut cluster = SpateCluster::start(options()).unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = group_moves(&mut cluster) {
        panic!("{e:#}\n{}", cluster.logs());
    }
}

fn group_moves(cluster: &mut SpateCluster) -> Result<()> {
    if let Err((code, message)) = create_topic(&cluster.bootstrap(0), TOPIC, PARTITIONS, 3)? {
        bail!("creating {TOPIC}: error {code}: {message}");
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_all())
        .set("acks", "all")
        .create()
        .context("producer")?;
    produce(&producer, 0)?;

    let assignments = Arc::new(AtomicUsize::new(0));
    let consumer: BaseConsumer<CountingContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_all())
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // Long enough that the member outlives the coordinator's failover.
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(CountingContext {
            assignments: assignments.clone(),
        })
        .context("consumer")?;
    consumer.subscribe(&[TOPIC])?;
    let mut seen = consume(&consumer, RECORDS)?;
    commit(&consumer)?;

    let before = coordinator(cluster, &[0, 1, 2])?;
    let (state, members) = describe(&cluster.bootstrap(before))?;
    ensure!(
        state == "Stable" && members.len() == 1,
        "before the kill the group is {state} with {members:?}"
    );
    let sum = committed(&cluster.bootstrap(before))?;
    ensure!(
        sum == RECORDS as i64,
        "the commits before the kill add up to {sum}"
    );

    println!("killing node {before}, the group's coordinator");
    cluster.kill9(before);
    let alive: Vec<usize> = (0..3).filter(|id| *id != before).collect();
    let started = Instant::now();
    let after = coordinator(cluster, &alive)?;
    println!(
        "node {after} coordinates the group {:?} after the kill",
        started.elapsed()
    );
    ensure!(
        after != before,
        "the killed node is still named coordinator"
    );
    let addr = cluster.bootstrap(after);
    ensure!(
        committed(&addr)? == RECORDS as i64,
        "the new coordinator lost commits made before the kill"
    );
    let (state, rebuilt) = describe(&addr)?;
    ensure!(
        state == "Stable" && rebuilt == members,
        "the new coordinator has the group {state} with {rebuilt:?}, was Stable with {members:?}"
    );

    // The member keeps its assignment and goes on through the new coordinator.
    produce(&producer, RECORDS)?;
    seen.extend(consume(&consumer, RECORDS)?);
    commit(&consumer)?;
    ensure!(
        committed(&addr)? == 2 * RECORDS as i64,
        "commits after the kill"
    );
    let (state, still) = describe(&addr)?;
    ensure!(
        state == "Stable" && still == members,
        "after consuming through the new coordinator: {state} with {still:?}"
    );
    let rebalances = assignments.load(Ordering::SeqCst);
    ensure!(
        rebalances == 1,
        "the consumer was assigned partitions {rebalances} times; the move caused a rebalance"
    );

    cluster.restart(before)?;
    cluster.wait_ready(before)?;
    let last = coordinator(cluster, &[0, 1, 2])?;
    ensure!(
        committed(&cluster.bootstrap(last))? == 2 * RECORDS as i64,
        "after the restart of node {before}"
    );
    seen.sort();
    seen.dedup();
    ensure!(
        seen.len() == 2 * RECORDS,
        "{} distinct records consumed of {}",
        seen.len(),
        2 * RECORDS
    );
    Ok(())
}

/// Produces records `first..first + RECORDS`, keyed by number, and waits for every ack.
fn produce(producer: &BaseProducer, first: usize) -> Result<()> {
    for n in first..first + RECORDS {
        let value = n.to_string();
        producer
            .send(BaseRecord::to(TOPIC).key(&value).payload(&value))
            .map_err(|(e, _)| e)
            .context("enqueue")?;
    }
    producer.flush(WAIT_TIMEOUT).context("produce")?;
    Ok(())
}

/// Polls until `count` records arrived; their values.
fn consume(consumer: &BaseConsumer<CountingContext>, count: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut values = Vec::new();
    while values.len() < count {
        ensure!(
            Instant::now() < deadline,
            "consumed {} of {count} records",
            values.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value = message
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                values.push(value.unwrap_or_default());
            }
            // The client reports the lost connection to the killed node, and recovers.
            Some(Err(e)) => println!("consumer: {e}"),
            None => {}
        }
    }
    Ok(values)
}

/// A synchronous commit of the consumer's positions, retried while the coordinator moves.
fn commit(consumer: &BaseConsumer<CountingContext>) -> Result<()> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                println!("commit failed, retrying: {e}");
                // Heartbeats and metadata are served from poll.
                let _ = consumer.poll(Duration::from_millis(200));
            }
            Err(e) => bail!("commit: {e}"),
        }
    }
}

/// The group's coordinator as `asked` nodes see it, once they agree on one that answers.
fn coordinator(cluster: &SpateCluster, asked: &[usize]) -> Result<usize> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let mut named = Vec::new();
        for id in asked {
            let response: Result<FindCoordinatorResponse> = request(
                &cluster.bootstrap(*id),
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![StrBytes::from_static_str(GROUP)]),
            );
            if let Ok(response) = response
                && let Some(c) = response.coordinators.first()
                && c.error_code == 0
            {
                named.push(c.node_id.0 as usize);
            }
        }
        if named.len() == asked.len()
            && named.iter().all(|n| *n == named[0])
            && asked.contains(&named[0])
            // The coordinator has loaded its offsets partition.
            && committed(&cluster.bootstrap(named[0])).is_ok()
        {
            return Ok(named[0]);
        }
        ensure!(
            Instant::now() < deadline,
            "no agreed coordinator among {asked:?}: {named:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of the group's committed offsets over the topic, from OffsetFetch v8.
fn committed(addr: &str) -> Result<i64> {
    let response: OffsetFetchResponse = request(
        addr,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                // Every committed topic.
                .with_topics(None),
        ]),
    )?;
    let group = response.groups.first().context("no group in the answer")?;
    ensure!(
        group.error_code == 0,
        "OffsetFetch error {}",
        group.error_code
    );
    Ok(group
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == TOPIC)
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.committed_offset.max(0))
        .sum())
}

/// The group's state and member ids, from DescribeGroups v5.
fn describe(addr: &str) -> Result<(String, Vec<String>)> {
    let response: DescribeGroupsResponse = request(
        addr,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str(GROUP))]),
    )?;
    let group = response.groups.first().context("no group in the answer")?;
    ensure!(
        group.error_code == 0,
        "DescribeGroups error {}",
        group.error_code
    );
    let mut members: Vec<String> = group
        .members
        .iter()
        .map(|m| m.member_id.as_str().to_string())
        .collect();
    members.sort();
    Ok((group.group_state.as_str().to_string(), members))
}
