//! Tests across the records modules: builder -> view -> records round trips for every codec,
//! cross-checks against the independent `kafka-protocol` implementation, hand-built snappy
//! framings, decompression bombs, produce validation, and garbage that must never panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use proptest::prelude::*;

use super::batch::{ATTRIBUTES_AT, BATCH_LENGTH_AT, COMPRESSION_MASK};
use super::*;
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Inflation cap used where the test does not care about it.
const TEST_MAX_INFLATED_BYTES: usize = 64 * 1024 * 1024;

/// A record as a reader sees it: absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Absolute {
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(Bytes, Option<Bytes>)>,
}

fn read_all(bytes: Bytes) -> (RecordBatch, Vec<Absolute>) {
    let batch = RecordBatch::new(bytes).expect("valid header");
    batch.verify_crc().expect("valid crc");
    let records = batch
        .records(TEST_MAX_INFLATED_BYTES)
        .expect("decompress")
        .map(|r| {
            let r = r.expect("record");
            Absolute {
                offset: r.offset(batch.base_offset()).0,
                timestamp: r.timestamp_in(&batch),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect(),
            }
        })
        .collect();
    (batch, records)
}

fn sample_records(count: usize) -> Vec<Absolute> {
    (0..count)
        .map(|i| Absolute {
            offset: i as i64,
            // Not monotonic: Kafka allows any order, and the first is not the smallest.
            timestamp: 1_700_000_000_000 + ((i as i64 * 7919) % 1000) - 500,
            key: match i % 4 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from(format!("key-{}", i % 50))),
            },
            value: match i % 5 {
                0 => None,
                1 => Some(Bytes::new()),
                _ => Some(Bytes::from(format!("value-{i}-").repeat(1 + i % 7))),
            },
            headers: (0..i % 3)
                .map(|h| {
                    (
                        Bytes::from(format!("h{h}")),
                        if h == 1 {
                            None
                        } else {
                            Some(Bytes::from(format!("v{i}")))
                        },
                    )
                })
                .collect(),
        })
        .collect()
}

fn build(compression: Compression, records: &[Absolute]) -> Bytes {
    let mut builder = RecordBatchBuilder::new(compression);
    for r in records {
        builder
            .append(
                r.timestamp,
                r.key.clone(),
                r.value.clone(),
                r.headers
                    .iter()
                    .map(|(k, v)| Header {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            )
            .expect("append");
    }
    builder.build().expect("build")
}

#[test]
fn every_codec_round_trips_nulls_empties_headers_and_many_records() {
    // 3000 records span several 32 KiB snappy blocks and 64 KiB lz4 blocks.
    for count in [0, 1, 7, 3000] {
        let records = sample_records(count);
        for codec in CODECS {
            let (batch, read) = read_all(build(codec, &records));
            assert_eq!(read, records, "{codec:?} x {count}");
            assert_eq!(batch.compression(), codec);
            assert_eq!(batch.records_count(), count as i32);
            assert_eq!(batch.last_offset_delta(), count.saturating_sub(1) as i32);
            if count > 0 {
                assert_eq!(batch.base_timestamp(), records[0].timestamp);
                assert_eq!(
                    batch.max_timestamp(),
                    records.iter().map(|r| r.timestamp).max().expect("some")
                );
            } else {
                assert_eq!(batch.max_timestamp(), NO_TIMESTAMP);
            }
        }
    }
}

#[test]
fn header_fields_are_written_as_set() {
    let mut builder = RecordBatchBuilder::new(Compression::Lz4)
        .base_offset(Offset(1_000))
        .partition_leader_epoch(LeaderEpoch(12))
        .producer(ProducerId(77), ProducerEpoch(3), 500)
        .transactional(true)
        .log_append_time(1_800_000_000_000);
    builder
        .append(5, None, Some(Bytes::from("a")), vec![])
        .expect("append");
    builder
        .append(9, None, Some(Bytes::from("b")), vec![])
        .expect("append");
    let (batch, read) = read_all(builder.build().expect("build"));
    assert_eq!(batch.base_offset(), Offset(1_000));
    assert_eq!(batch.last_offset(), Offset(1_001));
    assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(12));
    assert_eq!(batch.producer_id(), ProducerId(77));
    assert_eq!(batch.producer_epoch(), ProducerEpoch(3));
    assert_eq!(batch.base_sequence(), 500);
    assert_eq!(batch.last_sequence(), 501);
    assert!(batch.is_transactional());
    assert!(!batch.is_control());
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.max_timestamp(), 1_800_000_000_000);
    // Kafka reports the append time for every record of a LogAppendTime batch.
    assert!(read.iter().all(|r| r.timestamp == 1_800_000_000_000));
    assert_eq!(read[1].offset, 1_001);
}

