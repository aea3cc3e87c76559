//! Go clients in consumer groups: franz-go, and IBM Sarama as Dapr's `pubsub.kafka` uses it
//! (protocol version 2.0.0 by default, 3.x when configured) with its range, roundrobin and
//! sticky assignors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, ensure};
use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{
    Event, GroupMember, MemberOptions, MemberProgram, SplitScenario, all_consumed, evenly_split,
    produce, split_scenario, wait_until,
};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

/// Partitions of auto-created topics in the Dapr scenario (`num.partitions`).
const AUTO_CREATED_PARTITIONS: i32 = 4;
/// Bound on a group settling.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

fn target(extra: &[(&str, &str)]) -> Result<Target> {
    let mut configs = vec![(
        "group.initial.rebalance.delay.ms".to_string(),
        "300".to_string(),
    )];
    configs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Target::start(TargetOptions { configs })
}

fn run(name: &str, program: MemberProgram, assignor: Option<&str>) -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = target(&[])?;
    let work = work_dir(kind, name)?;
    let bootstrap = target.bootstrap();
    let scenario = SplitScenario {
        program,
        protocol: None,
        assignor: assignor.map(str::to_string),
        session_timeout_ms: Some(10_000),
        name: name.into(),
    };
    split_scenario(&scenario, &bootstrap, &work, &|topic, partitions| {
        Rdkafka.create_topic(&bootstrap, topic, partitions, &[], &work)
    })
}

macro_rules! group_test {
    ($name:ident, $dir:literal, $program:expr, $assignor:expr) => {
        #[test]
        fn $name() {
            if let Err(e) = run($dir, $program, $assignor) {
                panic!("{e:#}");
            }
        }
    };
}

group_test!(
    franz_go_cooperative_sticky,
    "groups-franzgo",
    MemberProgram::FranzGo,
    None
);
group_test!(
    franz_go_range,
    "groups-franzgo-range",
    MemberProgram::FranzGo,
    Some("range")
);
group_test!(
    sarama_2_0_0_range,
    "groups-sarama-200-range",
    MemberProgram::Sarama("2.0.0".into()),
    Some("range")
);
group_test!(
    sarama_2_0_0_roundrobin,
    "groups-sarama-200-roundrobin",
    MemberProgram::Sarama("2.0.0".into()),
    Some("roundrobin")
);
group_test!(
    sarama_2_0_0_sticky,
    "groups-sarama-200-sticky",
    MemberProgram::Sarama("2.0.0".into()),
    Some("sticky")
);
group_test!(
    sarama_3_6_0_range,
    "groups-sarama-360-range",
    MemberProgram::Sarama("3.6.0".into()),
    Some("range")
);

/// Dapr's `pubsub.kafka` pattern on Sarama: the topic is auto-created by the members'
/// Metadata requests; two groups (two Dapr apps) each receive every message; the members of
/// one group (replicas of one app) split the partitions; order per key holds.
#[test]
fn sarama_dapr_two_groups_each_receive_everything_in_key_order() {
    for version in ["2.0.0", "3.6.0"] {
        if let Err(e) = dapr(version) {
            panic!("Sarama {version}: {e:#}");
        }
    }
}

fn dapr(version: &str) -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = target(&[
        ("num.partitions", "4"),
        ("auto.create.topics.enable", "true"),
    ])?;
    let work = work_dir(kind, &format!("groups-sarama-dapr-{version}"))?;
    let topic = format!("dapr-orders-{}", version.replace('.', "-"));
    let program = MemberProgram::Sarama(version.into());
    let options = |group: &str| MemberOptions {
        bootstrap: target.bootstrap(),
        topics: vec![topic.clone()],
        group: group.into(),
        instance_id: None,
        topic_pattern: None,
        assignor: None,
        protocol: None,
        session_timeout_ms: Some(10_000),
    };
    let mut a1 = GroupMember::start(&program, &options("app-a"), &work, "a1")?;
    let mut a2 = GroupMember::start(&program, &options("app-a"), &work, "a2")?;
    let mut b1 = GroupMember::start(&program, &options("app-b"), &work, "b1")?;
    let describe = |members: &[&GroupMember]| {
        members
            .iter()
            .map(|m| format!("{}: {:?}\n{}", m.name, m.owned(), m.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_until(
        SETTLE_TIMEOUT,
        "the replicas of app-a split the auto-created topic",
        || evenly_split(&[&a1, &a2], AUTO_CREATED_PARTITIONS),
        || describe(&[&a1, &a2]),
    )?;
    wait_until(
        SETTLE_TIMEOUT,
        "app-b's single replica owns every partition",
        || Ok(b1.owned()?.len() == AUTO_CREATED_PARTITIONS as usize),
        || describe(&[&b1]),
    )?;
    produce(&target.bootstrap(), &topic, AUTO_CREATED_PARTITIONS, 0, 400)?;
    for (group, members) in [("app-a", vec![&a1, &a2]), ("app-b", vec![&b1])] {
        wait_until(
            SETTLE_TIMEOUT,
            &format!("{group} receives every message"),
            || all_consumed(&members, &topic, AUTO_CREATED_PARTITIONS, 100),
            || describe(&members),
        )?;
    }
    // Per key (one key per partition slot here), each member saw its records in offset order.
    for m in [&a1, &a2, &b1] {
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for event in m.events()? {
            if let Event::Record { offset, key, .. } = event {
                let key = key.unwrap_or_default();
                if let Some(previous) = last.insert(key.clone(), offset) {
                    ensure!(
                        offset > previous,
                        "{}: key {key} went from offset {previous} back to {offset}",
                        m.name
                    );
                }
            }
        }
    }
    let a_partitions: BTreeSet<_> = a1.owned()?.union(&a2.owned()?).cloned().collect();
    ensure!(a_partitions.len() == AUTO_CREATED_PARTITIONS as usize);
    for m in [&mut a1, &mut a2, &mut b1] {
        m.stop()?;
    }
    Ok(())
}
