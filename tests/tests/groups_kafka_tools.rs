//! Apache Kafka's own `kafka-consumer-groups` (ConsumerGroupCommand from the 4.3.1 tools jar)
//! against the broker: `--list`, `--describe` (offsets, log end offsets, lag, members, state),
//! `--reset-offsets` (dry run and `--execute`), `--delete-offsets` and `--delete`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{
    GroupMember, MemberOptions, MemberProgram, all_consumed, consumer_groups_tool, produce,
    wait_until,
};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

const TOPIC: &str = "tools-groups-topic";
const GROUP: &str = "tools-group";
const PARTITIONS: i32 = 3;

/// The `--describe` rows of `TOPIC`: (partition, current offset, log end offset, lag, consumer id).
fn rows(text: &str) -> Vec<(i32, String, String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let at = cols.iter().position(|c| *c == TOPIC)?;
            let get = |i: usize| cols.get(at + i).map(|s| s.to_string()).unwrap_or_default();
            Some((get(1).parse().ok()?, get(2), get(3), get(4), get(5)))
        })
        .collect()
}

#[test]
fn kafka_consumer_groups_describe_reset_and_delete() {
    if let Err(e) = run() {
        panic!("{e:#}");
    }
}

fn run() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions {
        configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
    })?;
    let work = work_dir(kind, "groups-kafka-tools")?;
    let bootstrap = target.bootstrap();
    let tool = |args: &[&str], name: &str| consumer_groups_tool(&bootstrap, args, &work, name);
    Rdkafka.create_topic(&bootstrap, TOPIC, PARTITIONS, &[], &work)?;
    produce(&bootstrap, TOPIC, PARTITIONS, 0, 300)?;
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
        "the member consumes and commits everything",
        || {
            Ok(all_consumed(&[&member], TOPIC, PARTITIONS, 100)?
                && spate_e2e::groups::last_commits(&member.events()?)
                    .values()
                    .filter(|o| **o == 100)
                    .count()
                    == PARTITIONS as usize)
        },
        || member.logs(),
    )?;

    let list = tool(&["--list"], "01-list")?;
    ensure!(
        list.lines().any(|l| l.trim() == GROUP),
        "--list lacks {GROUP}:\n{list}"
    );

    let described = tool(&["--describe", "--group", GROUP], "02-describe")?;
    let found = rows(&described);
    ensure!(
        found.len() == PARTITIONS as usize,
        "--describe rows:\n{described}"
    );
    for (partition, current, end, lag, consumer) in &found {
        ensure!(
            current == "100" && end == "100" && lag == "0" && consumer != "-",
            "partition {partition}: offset {current}, end {end}, lag {lag}, consumer {consumer}\n{described}"
        );
    }
    let state = tool(
        &["--describe", "--group", GROUP, "--state"],
        "03-describe-state",
    )?;
    ensure!(
        state.contains("Stable"),
        "--state should say Stable:\n{state}"
    );
    let members = tool(
        &["--describe", "--group", GROUP, "--members"],
        "04-describe-members",
    )?;
    ensure!(
        members.contains("member"),
        "--members should list the member:\n{members}"
    );

    // Offsets can only be reset while the group is inactive.
    member.stop()?;
    produce(&bootstrap, TOPIC, PARTITIONS, 300, 30)?;
    let lagging = rows(&tool(&["--describe", "--group", GROUP], "05-describe-lag")?);
    ensure!(
        lagging
            .iter()
            .all(|(_, c, e, l, _)| c == "100" && e == "110" && l == "10"),
        "after 30 more records the lag should be 10 per partition: {lagging:?}"
    );
    let dry = tool(
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--dry-run",
        ],
        "06-reset-dry-run",
    )?;
    ensure!(
        rows(&dry).iter().all(|r| r.1 == "0"),
        "dry run should plan offset 0:\n{dry}"
    );
    let unchanged = rows(&tool(
        &["--describe", "--group", GROUP],
        "07-describe-after-dry-run",
    )?);
    ensure!(
        unchanged.iter().all(|r| r.1 == "100"),
        "a dry run changed offsets: {unchanged:?}"
    );
    tool(
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            &format!("{TOPIC}:1"),
            "--to-offset",
            "42",
            "--execute",
        ],
        "08-reset-to-offset",
    )?;
    tool(
        &[
            "--reset-offsets",
            "--group",
            GROUP,
            "--topic",
            &format!("{TOPIC}:0,2"),
            "--to-earliest",
            "--execute",
        ],
        "09-reset-to-earliest",
    )?;
    let reset = rows(&tool(
        &["--describe", "--group", GROUP],
        "10-describe-after-reset",
    )?);
    let offset_of = |p: i32| reset.iter().find(|r| r.0 == p).map(|r| r.1.clone());
    ensure!(
        offset_of(0).as_deref() == Some("0")
            && offset_of(1).as_deref() == Some("42")
            && offset_of(2).as_deref() == Some("0"),
        "after the resets: {reset:?}"
    );

    // A member started now consumes from the reset offsets.
    let mut again = GroupMember::start(&MemberProgram::Librdkafka, &options, &work, "again")?;
    wait_until(
        Duration::from_secs(60),
        "a new member consumes from the reset offsets",
        || {
            let records = spate_e2e::groups::records(&again.events()?);
            Ok(records.len() >= (110 + 68 + 110))
        },
        || again.logs(),
    )?;
    again.stop()?;

    tool(
        &[
            "--delete-offsets",
            "--group",
            GROUP,
            "--topic",
            &format!("{TOPIC}:2"),
        ],
        "11-delete-offsets",
    )?;
    let after_delete = tool(
        &["--describe", "--group", GROUP],
        "12-describe-after-delete-offsets",
    )?;
    ensure!(
        rows(&after_delete).iter().all(|r| r.0 != 2),
        "partition 2's offset should be gone:\n{after_delete}"
    );
    let deleted = tool(&["--delete", "--group", GROUP], "13-delete")?;
    ensure!(
        deleted.contains("successful"),
        "--delete should report success:\n{deleted}"
    );
    let list = tool(&["--list"], "14-list-after-delete")?;
    ensure!(
        !list.lines().any(|l| l.trim() == GROUP),
        "{GROUP} is still listed after --delete:\n{list}"
    );
    let gone = tool(&["--describe", "--group", GROUP], "15-describe-deleted")
        .context("describing a deleted group")?;
    ensure!(
        gone.contains("does not exist") || gone.contains("Dead") || rows(&gone).is_empty(),
        "a deleted group should be reported missing:\n{gone}"
    );
    Ok(())
}

