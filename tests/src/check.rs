//! The common checker: compares what a client produced with what it consumed, byte for byte,
//! and derives the answers ListOffsets must give from the consumed log.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::records::{Consumed, Produced, Record, index_of_value, to_hex};

/// How many individual problems a failed check lists before summarising.
const PROBLEMS_LISTED_MAX: usize = 15;

/// What the consumed timestamps must be.
#[derive(Debug, Clone, Copy)]
pub enum TimestampCheck {
    /// Exactly the producer's explicit timestamps (CreateTime).
    Exact,
    /// Stamped by the client between these two wall-clock instants (ms, inclusive).
    Within {
        /// Before the producer started.
        from_ms: i64,
        /// After the producer finished.
        to_ms: i64,
    },
}

/// The consumed log, per partition in offset order: `(offset, timestamp)`.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Partition → records in offset order.
    pub partitions: BTreeMap<i32, Vec<(i64, i64)>>,
}

impl Log {
    /// The offset ListOffsets must return for `timestamp` in each partition: the first offset
    /// whose timestamp is at or after it, or `none` when there is no such record.
    pub fn offsets_for(&self, timestamp: i64, none: NoneOffset) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|(&p, records)| {
                let found = records.iter().find(|&&(_, ts)| ts >= timestamp);
                let offset = match (found, none) {
                    (Some(&(offset, _)), _) => offset,
                    (None, NoneOffset::MinusOne) => -1,
                    (None, NoneOffset::EndOffset) => records.last().map_or(0, |&(o, _)| o + 1),
                };
                (p, offset)
            })
            .collect()
    }

    /// The log as the producer's delivery reports describe it, for records with explicit
    /// timestamps: what ListOffsets can be checked against when consuming failed. `None` unless
    /// every record has a report and a timestamp.
    pub fn from_delivery(records: &[Record], produced: &[Produced]) -> Option<Log> {
        if produced.len() != records.len() {
            return None;
        }
        let mut log = Log::default();
        for d in produced {
            let ts = records.get(d.index)?.timestamp?;
            log.partitions
                .entry(d.partition)
                .or_default()
                .push((d.offset, ts));
        }
        for records in log.partitions.values_mut() {
            records.sort_unstable();
        }
        Some(log)
    }

    /// Timestamps worth asking about: before everything, the first, a middle one of each
    /// partition, the last, and after everything.
    pub fn probe_timestamps(&self) -> Vec<i64> {
        let all: Vec<i64> = self
            .partitions
            .values()
            .flatten()
            .map(|&(_, ts)| ts)
            .collect();
        let (Some(&min), Some(&max)) = (all.iter().min(), all.iter().max()) else {
            return vec![1];
        };
        let mut out = vec![1, min];
        for records in self.partitions.values() {
            if let Some(&(_, ts)) = records.get(records.len() / 2) {
                out.push(ts);
                out.push(ts + 1);
            }
        }
        out.extend([max, max + 1]);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// How a client reports "no offset at or after this timestamp".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoneOffset {
    /// The broker's own answer, -1 (or the client's null/None mapped to -1).
    MinusOne,
    /// The partition's end offset (kafkajs substitutes it).
    EndOffset,
}