/// KIP-534: with the delete horizon flag, baseTimestamp is the horizon and record timestamps are
/// stored relative to it.
#[test]
fn delete_horizon_becomes_the_base_timestamp() {
    let mut builder = RecordBatchBuilder::new(Compression::None).delete_horizon(2_000_000);
    builder
        .append(1_000, Some(Bytes::from("k")), None, vec![])
        .expect("append");
    let (batch, read) = read_all(builder.build().expect("build"));
    assert!(batch.has_delete_horizon());
    assert_eq!(batch.base_timestamp(), 2_000_000);
    assert_eq!(read[0].timestamp, 1_000);
}

/// Compacted batches keep gaps in offset deltas and their original lastOffsetDelta.
#[test]
fn offset_gaps_and_retained_last_offset_delta() {
    let mut builder = RecordBatchBuilder::new(Compression::Gzip).min_last_offset_delta(9);
    for delta in [0, 4, 7] {
        let record = Record {
            offset_delta: delta,
            timestamp_delta: 0,
            key: Some(Bytes::from(vec![delta as u8])),
            value: None,
            headers: vec![],
            attributes: 0,
        };
        builder.append_record(&record, 100).expect("append");
    }
    let stale = Record {
        offset_delta: 7,
        timestamp_delta: 0,
        key: None,
        value: None,
        headers: vec![],
        attributes: 0,
    };
    assert_eq!(
        builder.append_record(&stale, 0),
        Err(BuildError::OffsetDeltaNotIncreasing {
            previous: 7,
            offset_delta: 7
        })
    );
    let (batch, read) = read_all(builder.build().expect("build"));
    assert_eq!(batch.last_offset_delta(), 9);
    assert_eq!(batch.records_count(), 3);
    assert_eq!(read.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 4, 7]);
}

/// The snappy trap: a batch re-encoded to another codec must not keep the old compression bits.
#[test]
fn reencode_never_keeps_a_stale_compression_flag() {
    let records = sample_records(200);
    for from in CODECS {
        let source = RecordBatch::new(build(from, &records)).expect("source");
        for to in CODECS {
            let bytes = reencode(&source, to, None, TEST_MAX_INFLATED_BYTES).expect("reencode");
            assert_eq!(
                (bytes[ATTRIBUTES_AT + 1] as i16) & COMPRESSION_MASK,
                i16::from(to.id()),
                "{from:?} -> {to:?}"
            );
            let (batch, read) = read_all(bytes);
            assert_eq!(batch.compression(), to);
            assert_eq!(read, records, "{from:?} -> {to:?}");
            assert_eq!(batch.max_timestamp(), source.max_timestamp());
            assert_eq!(batch.producer_id(), source.producer_id());
        }
    }
}

#[test]
fn set_max_timestamp_keeps_the_crc_valid() {
    let bytes = build(Compression::None, &sample_records(3));
    let mut copy = BytesMut::from(&bytes[..]);
    let mut edit = RecordBatchMut::new(&mut copy).expect("edit");
    edit.set_max_timestamp(TimestampType::CreateTime, 42);
    let batch = RecordBatch::new(copy.freeze()).expect("view");
    batch.verify_crc().expect("crc recomputed");
    assert_eq!(batch.max_timestamp(), 42);
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
}

// ---- Cross-checks against kafka-protocol (an independent implementation) -------------------

fn kp_compression(codec: Compression) -> kp::Compression {
    match codec {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

const KP_PRODUCER_ID: i64 = 4242;
const KP_PRODUCER_EPOCH: i16 = 3;
const KP_BASE_SEQUENCE: i32 = 100;

/// kafka-protocol records carry unique UTF-8 header keys, so the samples are shaped to fit.
fn to_kp(records: &[Absolute]) -> Vec<kp::Record> {
    records
        .iter()
        .map(|r| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: KP_PRODUCER_ID,
            producer_epoch: KP_PRODUCER_EPOCH,
            timestamp_type: kp::TimestampType::Creation,
            offset: r.offset,
            sequence: KP_BASE_SEQUENCE + r.offset as i32,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        StrBytes::from_utf8(k.clone()).expect("utf-8 header key"),
                        v.clone(),
                    )
                })
                .collect::<IndexMap<_, _>>(),
        })
        .collect()
}

