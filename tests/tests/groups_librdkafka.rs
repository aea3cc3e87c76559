//! Consumer groups with librdkafka (confluent-kafka from Python) members as separate processes:
//! the classic protocol's JoinGroup/SyncGroup/Heartbeat/LeaveGroup, OffsetCommit/OffsetFetch,
//! session timeouts (a SIGKILLed member), cooperative-sticky incremental rebalancing and static
//! membership (KIP-345). Runs against Spate, or against Apache Kafka with
//! `SPATE_E2E_TARGET=kafka`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{
    Event, GroupMember, MemberOptions, MemberProgram, last_commits, produce, records, wait_until,
};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

/// Partitions of the test topics.
const PARTITIONS: i32 = 6;
/// Members' `session.timeout.ms` (Kafka's `group.min.session.timeout.ms` is 6 s).
const SESSION_TIMEOUT_MS: u32 = 6_000;
/// What a rebalance after a session expiry may take on top of the session timeout: the
/// rebalance itself, the members' heartbeat interval to notice it, and a loaded CI machine.
const REBALANCE_ALLOWANCE_MS: u64 = 15_000;
/// Bound on a group settling (everyone joined and assigned).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

fn target() -> Result<Target> {
    Target::start(TargetOptions {
        // A short initial delay keeps the tests quick on both brokers.
        configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
    })
}

fn options(target: &Target, topic: &str, group: &str) -> MemberOptions {
    MemberOptions {
        bootstrap: target.bootstrap(),
        topics: vec![topic.to_string()],
        group: group.to_string(),
        instance_id: None,
        topic_pattern: None,
        assignor: None,
        protocol: None,
        session_timeout_ms: Some(SESSION_TIMEOUT_MS),
    }
}

