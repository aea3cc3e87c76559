//! The Java client (kafka-clients 4.3.1) in consumer groups, with the classic protocol
//! (JoinGroup/SyncGroup) and with the KIP-848 consumer protocol (ConsumerGroupHeartbeat with
//! server-side assignment, OffsetCommit/OffsetFetch v9 with member epochs).

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
