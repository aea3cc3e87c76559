//! Crash and corruption recovery: a child process SIGKILLed mid-append, flipped bytes, cut and
//! zero-filled files, deleted and garbage indexes, unreadable files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::{LogConfig, PartitionLog, StorageError};

const CHILD_DIR_ENV: &str = "SPATE_STORAGE_CRASH_CHILD_DIR";

fn value_for(offset: i64) -> Bytes {
    // Deterministic per offset, with varying sizes so batches straddle pages and segments.
    let len = 10 + (offset * 37 % 500) as usize;
    let mut v = format!("v{offset}:").into_bytes();
    v.resize(len, b'a' + (offset % 26) as u8);
    Bytes::from(v)
}

fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn batch_from(leo: i64, count: i64) -> RecordBatch {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for i in 0..count {
        builder
            .append(T0_MS + leo + i, None, Some(value_for(leo + i)), vec![])
            .expect("append");
    }
    RecordBatch::new(builder.build().expect("build")).expect("valid")
}

/// The child: append forever (with an occasional truncation and flush) until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let clock = clock();
    let log = open(Path::new(&dir), crash_config(), &clock);
    let mut round = 0i64;
    loop {
        round += 1;
        let leo = log.log_end_offset().0;
        let count = 1 + round % 7;
        log.append_as_leader(&[batch_from(leo, count)], LeaderEpoch(1), None)
            .expect("append");
        if round % 97 == 0 && leo > 10 {
            log.truncate_to(Offset(leo - 5)).expect("truncate");
        }
        if round % 53 == 0 {
            log.flush().expect("flush");
        }
    }
}

fn verify_prefix(dir: &Path) -> i64 {
    let clock = clock();
    let log = open(dir, crash_config(), &clock);
    let records = read_all(&log, Offset(0));
    for (i, (offset, value)) in records.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets contiguous, no duplicates");
        assert_eq!(value, &value_for(*offset), "record {offset} intact");
    }
    assert_eq!(records.len() as i64, log.log_end_offset().0);
    records.len() as i64
}

#[test]
fn sigkill_mid_append_recovers_an_intact_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut last_end = 0;
    for round in 0..8u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        // Pseudo-random kill points, different every round.
        let wait_ms = 150 + (round * 7919 + std::process::id() as u64) % 400;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let end = verify_prefix(dir.path());
        assert!(end > 0, "the child appended something");
        last_end = end;
    }
    assert!(last_end > 0);
}

fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn populated(dir: &Path, records: usize) {
    let clock = clock();
    let log = open(dir, small_config(), &clock);
    append_n(&log, records);
}

fn flip_byte(path: &Path, at_from_end: u64) {
    let mut raw = fs::read(path).expect("read");
    let at = raw.len() - at_from_end as usize;
    raw[at] ^= 0x5a;
    fs::write(path, raw).expect("write");
}

#[test]
fn flipped_byte_in_the_last_batch_truncates_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    populated(dir.path(), 100);
    let logs = segment_files(dir.path(), ".log");
    flip_byte(logs.last().expect("segment"), 3);
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(99));
    assert_eq!(read_all(&log, Offset(0)).len(), 99);
    append_n(&log, 1);
    assert_eq!(read_all(&log, Offset(0))[99].1, Bytes::from("v99"));
}

#[test]
fn flipped_byte_in_a_middle_segment_cuts_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    populated(dir.path(), 200);
    let logs = segment_files(dir.path(), ".log");
    assert!(logs.len() >= 4);
    let victim = &logs[1];
    let victim_base: i64 = victim
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("base");
    flip_byte(victim, 40);
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    let end = log.log_end_offset().0;
    assert!(
        end > victim_base && end < 200,
        "cut inside segment 1: {end}"
    );
    assert_eq!(log.segment_count(), 2, "later segments dropped");
    assert_eq!(read_all(&log, Offset(0)).len() as i64, end);
    assert_eq!(segment_files(dir.path(), ".log").len(), 2);
}