/// Checks a produce/consume round trip:
/// - every input record was consumed exactly once, with the same key, value and headers
///   (in order), and the expected timestamp with type CreateTime;
/// - within each partition offsets increase and records appear in send order, and offsets are
///   contiguous from 0 (a fresh topic, no transactions);
/// - every key went to one partition, and all `partitions` were used;
/// - delivery reports, when the client gives them, match the consumed partition and offset.
///
/// Returns the consumed log for the ListOffsets checks.
pub fn check_roundtrip(
    input: &[Record],
    produced: Option<&[Produced]>,
    consumed: &[Consumed],
    partitions: i32,
    timestamps: TimestampCheck,
) -> Result<Log> {
    let mut problems = Problems::default();
    if consumed.len() != input.len() {
        problems.push(format!(
            "consumed {} records, produced {}",
            consumed.len(),
            input.len()
        ));
    }

    // index -> where it was consumed
    let mut seen: HashMap<usize, (i32, i64)> = HashMap::new();
    let mut key_partition: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, usize, i64)>> = BTreeMap::new();
    for c in consumed {
        let Some(index) = c.value.as_deref().and_then(index_of_value) else {
            problems.push(format!(
                "p{} o{}: value {} is not one the test produced",
                c.partition,
                c.offset,
                c.value
                    .as_deref()
                    .map(|v| to_hex(&v[..v.len().min(16)]))
                    .unwrap_or_default()
            ));
            continue;
        };
        let Some(expected) = input.get(index) else {
            problems.push(format!(
                "p{} o{}: index {index} out of range",
                c.partition, c.offset
            ));
            continue;
        };
        if let Some(&(p, o)) = seen.get(&index) {
            problems.push(format!(
                "record {index} consumed twice: p{p} o{o} and p{} o{}",
                c.partition, c.offset
            ));
            continue;
        }
        seen.insert(index, (c.partition, c.offset));
        let at = format!("record {index} (p{} o{})", c.partition, c.offset);
        if c.value != expected.value {
            problems.push(format!("{at}: value differs"));
        }
        if c.key != expected.key {
            problems.push(format!(
                "{at}: key {:?} != {:?}",
                c.key.as_deref().map(to_hex),
                expected.key.as_deref().map(to_hex)
            ));
        }
        if c.headers != expected.headers {
            problems.push(format!(
                "{at}: headers {:?} != {:?}",
                c.headers, expected.headers
            ));
        }
        // "Unknown": the client API does not expose the type (Sarama); the value is still checked.
        if c.timestamp_type != "CreateTime" && c.timestamp_type != "Unknown" {
            problems.push(format!("{at}: timestamp type {}", c.timestamp_type));
        }
        match timestamps {
            TimestampCheck::Exact => {
                if Some(c.timestamp) != expected.timestamp {
                    problems.push(format!(
                        "{at}: timestamp {} != {:?}",
                        c.timestamp, expected.timestamp
                    ));
                }
            }
            TimestampCheck::Within { from_ms, to_ms } => {
                if c.timestamp < from_ms || c.timestamp > to_ms {
                    problems.push(format!(
                        "{at}: timestamp {} outside the produce window {from_ms}..={to_ms}",
                        c.timestamp
                    ));
                }
            }
        }
        if let Some(key) = &c.key
            && let Some(&p) = key_partition.get(key)
            && p != c.partition
        {
            problems.push(format!("{at}: key {} also went to p{p}", to_hex(key)));
        } else if let Some(key) = &c.key {
            key_partition.insert(key.clone(), c.partition);
        }
        by_partition
            .entry(c.partition)
            .or_default()
            .push((c.offset, index, c.timestamp));
    }
    let missing: Vec<usize> = (0..input.len()).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} records never consumed, first ones: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }

    let mut log = Log::default();
    for (&p, records) in &mut by_partition {
        // Per-partition order as consumed must already be offset order.
        if records.windows(2).any(|w| w[0].0 >= w[1].0) {
            problems.push(format!("p{p}: offsets not increasing in consumption order"));
        }
        records.sort_unstable();
        for (n, w) in records.windows(2).enumerate() {
            if w[0].1 >= w[1].1 {
                problems.push(format!(
                    "p{p}: record {} (o{}) follows record {} (o{}) out of send order",
                    w[1].1, w[1].0, w[0].1, w[0].0
                ));
            }
            if w[1].0 != w[0].0 + 1 {
                problems.push(format!("p{p}: offset gap after o{} (#{n})", w[0].0));
            }
        }
        if let Some(first) = records.first()
            && first.0 != 0
        {
            problems.push(format!("p{p}: first offset is {}, not 0", first.0));
        }
        log.partitions
            .insert(p, records.iter().map(|&(o, _, ts)| (o, ts)).collect());
    }
    let used = by_partition.len() as i32;
    if used != partitions {
        problems.push(format!(
            "records landed in {used} partitions ({:?}), expected all {partitions}",
            by_partition.keys().collect::<Vec<_>>()
        ));
    }

    if let Some(produced) = produced {
        if produced.len() != input.len() {
            problems.push(format!(
                "{} delivery reports for {} records",
                produced.len(),
                input.len()
            ));
        }
        for d in produced {
            match seen.get(&d.index) {
                Some(&(p, o)) if (p, o) != (d.partition, d.offset) => problems.push(format!(
                    "record {}: delivered to p{} o{} but consumed at p{p} o{o}",
                    d.index, d.partition, d.offset
                )),
                _ => {}
            }
        }
    }
    problems.finish("round trip")?;
    Ok(log)
}

/// Compares a client's ListOffsets answers with the answers the consumed log implies.
pub fn check_list_offsets(
    log: &Log,
    answers: &[(i64, BTreeMap<i32, i64>)],
    none: NoneOffset,
) -> Result<()> {
    let mut problems = Problems::default();
    for (timestamp, got) in answers {
        let want = log.offsets_for(*timestamp, none);
        if *got != want {
            problems.push(format!("timestamp {timestamp}: got {got:?}, want {want:?}"));
        }
    }
    problems.finish("ListOffsets by timestamp")
}