fn from_kp(records: &[kp::Record]) -> Vec<Absolute> {
    records
        .iter()
        .map(|r| Absolute {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (Bytes::from(k.clone()), v.clone()))
                .collect(),
        })
        .collect()
}

fn build_like_kp(codec: Compression, records: &[Absolute]) -> Bytes {
    let mut builder = RecordBatchBuilder::new(codec)
        .partition_leader_epoch(LeaderEpoch(5))
        .producer(
            ProducerId(KP_PRODUCER_ID),
            ProducerEpoch(KP_PRODUCER_EPOCH),
            KP_BASE_SEQUENCE,
        );
    for r in records {
        builder
            .append(
                r.timestamp,
                r.key.clone(),
                r.value.clone(),
                r.headers
                    .iter()
                    .map(|(k, v)| Header {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            )
            .expect("append");
    }
    builder.build().expect("build")
}

fn check_cross(codec: Compression, records: &[Absolute]) {
    // kafka-protocol encodes; Spate reads.
    let mut theirs = BytesMut::new();
    kp::RecordBatchEncoder::encode(
        &mut theirs,
        &to_kp(records),
        &kp::RecordEncodeOptions {
            version: 2,
            compression: kp_compression(codec),
        },
    )
    .expect("kafka-protocol encodes");
    let (batch, read) = read_all(theirs.freeze());
    assert_eq!(read, records, "{codec:?}: kafka-protocol -> spate");
    assert_eq!(batch.compression(), codec);
    assert_eq!(batch.producer_id(), ProducerId(KP_PRODUCER_ID));
    assert_eq!(batch.base_sequence(), KP_BASE_SEQUENCE);
    assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(5));

    // Spate builds; kafka-protocol reads.
    let mut ours = build_like_kp(codec, records);
    let set = kp::RecordBatchDecoder::decode(&mut ours).expect("kafka-protocol decodes");
    assert_eq!(set.compression, kp_compression(codec));
    assert_eq!(
        from_kp(&set.records),
        records,
        "{codec:?}: spate -> kafka-protocol"
    );
    assert!(set.records.iter().all(|r| r.producer_id == KP_PRODUCER_ID
        && r.producer_epoch == KP_PRODUCER_EPOCH
        && r.sequence == KP_BASE_SEQUENCE + r.offset as i32
        && r.partition_leader_epoch == 5));
}

#[test]
fn cross_check_with_kafka_protocol_every_codec() {
    for codec in CODECS {
        for count in [1, 2, 3000] {
            check_cross(codec, &sample_records(count));
        }
    }
}

fn arb_bytes(max_len: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max_len).prop_map(Bytes::from)
}

