//! The log manager: parallel open, checkpoints, deletion, scheduled work, the directory lock.

mod common;

use std::sync::Arc;

use common::*;
use spate_protocol::types::Offset;
use spate_storage::manager::{LOG_START_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE};
use spate_storage::{
    Clock, LogConfig, LogManager, LogManagerConfig, OffsetCheckpointFile, StorageError,
    TopicPartition,
};

fn manager(dir: &std::path::Path, clock: &Arc<spate_storage::ManualClock>) -> LogManager {
    LogManager::open(
        LogManagerConfig::new(dir),
        clock.clone() as Arc<dyn Clock>,
        &|_| small_config(),
    )
    .expect("open manager")
}

#[test]
fn opens_every_partition_and_checkpoints_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    {
        let logs = manager(dir.path(), &clock);
        for p in 0..6 {
            let tp = TopicPartition::new("orders-v2", p);
            let log = logs.get_or_create(&tp, small_config()).expect("create");
            append_n(&log, 10 * (p as usize + 1));
        }
        logs.get(&TopicPartition::new("orders-v2", 2))
            .expect("log")
            .delete_records_before(Offset(5))
            .expect("delete records");
        assert_eq!(logs.sizes().len(), 6);
        logs.write_checkpoints().expect("checkpoint");
        let starts = OffsetCheckpointFile::new(dir.path().join(LOG_START_CHECKPOINT_FILE))
            .read()
            .expect("read");
        assert_eq!(starts[&TopicPartition::new("orders-v2", 2)], Offset(5));
        // The raft controller's directory shares the data dir and must be left alone.
        std::fs::create_dir_all(dir.path().join("__cluster_metadata")).expect("mkdir");
        // A second manager on the same directory is refused.
        let second = LogManager::open(
            LogManagerConfig::new(dir.path()),
            clock.clone() as Arc<dyn Clock>,
            &|_| small_config(),
        );
        assert!(matches!(second, Err(StorageError::DirLocked { .. })));
        // Unclean stop: no close.
    }
    let logs = manager(dir.path(), &clock);
    assert_eq!(logs.partitions().len(), 6);
    for p in 0..6 {
        let log = logs.get(&TopicPartition::new("orders-v2", p)).expect("log");
        assert_eq!(log.log_end_offset(), Offset(10 * (i64::from(p) + 1)));
    }
    assert_eq!(
        logs.get(&TopicPartition::new("orders-v2", 2))
            .expect("log")
            .log_start_offset(),
        Offset(5)
    );
    assert!(dir.path().join("__cluster_metadata").exists());
    logs.close().expect("close");
    let recovery = OffsetCheckpointFile::new(dir.path().join(RECOVERY_POINT_CHECKPOINT_FILE))
        .read()
        .expect("read");
    assert_eq!(recovery[&TopicPartition::new("orders-v2", 5)], Offset(60));
}

#[test]
fn delete_renames_then_removes_after_the_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let logs = manager(dir.path(), &clock);
    let tp = TopicPartition::new("gone", 0);
    let config = LogConfig {
        file_delete_delay_ms: 60_000,
        ..small_config()
    };
    let log = logs.get_or_create(&tp, config).expect("create");
    append_n(&log, 20);
    let held = log
        .read(Offset(0), 1 << 20, Offset(20), true)
        .expect("read")
        .records;
    let copy = held.to_vec();
    assert!(logs.delete(&tp).expect("delete"));
    assert!(logs.get(&tp).is_none());
    assert!(!dir.path().join("gone-0").exists());
    let renamed: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-delete"))
        .collect();
    assert_eq!(renamed.len(), 1);
    assert!(
        log.append_as_leader(&[batch(&[b"x"], T0_MS)], Default::default(), None)
            .is_err()
    );
    logs.remove_deleted_dirs();
    assert!(
        renamed[0].path().exists(),
        "kept until file.delete.delay.ms"
    );
    clock.advance(60_001);
    logs.remove_deleted_dirs();
    assert!(!renamed[0].path().exists());
    assert_eq!(&held[..], &copy[..], "slices outlive the directory");
}

#[test]
fn scheduled_tasks_apply_retention_flush_and_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let logs = manager(dir.path(), &clock);
    let expiring = logs
        .get_or_create(
            &TopicPartition::new("expiring", 0),
            LogConfig {
                retention_ms: 1_000,
                flush_ms: 500,
                ..small_config()
            },
        )
        .expect("create");
    let compacted = logs
        .get_or_create(
            &TopicPartition::new("compacted", 0),
            LogConfig {
                cleanup_policy: spate_storage::CleanupPolicy::Compact,
                ..small_config()
            },
        )
        .expect("create");
    append_n(&expiring, 100);
    for i in 0..100 {
        let v = format!("{i}");
        compacted
            .append_as_leader(
                &[keyed_batch(&[("k", Some(&v))], T0_MS)],
                Default::default(),
                None,
            )
            .expect("append");
    }
    compacted.roll().expect("roll");
    assert!(expiring.recovery_point() < expiring.log_end_offset());
    clock.advance(2_000);
    assert_eq!(logs.run_flush(), 1);
    assert_eq!(expiring.recovery_point(), expiring.log_end_offset());
    assert!(logs.run_retention() > 0);
    assert_eq!(expiring.log_start_offset(), Offset(100));
    assert_eq!(logs.run_cleaner(), 1);
    assert_eq!(read_all(&compacted, compacted.log_start_offset()).len(), 1);
    // The background threads start and stop promptly.
    let logs = Arc::new(logs);
    let handle = logs.start_background().expect("start");
    handle.shutdown();
}