/// One described config entry, normalised across clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// Kafka's config name.
    pub name: String,
    /// Value; `None` for sensitive or unset values.
    pub value: Option<String>,
    /// Kafka's source name: `DEFAULT_CONFIG`, `DYNAMIC_TOPIC_CONFIG`, `STATIC_BROKER_CONFIG`, ...
    pub source: String,
    /// Whether the client says the value is the default.
    pub is_default: bool,
    /// Whether it is read-only; `None` when the client API does not say.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// Whether it is sensitive.
    pub sensitive: bool,
}

/// `retention.ms` every scenario topic is created with, so DescribeConfigs has a non-default to
/// report next to the defaults.
pub const CREATED_RETENTION_MS: &str = "123456789";

/// Kafka's topic defaults that DescribeConfigs must report for a topic created with only
/// `retention.ms` set: name and value. (Not `min.insync.replicas`: Kafka 4 formats a cluster
/// with it as a dynamic cluster-wide default, so it reports DYNAMIC_DEFAULT_BROKER_CONFIG.)
pub const EXPECTED_TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("max.message.bytes", "1048588"),
    ("segment.bytes", "1073741824"),
    ("message.timestamp.type", "CreateTime"),
];

/// DescribeConfigs of a topic returns at least this many entries (Kafka 4.3 returns 30+).
pub const TOPIC_CONFIG_ENTRIES_MIN: usize = 20;

