//! Apache Kafka's own command-line tools, `kafka-topics` (TopicCommand) and `kafka-configs`
//! (ConfigCommand) from the 4.3.1 jars: list, describe and alter topics and their configs.

use anyhow::{Result, bail, ensure};
use spate_e2e::compat::{Recorder, Status};
use spate_e2e::kafka::{CONFIG_COMMAND, KAFKA_VERSION, TOPIC_COMMAND, run_tool};
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

const TOPIC: &str = "tools-topic";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// The per-partition lines of `kafka-topics --describe`, as partition numbers.
fn described_partitions(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split("Partition: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn kafka_topics_and_kafka_configs_list_describe_and_alter() {
    if let Err(e) = run() {
        panic!("{e:#}");
    }
}

/// Every step, in order: the columns of the tools table.
const FEATURES: &[&str] = &[
    "kafka-topics --create",
    "kafka-topics --list",
    "kafka-topics --describe",
    "kafka-topics --alter --partitions",
    "kafka-configs --alter --add-config",
    "kafka-configs --describe --all",
    "kafka-configs --alter --delete-config",
];

fn run() -> Result<()> {
    let kind = TargetKind::from_env()?;
    let mut results = Recorder::new(
        "tools",
        "kafka-tools",
        &format!("Apache Kafka {KAFKA_VERSION} kafka-topics and kafka-configs"),
        kind,
    )?;
    let target = match Target::start_kind(kind, TargetOptions::default()) {
        Ok(t) => t,
        Err(e) => {
            for feature in FEATURES {
                results.record(feature, Status::Fail, "the broker did not start")?;
            }
            return Err(e);
        }
    };
    let work = work_dir(kind, "kafka-tools")?;
    let bootstrap = target.bootstrap();
    let mut failures = Vec::new();
    let mut step = 0;
    let mut tool = |class: &str, args: &[&str]| -> Result<String> {
        step += 1;
        let mut full = strings(&["--bootstrap-server", &bootstrap]);
        full.extend(strings(args));
        let tool_name = if class == TOPIC_COMMAND {
            "kafka-topics"
        } else {
            "kafka-configs"
        };
        run_tool(class, &full, &work, &format!("{step:02}-{tool_name}"))?.stdout_text()
    };

    let mut check = |feature: &str, outcome: Result<()>, results: &mut Recorder| {
        if let Err(e) = results.outcome(feature, outcome) {
            failures.push(format!("{feature}: {e:#}"));
        }
    };

    let created = tool(
        TOPIC_COMMAND,
        &[
            "--create",
            "--topic",
            TOPIC,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=123456789",
        ],
    )
    .and_then(|out| {
        ensure!(
            out.contains(&format!("Created topic {TOPIC}")),
            "unexpected output: {out}"
        );
        Ok(())
    });
    check(FEATURES[0], created, &mut results);

    let listed = tool(TOPIC_COMMAND, &["--list"]).and_then(|out| {
        ensure!(
            out.lines().any(|l| l.trim() == TOPIC),
            "{TOPIC} not listed in: {out}"
        );
        Ok(())
    });
    check(FEATURES[1], listed, &mut results);

    let described = tool(TOPIC_COMMAND, &["--describe", "--topic", TOPIC]).and_then(|out| {
        ensure!(
            out.contains("PartitionCount: 3"),
            "no PartitionCount: 3 in: {out}"
        );
        ensure!(
            out.contains("ReplicationFactor: 1"),
            "no ReplicationFactor: 1 in: {out}"
        );
        ensure!(
            out.contains("retention.ms=123456789"),
            "created config missing in: {out}"
        );
        ensure!(
            described_partitions(&out) == [0, 1, 2],
            "partition lines wrong in: {out}"
        );
        ensure!(out.contains("Leader: "), "no leaders in: {out}");
        Ok(())
    });
    check(FEATURES[2], described, &mut results);

    let altered = tool(
        TOPIC_COMMAND,
        &["--alter", "--topic", TOPIC, "--partitions", "5"],
    )
    .and_then(|_| tool(TOPIC_COMMAND, &["--describe", "--topic", TOPIC]))
    .and_then(|out| {
        ensure!(
            out.contains("PartitionCount: 5"),
            "no PartitionCount: 5 after --alter in: {out}"
        );
        ensure!(
            described_partitions(&out) == [0, 1, 2, 3, 4],
            "partition lines wrong in: {out}"
        );
        Ok(())
    });
    check(FEATURES[3], altered, &mut results);

    let entity = ["--entity-type", "topics", "--entity-name", TOPIC];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v: Vec<&str> = entity.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let config_altered = tool(
        CONFIG_COMMAND,
        &with(&[
            "--alter",
            "--add-config",
            "retention.ms=3600000,max.message.bytes=2000000",
        ]),
    )
    .and_then(|_| tool(CONFIG_COMMAND, &with(&["--describe"])))
    .and_then(|out| {
        ensure!(
            out.contains("retention.ms=3600000"),
            "retention.ms not altered in: {out}"
        );
        ensure!(
            out.contains("max.message.bytes=2000000"),
            "max.message.bytes not set in: {out}"
        );
        Ok(())
    });
    check(FEATURES[4], config_altered, &mut results);

    let described_all = tool(CONFIG_COMMAND, &with(&["--describe", "--all"])).and_then(|out| {
        ensure!(
            out.contains("segment.bytes=1073741824"),
            "default segment.bytes not described in: {out}"
        );
        ensure!(
            out.contains("cleanup.policy=delete"),
            "default cleanup.policy not described in: {out}"
        );
        ensure!(
            out.contains("retention.ms=3600000"),
            "altered retention.ms missing in: {out}"
        );
        Ok(())
    });
    check(FEATURES[5], described_all, &mut results);

    let deleted = tool(
        CONFIG_COMMAND,
        &with(&["--alter", "--delete-config", "max.message.bytes"]),
    )
    .and_then(|_| tool(CONFIG_COMMAND, &with(&["--describe"])))
    .and_then(|out| {
        ensure!(
            !out.contains("max.message.bytes="),
            "max.message.bytes still set in: {out}"
        );
        ensure!(
            out.contains("retention.ms=3600000"),
            "retention.ms lost in: {out}"
        );
        Ok(())
    });
    check(FEATURES[6], deleted, &mut results);

    if !failures.is_empty() {
        bail!(
            "Kafka's tools against {kind}: {} step(s) failed:\n\n{}\n\n{}",
            failures.len(),
            failures.join("\n\n"),
            target.logs()
        );
    }
    Ok(())
}
