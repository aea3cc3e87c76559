//! CloudEvents on a three-node Spate cluster of real `spate serve` processes on loopback: an
//! event may be POSTed to any node's ingress, whichever node leads its partition.
//!
//! - Keyed events (the `partitionkey` extension, kafka-protocol-binding.md section 3.1) land on
//!   the partition Kafka's murmur2 partitioner gives their key, as librdkafka's Java-compatible
//!   `murmur2` partitioner places the same keys; the receiving node forwards them to the
//!   partition's leader (Produce v9, `acks=all`).
//! - Keyless events stay on a partition the receiving node leads; a batch shares one.
//! - Every event is stored exactly once, as librdkafka reads the topic back.
//! - A trigger dispatches each partition on the node that leads it, and its consumer group's
//!   offsets reach the group's coordinator from every node (OffsetCommit v8 and OffsetFetch v8
//!   forwarded), where librdkafka reads them back (OffsetFetch through FindCoordinator).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::executor::block_on;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use spate_e2e::cloudevents::{Subscriber, http, post};
use spate_e2e::cluster::{self, ClusterOptions, SpateCluster, targets_spate};

/// Nodes in the cluster, all voters.
const NODES: usize = 3;
/// Partitions of the broker's topic: two led by each node.
const PARTITIONS: i32 = 6;
/// The CloudEvents broker and its topic.
const BROKER: &str = "orders";
const TOPIC: &str = "knative-broker-default-orders";
/// The trigger and its consumer group.
const TRIGGER: &str = "audit";
const GROUP: &str = "knative-trigger-default-audit";
/// A plain topic with as many partitions, where librdkafka's murmur2 partitioner places the
/// test's keys: the reference for where the ingress must put them.
const PLACEMENT_TOPIC: &str = "partitionkey-placement";
/// Partition keys tried; enough to hit every partition (checked).
const KEY_COUNT: usize = 36;
/// Single keyless events posted to each node.
const KEYLESS_PER_NODE: usize = 4;
/// Events in the keyless batch posted to each node.
const BATCH_EVENTS: usize = 3;
/// Longest wait for anything asynchronous.
const WAIT: Duration = Duration::from_secs(60);
/// Pause between checks while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// librdkafka's bound on one metadata, offsets or flush call.
const RDKAFKA_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker's count of requests forwarded to another node, by `api`.
const FORWARDED_METRIC: &str = "spate_cloudevents_forwarded_requests_total";
/// FindCoordinator key type of a consumer group.
const COORDINATOR_KEY_GROUP: i8 = 0;

/// A stored event: where it is and what identifies it.
#[derive(Debug, Clone)]
struct Stored {
    partition: i32,
    offset: i64,
    key: Option<String>,
}

/// Creates or updates a CloudEvents resource through a node's admin API (for the cluster).
fn put(admin: &str, path: &str, spec: &Value) -> Result<()> {
    let body = spec.to_string();
    let headers = [("content-type", "application/json")];
    let (status, answer) = http(admin, "PUT", path, &headers, body.as_bytes())?;
    ensure!(
        status == 200 || status == 201,
        "PUT {path} on {admin}: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

fn wait_trigger_ready(admin: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    let path = format!("/v1/triggers/default/{TRIGGER}");
    loop {
        let (_, body) = http(admin, "GET", &path, &[], b"")?;
        let view: Value = serde_json::from_slice(&body).unwrap_or_default();
        if view["status"]["ready"] == true {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "trigger not ready on {admin}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The leader of every partition of the broker's topic, once every node reports them all.
fn wait_for_leaders(cluster: &SpateCluster) -> Result<BTreeMap<i32, i32>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut views = Vec::new();
        for node in 0..NODES {
            let view = cluster::metadata(&cluster.bootstrap(node))?;
            views.push(view.leaders(TOPIC).cloned().unwrap_or_default());
        }
        let complete = views.iter().all(|leaders| {
            leaders.len() == PARTITIONS as usize && leaders.iter().all(|(_, l)| *l >= 0)
        });
        if complete && views.iter().all(|v| *v == views[0]) {
            return Ok(views[0].iter().copied().collect());
        }
        if Instant::now() > deadline {
            bail!("the nodes do not agree on leaders for {TOPIC}: {views:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Where librdkafka's `murmur2` partitioner (Kafka's Java default for keyed records) puts each
/// key among [`PARTITIONS`] partitions.
fn murmur2_partitions(bootstrap: &str, keys: &[String]) -> Result<BTreeMap<String, i32>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2")
        .create()
        .context("cannot create an rdkafka producer")?;
    let mut deliveries = Vec::with_capacity(keys.len());
    for key in keys {
        let record: FutureRecord<'_, str, str> = FutureRecord::to(PLACEMENT_TOPIC)
            .key(key.as_str())
            .payload("");
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("produce {key}: {e}"))?;
        deliveries.push((key.clone(), delivery));
    }
    producer.flush(RDKAFKA_TIMEOUT).context("flush")?;
    let mut placement = BTreeMap::new();
    for (key, delivery) in deliveries {
        match block_on(delivery) {
            Ok(Ok(d)) => placement.insert(key, d.partition),
            Ok(Err((e, _))) => bail!("produce {key}: {e}"),
            Err(_) => bail!("produce {key}: delivery report lost"),
        };
    }
    Ok(placement)
}

/// Every event of the broker's topic by `ce_id`, read from the beginning with librdkafka.
fn read_topic(bootstrap: &str, expected: usize) -> Result<BTreeMap<String, Vec<Stored>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cloudevents-cluster-reader")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create an rdkafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(TOPIC, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut by_id: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < expected && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.context("consume")?;
        let id = message
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == "ce_id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .context("a record without ce_id")?;
        by_id.entry(id).or_default().push(Stored {
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
        });
        read += 1;
    }
    Ok(by_id)
}

/// The high watermark of every partition of the broker's topic.
fn high_watermarks(consumer: &BaseConsumer) -> Result<BTreeMap<i32, i64>> {
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(TOPIC, p, RDKAFKA_TIMEOUT)?;
            Ok((p, high))
        })
        .collect()
}

/// The node coordinating `group`, by FindCoordinator v3 (API key 10).
fn coordinator(bootstrap: &str, group: &str) -> Result<i32> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(COORDINATOR_KEY_GROUP);
    let response: FindCoordinatorResponse =
        cluster::request(bootstrap, ApiKey::FindCoordinator, 3, &request)?;
    ensure!(
        response.error_code == 0,
        "FindCoordinator {group}: error {}",
        response.error_code
    );
    Ok(response.node_id.0)
}

