//! RecordBatch v2 hot paths: header validation with CRC-32C, record iteration, the batch builder,
//! and every codec's compress and decompress.
//!
//! Throughput is reported per byte of batch (or of uncompressed records for the codecs), so the
//! figures read as GB/s. Smoke-run with `cargo bench -p spate-benches --bench protocol -- --test`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, Compression, Header, RecordBatch, RecordBatchBuilder, RecordRules,
    compress, decompress, validate_records,
};

/// Batch sizes measured: a typical producer batch (`batch.size` defaults to 16 KiB) and the
/// default `max.message.bytes` neighbourhood (1 MiB).
const BATCH_SIZES_BYTES: [usize; 2] = [16 * 1024, 1024 * 1024];
/// Value size of the generated records, close to a small JSON event.
const VALUE_SIZE_BYTES: usize = 200;
/// Inflation cap for decompression in the benches: far above every batch here.
const BENCH_MAX_INFLATED_BYTES: usize = 64 * 1024 * 1024;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Deterministic, moderately compressible record values (JSON-like text with varying numbers).
fn value(i: usize) -> Bytes {
    let mut text = format!(
        "{{\"id\":{i},\"user\":\"user-{}\",\"kind\":\"page_view\",\"score\":{}.{},\"tags\":[",
        i % 977,
        (i * 7919) % 10_007,
        i % 100
    );
    while text.len() < VALUE_SIZE_BYTES - 2 {
        text.push_str(&format!("\"t{}\",", (i * 31 + text.len()) % 89));
    }
    text.truncate(VALUE_SIZE_BYTES - 2);
    text.push_str("]}");
    Bytes::from(text)
}

/// One record to append: timestamp, key, value, headers.
type BenchRecord = (i64, Option<Bytes>, Option<Bytes>, Vec<Header>);

/// Records that fill about `size_bytes` of uncompressed batch.
fn records_for(size_bytes: usize) -> Vec<BenchRecord> {
    let mut out = Vec::new();
    let mut total = BATCH_HEADER_SIZE_BYTES;
    let mut i = 0;
    while total < size_bytes {
        let key = Bytes::from(format!("key-{}", i % 1000));
        let value = value(i);
        let headers = vec![Header::new("content-type", "application/json")];
        total += key.len() + value.len() + 40;
        out.push((
            1_700_000_000_000 + i as i64,
            Some(key),
            Some(value),
            headers,
        ));
        i += 1;
    }
    out
}

fn build(compression: Compression, size_bytes: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new(compression);
    for (timestamp, key, value, headers) in records_for(size_bytes) {
        builder
            .append(timestamp, key, value, headers)
            .expect("append");
    }
    builder.build().expect("build")
}

fn label(size_bytes: usize) -> String {
    if size_bytes >= 1024 * 1024 {
        format!("{}MiB", size_bytes / (1024 * 1024))
    } else {
        format!("{}KiB", size_bytes / 1024)
    }
}

/// What the broker does to every produced batch: header checks and CRC-32C over the whole batch.
fn header_and_crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_header_crc");
    for size in BATCH_SIZES_BYTES {
        let bytes = build(Compression::None, size);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(label(size)),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let batch = RecordBatch::new(black_box(bytes.clone())).expect("valid");
                    batch.verify_crc().expect("crc");
                    batch
                })
            },
        );
    }
    group.finish();
}

/// Record-level validation of a produced batch, as the broker runs it on a compacted topic with
/// a timestamp window: CRC-32C, then every record's framing, key and timestamp.
fn validation(c: &mut Criterion) {
    let rules = RecordRules {
        max_inflated_bytes: BENCH_MAX_INFLATED_BYTES,
        require_keys: true,
        timestamp_window_ms: Some((0, i64::MAX)),
        from_client: true,
    };
    let mut group = c.benchmark_group("batch_validate");
    for size in BATCH_SIZES_BYTES {
        let bytes = build(Compression::None, size);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(label(size)),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let batch = RecordBatch::new(black_box(bytes.clone())).expect("valid");
                    batch.verify_crc().expect("crc");
                    validate_records(&batch, &rules).expect("valid records")
                })
            },
        );
    }
    group.finish();
}

/// Zero-copy iteration over an uncompressed batch (validation, compaction, fetch conversion).
fn record_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_iteration");
    for size in BATCH_SIZES_BYTES {
        let batch = RecordBatch::new(build(Compression::None, size)).expect("valid");
        group.throughput(Throughput::Bytes(batch.size_bytes() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(label(size)),
            &batch,
            |b, batch| {
                b.iter(|| {
                    let mut value_bytes = 0usize;
                    for record in batch.records(BENCH_MAX_INFLATED_BYTES).expect("records") {
                        value_bytes += record.expect("record").value.map_or(0, |v| v.len());
                    }
                    value_bytes
                })
            },
        );
    }
    group.finish();
}

/// Encoding an uncompressed batch from records already in memory.
fn builder(c: &mut Criterion) {
    let mut group = c.benchmark_group("builder");
    for size in BATCH_SIZES_BYTES {
        let records = records_for(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(label(size)),
            &records,
            |b, records| {
                b.iter(|| {
                    let mut builder = RecordBatchBuilder::new(Compression::None);
                    for (timestamp, key, value, headers) in records {
                        builder
                            .append(*timestamp, key.clone(), value.clone(), headers.clone())
                            .expect("append");
                    }
                    builder.build().expect("build")
                })
            },
        );
    }
    group.finish();
}

/// Each codec over the records section of a batch, per uncompressed byte.
fn codecs(c: &mut Criterion) {
    for size in BATCH_SIZES_BYTES {
        let plain = build(Compression::None, size).slice(BATCH_HEADER_SIZE_BYTES..);
        let mut group = c.benchmark_group(format!("codec_{}", label(size)));
        group.throughput(Throughput::Bytes(plain.len() as u64));
        for codec in CODECS {
            group.bench_with_input(
                BenchmarkId::new("compress", codec.name()),
                &plain,
                |b, plain| b.iter(|| compress(codec, black_box(plain)).expect("compress")),
            );
            let packed = compress(codec, &plain).expect("compress");
            group.bench_with_input(
                BenchmarkId::new("decompress", codec.name()),
                &packed,
                |b, packed| {
                    b.iter(|| {
                        decompress(codec, black_box(packed), BENCH_MAX_INFLATED_BYTES)
                            .expect("decompress")
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(
    benches,
    header_and_crc,
    validation,
    record_iteration,
    builder,
    codecs
);
criterion_main!(benches);
