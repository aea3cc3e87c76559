//! The Java client (kafka-clients 4.3.1) in consumer groups, with the classic protocol
//! (JoinGroup/SyncGroup) and with the KIP-848 consumer protocol (ConsumerGroupHeartbeat with
//! server-side assignment, OffsetCommit/OffsetFetch with member epochs).

use anyhow::Result;
use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{MemberProgram, SplitScenario, split_scenario};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

fn run(name: &str, protocol: &str, assignor: Option<&str>) -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions {
        configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
    })?;
    let work = work_dir(kind, name)?;
    let bootstrap = target.bootstrap();
    let scenario = SplitScenario {
        program: MemberProgram::Java,
        protocol: Some(protocol.into()),
        assignor: assignor.map(str::to_string),
        session_timeout_ms: Some(10_000),
        name: name.into(),
    };
    split_scenario(&scenario, &bootstrap, &work, &|topic, partitions| {
        Rdkafka.create_topic(&bootstrap, topic, partitions, &[], &work)
    })
}

/// `group.protocol=classic` with the default assignors (range, cooperative-sticky).
#[test]
fn java_classic_protocol_group() {
    if let Err(e) = run("groups-java-classic", "classic", None) {
        panic!("{e:#}");
    }
}

/// `group.protocol=classic` with the cooperative-sticky assignor only.
#[test]
fn java_classic_protocol_cooperative_sticky() {
    if let Err(e) = run(
        "groups-java-cooperative",
        "classic",
        Some("cooperative-sticky"),
    ) {
        panic!("{e:#}");
    }
}

/// `group.protocol=consumer` (KIP-848) with the broker's default assignor (uniform).
#[test]
fn java_consumer_protocol_group() {
    if let Err(e) = run("groups-java-consumer", "consumer", None) {
        panic!("{e:#}");
    }
}

/// `group.protocol=consumer` with `group.remote.assignor=range`.
#[test]
fn java_consumer_protocol_range_assignor() {
    if let Err(e) = run("groups-java-consumer-range", "consumer", Some("range")) {
        panic!("{e:#}");
    }
}

/// `subscribe(Pattern)` with `group.protocol=consumer`: the regex goes to the broker
/// (ConsumerGroupHeartbeat v1 `SubscribedTopicRegex`), which assigns the matching topics and
/// picks up a matching topic created later.
#[test]
fn java_consumer_protocol_regex_subscription() {
    if let Err(e) = regex_subscription() {
        panic!("{e:#}");
    }
}

fn regex_subscription() -> Result<()> {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use spate_e2e::groups::{GroupMember, MemberOptions, wait_until};

    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions::default())?;
    let work = work_dir(kind, "groups-java-regex")?;
    let bootstrap = target.bootstrap();
    for (topic, partitions) in [
        ("regex-orders-a", 3),
        ("regex-orders-b", 3),
        ("regex-other", 2),
    ] {
        Rdkafka.create_topic(&bootstrap, topic, partitions, &[], &work)?;
    }
    let options = MemberOptions {
        bootstrap: bootstrap.clone(),
        topics: Vec::new(),
        group: "regex-group".into(),
        instance_id: None,
        topic_pattern: Some("regex-orders-.*".into()),
        assignor: None,
        protocol: Some("consumer".into()),
        session_timeout_ms: None,
    };
    let mut a = GroupMember::start(&MemberProgram::Java, &options, &work, "a")?;
    let mut b = GroupMember::start(&MemberProgram::Java, &options, &work, "b")?;
    let owned_topics = |members: &[&GroupMember]| -> Result<BTreeSet<(String, i32)>> {
        let mut all = BTreeSet::new();
        for m in members {
            all.extend(m.owned()?);
        }
        Ok(all)
    };
    let logs = |members: &[&GroupMember]| {
        members
            .iter()
            .map(|m| format!("{}: {:?}\n{}", m.name, m.owned(), m.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_until(
        Duration::from_secs(90),
        "the members own the six partitions of the two matching topics",
        || {
            let owned = owned_topics(&[&a, &b])?;
            Ok(owned.len() == 6 && owned.iter().all(|(t, _)| t.starts_with("regex-orders-")))
        },
        || logs(&[&a, &b]),
    )?;
    Rdkafka.create_topic(&bootstrap, "regex-orders-c", 2, &[], &work)?;
    wait_until(
        Duration::from_secs(90),
        "a matching topic created later is assigned too",
        || Ok(owned_topics(&[&a, &b])?.len() == 8),
        || logs(&[&a, &b]),
    )?;
    a.stop()?;
    b.stop()?;
    Ok(())
}
