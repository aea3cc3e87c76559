//! Harnesses shared by the spate-protocol fuzz targets.
//!
//! Each target in `fuzz_targets/` is a thin `fuzz_target!` around one function here, so that the
//! seed generator (`examples/seeds.rs`) and the targets agree on input layouts, and so that a new
//! target is a few lines. Every harness checks more than "no panic": it asserts the invariants
//! that the broker relies on (CRC edits, round trips, the inflation cap).

use arbitrary::Arbitrary;
use bytes::{BufMut, Bytes, BytesMut};
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, BuildError, Compression, ControlRecordKey, EndTxnMarker,
    LOG_OVERHEAD_BYTES, MAGIC_V2, Record, RecordBatch, RecordBatchBuilder, RecordBatchMut,
    RecordRules, compress, decompress, peek_entry_size, reencode, restamp, validate_records,
};
use spate_protocol::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Inflation cap for fuzzed decompression: large enough for every seed, small enough that a
/// bomb costs the fuzzer little.
pub const FUZZ_MAX_INFLATED_BYTES: usize = 4 * 1024 * 1024;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// `record_batch_header`: `data` is a log segment or a Produce/Fetch `records` field, i.e.
/// batches back to back. Walks them as a log reader does, and checks that the broker's in-place
/// edits keep the CRC exactly as valid as it was.
pub fn batch_header(data: &[u8]) {
    let mut buf = Bytes::copy_from_slice(data);
    while !buf.is_empty() {
        let before = buf.len();
        let peeked = peek_entry_size(&buf);
        let Ok(batch) = RecordBatch::split_first(&mut buf) else {
            assert_eq!(
                buf.len(),
                before,
                "a failed split leaves the buffer untouched"
            );
            return;
        };
        assert_eq!(
            peeked,
            Some(Ok(batch.size_bytes())),
            "peek agrees with split"
        );
        assert_eq!(before - buf.len(), batch.size_bytes());
        let _ = (
            batch.last_offset(),
            batch.next_offset(),
            batch.last_sequence(),
            batch.compression(),
            batch.timestamp_type(),
            batch.is_transactional(),
            batch.is_control(),
            batch.has_delete_horizon(),
            batch.max_timestamp(),
            batch.producer_id(),
            batch.producer_epoch(),
        );
        let crc_ok = batch.verify_crc().is_ok();
        assert_eq!(crc_ok, batch.crc() == batch.compute_crc());

        // baseOffset and partitionLeaderEpoch lie outside the CRC.
        let restamped = restamp(&batch, Offset(batch.base_offset().0 ^ 0x55), LeaderEpoch(7));
        let restamped = RecordBatch::new(restamped).expect("restamping keeps the header valid");
        assert_eq!(restamped.verify_crc().is_ok(), crc_ok);
        assert_eq!(restamped.partition_leader_epoch(), LeaderEpoch(7));

        // LogAppendTime stamping recomputes the CRC, so the result is always valid.
        let mut copy = batch.as_bytes().to_vec();
        RecordBatchMut::new(&mut copy)
            .expect("a validated batch is long enough to edit")
            .set_log_append_time(1_700_000_000_000);
        let stamped = RecordBatch::new(Bytes::from(copy)).expect("stamping keeps it valid");
        stamped.verify_crc().expect("stamping recomputes the CRC");
        assert_eq!(stamped.max_timestamp(), 1_700_000_000_000);
    }
}

/// Builds a batch header around `payload` so that the fuzzer reaches the records instead of
/// spending its time on lengths and CRCs. Layout of `data`: `[selector, count_hi, count_lo,
/// payload…]`; the low five bits of `selector` pick the codec (mod 5), its top three bits the
/// batch flags (LogAppendTime, transactional, delete horizon).
pub fn framed_batch(data: &[u8]) -> Option<RecordBatch> {
    let (&selector, rest) = data.split_first()?;
    let (count, payload) = rest.split_first_chunk::<2>()?;
    let codec = CODECS[usize::from((selector & 0x1f) % 5)];
    let records_count = i32::from(u16::from_be_bytes(*count));
    let mut attributes = i16::from(codec.id());
    if selector & 0x20 != 0 {
        attributes |= 0x08; // LogAppendTime
    }
    if selector & 0x40 != 0 {
        attributes |= 0x10; // transactional
    }
    if selector & 0x80 != 0 {
        attributes |= 0x40; // delete horizon
    }
    let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE_BYTES + payload.len());
    out.put_i64(0); // baseOffset
    out.put_i32((BATCH_HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES + payload.len()) as i32);
    out.put_i32(0); // partitionLeaderEpoch
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // crc, set below
    out.put_i16(attributes);
    out.put_i32((records_count - 1).max(0)); // lastOffsetDelta
    out.put_i64(1_700_000_000_000); // baseTimestamp
    out.put_i64(1_700_000_000_500); // maxTimestamp
    out.put_i64(-1); // producerId
    out.put_i16(-1); // producerEpoch
    out.put_i32(-1); // baseSequence
    out.put_i32(records_count);
    out.put_slice(payload);
    RecordBatchMut::new(&mut out)
        .expect("header is 61 bytes")
        .update_crc();
    Some(RecordBatch::new(out.freeze()).expect("the header written here is valid"))
}