fn arb_records(unique_utf8_headers: bool) -> impl Strategy<Value = Vec<Absolute>> {
    let header_key = if unique_utf8_headers {
        "[a-z]{0,6}".prop_map(Bytes::from).boxed()
    } else {
        arb_bytes(8).boxed()
    };
    let record = (
        -1i64..(1i64 << 42),
        prop::option::of(arb_bytes(40)),
        prop::option::of(arb_bytes(300)),
        prop::collection::vec((header_key, prop::option::of(arb_bytes(20))), 0..4),
    );
    prop::collection::vec(record, 1..40).prop_map(move |raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (timestamp, key, value, mut headers))| {
                if unique_utf8_headers {
                    let mut seen = std::collections::HashSet::new();
                    headers.retain(|(k, _)| seen.insert(k.clone()));
                }
                Absolute {
                    offset: i as i64,
                    timestamp,
                    key,
                    value,
                    headers,
                }
            })
            .collect()
    })
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(CODECS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_records_round_trip(records in arb_records(false), codec in arb_codec()) {
        let (_, read) = read_all(build(codec, &records));
        prop_assert_eq!(read, records);
    }

    #[test]
    fn random_records_cross_check(records in arb_records(true), codec in arb_codec()) {
        check_cross(codec, &records);
    }

    /// Arbitrary bytes, with any codec bits: header parsing, CRC, decompression and iteration
    /// return errors, never panic.
    #[test]
    fn garbage_never_panics(mut raw in prop::collection::vec(any::<u8>(), 0..600),
                            codec in 0u8..8, fix_header in any::<bool>()) {
        if fix_header && raw.len() >= BATCH_HEADER_SIZE_BYTES {
            // Make the header plausible so the fuzz reaches the records.
            let batch_length = (raw.len() - LOG_OVERHEAD_BYTES) as i32;
            raw[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
            raw[16] = MAGIC_V2 as u8;
            raw[ATTRIBUTES_AT + 1] = (raw[ATTRIBUTES_AT + 1] & !0x07) | codec;
        }
        exercise(Bytes::from(raw));
    }

    /// Valid batches with a few bytes flipped: the cases a fuzzer finds first.
    #[test]
    fn mutated_batches_never_panic(records in arb_records(false), codec in arb_codec(),
                                   flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut raw = build(codec, &records).to_vec();
        for (at, byte) in flips {
            let at = at.index(raw.len());
            raw[at] ^= byte | 1;
        }
        exercise(Bytes::from(raw));
    }
}

/// Runs every reader over `raw`, ignoring results: the point is that none panics.
fn exercise(raw: Bytes) {
    let mut buf = raw.clone();
    let _ = peek_entry_size(&buf);
    if let Ok(batch) = RecordBatch::split_first(&mut buf) {
        let _ = batch.verify_crc();
        let _ = (
            batch.last_offset(),
            batch.next_offset(),
            batch.last_sequence(),
        );
        let _ = validate_records(
            &batch,
            &RecordRules {
                max_inflated_bytes: 1 << 20,
                require_keys: true,
                timestamp_window_ms: Some((0, i64::MAX)),
                from_client: true,
            },
        );
        if let Ok(records) = batch.records(1 << 20) {
            for record in records.flatten() {
                let _ = EndTxnMarker::from_record(&record);
                let _ = record.timestamp_in(&batch);
            }
        }
        let _ = reencode(&batch, Compression::None, None, 1 << 20);
    }
    for codec in CODECS {
        let _ = decompress(codec, &raw, 1 << 20);
    }
    let _ = RecordIter::new(raw, 3).count();
}

// ---- Snappy: raw and xerial input ----------------------------------------------------------

/// Wraps `payload` as the records of a batch with `codec` bits, header taken from `records`
/// encoded uncompressed (so count and offsets are right), length and CRC fixed up.
fn batch_with_payload(codec: Compression, records_count: usize, payload: &[u8]) -> Bytes {
    let template = build(Compression::None, &sample_records(records_count));
    let mut out = BytesMut::from(&template[..BATCH_HEADER_SIZE_BYTES]);
    out.put_slice(payload);
    let batch_length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[ATTRIBUTES_AT], out[ATTRIBUTES_AT + 1]]);
    let attributes = (attributes & !COMPRESSION_MASK) | i16::from(codec.id());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    RecordBatchMut::new(&mut out).expect("edit").update_crc();
    out.freeze()
}

fn plain_records(count: usize) -> Bytes {
    let template = build(Compression::None, &sample_records(count));
    template.slice(BATCH_HEADER_SIZE_BYTES..)
}

/// Hand-built xerial framing: the 16-byte header, then `[i32 BE length][raw block]`s.
fn xerial(plain: &[u8], block_size: usize, concatenate_at: Option<usize>) -> Vec<u8> {
    let header: &[u8] = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01";
    let mut out = header.to_vec();
    for (i, block) in plain.chunks(block_size).enumerate() {
        if Some(i) == concatenate_at {
            // snappy-java reads concatenated streams: a second header mid-stream.
            out.extend_from_slice(header);
        }
        let packed = snap::raw::Encoder::new()
            .compress_vec(block)
            .expect("snappy");
        out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        out.extend_from_slice(&packed);
    }
    out
}

#[test]
fn snappy_reads_raw_blocks_as_librdkafka_writes_them() {
    let plain = plain_records(500);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain)
        .expect("snappy");
    let (_, read) = read_all(batch_with_payload(Compression::Snappy, 500, &raw));
    assert_eq!(read, sample_records(500));
}

#[test]
fn snappy_reads_xerial_framing_as_the_java_client_writes_it() {
    let plain = plain_records(500);
    for (block_size, concatenate_at) in [(32 * 1024, None), (1000, None), (777, Some(3))] {
        let framed = xerial(&plain, block_size, concatenate_at);
        let (_, read) = read_all(batch_with_payload(Compression::Snappy, 500, &framed));
        assert_eq!(read, sample_records(500), "block size {block_size}");
    }
}

