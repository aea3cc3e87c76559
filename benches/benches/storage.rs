//! Partition log hot paths: append throughput (1 KiB records in 16 KiB and 1 MiB batches),
//! sequential read throughput, offset lookup latency and recovery scan speed.
//!
//! Before the Criterion runs, each throughput is also measured once against a baseline taken in
//! the same run on the same file system, and printed as MB/s and as a ratio:
//! - appends against plain `File::write_all` of the same batch bytes (no forced flush either);
//! - reads (log read + copying the returned bytes out, as a socket write would) against `pread`
//!   of the same file into the same buffer, i.e. a memcpy from the page cache;
//! - recovery (open with a full CRC scan) against reading the same files.
//!
//! Smoke-run with `cargo bench -p spate-benches --bench storage -- --test`.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::{Clock, LogConfig, LogOpenOptions, PartitionLog, SystemClock};

/// Record value size the issue asks for.
const RECORD_VALUE_BYTES: usize = 1024;
/// Batch sizes: a producer's default `batch.size` and a large 1 MiB batch.
const BATCH_SIZES_BYTES: [usize; 2] = [16 * 1024, 1024 * 1024];
/// Data written per ratio measurement (full run / `--test` smoke run).
const RATIO_WORKLOAD_BYTES: usize = 512 * 1024 * 1024;
const SMOKE_WORKLOAD_BYTES: usize = 4 * 1024 * 1024;
/// Bytes asked for per read, as a consumer's `max.partition.fetch.bytes` (1 MiB).
const READ_CHUNK_BYTES: usize = 1024 * 1024;

fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn workload_bytes() -> usize {
    if smoke() {
        SMOKE_WORKLOAD_BYTES
    } else {
        RATIO_WORKLOAD_BYTES
    }
}

/// An uncompressed batch of 1 KiB records about `size_bytes` long.
fn batch(size_bytes: usize) -> RecordBatch {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    let value = Bytes::from(vec![b'v'; RECORD_VALUE_BYTES]);
    let records = (size_bytes / (RECORD_VALUE_BYTES + 16)).max(1);
    for i in 0..records {
        builder
            .append(
                1_700_000_000_000 + i as i64,
                Some(Bytes::from(format!("key-{i}"))),
                Some(value.clone()),
                vec![],
            )
            .expect("append");
    }
    RecordBatch::new(builder.build().expect("build")).expect("valid batch")
}

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024 * 1024,
        ..LogConfig::default()
    }
}