/// `record_iteration`: parses, validates and re-encodes the records of a batch (see
/// [`framed_batch`] for the input layout), checking that a re-encoded batch reads back as the
/// same records.
pub fn record_iteration(data: &[u8]) {
    let Some(batch) = framed_batch(data) else {
        return;
    };
    batch
        .verify_crc()
        .expect("framed batches carry a valid CRC");
    for from_client in [true, false] {
        let _ = validate_records(
            &batch,
            &RecordRules {
                max_inflated_bytes: FUZZ_MAX_INFLATED_BYTES,
                require_keys: from_client,
                timestamp_window_ms: Some((0, 2_000_000_000_000)),
                from_client,
            },
        );
    }
    let Ok(iter) = batch.records(FUZZ_MAX_INFLATED_BYTES) else {
        return;
    };
    let Ok(records) = iter.collect::<Result<Vec<Record>, _>>() else {
        return;
    };
    assert_eq!(records.len(), batch.records_count() as usize);
    for record in &records {
        if let Ok(key) = ControlRecordKey::of_record(record) {
            assert_eq!(
                ControlRecordKey::parse(&key.encode()).expect("own encoding"),
                key
            );
        }
        let _ = EndTxnMarker::from_record(record);
    }
    // Re-encode with a codec picked by the input and read it back.
    let target = CODECS[data.len() % CODECS.len()];
    match reencode(&batch, target, None, FUZZ_MAX_INFLATED_BYTES) {
        Ok(bytes) => {
            let again = RecordBatch::new(bytes).expect("builder output has a valid header");
            again.verify_crc().expect("builder output has a valid CRC");
            assert_eq!(again.compression(), target, "no stale compression flag");
            assert_eq!(again.timestamp_type(), batch.timestamp_type());
            assert_eq!(again.has_delete_horizon(), batch.has_delete_horizon());
            assert_eq!(again.is_transactional(), batch.is_transactional());
            // The builder keeps the header's offset range, widened if a record lies past it.
            let last_record_delta = records.last().map_or(0, |r| r.offset_delta);
            assert_eq!(
                again.last_offset_delta(),
                batch.last_offset_delta().max(last_record_delta)
            );
            let reread = again
                .records(usize::MAX)
                .expect("builder output decompresses")
                .collect::<Result<Vec<Record>, _>>()
                .expect("builder output parses");
            assert_eq!(reread.len(), records.len());
            for (a, b) in records.iter().zip(&reread) {
                assert_eq!(a.offset_delta, b.offset_delta);
                assert_eq!(
                    a.timestamp(batch.base_timestamp()),
                    b.timestamp(again.base_timestamp())
                );
                assert_eq!(
                    (&a.key, &a.value, &a.headers),
                    (&b.key, &b.value, &b.headers)
                );
                assert_eq!(a.attributes, b.attributes);
            }
        }
        // Hostile records can have offset deltas out of order or timestamps too far apart to
        // re-encode; the builder refuses those instead of writing a wrong batch.
        Err(BuildError::OffsetDeltaNotIncreasing { .. })
        | Err(BuildError::TimestampDeltaOverflow { .. }) => {}
        Err(other) => panic!("re-encoding parsed records failed: {other}"),
    }
}

/// `decompress`: `[codec, cap_selector, stream…]`. Decompresses untrusted bytes under a cap, and
/// round-trips the same bytes through the codec.
pub fn decompress_and_round_trip(data: &[u8]) {
    let [selector, cap_selector, stream @ ..] = data else {
        return;
    };
    let codec = CODECS[usize::from(selector % 5)];
    let max_inflated_bytes = 1usize << (cap_selector % 23);
    let input = Bytes::copy_from_slice(stream);
    if let Ok(out) = decompress(codec, &input, max_inflated_bytes)
        && codec != Compression::None
    {
        assert!(out.len() <= max_inflated_bytes, "cap honoured");
    }
    let packed = compress(codec, stream).expect("compressing memory cannot fail");
    let unpacked = decompress(codec, &packed, stream.len()).expect("own output decompresses");
    assert_eq!(&unpacked[..], stream);
}

