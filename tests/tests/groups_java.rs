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

/// KIP-848 online upgrade with the Java client: two `group.protocol=classic` members consume
/// while a producer writes; each is replaced in turn by a `group.protocol=consumer` member
/// (a rolling upgrade). The group converts when the first consumer-protocol member joins, the
/// remaining classic member is served by the server-side assignor until it leaves, and every
/// record is consumed (at least once) with no partition owned by two members at once.
#[test]
fn java_rolling_upgrade_from_classic_to_consumer_protocol() {
    if let Err(e) = rolling_upgrade() {
        panic!("{e:#}");
    }
}

/// When a member owned a partition: `[assigned, revoked or lost)` in ms, and the member.
type Ownership = (i64, i64, String);

/// Per partition, the intervals `[assigned, revoked or lost)` during which each member owned
/// it, from the members' callbacks; `Some(description)` if two members' intervals overlap.
fn overlapping_ownership(members: &[&spate_e2e::groups::GroupMember]) -> Result<Option<String>> {
    use spate_e2e::groups::Event;
    use std::collections::BTreeMap;
    let mut intervals: BTreeMap<(String, i32), Vec<Ownership>> = BTreeMap::new();
    for member in members {
        let mut open: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for event in member.events()? {
            match event {
                Event::Assigned { partitions, ts } => {
                    for p in partitions {
                        open.entry(p).or_insert(ts);
                    }
                }
                Event::Revoked { partitions, ts } | Event::Lost { partitions, ts } => {
                    for p in partitions {
                        if let Some(start) = open.remove(&p) {
                            intervals
                                .entry(p)
                                .or_default()
                                .push((start, ts, member.name.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        for (p, start) in open {
            intervals
                .entry(p)
                .or_default()
                .push((start, i64::MAX, member.name.clone()));
        }
    }
    for (partition, owners) in &intervals {
        for (i, a) in owners.iter().enumerate() {
            for b in &owners[i + 1..] {
                if a.2 != b.2 && a.0 < b.1 && b.0 < a.1 {
                    return Ok(Some(format!(
                        "{partition:?} owned by {} during [{}, {}) and by {} during [{}, {})",
                        a.2, a.0, a.1, b.2, b.0, b.1
                    )));
                }
            }
        }
    }
    Ok(None)
}

fn rolling_upgrade() -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use spate_e2e::groups::{
        GroupMember, MemberOptions, all_consumed, evenly_split, produce, wait_until,
    };

    const PARTITIONS: i32 = 6;
    const BATCH_RECORDS: usize = 60;
    let settle = Duration::from_secs(90);
    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions {
        configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
    })?;
    let name = "groups-java-rolling-upgrade";
    let work = work_dir(kind, name)?;
    let bootstrap = target.bootstrap();
    let topic = format!("{name}-topic");
    Rdkafka.create_topic(&bootstrap, &topic, PARTITIONS, &[], &work)?;
    produce(&bootstrap, &topic, PARTITIONS, 0, 10 * BATCH_RECORDS)?;
    let classic = MemberOptions {
        bootstrap: bootstrap.clone(),
        topics: vec![topic.clone()],
        group: format!("{name}-group"),
        instance_id: None,
        topic_pattern: None,
        assignor: None,
        protocol: Some("classic".into()),
        session_timeout_ms: Some(10_000),
    };
    let consumer = MemberOptions {
        protocol: Some("consumer".into()),
        session_timeout_ms: None,
        ..classic.clone()
    };
    let describe = |members: &[&GroupMember]| {
        members
            .iter()
            .map(|m| format!("{}: owns {:?}\n{}", m.name, m.owned().ok(), m.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let mut c1 = GroupMember::start(&MemberProgram::Java, &classic, &work, "classic-1")?;
    let mut c2 = GroupMember::start(&MemberProgram::Java, &classic, &work, "classic-2")?;
    wait_until(
        settle,
        "two classic members split the partitions",
        || evenly_split(&[&c1, &c2], PARTITIONS),
        || describe(&[&c1, &c2]),
    )?;

    // A producer writes batches of ten records per partition during the whole upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        let bootstrap = bootstrap.clone();
        let topic = topic.clone();
        std::thread::spawn(move || -> Result<usize> {
            let mut next = 10 * BATCH_RECORDS;
            while !stop.load(Ordering::SeqCst) {
                produce(&bootstrap, &topic, PARTITIONS, next, BATCH_RECORDS)?;
                next += BATCH_RECORDS;
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(next)
        })
    };

    let k1 = GroupMember::start(&MemberProgram::Java, &consumer, &work, "consumer-1")?;
    wait_until(
        settle,
        "the first consumer-protocol member joins the converted group and gets its share",
        || evenly_split(&[&c1, &c2, &k1], PARTITIONS),
        || describe(&[&c1, &c2, &k1]),
    )?;
    c1.stop()?;
    wait_until(
        settle,
        "a classic and a consumer-protocol member share the partitions",
        || evenly_split(&[&c2, &k1], PARTITIONS),
        || describe(&[&c2, &k1]),
    )?;
    let k2 = GroupMember::start(&MemberProgram::Java, &consumer, &work, "consumer-2")?;
    wait_until(
        settle,
        "the second consumer-protocol member gets its share",
        || evenly_split(&[&c2, &k1, &k2], PARTITIONS),
        || describe(&[&c2, &k1, &k2]),
    )?;
    c2.stop()?;
    wait_until(
        settle,
        "two consumer-protocol members share the partitions",
        || evenly_split(&[&k1, &k2], PARTITIONS),
        || describe(&[&k1, &k2]),
    )?;
    stop.store(true, Ordering::SeqCst);
    let produced = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let per_partition = (produced / PARTITIONS as usize) as i64;
    let all = [&c1, &c2, &k1, &k2];
    wait_until(
        settle,
        "every produced record is consumed",
        || all_consumed(&all, &topic, PARTITIONS, per_partition),
        || describe(&all),
    )?;
    if let Some(overlap) = overlapping_ownership(&all)? {
        anyhow::bail!("a partition was owned by two members at once: {overlap}");
    }
    Ok(())
}
