//! librdkafka in-process through the `rdkafka` crate (built from source with the workspace's
//! `cmake-build`), implementing [`KafkaClient`] directly.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::executor::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::check::ConfigEntry;
use crate::clients::{CONSUME_TIMEOUT_MS, Codec, Feature, KafkaClient, TimestampOffsets};
use crate::records::{self, Consumed, Header, Produced, Record};

/// Bound on one admin, metadata or flush call.
const RDKAFKA_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// One consumer poll.
const POLL_INTERVAL_MS: u64 = 200;

/// The `rdkafka` crate (librdkafka 2.12.1).
pub struct Rdkafka;

impl Rdkafka {
    fn timeout() -> Duration {
        Duration::from_millis(RDKAFKA_REQUEST_TIMEOUT_MS)
    }

    fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>> {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .context("cannot create an rdkafka admin client")
    }

    fn consumer(bootstrap: &str) -> Result<BaseConsumer> {
        // librdkafka's assign() refuses to work without group.id, but with explicit offsets and
        // no commits the group is never joined and no offsets are committed.
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "spate-e2e-assign-only")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .context("cannot create an rdkafka consumer")
    }

    fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
        let md = consumer
            .fetch_metadata(Some(topic), Self::timeout())
            .with_context(|| format!("metadata for {topic}"))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic} not in metadata");
        };
        if let Some(err) = t.error() {
            bail!("topic {topic}: {:?}", RDKafkaErrorCode::from(err));
        }
        let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ps.sort_unstable();
        Ok(ps)
    }
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

impl KafkaClient for Rdkafka {
    fn name(&self) -> &'static str {
        "rdkafka"
    }

    fn describe(&self) -> String {
        "Rust rdkafka 0.39 (librdkafka 2.12.1)".to_owned()
    }

    fn unsupported(&self, _: Feature) -> Option<&'static str> {
        None
    }

    fn create_topic(
        &self,
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        _work: &Path,
    ) -> Result<()> {
        let admin = Self::admin(bootstrap)?;
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            new = new.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Self::timeout()));
        let results = block_on(admin.create_topics([&new], &opts)).context("CreateTopics")?;
        for r in results {
            if let Err((name, code)) = r {
                bail!("create topic {name}: {code:?}");
            }
        }
        Ok(())
    }

    fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        codec: Codec,
        records: &[Record],
        work: &Path,
    ) -> Result<Option<Vec<Produced>>> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("compression.type", codec.name())
            // Idempotence exercises InitProducerId and sequence numbers, and keeps order.
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .context("cannot create an rdkafka producer")?;
        let mut futures = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new();
            for h in &r.headers {
                headers = headers.insert(RdHeader {
                    key: &h.name,
                    value: h.value.as_deref(),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: give the background thread time to drain it.
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => bail!("produce: {e}"),
                }
            }
        }
        producer.flush(Self::timeout()).context("flush")?;
        let mut produced = Vec::with_capacity(records.len());
        let mut errors = Vec::new();
        for (index, f) in futures.into_iter().enumerate() {
            match block_on(f) {
                Ok(Ok(d)) => produced.push(Produced {
                    index,
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => errors.push(format!("record {index}: {e}")),
                Err(_) => errors.push(format!("record {index}: delivery report lost")),
            }
        }
        let _ = work;
        if !errors.is_empty() {
            bail!(
                "produce failed for {} records: {:?}",
                errors.len(),
                &errors[..errors.len().min(10)]
            );
        }
        Ok(Some(produced))
    }

    fn consume(
        &self,
        bootstrap: &str,
        topic: &str,
        expect: usize,
        work: &Path,
    ) -> Result<Vec<Consumed>> {
        let consumer = Self::consumer(bootstrap)?;
        let mut tpl = TopicPartitionList::new();
        for p in Self::partitions(&consumer, topic)? {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl).context("assign")?;
        let deadline = Instant::now() + Duration::from_millis(CONSUME_TIMEOUT_MS);
        let mut consumed = Vec::with_capacity(expect);
        while consumed.len() < expect && Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(POLL_INTERVAL_MS)) else {
                continue;
            };
            let m = m.context("consume")?;
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| Header {
                            name: h.key.to_owned(),
                            value: h.value.map(<[u8]>::to_vec),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (timestamp, timestamp_type) = match m.timestamp() {
                Timestamp::CreateTime(t) => (t, "CreateTime"),
                Timestamp::LogAppendTime(t) => (t, "LogAppendTime"),
                Timestamp::NotAvailable => (-1, "NoTimestamp"),
            };
            consumed.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp,
                timestamp_type: timestamp_type.to_owned(),
            });
        }
        records::write_consumed(
            &work.join(format!("{topic}.rdkafka.consumed.jsonl")),
            &consumed,
        )?;
        Ok(consumed)
    }

    fn list_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        timestamps: &[i64],
        _work: &Path,
    ) -> Result<TimestampOffsets> {
        let consumer = Self::consumer(bootstrap)?;
        let partitions = Self::partitions(&consumer, topic)?;
        let mut results = Vec::new();
        for &ts in timestamps {
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                tpl.add_partition_offset(topic, p, Offset::Offset(ts))?;
            }
            let found = consumer
                .offsets_for_times(tpl, Self::timeout())
                .context("offsets_for_times")?;
            let mut offsets = BTreeMap::new();
            for e in found.elements() {
                e.error()
                    .with_context(|| format!("partition {}", e.partition()))?;
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    // librdkafka reports "no such offset" as OFFSET_END (-1).
                    Offset::End => -1,
                    other => bail!("partition {}: unexpected offset {other:?}", e.partition()),
                };
                offsets.insert(e.partition(), offset);
            }
            results.push((ts, offsets));
        }
        Ok(results)
    }

    fn describe_configs(
        &self,
        bootstrap: &str,
        topic: &str,
        _work: &Path,
    ) -> Result<Vec<ConfigEntry>> {
        let admin = Self::admin(bootstrap)?;
        let opts = AdminOptions::new().request_timeout(Some(Self::timeout()));
        let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts))
            .context("DescribeConfigs")?;
        let Some(first) = results.into_iter().next() else {
            bail!("DescribeConfigs returned no resource");
        };
        let resource = first.map_err(|e| anyhow::anyhow!("DescribeConfigs {topic}: {e}"))?;
        let mut entries: Vec<ConfigEntry> = resource
            .entries
            .iter()
            .map(|e| ConfigEntry {
                name: e.name.clone(),
                value: e.value.clone(),
                source: source_name(&e.source).to_owned(),
                is_default: e.is_default,
                read_only: Some(e.is_read_only),
                sensitive: e.is_sensitive,
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}