fn describe(members: &[&GroupMember]) -> String {
    members
        .iter()
        .map(|m| {
            let owned = m
                .owned()
                .map(|o| format!("{o:?}"))
                .unwrap_or_else(|e| e.to_string());
            format!("{}: owns {owned}\n{}", m.name, m.logs())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every member owns `per_member` partitions and together they own each partition once.
fn balanced(members: &[&GroupMember], per_member: usize) -> Result<bool> {
    let mut all = BTreeSet::new();
    for m in members {
        let owned = m.owned()?;
        if owned.len() != per_member {
            return Ok(false);
        }
        for p in owned {
            if !all.insert(p) {
                return Ok(false);
            }
        }
    }
    Ok(all.len() == PARTITIONS as usize)
}

/// Every offset below `per_partition` of every partition was consumed by someone.
fn consumed_everything(members: &[&GroupMember], per_partition: i64) -> Result<bool> {
    let mut seen: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for m in members {
        for (_, p, o) in records(&m.events()?) {
            seen.entry(p).or_default().insert(o);
        }
    }
    Ok((0..PARTITIONS).all(|p| {
        seen.get(&p)
            .is_some_and(|offsets| (0..per_partition).all(|o| offsets.contains(&o)))
    }))
}

/// The acceptance test of issue 4: three members on six partitions get two each; a SIGKILLed
/// member's partitions move to the others within the session timeout plus a rebalance, with
/// no record lost and no replay of committed records; after a clean stop and a restart, the
/// group resumes exactly at the committed offsets.
#[test]
fn three_members_split_six_partitions_survive_a_sigkill_and_resume_at_commits() {
    if let Err(e) = three_members() {
        panic!("{e:#}");
    }
}

fn three_members() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = target()?;
    let work = work_dir(kind, "groups-librdkafka-three")?;
    let topic = "groups-three";
    let group = "three-members";
    Rdkafka.create_topic(&target.bootstrap(), topic, PARTITIONS, &[], &work)?;
    produce(&target.bootstrap(), topic, PARTITIONS, 0, 600)?;

    let opts = options(&target, topic, group);
    let mut a = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "a")?;
    let mut b = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "b")?;
    let mut c = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "c")?;
    wait_until(
        SETTLE_TIMEOUT,
        "three members own two partitions each",
        || balanced(&[&a, &b, &c], 2),
        || describe(&[&a, &b, &c]),
    )?;
    wait_until(
        SETTLE_TIMEOUT,
        "the first 600 records are consumed",
        || consumed_everything(&[&a, &b, &c], 100),
        || describe(&[&a, &b, &c]),
    )?;

    // SIGKILL c: it neither leaves nor commits again; its session must expire. What the group
    // committed and consumed so far is the union over the members (a partition may have moved
    // between them while the group formed).
    let c_partitions = c.owned()?;
    let mut commits: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut consumed_to: BTreeMap<i32, i64> = BTreeMap::new();
    for m in [&a, &b, &c] {
        let events = m.events()?;
        for (partition, offset) in last_commits(&events) {
            let e = commits.entry(partition).or_insert(offset);
            *e = (*e).max(offset);
        }
        for (_, p, o) in records(&events) {
            let e = consumed_to.entry(p).or_insert(o + 1);
            *e = (*e).max(o + 1);
        }
    }
    let a_seen = a.events()?.len();
    let b_seen = b.events()?.len();
    c.kill9();
    let moved = wait_until(
        Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) + REBALANCE_ALLOWANCE_MS),
        "the killed member's partitions move to the others",
        || balanced(&[&a, &b], 3),
        || describe(&[&a, &b]),
    )?;
    eprintln!("partitions moved {moved:?} after the SIGKILL");

    produce(&target.bootstrap(), topic, PARTITIONS, 600, 600)?;
    wait_until(
        SETTLE_TIMEOUT,
        "all 1200 records are consumed",
        || consumed_everything(&[&a, &b, &c], 200),
        || describe(&[&a, &b]),
    )?;

    // The new owners of c's partitions start at the group's commits: never before the last
    // logged commit (that would replay committed records), never past what was consumed (a gap).
    for (survivor, seen) in [(&a, a_seen), (&b, b_seen)] {
        let later = &survivor.events()?[seen..];
        for partition in &c_partitions {
            let first = later.iter().find_map(|e| match e {
                Event::Record {
                    topic: t,
                    partition: p,
                    offset,
                    ..
                } if (t, *p) == (&partition.0, partition.1) => Some(*offset),
                _ => None,
            });
            let Some(first) = first else { continue };
            let committed = commits.get(partition).copied().unwrap_or(0);
            let consumed = consumed_to.get(&partition.1).copied().unwrap_or(0);
            ensure!(
                first >= committed && first <= consumed,
                "{} resumed {partition:?} at {first}; the group had committed {committed} and consumed up to {consumed}",
                survivor.name
            );
        }
    }

    // Clean stop (a final commit each), more records, a new generation of members: they start
    // exactly where the group committed.
    a.stop()?;
    b.stop()?;
    produce(&target.bootstrap(), topic, PARTITIONS, 1200, 300)?;
    let mut d = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "d")?;
    let mut e = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "e")?;
    let mut f = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "f")?;
    wait_until(
        SETTLE_TIMEOUT,
        "the restarted group consumes the 300 new records",
        || {
            let mut seen = 0usize;
            for m in [&d, &e, &f] {
                seen += records(&m.events()?).len();
            }
            Ok(seen >= 300)
        },
        || describe(&[&d, &e, &f]),
    )?;
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut total = 0usize;
    for m in [&d, &e, &f] {
        for (_, p, o) in records(&m.events()?) {
            total += 1;
            firsts
                .entry(p)
                .and_modify(|f| *f = (*f).min(o))
                .or_insert(o);
        }
    }
    ensure!(
        total == 300,
        "the restarted group consumed {total} records, expected exactly the 300 uncommitted ones"
    );
    for p in 0..PARTITIONS {
        ensure!(
            firsts.get(&p) == Some(&200),
            "partition {p} resumed at {:?}, expected the committed offset 200",
            firsts.get(&p)
        );
    }
    for m in [&mut d, &mut e, &mut f] {
        m.stop()?;
    }
    Ok(())
}

/// Cooperative-sticky (KIP-429): when a third member joins, the first two give up only the
/// partitions that move to it, seen through their rebalance callbacks.
#[test]
fn cooperative_sticky_join_revokes_only_moved_partitions() {
    if let Err(e) = cooperative_sticky() {
        panic!("{e:#}");
    }
}

fn cooperative_sticky() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = target()?;
    let work = work_dir(kind, "groups-librdkafka-cooperative")?;
    let topic = "groups-cooperative";
    Rdkafka.create_topic(&target.bootstrap(), topic, PARTITIONS, &[], &work)?;
    let mut opts = options(&target, topic, "cooperative");
    opts.assignor = Some("cooperative-sticky".into());
    let mut a = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "a")?;
    let mut b = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "b")?;
    wait_until(
        SETTLE_TIMEOUT,
        "two members own three partitions each",
        || balanced(&[&a, &b], 3),
        || describe(&[&a, &b]),
    )?;
    let a_before = a.owned()?;
    let b_before = b.owned()?;
    let a_seen = a.events()?.len();
    let b_seen = b.events()?.len();
    let mut c = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "c")?;
    wait_until(
        SETTLE_TIMEOUT,
        "three members own two partitions each",
        || balanced(&[&a, &b, &c], 2),
        || describe(&[&a, &b, &c]),
    )?;
    let c_owned = c.owned()?;
    for (member, before, seen) in [(&a, &a_before, a_seen), (&b, &b_before, b_seen)] {
        let events = member.events()?;
        let mut revoked = BTreeSet::new();
        for e in &events[seen..] {
            match e {
                Event::Revoked { partitions, .. } | Event::Lost { partitions, .. } => {
                    revoked.extend(partitions.iter().cloned());
                }
                _ => {}
            }
        }
        ensure!(
            revoked.is_subset(&c_owned),
            "{} revoked {revoked:?}, but only {c_owned:?} moved to the new member",
            member.name
        );
        let kept: BTreeSet<_> = before.difference(&revoked).cloned().collect();
        ensure!(
            kept.is_subset(&member.owned()?) && kept.len() == 2,
            "{} should keep two of {before:?} without a revoke, kept {kept:?}",
            member.name
        );
    }
    for m in [&mut a, &mut b, &mut c] {
        m.stop()?;
    }
    Ok(())
}