#[test]
fn snappy_xerial_truncations_are_errors() {
    let plain = plain_records(50);
    let framed = xerial(&plain, 100, None);
    for cut in [17, 19, 25, framed.len() - 1] {
        let batch = RecordBatch::new(batch_with_payload(Compression::Snappy, 50, &framed[..cut]))
            .expect("header");
        let result: Result<Vec<Record>, RecordError> = match batch.records(1 << 20) {
            Ok(iter) => iter.collect(),
            Err(e) => Err(e),
        };
        assert!(result.is_err(), "cut at {cut}");
    }
}

// ---- Decompression bombs --------------------------------------------------------------------

const BOMB_SIZE_BYTES: usize = 64 * 1024 * 1024;
const BOMB_CAP_BYTES: usize = 1024 * 1024;

#[test]
fn decompression_bombs_are_refused_at_the_cap() {
    let zeros = vec![0u8; BOMB_SIZE_BYTES];
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let bomb = compress(codec, &zeros).expect("compress");
        assert!(bomb.len() < BOMB_SIZE_BYTES / 20, "{codec:?} bomb is small");
        let batch = RecordBatch::new(batch_with_payload(codec, 1, &bomb)).expect("header");
        let err = batch.records(BOMB_CAP_BYTES).expect_err("bomb refused");
        assert!(err.is_inflation_cap(), "{codec:?}: {err}");
        assert_eq!(
            err,
            RecordError::Decompression(CompressionError::InflatedTooLarge {
                codec,
                max_inflated_bytes: BOMB_CAP_BYTES
            })
        );
    }
}

/// A raw snappy block whose length preamble claims 4 GiB is refused before anything is
/// allocated, both over the cap and (under a larger cap) as physically impossible.
#[test]
fn snappy_claimed_length_is_not_trusted() {
    let mut lying = Vec::new();
    // Preamble: little-endian base-128 varint 0xFFFF_FFFF, then one literal byte.
    lying.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'x']);
    let lying = Bytes::from(lying);
    assert!(matches!(
        decompress(Compression::Snappy, &lying, BOMB_CAP_BYTES),
        Err(CompressionError::InflatedTooLarge { .. })
    ));
    assert!(matches!(
        decompress(Compression::Snappy, &lying, usize::MAX),
        Err(CompressionError::Corrupt { .. })
    ));
}

// ---- Produce validation (Kafka's LogValidator) ---------------------------------------------

fn rules() -> RecordRules {
    RecordRules {
        max_inflated_bytes: TEST_MAX_INFLATED_BYTES,
        require_keys: false,
        timestamp_window_ms: None,
        from_client: true,
    }
}

#[test]
fn validation_accepts_a_good_batch_and_summarises_it() {
    let records = sample_records(20);
    for codec in CODECS {
        let batch = RecordBatch::new(build(codec, &records)).expect("batch");
        let summary = validate_records(&batch, &rules()).expect("valid");
        let max = records.iter().map(|r| r.timestamp).max().expect("some");
        let first_max = records
            .iter()
            .position(|r| r.timestamp == max)
            .expect("some");
        assert_eq!(summary.records_count, 20);
        assert_eq!(summary.max_timestamp, max);
        assert_eq!(summary.offset_delta_of_max_timestamp, first_max as i32);
        assert_eq!(summary.uncompressed_size_bytes, plain_records(20).len());
    }
}

#[test]
fn validation_refuses_gaps_keyless_records_and_old_timestamps() {
    // Offset deltas 0, 2: consecutive check fails even with a consistent header.
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for delta in [0, 2] {
        let record = Record {
            offset_delta: delta,
            timestamp_delta: 0,
            key: None,
            value: None,
            headers: vec![],
            attributes: 0,
        };
        builder.append_record(&record, 10).expect("append");
    }
    let gappy = RecordBatch::new(builder.build().expect("build")).expect("batch");
    let err = validate_records(&gappy, &rules()).expect_err("gap");
    assert_eq!(
        err,
        ValidationError::OffsetRange {
            last_offset_delta: 2,
            records_count: 2
        }
    );
    assert_eq!(err.kind(), ValidationErrorKind::InvalidRecord);
    // Same records with a header that agrees with the count: now the deltas themselves are wrong.
    let mut copy = BytesMut::from(&gappy.as_bytes()[..]);
    copy[23..27].copy_from_slice(&1i32.to_be_bytes());
    RecordBatchMut::new(&mut copy).expect("edit").update_crc();
    let gappy = RecordBatch::new(copy.freeze()).expect("batch");
    assert_eq!(
        validate_records(&gappy, &rules()),
        Err(ValidationError::OffsetDeltaNotConsecutive {
            record_index: 1,
            offset_delta: 2
        })
    );

    let keyless = RecordBatch::new(build(Compression::Zstd, &sample_records(3))).expect("batch");
    let err = validate_records(
        &keyless,
        &RecordRules {
            require_keys: true,
            ..rules()
        },
    )
    .expect_err("record 0 has a null key");
    assert_eq!(err, ValidationError::MissingKey { record_index: 0 });

    let err = validate_records(
        &keyless,
        &RecordRules {
            timestamp_window_ms: Some((1_800_000_000_000, i64::MAX)),
            ..rules()
        },
    )
    .expect_err("too old");
    assert_eq!(err.kind(), ValidationErrorKind::InvalidTimestamp);
}