/// `kafka-consumer-groups --describe` of a KIP-848 consumer group (Java members with
/// `group.protocol=consumer`): the admin client reads it with ConsumerGroupDescribe.
#[test]
fn kafka_consumer_groups_describes_a_consumer_protocol_group() {
    if let Err(e) = consumer_protocol() {
        panic!("{e:#}");
    }
}

fn consumer_protocol() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let target = Target::start(TargetOptions::default())?;
    let work = work_dir(kind, "groups-kafka-tools-kip848")?;
    let bootstrap = target.bootstrap();
    let topic = "tools-kip848-topic";
    let group = "tools-kip848-group";
    Rdkafka.create_topic(&bootstrap, topic, PARTITIONS, &[], &work)?;
    produce(&bootstrap, topic, PARTITIONS, 0, 30)?;
    let options = MemberOptions {
        bootstrap: bootstrap.clone(),
        topics: vec![topic.into()],
        group: group.into(),
        instance_id: None,
        topic_pattern: None,
        assignor: None,
        protocol: Some("consumer".into()),
        session_timeout_ms: None,
    };
    let mut member = GroupMember::start(&MemberProgram::Java, &options, &work, "member")?;
    wait_until(
        Duration::from_secs(60),
        "the consumer-protocol member consumes and commits everything",
        || {
            Ok(all_consumed(&[&member], topic, PARTITIONS, 10)?
                && spate_e2e::groups::last_commits(&member.events()?)
                    .values()
                    .filter(|o| **o == 10)
                    .count()
                    == PARTITIONS as usize)
        },
        || member.logs(),
    )?;
    let described = consumer_groups_tool(
        &bootstrap,
        &["--describe", "--group", group],
        &work,
        "describe",
    )?;
    let rows: Vec<Vec<&str>> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.contains(&topic))
        .collect();
    ensure!(
        rows.len() == PARTITIONS as usize,
        "--describe rows:\n{described}"
    );
    for cols in &rows {
        let at = cols.iter().position(|c| *c == topic).unwrap_or(0);
        ensure!(
            cols.get(at + 2) == Some(&"10")
                && cols.get(at + 4) == Some(&"0")
                && cols.get(at + 5) != Some(&"-"),
            "row {cols:?} should show offset 10, lag 0 and the member\n{described}"
        );
    }
    let state = consumer_groups_tool(
        &bootstrap,
        &["--describe", "--group", group, "--state"],
        &work,
        "state",
    )?;
    ensure!(state.contains("Stable"), "--state:\n{state}");
    member.stop()?;
    Ok(())
}