#[test]
fn cut_and_zero_filled_tails_are_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    populated(dir.path(), 50);
    let logs = segment_files(dir.path(), ".log");
    let last = logs.last().expect("segment").clone();
    let len = fs::metadata(&last).expect("meta").len();
    // Cut mid-batch.
    OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open")
        .set_len(len - 7)
        .expect("cut");
    let clock = clock();
    {
        let log = open(dir.path(), small_config(), &clock);
        assert_eq!(log.log_end_offset(), Offset(49));
        append_n(&log, 1);
    }
    // Zero-filled tail, as a file system may leave after a power cut.
    let mut file = OpenOptions::new().append(true).open(&last).expect("open");
    file.write_all(&[0u8; 4096]).expect("zeros");
    drop(file);
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(50));
    let records = read_all(&log, Offset(0));
    assert_eq!(records.len(), 50);
    assert_eq!(records[49].1, Bytes::from("v49"));
}

#[test]
fn deleted_and_garbage_indexes_are_rebuilt_or_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    {
        let log = open(dir.path(), small_config(), &clock);
        append_n(&log, 300);
        log.close()
            .expect("clean close: indexes are trusted on reopen");
    }
    let indexes = segment_files(dir.path(), ".index");
    let time_indexes = segment_files(dir.path(), ".timeindex");
    fs::remove_file(&indexes[0]).expect("rm");
    fs::write(&indexes[1], [0xffu8; 5]).expect("odd size");
    fs::write(&indexes[2], [0x7fu8; 64]).expect("garbage entries");
    fs::write(&time_indexes[1], [0x01u8; 36]).expect("garbage time index");
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), Offset(300));
    for from in (0..300).step_by(7) {
        let r = log.read(Offset(from), 64, Offset(300), true).expect("read");
        let b = batches_of(r.records);
        assert_eq!(b[0].base_offset(), Offset(from), "read at {from}");
    }
    for target in [0i64, 33, 150, 299] {
        let found = log
            .offset_for_timestamp(T0_MS + target)
            .expect("lookup")
            .expect("found");
        assert_eq!(found.offset, Offset(target));
    }
    assert!(indexes[0].exists(), "missing index rebuilt");
}

#[test]
fn unrecoverable_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    populated(dir.path(), 10);
    let clock = clock();
    // A malformed leader-epoch checkpoint cannot be guessed at.
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    fs::write(&checkpoint, "0\n3\n0 0\n").expect("write");
    let err = PartitionLog::open(
        dir.path(),
        small_config(),
        clock.clone(),
        Default::default(),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("leader-epoch-checkpoint"), "{err}");
    fs::remove_file(&checkpoint).expect("rm");
    // A segment name that is not a readable file.
    let bogus = dir.path().join("00000000000000009999.log");
    fs::create_dir(&bogus).expect("mkdir");
    let err = PartitionLog::open(
        dir.path(),
        small_config(),
        clock.clone(),
        Default::default(),
    )
    .expect_err("refused");
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("00000000000000009999.log"),
        "{err}"
    );
}

#[test]
fn interrupted_truncation_swap_is_completed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    populated(dir.path(), 30);
    let logs = segment_files(dir.path(), ".log");
    let last = logs.last().expect("segment").clone();
    let raw = fs::read(&last).expect("read");
    // A complete swap holding the first batch only, as a crash between the renames leaves it.
    let first = RecordBatch::split_first(&mut Bytes::from(raw)).expect("batch");
    let swap = PathBuf::from(format!("{}.swap", last.display()));
    fs::write(&swap, first.as_bytes()).expect("write swap");
    let clock = clock();
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), first.next_offset());
    assert!(!swap.exists());
    assert_eq!(
        read_all(&log, Offset(0)).len() as i64,
        first.next_offset().0
    );
}

#[test]
fn plausible_garbage_in_a_time_index_cannot_expire_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let config = LogConfig {
        retention_ms: 24 * 60 * 60 * 1000,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone(), &clock);
        append_n(&log, 200);
        log.close().expect("close");
    }
    // A well-formed entry claiming the segment's newest record is from 1970.
    let time_indexes = segment_files(dir.path(), ".timeindex");
    fs::write(&time_indexes[0], [0u8; 12]).expect("write");
    let log = open(dir.path(), config, &clock);
    assert_eq!(log.apply_retention().expect("retention"), 0);
    assert_eq!(log.log_start_offset(), Offset(0));
}