#[test]
fn validation_refuses_client_control_batches_and_bad_sequences() {
    let marker = EndTxnMarker {
        commit: false,
        coordinator_epoch: 1,
    }
    .build_batch(
        Offset(0),
        0,
        LeaderEpoch(0),
        ProducerId(1),
        ProducerEpoch(0),
    )
    .expect("marker");
    let batch = RecordBatch::new(marker).expect("batch");
    assert_eq!(
        validate_records(&batch, &rules()),
        Err(ValidationError::ControlBatch)
    );
    // The transaction coordinator writes markers: a producer id, no sequence, a control batch.
    validate_records(
        &batch,
        &RecordRules {
            from_client: false,
            ..rules()
        },
    )
    .expect("coordinator-written marker");

    let mut builder =
        RecordBatchBuilder::new(Compression::None).producer(ProducerId(5), ProducerEpoch(0), -1);
    builder
        .append(0, Some(Bytes::from("k")), None, vec![])
        .expect("append");
    let batch = RecordBatch::new(builder.build().expect("build")).expect("batch");
    assert_eq!(
        validate_records(&batch, &rules()),
        Err(ValidationError::InvalidSequence {
            producer_id: 5,
            base_sequence: -1
        })
    );
}

#[test]
fn corrupt_records_map_to_corrupt_message() {
    let bytes = build(Compression::None, &sample_records(3));
    // Claim four records where three are encoded (header consistent, records short).
    let mut copy = BytesMut::from(&bytes[..]);
    copy[57..61].copy_from_slice(&4i32.to_be_bytes());
    copy[23..27].copy_from_slice(&3i32.to_be_bytes());
    RecordBatchMut::new(&mut copy).expect("edit").update_crc();
    let batch = RecordBatch::new(copy.freeze()).expect("batch");
    let err = validate_records(&batch, &rules()).expect_err("short");
    assert_eq!(
        err,
        ValidationError::Records(RecordError::RecordCountMismatch {
            expected: 4,
            found: 3
        })
    );
    assert_eq!(err.kind(), ValidationErrorKind::Corrupt);
}

// ---- Codec variants other clients write -----------------------------------------------------

/// Decoders accept what any client may legitimately write, not only what Spate writes: several
/// gzip members (GZIPInputStream reads them), several zstd frames, and LZ4 frames with block and
/// content checksums, linked blocks and a content size.
#[test]
fn decoders_accept_every_variant_a_client_may_write() {
    use std::io::Write;
    let plain = plain_records(300);
    let (first, second) = plain.split_at(plain.len() / 3);

    let mut members = compress(Compression::Gzip, first).expect("gzip").to_vec();
    members.extend_from_slice(&compress(Compression::Gzip, second).expect("gzip"));
    let mut frames = compress(Compression::Zstd, first).expect("zstd").to_vec();
    frames.extend_from_slice(&compress(Compression::Zstd, second).expect("zstd"));

    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max256KB)
        .block_mode(lz4_flex::frame::BlockMode::Linked)
        .block_checksums(true)
        .content_checksum(true)
        .content_size(Some(plain.len() as u64));
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder.write_all(&plain).expect("lz4");
    let lz4 = encoder.finish().expect("lz4");

    for (codec, stream) in [
        (Compression::Gzip, members),
        (Compression::Zstd, frames),
        (Compression::Lz4, lz4),
    ] {
        let (_, read) = read_all(batch_with_payload(codec, 300, &stream));
        assert_eq!(read, sample_records(300), "{codec:?}");
    }
}
