//! Incremental fetch sessions (KIP-227).
//!
//! A client opens a session with a full fetch (session id 0, epoch 0); the broker remembers the
//! partitions and their fetch positions and returns a session id. Later fetches send only what
//! changed (epoch 1, 2, …) plus partitions to forget, and the response carries only partitions
//! with something new: records, a moved high watermark, last stable offset or log start offset,
//! or an error. Epoch -1 closes a session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

/// Kafka's `max.incremental.fetch.session.cache.slots` default.
pub const FETCH_SESSION_CACHE_SLOTS_MAX: usize = 1000;
/// A session idle for less than this is never evicted to make room for a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default).
pub const FETCH_SESSION_EVICTION_IDLE_MIN: Duration = Duration::from_millis(120_000);

/// Session id meaning "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// Epoch that opens a session with a full fetch.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch that closes a session (the request is then a sessionless full fetch).
pub const FINAL_EPOCH: i32 = -1;

/// The epoch after `epoch`, wrapping to 1 as Kafka does.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        epoch
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// A partition of a session: by topic id (v13+) or by name (older versions), and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionPartition {
    /// Topic name (empty for sessions keyed by id before resolution).
    pub topic: String,
    /// Topic id (nil for sessions keyed by name).
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
}

/// What the session remembers about a partition: the client's position, and what the last
/// response told the client (to decide whether anything changed since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPartition {
    /// Next offset the client wants.
    pub fetch_offset: i64,
    /// Per-partition byte limit.
    pub partition_max_bytes: i32,
    /// Leader epoch the client believes current, -1 when unknown.
    pub current_leader_epoch: i32,
    /// Log start offset a follower reports, -1 for consumers.
    pub log_start_offset: i64,
    /// High watermark last sent, -1 before the first response.
    pub sent_high_watermark: i64,
    /// Last stable offset last sent.
    pub sent_last_stable_offset: i64,
    /// Log start offset last sent.
    pub sent_log_start_offset: i64,
}

impl CachedPartition {
    /// A partition the client just added.
    pub fn new(
        fetch_offset: i64,
        partition_max_bytes: i32,
        current_leader_epoch: i32,
        log_start_offset: i64,
    ) -> CachedPartition {
        CachedPartition {
            fetch_offset,
            partition_max_bytes,
            current_leader_epoch,
            log_start_offset,
            sent_high_watermark: -1,
            sent_last_stable_offset: -1,
            sent_log_start_offset: -1,
        }
    }
}

/// One session.
#[derive(Debug, Clone)]
pub struct FetchSession {
    /// Session id.
    pub id: i32,
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    /// Whether the session is keyed by topic id (request v13+).
    pub uses_topic_ids: bool,
    /// Partitions, in the order the client added them.
    pub partitions: Vec<(SessionPartition, CachedPartition)>,
    last_used: Instant,
}

/// Why an incremental fetch cannot use its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND.
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH.
    InvalidEpoch,
    /// FETCH_SESSION_TOPIC_ID_ERROR: the request version does not match the session's keying.
    TopicIdMismatch,
}

/// The broker's session cache.
#[derive(Debug, Default)]
pub struct FetchSessionCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    sessions: HashMap<i32, FetchSession>,
    next_id: i32,
}

impl FetchSessionCache {
    /// An empty cache.
    pub fn new() -> FetchSessionCache {
        FetchSessionCache::default()
    }

    /// Removes a session (a full fetch naming it, or epoch -1).
    pub fn remove(&self, id: i32) {
        self.inner.lock().sessions.remove(&id);
    }

    /// Creates a session for a full fetch's partitions; `None` when the cache is full of
    /// recently used sessions (the client then fetches without a session).
    pub fn create(
        &self,
        uses_topic_ids: bool,
        partitions: Vec<(SessionPartition, CachedPartition)>,
    ) -> Option<i32> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        if inner.sessions.len() >= FETCH_SESSION_CACHE_SLOTS_MAX {
            let evictable = inner
                .sessions
                .values()
                .filter(|s| now.duration_since(s.last_used) >= FETCH_SESSION_EVICTION_IDLE_MIN)
                .min_by_key(|s| s.last_used)
                .map(|s| s.id)?;
            inner.sessions.remove(&evictable);
        }
        let id = loop {
            inner.next_id = inner.next_id.wrapping_add(1);
            if inner.next_id <= 0 {
                inner.next_id = 1;
            }
            if !inner.sessions.contains_key(&inner.next_id) {
                break inner.next_id;
            }
        };
        inner.sessions.insert(
            id,
            FetchSession {
                id,
                next_epoch: next_epoch(INITIAL_EPOCH),
                uses_topic_ids,
                partitions,
                last_used: now,
            },
        );
        Some(id)
    }

    /// Runs `update` on a session for an incremental fetch at `epoch`, after checking the epoch
    /// and keying, and advances its epoch. Returns what `update` returns.
    pub fn with_session<T>(
        &self,
        id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        update: impl FnOnce(&mut FetchSession) -> T,
    ) -> Result<T, SessionError> {
        let mut inner = self.inner.lock();
        let session = inner.sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
        if session.next_epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(SessionError::TopicIdMismatch);
        }
        session.last_used = Instant::now();
        session.next_epoch = next_epoch(session.next_epoch);
        Ok(update(session))
    }

    /// Runs `update` on a session without touching its epoch (recording what a response sent).
    pub fn update<T>(&self, id: i32, update: impl FnOnce(&mut FetchSession) -> T) -> Option<T> {
        self.inner.lock().sessions.get_mut(&id).map(update)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32) -> (SessionPartition, CachedPartition) {
        (
            SessionPartition {
                topic: "t".into(),
                topic_id: Uuid::nil(),
                partition: p,
            },
            CachedPartition::new(0, 1024, -1, -1),
        )
    }

    #[test]
    fn incremental_fetches_must_carry_the_expected_epoch() {
        let cache = FetchSessionCache::new();
        let id = cache.create(false, vec![part(0)]).unwrap();
        assert_eq!(cache.with_session(id, 1, false, |_| ()), Ok(()));
        assert_eq!(
            cache.with_session(id, 1, false, |_| ()),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(cache.with_session(id, 2, false, |_| ()), Ok(()));
        assert_eq!(
            cache.with_session(id, 3, true, |_| ()),
            Err(SessionError::TopicIdMismatch)
        );
        cache.remove(id);
        assert_eq!(
            cache.with_session(id, 3, false, |_| ()),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
    }
}