/// A record for [`BuilderInput`].
#[derive(Debug, Arbitrary)]
pub struct InputRecord {
    timestamp: i64,
    offset_gap: u8,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// `batch_builder`: a structured description of a batch.
#[derive(Debug, Arbitrary)]
pub struct BuilderInput {
    codec: u8,
    base_offset: i64,
    leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    log_append_time: Option<i64>,
    delete_horizon: Option<i64>,
    records: Vec<InputRecord>,
}

/// `batch_builder`: builds the batch described by `input`, reads it back and compares every field.
pub fn build_and_read_back(input: BuilderInput) {
    let codec = CODECS[usize::from(input.codec % 5)];
    let mut builder = RecordBatchBuilder::new(codec)
        .base_offset(Offset(input.base_offset))
        .partition_leader_epoch(LeaderEpoch(input.leader_epoch))
        .producer(
            ProducerId(input.producer_id),
            ProducerEpoch(input.producer_epoch),
            input.base_sequence,
        )
        .transactional(input.transactional)
        .control(input.control);
    if let Some(time) = input.log_append_time {
        builder = builder.log_append_time(time);
    }
    if let Some(horizon) = input.delete_horizon {
        builder = builder.delete_horizon(horizon);
    }
    let mut expected = Vec::new();
    let mut offset_delta: i64 = -1;
    for r in &input.records {
        offset_delta += 1 + i64::from(r.offset_gap);
        let Ok(offset_delta) = i32::try_from(offset_delta) else {
            return;
        };
        let record = Record {
            offset_delta,
            timestamp_delta: 0,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| spate_protocol::records::Header {
                    key: Bytes::from(k.clone()),
                    value: v.clone().map(Bytes::from),
                })
                .collect(),
            attributes: 0,
        };
        builder
            .append_record(&record, r.timestamp)
            .expect("increasing offset deltas are accepted");
        expected.push((record, r.timestamp));
    }
    let bytes = match builder.build() {
        Ok(bytes) => bytes,
        Err(BuildError::TimestampDeltaOverflow { .. }) => return,
        Err(other) => panic!("build failed: {other}"),
    };
    let batch = RecordBatch::new(bytes).expect("builder output has a valid header");
    batch.verify_crc().expect("builder output has a valid CRC");
    assert_eq!(batch.compression(), codec);
    assert_eq!(batch.base_offset(), Offset(input.base_offset));
    assert_eq!(batch.producer_id(), ProducerId(input.producer_id));
    assert_eq!(batch.base_sequence(), input.base_sequence);
    assert_eq!(batch.is_control(), input.control);
    assert_eq!(batch.records_count() as usize, expected.len());
    if let Some(horizon) = input.delete_horizon {
        assert_eq!(batch.base_timestamp(), horizon);
    }
    let read = batch
        .records(usize::MAX)
        .expect("builder output decompresses")
        .collect::<Result<Vec<Record>, _>>()
        .expect("builder output parses");
    assert_eq!(read.len(), expected.len());
    for (got, (want, timestamp)) in read.iter().zip(&expected) {
        assert_eq!(got.offset_delta, want.offset_delta);
        assert_eq!(got.timestamp(batch.base_timestamp()), *timestamp);
        assert_eq!(
            (&got.key, &got.value, &got.headers),
            (&want.key, &want.value, &want.headers)
        );
    }
}

/// A byte stream as a client connection delivers it: frames split by the size-capped codec, each
/// frame's header decoded, and every servable request body decoded with the schemas of its API
/// and version. Nothing may panic; errors are the expected outcome for most inputs.
pub fn request_stream(data: &[u8]) {
    use spate_protocol::frame::FrameCodec;
    use spate_protocol::header::decode_request;
    use spate_protocol::kafka_protocol::messages::RequestKind;
    use spate_protocol::versions::is_servable;
    use tokio_util::codec::Decoder;

    // A small cap so that the "too large" path is reached often.
    let mut codec = FrameCodec::new(64 * 1024);
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let Ok(raw) = decode_request(frame) else {
            continue;
        };
        let version = raw.header.request_api_version;
        if !is_servable(raw.api_key, version) {
            continue;
        }
        let mut body = raw.body;
        let _ = RequestKind::decode(raw.api_key, &mut body, version);
    }
}
