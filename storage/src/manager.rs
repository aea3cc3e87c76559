//! The log manager: every partition log of one data directory, and the background work.
//!
//! At startup it takes the directory's lock file, reads the recovery-point, log-start and
//! cleaner checkpoints, and opens every `<topic>-<partition>` directory on a bounded pool of
//! threads. Afterwards it creates, finds and deletes logs, reports sizes, and — on background
//! threads started by [`LogManager::start_background`] — applies retention, `flush.ms`,
//! compaction and checkpoints on a schedule. Every scheduled task is also a public method, so
//! tests and the broker can run it directly.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use spate_protocol::types::Offset;

use crate::checkpoint::{OffsetCheckpointFile, TopicPartition};
use crate::cleaner::CLEANER_OFFSET_MAP_BYTES_DEFAULT;
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::files::fsync_dir;
use crate::log::{LogOpenOptions, PartitionLog};

/// Recovery-point checkpoint file name (Kafka's).
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Log-start checkpoint file name (Kafka's).
pub const LOG_START_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// Cleaner checkpoint file name (Kafka's).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Lock file that keeps a second process out of the data directory.
pub const LOCK_FILE: &str = ".lock";
/// Suffix of a partition directory waiting to be removed.
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// Settings of the log manager (Kafka's broker-level `log.*` settings).
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Threads opening (and recovering) logs at startup
    /// (`num.recovery.threads.per.data.dir`).
    pub recovery_threads: usize,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// How often `flush.ms` is checked (`log.flush.scheduler.interval.ms`).
    pub flush_check_interval_ms: u64,
    /// How often the checkpoints are written (`log.flush.offset.checkpoint.interval.ms`).
    pub checkpoint_interval_ms: u64,
    /// Pause of the cleaner thread when no log needs cleaning (`log.cleaner.backoff.ms`).
    pub cleaner_backoff_ms: u64,
    /// Whether the cleaner thread runs (`log.cleaner.enable`).
    pub cleaner_enabled: bool,
    /// Offset map budget of one cleaning pass (`log.cleaner.dedupe.buffer.size`).
    pub cleaner_offset_map_bytes: usize,
}

impl LogManagerConfig {
    /// Kafka's defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LogManagerConfig {
        LogManagerConfig {
            data_dir: data_dir.into(),
            recovery_threads: 2,
            retention_check_interval_ms: 300_000,
            flush_check_interval_ms: 1_000,
            checkpoint_interval_ms: 60_000,
            cleaner_backoff_ms: 15_000,
            cleaner_enabled: true,
            cleaner_offset_map_bytes: CLEANER_OFFSET_MAP_BYTES_DEFAULT,
        }
    }
}

/// A directory removal waiting for its delay.
struct PendingDirDelete {
    path: PathBuf,
    due_ms: i64,
}

/// Every partition log in one data directory.
pub struct LogManager {
    config: LogManagerConfig,
    clock: Arc<dyn Clock>,
    logs: RwLock<BTreeMap<TopicPartition, Arc<PartitionLog>>>,
    pending_dir_deletes: Mutex<Vec<PendingDirDelete>>,
    /// Held (with its OS lock) for the manager's lifetime.
    _lock: File,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("data_dir", &self.config.data_dir)
            .field("logs", &self.logs.read().len())
            .finish()
    }
}

fn read_checkpoint_or_empty(file: &OffsetCheckpointFile) -> BTreeMap<TopicPartition, Offset> {
    match file.read() {
        Ok(entries) => entries,
        Err(err) => {
            // Falling back to "unknown" is safe for all three: recovery scans more, the log
            // start falls back to the first segment, the cleaner re-cleans.
            tracing::warn!(%err, "ignoring unreadable checkpoint");
            BTreeMap::new()
        }
    }
}

impl LogManager {
    /// Locks `config.data_dir` (creating it), then opens every partition directory in it on
    /// `recovery_threads` threads, with the settings `log_config` gives for each partition.
    /// Directories left over from deletions are removed. Fails with the first log that cannot
    /// be opened.
    pub fn open(
        config: LogManagerConfig,
        clock: Arc<dyn Clock>,
        log_config: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    ) -> Result<LogManager> {
        let data_dir = config.data_dir.clone();
        fs::create_dir_all(&data_dir).map_err(|e| StorageError::io(&data_dir, e))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io(&lock_path, e))?;
        lock.try_lock()
            .map_err(|_| StorageError::DirLocked { path: lock_path })?;

        let recovery_points = read_checkpoint_or_empty(&OffsetCheckpointFile::new(
            data_dir.join(RECOVERY_POINT_CHECKPOINT_FILE),
        ));
        let log_starts = read_checkpoint_or_empty(&OffsetCheckpointFile::new(
            data_dir.join(LOG_START_CHECKPOINT_FILE),
        ));
        let cleaner_offsets = read_checkpoint_or_empty(&OffsetCheckpointFile::new(
            data_dir.join(CLEANER_CHECKPOINT_FILE),
        ));