/// KIP-345: a static member that restarts within its session timeout gets its partitions back
/// and the rest of the group sees no rebalance at all.
#[test]
fn static_member_restart_within_session_timeout_causes_no_rebalance() {
    if let Err(e) = static_restart() {
        panic!("{e:#}");
    }
}

fn static_restart() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = target()?;
    let work = work_dir(kind, "groups-librdkafka-static")?;
    let topic = "groups-static";
    Rdkafka.create_topic(&target.bootstrap(), topic, PARTITIONS, &[], &work)?;
    let mut opts = options(&target, topic, "static");
    opts.session_timeout_ms = Some(30_000);
    let mut a_opts = opts.clone();
    a_opts.instance_id = Some("instance-a".into());
    let mut b_opts = opts.clone();
    b_opts.instance_id = Some("instance-b".into());
    let mut a = GroupMember::start(&MemberProgram::Librdkafka, &a_opts, &work, "a")?;
    let mut b = GroupMember::start(&MemberProgram::Librdkafka, &b_opts, &work, "b1")?;
    wait_until(
        SETTLE_TIMEOUT,
        "two static members own three partitions each",
        || balanced(&[&a, &b], 3),
        || describe(&[&a, &b]),
    )?;
    let b_partitions = b.owned()?;
    let a_seen = a.events()?.len();
    // A static member's close does not leave the group (KIP-345); it comes back as a new
    // process with the same instance id.
    b.stop()?;
    let b2 = GroupMember::start(&MemberProgram::Librdkafka, &b_opts, &work, "b2")?;
    wait_until(
        SETTLE_TIMEOUT,
        "the restarted static member gets its partitions back",
        || Ok(b2.owned()? == b_partitions),
        || describe(&[&a, &b2]),
    )?;
    // Give a rebalance, had one been started, time to reach the other member.
    std::thread::sleep(Duration::from_secs(3));
    let later: Vec<Event> = a.events()?.split_off(a_seen);
    let rebalances: Vec<&Event> = later
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Assigned { .. } | Event::Revoked { .. } | Event::Lost { .. }
            )
        })
        .collect();
    if !rebalances.is_empty() {
        bail!("the other member saw a rebalance: {rebalances:?}");
    }
    a.stop()?;
    let mut b2 = b2;
    b2.stop()?;
    Ok(())
}

/// Committed offsets and the group survive a broker restart: records in `__consumer_offsets`
/// are read back when the node leads the partition again.
#[test]
fn committed_offsets_survive_a_broker_restart() {
    if let Err(e) = broker_restart() {
        panic!("{e:#}");
    }
}

fn broker_restart() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let mut target = target()?;
    let work = work_dir(kind, "groups-librdkafka-restart")?;
    let topic = "groups-restart";
    Rdkafka.create_topic(&target.bootstrap(), topic, PARTITIONS, &[], &work)?;
    produce(&target.bootstrap(), topic, PARTITIONS, 0, 300)?;
    let opts = options(&target, topic, "restart");
    let mut a = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "a")?;
    wait_until(
        SETTLE_TIMEOUT,
        "the member consumes all 300 records",
        || consumed_everything(&[&a], 50),
        || describe(&[&a]),
    )?;
    a.stop()?;
    target.restart()?;
    produce(&target.bootstrap(), topic, PARTITIONS, 300, 60)?;
    let b = GroupMember::start(&MemberProgram::Librdkafka, &opts, &work, "b")?;
    wait_until(
        SETTLE_TIMEOUT,
        "after the restart, the group consumes the 60 new records",
        || Ok(records(&b.events()?).len() >= 60),
        || describe(&[&b]),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let consumed = records(&b.events()?);
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, p, o) in &consumed {
        firsts
            .entry(*p)
            .and_modify(|f| *f = (*f).min(*o))
            .or_insert(*o);
    }
    ensure!(
        consumed.len() == 60 && (0..PARTITIONS).all(|p| firsts.get(&p) == Some(&50)),
        "after the restart the group should resume at offset 50 everywhere; it consumed {} records from {firsts:?}",
        consumed.len()
    );
    let mut b = b;
    b.stop()?;
    Ok(())
}
