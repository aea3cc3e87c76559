//! The standard client scenario (issue 3, "Real clients"): for each compression codec the client
//! supports, create a 3-partition topic, produce 10,000 keyed records with headers, consume them
//! all from the earliest offset and compare everything; then ListOffsets by timestamp and
//! DescribeConfigs. Every step's outcome goes to the compatibility results.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::check::{self, CREATED_RETENTION_MS, Log, TimestampCheck};
use crate::clients::{Codec, Feature, KafkaClient, now_ms};
use crate::compat::{Recorder, Status};
use crate::paths;
use crate::rdkafka_client::Rdkafka;
use crate::records;
use crate::target::{Target, TargetKind, TargetOptions};

/// Records produced per codec.
pub const SCENARIO_RECORDS: usize = 10_000;
/// Partitions of every scenario topic.
pub const SCENARIO_PARTITIONS: i32 = 3;
/// Explicit record timestamps start this far in the past: inside every broker's default
/// `message.timestamp.before.max.ms`, and clear of the wall clock.
pub const TIMESTAMP_LEAD_MS: i64 = 30 * 60 * 1000;

/// Feature names, the columns of the compatibility table.
pub mod features {
    /// CreateTopics through the client's admin API.
    pub const CREATE_TOPIC: &str = "create topic";
    /// ListOffsets by timestamp.
    pub const LIST_OFFSETS: &str = "ListOffsets by timestamp";
    /// DescribeConfigs of a topic.
    pub const DESCRIBE_CONFIGS: &str = "DescribeConfigs";

    /// Produce + consume round trip with `codec`.
    pub fn codec(codec: crate::clients::Codec) -> String {
        format!("produce/consume {codec}")
    }
}