fn binary_headers<'a>(id: &'a str, key: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-source", "/cloudevents-cluster"),
        ("ce-type", "com.example.order.created"),
        ("content-type", "text/plain"),
    ];
    if let Some(key) = key {
        headers.push(("ce-partitionkey", key));
    }
    headers
}

#[test]
fn cloudevents_ingress_and_triggers_on_every_node_of_a_cluster() {
    if !targets_spate("cloudevents_ingress_and_triggers_on_every_node_of_a_cluster") {
        return;
    }
    let cluster = SpateCluster::start(ClusterOptions {
        voters: NODES,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = run(&cluster) {
        panic!("{e:#}\n{}", cluster.logs());
    }
}

fn run(cluster: &SpateCluster) -> Result<()> {
    let admins: Vec<String> = (0..NODES)
        .map(|n| cluster.admin_addr(n))
        .collect::<Result<_>>()?;
    let ingresses: Vec<String> = (0..NODES)
        .map(|n| cluster.cloudevents_addr(n))
        .collect::<Result<_>>()?;
    let subscriber = Subscriber::start();

    // The broker and the trigger, created through one node's admin API: they are metadata
    // records, so every node's ingress serves the broker and every node's dispatcher runs the
    // trigger for the partitions it leads.
    let broker = json!({
        "namespace": "default",
        "name": BROKER,
        "partitions": PARTITIONS,
        "replicationFactor": NODES,
    });
    let trigger = json!({
        "namespace": "default",
        "name": TRIGGER,
        "broker": BROKER,
        "subscriber": { "uri": subscriber.url },
        "delivery": { "retry": 10, "backoffPolicy": "linear", "backoffDelay": "PT0.1S" },
    });
    put(
        &admins[1],
        &format!("/v1/brokers/default/{BROKER}"),
        &broker,
    )?;
    let leaders = wait_for_leaders(cluster)?;
    let led_by = |node: usize| -> BTreeSet<i32> {
        leaders
            .iter()
            .filter(|(_, leader)| **leader == node as i32)
            .map(|(p, _)| *p)
            .collect()
    };
    put(
        &admins[1],
        &format!("/v1/triggers/default/{TRIGGER}"),
        &trigger,
    )?;
    // Ready means every partition the node leads has loaded its committed offset, or committed
    // the end of the partition: through the coordinator, wherever it is.
    for admin in &admins {
        wait_trigger_ready(admin)?;
    }

    // Keys for every partition, placed by librdkafka.
    cluster::create_topic(&cluster.bootstrap(0), PLACEMENT_TOPIC, PARTITIONS, 1)?
        .map_err(|(code, message)| anyhow::anyhow!("create {PLACEMENT_TOPIC}: {code} {message}"))?;
    let keys: Vec<String> = (0..KEY_COUNT).map(|i| format!("customer-{i}")).collect();
    let placement = murmur2_partitions(&cluster.bootstrap_all(), &keys)?;
    let covered: BTreeSet<i32> = placement.values().copied().collect();
    ensure!(
        covered.len() == PARTITIONS as usize,
        "the keys do not cover every partition: {placement:?}"
    );

    // Every key through every node's ingress: most go to a partition another node leads.
    let path = format!("/default/{BROKER}");
    let mut posted = 0;
    for (node, ingress) in ingresses.iter().enumerate() {
        for key in &keys {
            let id = format!("keyed-{node}-{key}");
            let status = post(ingress, &path, &binary_headers(&id, Some(key)), b"keyed")?;
            ensure!(status == 202, "node {node}, key {key}: {status}");
            posted += 1;
        }
    }
    // Keyless events, singly and as one batch, through every node's ingress.
    for (node, ingress) in ingresses.iter().enumerate() {
        for i in 0..KEYLESS_PER_NODE {
            let id = format!("keyless-{node}-{i}");
            let status = post(ingress, &path, &binary_headers(&id, None), b"keyless")?;
            ensure!(status == 202, "node {node}, keyless {i}: {status}");
            posted += 1;
        }
        let batch: Vec<Value> = (0..BATCH_EVENTS)
            .map(|i| {
                json!({
                    "specversion": "1.0",
                    "id": format!("batch-{node}-{i}"),
                    "source": "/cloudevents-cluster",
                    "type": "com.example.order.created",
                })
            })
            .collect();
        let headers = [("content-type", "application/cloudevents-batch+json")];
        let body = Value::Array(batch).to_string();
        let status = post(ingress, &path, &headers, body.as_bytes())?;
        ensure!(status == 202, "node {node}, keyless batch: {status}");
        posted += BATCH_EVENTS;
    }

    // Every event stored exactly once, keyed ones where Kafka's partitioner puts their key.
    let stored = read_topic(&cluster.bootstrap_all(), posted)?;
    let offsets_reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_all())
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create an rdkafka consumer")?;
    let ends = high_watermarks(&offsets_reader)?;
    let total: i64 = ends.values().sum();
    ensure!(
        total == posted as i64,
        "{posted} events posted, {total} records in {TOPIC} ({ends:?})"
    );
    ensure!(
        stored.len() == posted,
        "{} distinct events read of {posted}",
        stored.len()
    );
    for (id, copies) in &stored {
        ensure!(copies.len() == 1, "{id} stored {} times", copies.len());
        let event = &copies[0];
        if let Some(key) = &event.key {
            let expected = placement[key];
            ensure!(
                event.partition == expected,
                "{id} (key {key}) on partition {}, murmur2 says {expected}",
                event.partition
            );
        }
    }
    for node in 0..NODES {
        let led = led_by(node);
        // A node that leads nothing spreads keyless events over all partitions.
        let allowed = |p: i32| led.is_empty() || led.contains(&p);
        for i in 0..KEYLESS_PER_NODE {
            let id = format!("keyless-{node}-{i}");
            let event = &stored
                .get(&id)
                .with_context(|| format!("{id} not stored"))?[0];
            ensure!(event.key.is_none(), "{id} has a key");
            ensure!(
                allowed(event.partition),
                "{id} posted to node {node} (leader of {led:?}) is on partition {}",
                event.partition
            );
        }
        let batch: Vec<&Stored> = (0..BATCH_EVENTS)
            .map(|i| {
                let id = format!("batch-{node}-{i}");
                stored
                    .get(&id)
                    .map(|copies| &copies[0])
                    .with_context(|| format!("{id} not stored"))
            })
            .collect::<Result<_>>()?;
        let first = batch[0];
        ensure!(
            allowed(first.partition),
            "node {node}'s batch is on partition {}, it leads {led:?}",
            first.partition
        );
        for (i, event) in batch.iter().enumerate() {
            ensure!(
                event.partition == first.partition && event.offset == first.offset + i as i64,
                "node {node}'s batch is not one append: {batch:?}"
            );
        }
    }

    // The trigger delivers everything, each partition from its leader.
    let wanted: BTreeSet<String> = stored.keys().cloned().collect();
    let delivered = subscriber.wait_for_ids(&wanted, WAIT);
    let missing: Vec<&String> = wanted.difference(&delivered).collect();
    ensure!(missing.is_empty(), "not delivered: {missing:?}");

    // The group's offsets reach the end of every partition, committed by each partition's
    // leader to one coordinator; some leaders are not it, so their commits were forwarded.
    let coordinator = coordinator(&cluster.bootstrap(0), GROUP)?;
    ensure!(
        leaders.values().any(|leader| *leader != coordinator),
        "node {coordinator} coordinates {GROUP} and leads every partition: {leaders:?}"
    );
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition(TOPIC, p);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let committed: BTreeMap<i32, i64> = offsets_reader
            .committed_offsets(assignment.clone(), RDKAFKA_TIMEOUT)?
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
            .collect();
        if committed == ends {
            break;
        }
        if Instant::now() > deadline {
            bail!("{GROUP} committed {committed:?}, partitions end at {ends:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }

    // The hops really happened: every node forwarded appends (it leads a third of the
    // partitions), the nodes that lead partitions without coordinating the group forwarded
    // their commits, and the coordinator forwarded none.
    for node in 0..NODES {
        let forwarded = |api: &str| cluster.metric_with(node, FORWARDED_METRIC, api);
        let produce = forwarded(r#"api="Produce""#)?;
        ensure!(produce > 0.0, "node {node} forwarded no Produce");
        let commits = forwarded(r#"api="OffsetCommit""#)?;
        if node as i32 == coordinator {
            ensure!(
                commits == 0.0,
                "the coordinator forwarded {commits} commits"
            );
        } else if !led_by(node).is_empty() {
            ensure!(commits > 0.0, "node {node} forwarded no OffsetCommit");
        }
    }
    Ok(())
}