/// Checks a topic's described configs: the created `retention.ms` as a dynamic topic config, and
/// Kafka's defaults reported as defaults.
pub fn check_topic_configs(entries: &[ConfigEntry]) -> Result<()> {
    let mut problems = Problems::default();
    let by_name: HashMap<&str, &ConfigEntry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    if by_name.len() != entries.len() {
        problems.push("duplicate config names".to_owned());
    }
    if entries.len() < TOPIC_CONFIG_ENTRIES_MIN {
        problems.push(format!(
            "only {} configs described, expected at least {TOPIC_CONFIG_ENTRIES_MIN}",
            entries.len()
        ));
    }
    match by_name.get("retention.ms") {
        None => problems.push("retention.ms missing".to_owned()),
        Some(e) => {
            if e.value.as_deref() != Some(CREATED_RETENTION_MS)
                || e.is_default
                || e.source != "DYNAMIC_TOPIC_CONFIG"
            {
                problems.push(format!(
                    "retention.ms: want {CREATED_RETENTION_MS} from DYNAMIC_TOPIC_CONFIG, \
                     not default; got {e:?}"
                ));
            }
        }
    }
    for &(name, value) in EXPECTED_TOPIC_DEFAULTS {
        match by_name.get(name) {
            None => problems.push(format!("{name} missing")),
            Some(e) => {
                if e.value.as_deref() != Some(value)
                    || !e.is_default
                    || e.source != "DEFAULT_CONFIG"
                {
                    problems.push(format!(
                        "{name}: want default {value} from DEFAULT_CONFIG; got {e:?}"
                    ));
                }
            }
        }
    }
    problems.finish("DescribeConfigs")
}

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    total: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        self.total += 1;
        if self.list.len() < PROBLEMS_LISTED_MAX {
            self.list.push(problem);
        }
    }

    fn finish(self, what: &str) -> Result<()> {
        if self.total == 0 {
            return Ok(());
        }
        let more = self.total - self.list.len();
        let mut msg = format!(
            "{what}: {} problem(s):\n  {}",
            self.total,
            self.list.join("\n  ")
        );
        if more > 0 {
            msg.push_str(&format!("\n  ... and {more} more"));
        }
        bail!(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{DISTINCT_KEYS, Header, Profile, generate};

    const BASE_TS: i64 = 1_700_000_000_000;

    /// What a correct broker gives back: records spread by key over `partitions`, offsets
    /// contiguous per partition, in send order.
    fn ideal(input: &[Record], partitions: i32) -> (Vec<Produced>, Vec<Consumed>) {
        let mut next = vec![0i64; partitions as usize];
        let mut produced = Vec::new();
        let mut consumed = Vec::new();
        for (index, r) in input.iter().enumerate() {
            let p = (index % DISTINCT_KEYS) as i32 % partitions;
            let offset = next[p as usize];
            next[p as usize] += 1;
            produced.push(Produced {
                index,
                partition: p,
                offset,
            });
            consumed.push(Consumed {
                partition: p,
                offset,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                timestamp: r.timestamp.unwrap_or(BASE_TS),
                timestamp_type: "CreateTime".to_owned(),
            });
        }
        (produced, consumed)
    }

    fn input() -> Vec<Record> {
        generate(1_200, 7, BASE_TS, &Profile::full())
    }

    fn fails(input: &[Record], produced: &[Produced], consumed: &[Consumed], needle: &str) {
        let err = check_roundtrip(input, Some(produced), consumed, 3, TimestampCheck::Exact)
            .expect_err("the checker accepted a broken round trip");
        let text = format!("{err:#}");
        assert!(text.contains(needle), "expected {needle:?} in: {text}");
    }

    #[test]
    fn a_faithful_round_trip_passes_and_yields_the_log() {
        let input = input();
        let (produced, consumed) = ideal(&input, 3);
        let log = check_roundtrip(&input, Some(&produced), &consumed, 3, TimestampCheck::Exact)
            .expect("faithful round trip");
        assert_eq!(log.partitions.len(), 3);
        assert_eq!(
            log.partitions.values().map(Vec::len).sum::<usize>(),
            input.len()
        );
    }

    #[test]
    fn a_changed_header_value_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        let victim = consumed
            .iter_mut()
            .find(|c| c.headers.len() > 1)
            .expect("headers");
        victim.headers[1].value = Some(b"tampered".to_vec());
        fails(&input, &produced, &consumed, "headers");
    }

    #[test]
    fn reordered_headers_are_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        let victim = consumed
            .iter_mut()
            .find(|c| c.headers.len() > 2)
            .expect("headers");
        victim.headers.swap(0, 2);
        fails(&input, &produced, &consumed, "headers");
    }

    #[test]
    fn records_out_of_send_order_within_a_partition_are_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        // Swap the payloads of two records of partition 0, keeping offsets in place.
        let positions: Vec<usize> = consumed
            .iter()
            .enumerate()
            .filter(|(_, c)| c.partition == 0)
            .map(|(i, _)| i)
            .take(2)
            .collect();
        let (a, b) = (positions[0], positions[1]);
        let (oa, ob) = (consumed[a].offset, consumed[b].offset);
        consumed.swap(a, b);
        consumed[a].offset = oa;
        consumed[b].offset = ob;
        fails(&input, &produced, &consumed, "out of send order");
    }

    #[test]
    fn a_missing_record_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        consumed.remove(500);
        fails(&input, &produced, &consumed, "never consumed");
    }

    #[test]
    fn a_duplicated_record_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        let dup = consumed[10].clone();
        consumed.push(dup);
        fails(&input, &produced, &consumed, "consumed twice");
    }

    #[test]
    fn a_wrong_timestamp_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        consumed[3].timestamp += 1;
        fails(&input, &produced, &consumed, "timestamp");
    }

    #[test]
    fn a_flipped_value_byte_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        let v = consumed[43].value.as_mut().expect("value");
        let last = v.len() - 1;
        v[last] ^= 0x01;
        fails(&input, &produced, &consumed, "value differs");
    }

    #[test]
    fn a_delivery_report_that_disagrees_with_the_log_is_caught() {
        let input = input();
        let (mut produced, consumed) = ideal(&input, 3);
        produced[5].offset += 1;
        fails(&input, &produced, &consumed, "delivered to");
    }

    #[test]
    fn an_offset_gap_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        for c in consumed
            .iter_mut()
            .filter(|c| c.partition == 2 && c.offset >= 100)
        {
            c.offset += 1;
        }
        let produced: Vec<Produced> = produced
            .into_iter()
            .map(|mut d| {
                if d.partition == 2 && d.offset >= 100 {
                    d.offset += 1;
                }
                d
            })
            .collect();
        fails(&input, &produced, &consumed, "offset gap");
    }

    #[test]
    fn a_key_split_across_partitions_is_caught() {
        let input = input();
        let (produced, mut consumed) = ideal(&input, 3);
        // Move one record of key 0 (partition 0) to partition 1's end.
        let end_of_1 = consumed.iter().filter(|c| c.partition == 1).count() as i64;
        let victim = consumed
            .iter_mut()
            .rev()
            .find(|c| c.partition == 0)
            .expect("p0");
        victim.partition = 1;
        victim.offset = end_of_1;
        fails(&input, &produced, &consumed, "also went to");
    }

    #[test]
    fn timestamps_outside_the_produce_window_are_caught() {
        let input = generate(
            100,
            1,
            BASE_TS,
            &Profile {
                explicit_timestamps: false,
                ..Profile::full()
            },
        );
        let (_, consumed) = ideal(&input, 3);
        let window = TimestampCheck::Within {
            from_ms: BASE_TS + 1,
            to_ms: BASE_TS + 10,
        };
        let err = check_roundtrip(&input, None, &consumed, 3, window).expect_err("window");
        assert!(format!("{err:#}").contains("outside the produce window"));
        let window = TimestampCheck::Within {
            from_ms: BASE_TS,
            to_ms: BASE_TS,
        };
        check_roundtrip(&input, None, &consumed, 3, window).expect("inside the window");
    }

    #[test]
    fn list_offsets_answers_follow_the_first_timestamp_at_or_after() {
        let mut log = Log::default();
        log.partitions.insert(0, vec![(0, 10), (1, 20), (2, 30)]);
        log.partitions.insert(1, vec![(0, 15), (1, 25)]);
        let want = |pairs: &[(i32, i64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(
            log.offsets_for(1, NoneOffset::MinusOne),
            want(&[(0, 0), (1, 0)])
        );
        assert_eq!(
            log.offsets_for(20, NoneOffset::MinusOne),
            want(&[(0, 1), (1, 1)])
        );
        assert_eq!(
            log.offsets_for(26, NoneOffset::MinusOne),
            want(&[(0, 2), (1, -1)])
        );
        assert_eq!(
            log.offsets_for(26, NoneOffset::EndOffset),
            want(&[(0, 2), (1, 2)])
        );
        let answers = vec![(20, want(&[(0, 1), (1, 2)]))];
        assert!(check_list_offsets(&log, &answers, NoneOffset::MinusOne).is_err());
        let answers = vec![(20, want(&[(0, 1), (1, 1)]))];
        check_list_offsets(&log, &answers, NoneOffset::MinusOne).expect("right answers");
    }

    fn entry(name: &str, value: &str, source: &str, is_default: bool) -> ConfigEntry {
        ConfigEntry {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            source: source.to_owned(),
            is_default,
            read_only: Some(false),
            sensitive: false,
        }
    }

    fn kafka_like_configs() -> Vec<ConfigEntry> {
        let mut entries = vec![entry(
            "retention.ms",
            CREATED_RETENTION_MS,
            "DYNAMIC_TOPIC_CONFIG",
            false,
        )];
        for &(name, value) in EXPECTED_TOPIC_DEFAULTS {
            entries.push(entry(name, value, "DEFAULT_CONFIG", true));
        }
        for n in 0..TOPIC_CONFIG_ENTRIES_MIN {
            entries.push(entry(&format!("other.{n}"), "x", "DEFAULT_CONFIG", true));
        }
        entries
    }

    #[test]
    fn described_configs_must_report_the_override_and_the_defaults() {
        check_topic_configs(&kafka_like_configs()).expect("Kafka-like answer");

        let mut wrong_source = kafka_like_configs();
        wrong_source[0].source = "DEFAULT_CONFIG".to_owned();
        assert!(check_topic_configs(&wrong_source).is_err());

        let mut default_not_flagged = kafka_like_configs();
        default_not_flagged[1].is_default = false;
        assert!(check_topic_configs(&default_not_flagged).is_err());

        let mut too_few = kafka_like_configs();
        too_few.truncate(5);
        assert!(check_topic_configs(&too_few).is_err());
    }

    #[test]
    fn generated_records_are_unique_binary_and_grouped() {
        let records = generate(2_000, 3, BASE_TS, &Profile::full());
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.value.as_deref().and_then(crate::records::index_of_value),
                Some(i)
            );
            let names: Vec<&str> = r.headers.iter().map(|h: &Header| h.name.as_str()).collect();
            // Repeated names are adjacent.
            for (a, name) in names.iter().enumerate() {
                if let Some(b) = names.iter().rposition(|n| n == name) {
                    assert!(names[a..=b].iter().all(|n| n == name), "{names:?}");
                }
            }
        }
        assert!(
            records
                .iter()
                .any(|r| r.key.as_deref().is_some_and(|k| k.contains(&0)))
        );
        assert!(
            records
                .iter()
                .any(|r| r.value.as_ref().is_some_and(|v| v.len() > 10_000))
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(
            crate::records::from_hex(&crate::records::to_hex(&bytes)).expect("hex"),
            bytes
        );
        assert!(crate::records::from_hex("abc").is_err());
        assert!(crate::records::from_hex("zz").is_err());
    }
}