/// A clean working directory for one client's files: `<target dir>/e2e-work/<target>/<name>`.
pub fn work_dir(target: TargetKind, name: &str) -> Result<PathBuf> {
    let dir = paths::cargo_target_dir()?
        .join("e2e-work")
        .join(target.name())
        .join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn seed_for(client: &str, codec: Codec) -> u64 {
    // FNV-1a over the names: a fixed seed per (client, codec), so a failure reproduces.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client.bytes().chain([b'/']).chain(codec.name().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Every feature the scenario records for `client`, with the reason when it is unsupported.
pub fn planned_features(client: &dyn KafkaClient) -> Vec<(String, Option<&'static str>)> {
    let mut planned: Vec<(String, Option<&'static str>)> = Codec::ALL
        .iter()
        .map(|&c| (features::codec(c), client.unsupported(Feature::Codec(c))))
        .collect();
    planned.push((
        features::CREATE_TOPIC.to_owned(),
        client.unsupported(Feature::CreateTopic),
    ));
    planned.push((
        features::LIST_OFFSETS.to_owned(),
        client.unsupported(Feature::ListOffsetsByTimestamp),
    ));
    planned.push((
        features::DESCRIBE_CONFIGS.to_owned(),
        client.unsupported(Feature::DescribeConfigs),
    ));
    planned
}

/// Runs the scenario for `client` against the target `SPATE_E2E_TARGET` names; an error lists
/// every failed step (the passing ones are in the results too).
pub fn run(client: &dyn KafkaClient) -> Result<()> {
    let kind = TargetKind::from_env()?;
    let mut results = Recorder::new("clients", client.name(), &client.describe(), kind)?;
    let target = match Target::start_kind(kind, TargetOptions::default()) {
        Ok(t) => t,
        Err(e) => {
            // Every step counts as failed, so the table shows the client was not served.
            for (feature, unsupported) in planned_features(client) {
                match unsupported {
                    Some(reason) => results.record(&feature, Status::Unsupported, reason)?,
                    None => results.record(&feature, Status::Fail, "the broker did not start")?,
                }
            }
            return Err(e);
        }
    };
    let work = work_dir(kind, client.name())?;
    let bootstrap = target.bootstrap();
    eprintln!(
        "[{}] {} against {kind} at {bootstrap}; files in {}",
        client.name(),
        client.describe(),
        work.display()
    );
    let mut failures: Vec<String> = Vec::new();
    let mut queried: Option<(String, Log)> = None;
    let mut fallback: Option<(String, Log)> = None;
    let mut created: Option<String> = None;
    let mut create_failed = false;
    let creator_unsupported = client.unsupported(Feature::CreateTopic);
    let configs = [("retention.ms", CREATED_RETENTION_MS)];

    for codec in Codec::ALL {
        let feature = features::codec(codec);
        if let Some(reason) = client.unsupported(Feature::Codec(codec)) {
            results.record(&feature, Status::Unsupported, reason)?;
            continue;
        }
        let topic = format!("e2e-{}-{codec}", client.name());
        if create_failed {
            // Creation does not depend on the codec: after one failure, the rest would only
            // spend their timeouts failing the same way.
            results.record(
                &feature,
                Status::Fail,
                "not tried: an earlier topic creation failed",
            )?;
            failures.push(format!(
                "{feature}: not tried, an earlier topic creation failed"
            ));
            continue;
        }
        let create = match creator_unsupported {
            None => client.create_topic(&bootstrap, &topic, SCENARIO_PARTITIONS, &configs, &work),
            // A client without an admin API produces into a topic another client created.
            Some(_) => {
                Rdkafka.create_topic(&bootstrap, &topic, SCENARIO_PARTITIONS, &configs, &work)
            }
        };
        if let Err(e) = create {
            create_failed = true;
            let msg = format!("{feature}: creating {topic} failed: {e:#}");
            results.record(&feature, Status::Fail, &msg)?;
            failures.push(msg);
            continue;
        }
        created.get_or_insert_with(|| topic.clone());

        let seed = seed_for(client.name(), codec);
        let records = records::generate(
            SCENARIO_RECORDS,
            seed,
            now_ms() - TIMESTAMP_LEAD_MS,
            &client.profile(),
        );
        let mut delivered: Option<Log> = None;
        let roundtrip = (|| {
            let from_ms = now_ms();
            let produced = client
                .produce(&bootstrap, &topic, codec, &records, &work)
                .context("produce")?;
            delivered = produced
                .as_deref()
                .and_then(|p| Log::from_delivery(&records, p));
            let to_ms = now_ms();
            let consumed = client
                .consume(&bootstrap, &topic, records.len(), &work)
                .context("consume")?;
            let timestamps = if client.profile().explicit_timestamps {
                TimestampCheck::Exact
            } else {
                TimestampCheck::Within { from_ms, to_ms }
            };
            check::check_roundtrip(
                &records,
                produced.as_deref(),
                &consumed,
                SCENARIO_PARTITIONS,
                timestamps,
            )
        })();
        match results.outcome(&feature, roundtrip) {
            Ok(log) => {
                eprintln!("[{}] {feature}: ok", client.name());
                queried.get_or_insert((topic, log));
            }
            Err(e) => {
                failures.push(format!("{feature} (topic {topic}, seed {seed:#x}): {e:#}"));
                // ListOffsets does not need a working consumer: the delivery reports and the
                // explicit timestamps say what the log holds.
                if let Some(log) = delivered
                    && fallback.is_none()
                {
                    fallback = Some((topic, log));
                }
            }
        }
    }

    match creator_unsupported {
        Some(reason) => results.record(features::CREATE_TOPIC, Status::Unsupported, reason)?,
        None if create_failed => {
            results.record(features::CREATE_TOPIC, Status::Fail, "see the codec rows")?
        }
        None => results.record(features::CREATE_TOPIC, Status::Pass, "")?,
    }

    if let Some(reason) = client.unsupported(Feature::ListOffsetsByTimestamp) {
        results.record(features::LIST_OFFSETS, Status::Unsupported, reason)?;
    } else {
        let outcome = match queried.as_ref().or(fallback.as_ref()) {
            Some((topic, log)) => {
                let timestamps = log.probe_timestamps();
                client
                    .list_offsets(&bootstrap, topic, &timestamps, &work)
                    .and_then(|answers| {
                        check::check_list_offsets(log, &answers, client.none_offset())
                    })
            }
            None => Err(anyhow::anyhow!("no topic holds checked records to query")),
        };
        if let Err(e) = results.outcome(features::LIST_OFFSETS, outcome) {
            failures.push(format!("{}: {e:#}", features::LIST_OFFSETS));
        }
    }

    if let Some(reason) = client.unsupported(Feature::DescribeConfigs) {
        results.record(features::DESCRIBE_CONFIGS, Status::Unsupported, reason)?;
    } else {
        let outcome = match &created {
            Some(topic) => client
                .describe_configs(&bootstrap, topic, &work)
                .and_then(|entries| check::check_topic_configs(&entries)),
            None => Err(anyhow::anyhow!("no topic was created to describe")),
        };
        if let Err(e) = results.outcome(features::DESCRIBE_CONFIGS, outcome) {
            failures.push(format!("{}: {e:#}", features::DESCRIBE_CONFIGS));
        }
    }

    if !failures.is_empty() {
        bail!(
            "{} against {kind}: {} step(s) failed (results in {}):\n\n{}\n\n{}",
            client.name(),
            failures.len(),
            results.path().display(),
            failures.join("\n\n"),
            target.logs()
        );
    }
    Ok(())
}

/// Runs the scenario for a client that `find` locates, panicking with the full report on any
/// failure (including a client that is not installed).
pub fn must_pass<C: KafkaClient>(find: Result<C>) {
    let client = match find {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    if let Err(e) = run(&client) {
        panic!("{e:#}");
    }
}