        let mut partitions = Vec::new();
        let entries = fs::read_dir(&data_dir).map_err(|e| StorageError::io(&data_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&data_dir, e))?;
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(DELETE_DIR_SUFFIX) {
                remove_dir(&entry.path());
            } else if let Some(tp) = TopicPartition::from_dir_name(&name) {
                partitions.push((tp, entry.path()));
            }
        }

        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(TopicPartition, Result<PartitionLog>)>> = Mutex::new(Vec::new());
        let threads = config.recovery_threads.clamp(1, partitions.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((tp, path)) = partitions.get(i) else {
                            break;
                        };
                        let options = LogOpenOptions {
                            recovery_point: recovery_points.get(tp).copied(),
                            log_start_offset: log_starts.get(tp).copied(),
                            cleaner_offset: cleaner_offsets.get(tp).copied(),
                        };
                        let opened =
                            PartitionLog::open(path, log_config(tp), clock.clone(), options);
                        results.lock().push((tp.clone(), opened));
                    }
                });
            }
        });
        let mut logs = BTreeMap::new();
        for (tp, opened) in results.into_inner() {
            logs.insert(tp, Arc::new(opened?));
        }
        tracing::info!(data_dir = %data_dir.display(), partitions = logs.len(), "opened logs");
        Ok(LogManager {
            config,
            clock,
            logs: RwLock::new(logs),
            pending_dir_deletes: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The log of `tp`, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.logs.read().get(tp).cloned()
    }

    /// The log of `tp`, created with `config` if it does not exist yet.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        let dir = self.config.data_dir.join(tp.dir_name());
        let log = Arc::new(PartitionLog::open(
            &dir,
            config,
            self.clock.clone(),
            LogOpenOptions::default(),
        )?);
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Every partition with a log, sorted.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.logs.read().keys().cloned().collect()
    }

    /// Size in bytes of every log.
    pub fn sizes(&self) -> BTreeMap<TopicPartition, u64> {
        self.logs
            .read()
            .iter()
            .map(|(tp, log)| (tp.clone(), log.size_bytes()))
            .collect()
    }

    fn all_logs(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.logs
            .read()
            .iter()
            .map(|(tp, log)| (tp.clone(), log.clone()))
            .collect()
    }

    /// Deletes the log of `tp`: it stops taking writes, its directory is renamed to
    /// `<topic>-<partition>.<id>-delete` at once (so a restart does not load it) and removed
    /// after `file.delete.delay.ms`. Readers holding slices keep their bytes. Returns whether a
    /// log existed.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let Some(log) = self.logs.write().remove(tp) else {
            return Ok(false);
        };
        log.mark_closed();
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i64(self.clock.now_ms());
        let unique = format!("{:016x}{:016x}", hasher.finish(), std::process::id());
        let target = self
            .config
            .data_dir
            .join(format!("{}.{unique}{DELETE_DIR_SUFFIX}", tp.dir_name()));
        fs::rename(log.dir(), &target).map_err(|e| StorageError::io(log.dir(), e))?;
        fsync_dir(&self.config.data_dir)?;
        let due_ms = self
            .clock
            .now_ms()
            .saturating_add(log.config().file_delete_delay_ms);
        self.pending_dir_deletes.lock().push(PendingDirDelete {
            path: target,
            due_ms,
        });
        Ok(true)
    }

    /// Applies retention to every log; returns the segments deleted. A failing log is logged
    /// and skipped so one bad partition does not stop the others.
    pub fn run_retention(&self) -> usize {
        let mut deleted = 0;
        for (tp, log) in self.all_logs() {
            match log.apply_retention() {
                Ok(n) => deleted += n,
                Err(err) => tracing::warn!(%tp, %err, "retention failed"),
            }
        }
        deleted
    }

    /// Flushes every log whose `flush.ms` has passed; returns how many were flushed.
    pub fn run_flush(&self) -> usize {
        let mut flushed = 0;
        for (tp, log) in self.all_logs() {
            match log.flush_if_due() {
                Ok(true) => flushed += 1,
                Ok(false) => {}
                Err(err) => tracing::warn!(%tp, %err, "flush failed"),
            }
        }
        flushed
    }

    /// Runs one cleaning pass on every compacted log that is due; returns how many were cleaned.
    pub fn run_cleaner(&self) -> usize {
        let mut cleaned = 0;
        for (tp, log) in self.all_logs() {
            match log.compact(false, self.config.cleaner_offset_map_bytes) {
                Ok(Some(_)) => cleaned += 1,
                Ok(None) => {}
                Err(err) => tracing::warn!(%tp, %err, "cleaning failed"),
            }
        }
        cleaned
    }

    /// Writes the recovery-point, log-start and cleaner checkpoints.
    pub fn write_checkpoints(&self) -> Result<()> {
        let logs = self.all_logs();
        let mut recovery = BTreeMap::new();
        let mut starts = BTreeMap::new();
        let mut cleaner = BTreeMap::new();
        for (tp, log) in &logs {
            recovery.insert(tp.clone(), log.recovery_point());
            starts.insert(tp.clone(), log.log_start_offset());
            cleaner.insert(tp.clone(), log.cleaner_offset());
        }
        let dir = &self.config.data_dir;
        OffsetCheckpointFile::new(dir.join(RECOVERY_POINT_CHECKPOINT_FILE)).write(&recovery)?;
        OffsetCheckpointFile::new(dir.join(LOG_START_CHECKPOINT_FILE)).write(&starts)?;
        OffsetCheckpointFile::new(dir.join(CLEANER_CHECKPOINT_FILE)).write(&cleaner)
    }

    /// Removes deleted partition directories whose delay has passed.
    pub fn remove_deleted_dirs(&self) {
        let now = self.clock.now_ms();
        let due: Vec<PathBuf> = {
            let mut pending = self.pending_dir_deletes.lock();
            let (due, waiting): (Vec<_>, Vec<_>) = pending.drain(..).partition(|p| p.due_ms <= now);
            *pending = waiting;
            due.into_iter().map(|p| p.path).collect()
        };
        for path in due {
            remove_dir(&path);
        }
    }

    /// Closes every log cleanly (fsync, clean-shutdown markers) and writes the checkpoints.
    pub fn close(&self) -> Result<()> {
        let mut first_error = None;
        for (tp, log) in self.all_logs() {
            if let Err(err) = log.close() {
                tracing::warn!(%tp, %err, "closing log failed");
                first_error.get_or_insert(err);
            }
        }
        self.write_checkpoints()?;
        for pending in self.pending_dir_deletes.lock().drain(..) {
            remove_dir(&pending.path);
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Starts the background threads: one for retention, `flush.ms`, checkpoints and
    /// directory removal, and (when enabled) one for the cleaner. They stop when the handle is
    /// shut down or dropped.
    pub fn start_background(self: &Arc<Self>) -> Result<BackgroundHandle> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let manager = self.clone();
        let signal = stop.clone();
        let data_dir = self.config.data_dir.clone();
        let spawned = spawn_named("spate-log-maintenance", move || {
            let config = manager.config.clone();
            let start = Instant::now();
            let mut next_retention =
                start + Duration::from_millis(config.retention_check_interval_ms);
            let mut next_flush = start + Duration::from_millis(config.flush_check_interval_ms);
            let mut next_checkpoint = start + Duration::from_millis(config.checkpoint_interval_ms);
            loop {
                let wake = next_retention.min(next_flush).min(next_checkpoint);
                if wait_or_stop(&signal, wake) {
                    break;
                }
                let now = Instant::now();
                if now >= next_flush {
                    manager.run_flush();
                    next_flush = now + Duration::from_millis(config.flush_check_interval_ms);
                }
                if now >= next_retention {
                    manager.run_retention();
                    manager.remove_deleted_dirs();
                    next_retention =
                        now + Duration::from_millis(config.retention_check_interval_ms);
                }
                if now >= next_checkpoint {
                    if let Err(err) = manager.write_checkpoints() {
                        tracing::warn!(%err, "writing checkpoints failed");
                    }
                    next_checkpoint = now + Duration::from_millis(config.checkpoint_interval_ms);
                }
            }
        });
        let mut handle = BackgroundHandle {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        handle
            .threads
            .push(spawned.map_err(|e| StorageError::io(&data_dir, e))?);
        if self.config.cleaner_enabled {
            let manager = self.clone();
            let signal = stop.clone();
            let spawned = spawn_named("spate-log-cleaner", move || {
                loop {
                    let cleaned = manager.run_cleaner();
                    let pause = if cleaned > 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(manager.config.cleaner_backoff_ms)
                    };
                    if wait_or_stop(&signal, Instant::now() + pause) {
                        break;
                    }
                }
            });
            handle
                .threads
                .push(spawned.map_err(|e| StorageError::io(&data_dir, e))?);
        }
        Ok(handle)
    }
}

fn spawn_named(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
}

/// Sleeps until `deadline` or a stop request; returns true when stopping.
fn wait_or_stop(signal: &(Mutex<bool>, Condvar), deadline: Instant) -> bool {
    let (lock, condvar) = signal;
    let mut stopped = lock.lock();
    while !*stopped {
        if condvar.wait_until(&mut stopped, deadline).timed_out() {
            break;
        }
    }
    *stopped
}

fn remove_dir(path: &Path) {
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %path.display(), %err, "could not remove directory"),
    }
}

/// Stops the background threads when shut down or dropped.
pub struct BackgroundHandle {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl BackgroundHandle {
    /// Signals the threads and waits for them to finish their current task.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