fn open_log(dir: &Path) -> PartitionLog {
    PartitionLog::open(
        dir,
        bench_config(),
        Arc::new(SystemClock) as Arc<dyn Clock>,
        LogOpenOptions::default(),
    )
    .expect("open log")
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn append_n(dir: &Path, batch: &RecordBatch, count: usize) -> Duration {
    let log = open_log(dir);
    let start = Instant::now();
    for _ in 0..count {
        log.append_as_leader(std::slice::from_ref(batch), LeaderEpoch(0), None)
            .expect("append");
    }
    let elapsed = start.elapsed();
    drop(log);
    elapsed
}

fn write_all_n(path: &Path, bytes: &[u8], count: usize) -> Duration {
    let mut file = File::create(path).expect("create");
    let start = Instant::now();
    for _ in 0..count {
        file.write_all(bytes).expect("write");
    }
    start.elapsed()
}

fn report(name: &str, bytes: usize, measured: Duration, baseline_name: &str, baseline: Duration) {
    let ours = mb_per_s(bytes, measured);
    let base = mb_per_s(bytes, baseline);
    println!(
        "{name}: {ours:.0} MB/s; {baseline_name}: {base:.0} MB/s; ratio {:.2}",
        ours / base
    );
}

/// Rounds per ratio measurement; the best round of each side counts, so that writeback of the
/// previous round's dirty pages does not penalise whichever side runs second.
const RATIO_ROUNDS: usize = 3;

/// The ratio figures: each pair measured back to back on the same file system.
fn ratios() {
    for size in BATCH_SIZES_BYTES {
        let b = batch(size);
        let count = (workload_bytes() / b.size_bytes()).max(1);
        let bytes = count * b.size_bytes();
        let mut best_log = Duration::MAX;
        let mut best_plain = Duration::MAX;
        for round in 0..RATIO_ROUNDS {
            // Each side gets a fresh directory that is removed (dropping its dirty pages)
            // before the other side runs; the order alternates.
            let measure_log = || {
                let dir = tempfile::tempdir().expect("tempdir");
                append_n(&dir.path().join("log-0"), &b, count)
            };
            let measure_plain = || {
                let dir = tempfile::tempdir().expect("tempdir");
                write_all_n(&dir.path().join("plain"), b.as_bytes(), count)
            };
            if round % 2 == 0 {
                best_plain = best_plain.min(measure_plain());
                best_log = best_log.min(measure_log());
            } else {
                best_log = best_log.min(measure_log());
                best_plain = best_plain.min(measure_plain());
            }
        }
        report(
            &format!("append {} KiB batches", size / 1024),
            bytes,
            best_log,
            "File::write_all",
            best_plain,
        );
    }

    // Sequential read of a whole log vs pread of the same segment file (page cache resident).
    let dir = tempfile::tempdir().expect("tempdir");
    let b = batch(BATCH_SIZES_BYTES[0]);
    let count = (workload_bytes() / b.size_bytes()).max(1);
    let log_dir = dir.path().join("log-0");
    append_n(&log_dir, &b, count);
    let log = open_log(&log_dir);
    let mut out = vec![0u8; READ_CHUNK_BYTES + b.size_bytes()];
    let segment = log_dir.join("00000000000000000000.log");
    // Steady state: the first pass of each side warms the page cache (and the log's shared
    // map); the best of the following rounds counts.
    let (read_bytes, _) = read_through(&log, &mut out);
    pread_through(&segment, &mut out);
    let mut read_time = Duration::MAX;
    let mut baseline = Duration::MAX;
    for _ in 0..RATIO_ROUNDS {
        read_time = read_time.min(read_through(&log, &mut out).1);
        baseline = baseline.min(pread_through(&segment, &mut out));
    }
    report(
        "sequential read (1 MiB reads + copy out)",
        read_bytes,
        read_time,
        "pread (memcpy from page cache)",
        baseline,
    );
    drop(log);

    // Recovery: open without a recovery point scans and CRC-checks everything.
    let start = Instant::now();
    let log = open_log(&log_dir);
    let recovery = start.elapsed();
    assert_eq!(
        log.log_end_offset().0 as usize,
        count * b.records_count() as usize
    );
    drop(log);
    let baseline = pread_through(&segment, &mut out);
    report(
        "recovery scan (CRC-32C, index rebuild)",
        read_bytes,
        recovery,
        "pread of the same file",
        baseline,
    );
}

fn read_through(log: &PartitionLog, out: &mut [u8]) -> (usize, Duration) {
    let start = Instant::now();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    let mut total = 0;
    while next < end {
        let r = log.read(next, READ_CHUNK_BYTES, end, true).expect("read");
        let n = r.records.len();
        out[..n].copy_from_slice(&r.records);
        black_box(&out[..n]);
        total += n;
        let mut rest = r.records;
        while !rest.is_empty() {
            next = RecordBatch::split_first(&mut rest)
                .expect("batch")
                .next_offset();
        }
    }
    (total, start.elapsed())
}

fn pread_through(path: &Path, out: &mut [u8]) -> Duration {
    let file = File::open(path).expect("open");
    let len = file.metadata().expect("meta").len();
    let start = Instant::now();
    let mut at = 0u64;
    let chunk = READ_CHUNK_BYTES.min(out.len());
    while at < len {
        let n = file.read_at(&mut out[..chunk], at).expect("pread");
        black_box(&out[..n]);
        at += n as u64;
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for size in BATCH_SIZES_BYTES {
        let b = batch(size);
        group.throughput(Throughput::Bytes(b.size_bytes() as u64));
        group.bench_with_input(BenchmarkId::new("log", size), &b, |bench, b| {
            bench.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                append_n(&dir.path().join("log-0"), b, iters as usize)
            });
        });
        group.bench_with_input(BenchmarkId::new("write_all", size), &b, |bench, b| {
            bench.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                write_all_n(&dir.path().join("plain"), b.as_bytes(), iters as usize)
            });
        });
    }
    group.finish();
}

fn reads_and_lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = batch(BATCH_SIZES_BYTES[0]);
    let count = (workload_bytes() / 4 / b.size_bytes()).max(4);
    let log_dir = dir.path().join("log-0");
    append_n(&log_dir, &b, count);
    let log = open_log(&log_dir);
    let end = log.log_end_offset();
    let mut out = vec![0u8; READ_CHUNK_BYTES + b.size_bytes()];

    let mut group = c.benchmark_group("storage/read");
    group.sample_size(10);
    let (bytes, _) = read_through(&log, &mut out);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("sequential", |bench| {
        bench.iter(|| read_through(&log, &mut out))
    });
    group.finish();

    // Lookup latency: a read of one batch at a pseudo-random offset goes through the segment
    // list, the offset index and a short scan.
    let mut group = c.benchmark_group("storage/lookup");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    group.bench_function("read_one_batch_at_random_offset", |bench| {
        bench.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = Offset((x % end.0 as u64) as i64);
            black_box(log.read(offset, 1, end, true).expect("read"))
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = batch(BATCH_SIZES_BYTES[1]);
    let count = (workload_bytes() / 4 / b.size_bytes()).max(2);
    let log_dir = dir.path().join("log-0");
    append_n(&log_dir, &b, count);
    let mut group = c.benchmark_group("storage/recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((count * b.size_bytes()) as u64));
    group.bench_function("open_with_full_scan", |bench| {
        bench.iter(|| black_box(open_log(&log_dir)))
    });
    group.finish();
}

criterion_group!(benches, appends, reads_and_lookups, recovery);

fn main() {
    ratios();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
