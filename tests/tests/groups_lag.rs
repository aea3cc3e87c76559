//! Consumer lag: `spate groups list|describe` over the Kafka protocol (against Spate, and
//! against Apache Kafka with `SPATE_E2E_TARGET=kafka`), and on Spate the admin API
//! (`/v1/groups`, `/v1/groups/{id}`) and the `spate_consumer_group_lag` Prometheus gauge.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{
    GroupMember, MemberOptions, MemberProgram, all_consumed, last_commits, produce, wait_until,
};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::spate::spate_binary;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

const TOPIC: &str = "lag-topic";
const GROUP: &str = "lag-group";
const PARTITIONS: i32 = 2;

fn spate_cli(args: &[&str]) -> Result<String> {
    let output = Command::new(spate_binary()?)
        .args(args)
        .output()
        .context("cannot run spate")?;
    if !output.status.success() {
        bail!(
            "spate {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A plain HTTP/1.1 GET (the admin API is loopback-only in tests).
fn http_get(address: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).with_context(|| format!("connect {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[test]
fn groups_cli_admin_api_and_metrics_show_lag() {
    if let Err(e) = run() {
        panic!("{e:#}");
    }
}

fn run() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions {
        configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
    })?;
    let work = work_dir(kind, "groups-lag")?;
    let bootstrap = target.bootstrap();
    Rdkafka.create_topic(&bootstrap, TOPIC, PARTITIONS, &[], &work)?;
    produce(&bootstrap, TOPIC, PARTITIONS, 0, 40)?;
    let options = MemberOptions {
        bootstrap: bootstrap.clone(),
        topics: vec![TOPIC.into()],
        group: GROUP.into(),
        instance_id: None,
        topic_pattern: None,
        assignor: None,
        protocol: None,
        session_timeout_ms: Some(10_000),
    };
    let mut member = GroupMember::start(&MemberProgram::Librdkafka, &options, &work, "member")?;
    wait_until(
        Duration::from_secs(60),
        "the member consumes and commits the first 40 records",
        || {
            Ok(all_consumed(&[&member], TOPIC, PARTITIONS, 20)?
                && last_commits(&member.events()?).values().all(|o| *o == 20)
                && last_commits(&member.events()?).len() == PARTITIONS as usize)
        },
        || member.logs(),
    )?;
    let listed: Value = serde_json::from_str(&spate_cli(&[
        "groups",
        "list",
        "--bootstrap",
        &bootstrap,
        "--json",
    ])?)?;
    let entry = listed["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == GROUP))
        .with_context(|| format!("{GROUP} not listed: {listed}"))?;
    ensure!(entry["state"] == "Stable", "state: {entry}");
    let described: Value = serde_json::from_str(&spate_cli(&[
        "groups",
        "describe",
        GROUP,
        "--bootstrap",
        &bootstrap,
        "--json",
    ])?)?;
    ensure!(
        described["members"].as_array().map(Vec::len) == Some(1),
        "one member: {described}"
    );
    member.stop()?;

    // 6 more records on partition 0 and 4 on partition 1, nobody consuming: lag 6 and 4.
    produce(&bootstrap, TOPIC, 1, 40, 6)?;
    produce_to(&bootstrap, 1, 4)?;
    let described: Value = serde_json::from_str(&spate_cli(&[
        "groups",
        "describe",
        GROUP,
        "--bootstrap",
        &bootstrap,
        "--json",
    ])?)?;
    let lag = |p: i64| {
        described["partitions"]
            .as_array()
            .and_then(|ps| ps.iter().find(|r| r["partition"] == p))
            .map(|r| {
                (
                    r["committed_offset"].clone(),
                    r["log_end_offset"].clone(),
                    r["lag"].clone(),
                )
            })
    };
    ensure!(
        lag(0) == Some((20.into(), 26.into(), 6.into()))
            && lag(1) == Some((20.into(), 24.into(), 4.into())),
        "CLI lag per partition: {described}"
    );
    let text = spate_cli(&["groups", "describe", GROUP, "--bootstrap", &bootstrap])?;
    ensure!(
        text.contains("LOG-END-OFFSET") && text.contains(GROUP),
        "table:\n{text}"
    );
    ensure!(
        spate_cli(&[
            "groups",
            "describe",
            "no-such-group",
            "--bootstrap",
            &bootstrap
        ])
        .is_err(),
        "describing a missing group should fail"
    );

    if let Target::Spate(node) = &target {
        let admin = node.listeners()?.admin.clone();
        let (status, body) = http_get(&admin, &format!("/v1/groups/{GROUP}"))?;
        ensure!(status == 200, "GET /v1/groups/{GROUP}: {status} {body}");
        let group: Value = serde_json::from_str(&body)?;
        ensure!(group["total_lag"] == 10, "admin total lag: {group}");
        let (status, body) = http_get(&admin, "/v1/groups")?;
        ensure!(
            status == 200 && body.contains(GROUP),
            "GET /v1/groups: {status} {body}"
        );
        let (status, _) = http_get(&admin, "/v1/groups/no-such-group")?;
        ensure!(status == 404, "a missing group is 404, got {status}");
        let (_, metrics) = http_get(&admin, "/metrics")?;
        let expected = format!(
            "spate_consumer_group_lag{{group=\"{GROUP}\",topic=\"{TOPIC}\",partition=\"0\"}} 6"
        );
        ensure!(
            metrics.contains(&expected),
            "metrics lack {expected}:\n{metrics}"
        );
    }
    Ok(())
}

/// Produces `count` records to partition `partition` of the topic.
fn produce_to(bootstrap: &str, partition: i32, count: usize) -> Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for i in 0..count {
        let key = format!("p{i}");
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .partition(partition)
                    .key(&key)
                    .payload("x"),
            )
            .map_err(|(e, _)| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}
