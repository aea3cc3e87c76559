//! The trigger dispatcher: for every trigger and every partition of its broker's topic that this
//! node leads, a worker reads events from the committed offset, filters them, delivers matches
//! over HTTP with the trigger's retry policy, dead-letters failures, appends replies back to the
//! broker, and commits the contiguous finished prefix of offsets.
//!
//! Workers are independent tasks, so one trigger's slow subscriber never slows another. Offsets
//! are committed only past events whose handling finished, so a crash re-delivers rather than
//! skips.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use http::header::{HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::codec;
use crate::event::{AttrValue, Event, check_extension_name};
use crate::log::{EventLog, LogError, StoredRecord};
use crate::model::{CompiledTrigger, DeadLetterFailurePolicy, DeliveryOrder, broker_topic};
use crate::partitioner::Partitioner;
use crate::registry::{Key, Registry};
use crate::sender::{Attempt, Failure, Sender};

/// Events in flight per partition for an unordered trigger (Knative's default
/// `max.poll.records` is of the same order).
pub const UNORDERED_IN_FLIGHT_MAX: usize = 50;
/// Records fetched per read.
pub const READ_BATCH_MAX_RECORDS: usize = 200;
/// How long a read waits for new records before the worker looks around again.
pub const READ_WAIT_MS: u64 = 500;
/// Most time between offset commits while events keep finishing.
pub const COMMIT_INTERVAL_MS: u64 = 1_000;
/// How often the dispatcher re-checks which partitions this node leads.
pub const RECONCILE_INTERVAL_MS: u64 = 1_000;
/// Longest wait between retries to a failing dead-letter sink (or of a failing reply append).
pub const STUCK_BACKOFF_MAX_MS: u64 = 60_000;
/// Wait after a log error (not leader, coordinator moving) before trying again.
pub const LOG_ERROR_BACKOFF_MS: u64 = 1_000;
/// How long a stopping worker may finish in-flight deliveries before it is aborted.
pub const STOP_GRACE_MS: u64 = 5_000;
/// Bytes of a failed response body carried in `knativeerrordata` (before base64).
pub const ERROR_DATA_MAX_BYTES: usize = 1024;

/// Counters for one trigger, shown in its status and as metrics.
#[derive(Debug, Default)]
pub struct TriggerStats {
    /// Events the subscriber accepted.
    pub delivered: AtomicU64,
    /// Events the filter dropped.
    pub filtered: AtomicU64,
    /// Events that went to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Events that failed with no sink, or were dropped after the sink failed too.
    pub dropped: AtomicU64,
    /// Failed attempts to reach the dead-letter sink (each one is an event held back).
    pub dead_letter_failures: AtomicU64,
    /// Reply events appended to the broker.
    pub replies: AtomicU64,
    /// Records that are not CloudEvents, skipped.
    pub skipped: AtomicU64,
    /// Delivery attempts made to the subscriber, retries included.
    pub attempts: AtomicU64,
    /// The last delivery problem, for the status.
    pub last_error: Mutex<Option<String>>,
}

/// A trigger's status as the admin API shows it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Whether every partition this node leads has a running worker that has its offsets.
    pub ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Partitions dispatched by this node.
    pub partitions: Vec<i32>,
    /// Records between the committed offsets and the end of the topic, over those partitions.
    pub lag_records: i64,
    /// Counters.
    pub delivered: u64,
    /// Counters.
    pub filtered: u64,
    /// Counters.
    pub dead_lettered: u64,
    /// Counters.
    pub dropped: u64,
    /// Counters.
    pub dead_letter_failures: u64,
    /// Counters.
    pub replies: u64,
    /// Counters.
    pub skipped: u64,
    /// Counters.
    pub attempts: u64,
    /// The last delivery problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How one event's handling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Stopped before finishing: the offset must not be committed.
    Aborted,
}

struct Worker {
    revision: u64,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    initialised: Arc<std::sync::atomic::AtomicBool>,
}

/// Shared by the workers of one trigger.
struct TriggerCtx<L, C> {
    log: Arc<L>,
    clock: Arc<C>,
    sender: Sender,
    trigger: Arc<CompiledTrigger>,
    topic: String,
    group: String,
    stats: Arc<TriggerStats>,
    partitioner: Arc<Partitioner>,
}

/// The dispatcher of one node.
pub struct Dispatcher<L, C> {
    log: Arc<L>,
    clock: Arc<C>,
    registry: Arc<Registry>,
    sender: Sender,
    workers: tokio::sync::Mutex<HashMap<(Key, i32), Worker>>,
    stats: Mutex<BTreeMap<Key, Arc<TriggerStats>>>,
    partitioner: Arc<Partitioner>,
}

impl<L: EventLog, C: Clock> Dispatcher<L, C> {
    /// A dispatcher over this log and registry, sleeping on `clock`.
    pub fn new(log: Arc<L>, registry: Arc<Registry>, clock: Arc<C>) -> Arc<Self> {
        Arc::new(Dispatcher {
            log,
            clock,
            registry,
            sender: Sender::new(),
            workers: tokio::sync::Mutex::new(HashMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            partitioner: Arc::new(Partitioner::default()),
        })
    }

    /// Runs until `shutdown` turns true: reconciles workers on every registry change and every
    /// [`RECONCILE_INTERVAL_MS`] (leadership moves without a registry change), then stops them
    /// all, committing what finished.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.registry.subscribe();
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(RECONCILE_INTERVAL_MS)) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        let workers: Vec<_> = self.workers.lock().await.drain().map(|(_, w)| w).collect();
        stop_all(workers).await;
    }

    /// Brings the running workers in line with the registry and this node's leadership once.
    pub async fn reconcile(self: &Arc<Self>) {
        let snapshot = self.registry.snapshot();
        let mut desired: HashMap<(Key, i32), (u64, Arc<CompiledTrigger>)> = HashMap::new();
        for (key, entry) in &snapshot.triggers {
            let spec = &entry.compiled.spec;
            let topic = broker_topic(&spec.namespace, &spec.broker);
            for p in self.log.led_partitions(&topic) {
                desired.insert((key.clone(), p), (entry.revision, entry.compiled.clone()));
            }
        }
        let mut workers = self.workers.lock().await;
        let stale: Vec<(Key, i32)> = workers
            .iter()
            .filter(|(k, w)| {
                desired.get(*k).is_none_or(|(rev, _)| *rev != w.revision) || w.handle.is_finished()
            })
            .map(|(k, _)| k.clone())
            .collect();
        // Stop replaced workers before starting their successors, so that two never deliver
        // the same partition at once.
        let stopping: Vec<Worker> = stale.iter().filter_map(|k| workers.remove(k)).collect();
        stop_all(stopping).await;
        {
            let mut stats = self.stats.lock();
            stats.retain(|k, _| {
                snapshot.triggers.contains_key(k) || snapshot.orphans.contains_key(k)
            });
        }
        for (k, (revision, trigger)) in desired {
            if workers.contains_key(&k) {
                continue;
            }
            let stats = self.stats.lock().entry(k.0.clone()).or_default().clone();
            let ctx = Arc::new(TriggerCtx {
                log: self.log.clone(),
                clock: self.clock.clone(),
                sender: self.sender.clone(),
                topic: broker_topic(&trigger.spec.namespace, &trigger.spec.broker),
                group: trigger.spec.group(),
                trigger,
                stats,
                partitioner: self.partitioner.clone(),
            });
            let (stop, stop_rx) = watch::channel(false);
            let initialised = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let handle = tokio::spawn(run_partition(ctx, k.1, stop_rx, initialised.clone()));
            workers.insert(
                k,
                Worker {
                    revision,
                    stop,
                    handle,
                    initialised,
                },
            );
        }
    }

    /// The status of a trigger on this node; `None` when the registry does not know it.
    pub async fn status(&self, namespace: &str, name: &str) -> Option<TriggerStatus> {
        let key: Key = (namespace.to_owned(), name.to_owned());
        let snapshot = self.registry.snapshot();
        let mut status = TriggerStatus::default();
        let entry = match (snapshot.triggers.get(&key), snapshot.orphans.get(&key)) {
            (Some(e), _) => e.clone(),
            (None, Some((_, reason))) => {
                status.reason = Some(reason.clone());
                return Some(status);
            }
            (None, None) => return None,
        };
        let topic = broker_topic(namespace, &entry.compiled.spec.broker);
        let group = entry.compiled.spec.group();
        let led = self.log.led_partitions(&topic);
        {
            let workers = self.workers.lock().await;
            let ready = led.iter().all(|p| {
                workers.get(&(key.clone(), *p)).is_some_and(|w| {
                    w.revision == entry.revision
                        && w.initialised.load(Ordering::Acquire)
                        && !w.handle.is_finished()
                })
            });
            status.ready = ready;
            if !ready {
                status.reason = Some("dispatch workers starting".to_owned());
            }
        }
        for p in &led {
            if let (Ok(end), Ok(Some(committed))) = (
                self.log.end_offset(&topic, *p).await,
                self.log.fetch_offset(&group, &topic, *p).await,
            ) {
                status.lag_records += (end - committed).max(0);
            }
        }
        status.partitions = led;
        if let Some(s) = self.stats.lock().get(&key) {
            status.delivered = s.delivered.load(Ordering::Relaxed);
            status.filtered = s.filtered.load(Ordering::Relaxed);
            status.dead_lettered = s.dead_lettered.load(Ordering::Relaxed);
            status.dropped = s.dropped.load(Ordering::Relaxed);
            status.dead_letter_failures = s.dead_letter_failures.load(Ordering::Relaxed);
            status.replies = s.replies.load(Ordering::Relaxed);
            status.skipped = s.skipped.load(Ordering::Relaxed);
            status.attempts = s.attempts.load(Ordering::Relaxed);
            status.last_error = s.last_error.lock().clone();
        }
        Some(status)
    }

    /// Waits until a trigger is ready on this node, up to `timeout`.
    pub async fn wait_ready(&self, namespace: &str, name: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.status(namespace, name).await.is_some_and(|s| s.ready) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn stop_all(workers: Vec<Worker>) {
    for w in &workers {
        let _ = w.stop.send(true);
    }
    for w in workers {
        let abort = w.handle.abort_handle();
        if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), w.handle)
            .await
            .is_err()
        {
            // Uncommitted offsets are re-delivered by the next owner: at-least-once holds.
            abort.abort();
        }
    }
}

/// Where a new trigger starts: its committed offset, or, the first time, the end of the
/// partition (committed at once, so events after the trigger became ready are not skipped
/// later).
async fn initial_offset<L: EventLog, C>(
    ctx: &TriggerCtx<L, C>,
    partition: i32,
) -> Result<i64, LogError> {
    if let Some(o) = ctx
        .log
        .fetch_offset(&ctx.group, &ctx.topic, partition)
        .await?
    {
        return Ok(o);
    }
    let end = ctx.log.end_offset(&ctx.topic, partition).await?;
    ctx.log
        .commit_offset(&ctx.group, &ctx.topic, partition, end)
        .await?;
    Ok(end)
}

async fn run_partition<L: EventLog, C: Clock>(
    ctx: Arc<TriggerCtx<L, C>>,
    partition: i32,
    mut stop: watch::Receiver<bool>,
    initialised: Arc<std::sync::atomic::AtomicBool>,
) {
    let trigger = format!("{}/{}", ctx.trigger.spec.namespace, ctx.trigger.spec.name);
    let mut next_fetch = loop {
        match initial_offset(&ctx, partition).await {
            Ok(o) => break o,
            Err(e) => {
                tracing::warn!(%trigger, partition, error = %e, "cannot load the trigger's offset; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(LOG_ERROR_BACKOFF_MS)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    initialised.store(true, Ordering::Release);
    let max_in_flight = match ctx.trigger.spec.delivery_order {
        DeliveryOrder::Ordered => 1,
        DeliveryOrder::Unordered => UNORDERED_IN_FLIGHT_MAX,
    };
    let mut committed = next_fetch;
    let mut commit_due = next_fetch;
    let mut last_commit = tokio::time::Instant::now();
    let mut buffer: VecDeque<StoredRecord> = VecDeque::new();
    // Offsets handed out, in order, with whether their handling finished.
    let mut pending: VecDeque<(i64, bool)> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    loop {
        while !stopping && in_flight.len() < max_in_flight {
            let Some(record) = buffer.pop_front() else {
                break;
            };
            pending.push_back((record.offset, false));
            let ctx = ctx.clone();
            let stop = stop.clone();
            in_flight.push(async move {
                let offset = record.offset;
                (offset, handle_record(&ctx, partition, record, stop).await)
            });
        }
        while let Some(&(offset, true)) = pending.front() {
            commit_due = offset + 1;
            pending.pop_front();
        }
        let idle = in_flight.is_empty();
        if commit_due > committed
            && (idle
                || stopping
                || last_commit.elapsed() >= Duration::from_millis(COMMIT_INTERVAL_MS))
        {
            match ctx
                .log
                .commit_offset(&ctx.group, &ctx.topic, partition, commit_due)
                .await
            {
                Ok(()) => committed = commit_due,
                Err(e) => {
                    tracing::warn!(%trigger, partition, error = %e, "offset commit failed; will retry")
                }
            }
            last_commit = tokio::time::Instant::now();
        }
        if stopping && in_flight.is_empty() {
            return;
        }
        let want_read = !stopping && buffer.is_empty();
        tokio::select! {
            Some((offset, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                match outcome {
                    Outcome::Done => {
                        if let Ok(i) = pending.binary_search_by_key(&offset, |(o, _)| *o) {
                            pending[i].1 = true;
                        }
                    }
                    Outcome::Aborted => stopping = true,
                }
            }
            read = ctx.log.read(&ctx.topic, partition, next_fetch, READ_BATCH_MAX_RECORDS, Duration::from_millis(READ_WAIT_MS)), if want_read => {
                match read {
                    Ok(records) => {
                        if let Some(last) = records.last() {
                            next_fetch = last.offset + 1;
                        }
                        buffer.extend(records);
                    }
                    Err(LogError::OffsetOutOfRange { offset, log_start_offset }) if offset < log_start_offset => {
                        tracing::warn!(%trigger, partition, offset, log_start_offset, "events deleted by retention before delivery; skipping ahead");
                        next_fetch = log_start_offset;
                    }
                    Err(e) => {
                        tracing::warn!(%trigger, partition, error = %e, "read failed");
                        // A stop during this pause is seen on the next turn of the loop.
                        tokio::time::sleep(Duration::from_millis(LOG_ERROR_BACKOFF_MS)).await;
                    }
                }
            }
            // A stop (or the dispatcher going away) ends reading; in-flight events finish.
            _ = stop.changed(), if !stopping => stopping = true,
        }
    }
}

fn note_error(stats: &TriggerStats, message: String) {
    *stats.last_error.lock() = Some(message);
}

/// Handles one record from start to end: filter, deliver, reply or dead-letter.
async fn handle_record<L: EventLog, C: Clock>(
    ctx: &TriggerCtx<L, C>,
    partition: i32,
    record: StoredRecord,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let trigger = &ctx.trigger;
    let name = format!("{}/{}", trigger.spec.namespace, trigger.spec.name);
    let event = match codec::kafka::from_record(&record.record).and_then(|e| {
        e.validate()?;
        Ok(e)
    }) {
        Ok(e) => e,
        Err(e) => {
            ctx.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(trigger = %name, partition, offset = record.offset, error = %e, "record is not a CloudEvent; skipped");
            return Outcome::Done;
        }
    };
    if !trigger.filter.matches(&event) {
        ctx.stats.filtered.fetch_add(1, Ordering::Relaxed);
        return Outcome::Done;
    }
    let mut headers = codec::http::binary_headers(&event);
    headers.insert(
        HeaderName::from_static("ce-knativekafkapartition"),
        HeaderValue::from(partition),
    );
    headers.insert(
        HeaderName::from_static("ce-knativekafkaoffset"),
        HeaderValue::from(record.offset),
    );
    headers.insert(
        HeaderName::from_static("prefer"),
        HeaderValue::from_static("reply"),
    );
    if let Ok(ns) = HeaderValue::from_str(&trigger.spec.namespace) {
        headers.insert(HeaderName::from_static("kn-namespace"), ns);
    }
    let body = event.data.clone().unwrap_or_default();
    let Some((attempt, attempts)) = ctx
        .sender
        .send_with_retries(
            &*ctx.clock,
            &trigger.subscriber,
            &headers,
            &body,
            &trigger.delivery,
            &mut stop,
        )
        .await
    else {
        return Outcome::Aborted;
    };
    ctx.stats
        .attempts
        .fetch_add(u64::from(attempts), Ordering::Relaxed);
    match attempt {
        Attempt::Success { reply, .. } => {
            ctx.stats.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("spate_cloudevents_delivered_total", "trigger" => name.clone())
                .increment(1);
            if reply.is_empty() {
                return Outcome::Done;
            }
            append_reply(ctx, &name, reply, &mut stop).await
        }
        Attempt::Failure(failure) => {
            tracing::info!(trigger = %name, partition, offset = record.offset, attempts, reason = %failure.reason, "delivery failed");
            note_error(&ctx.stats, failure.reason.clone());
            dead_letter(ctx, &name, event, &failure, &mut stop).await
        }
    }
}

/// Appends a subscriber's reply events to the broker; transient log errors are retried with
/// capped backoff, since the subscriber already did its work and the reply must not be lost.
async fn append_reply<L: EventLog, C: Clock>(
    ctx: &TriggerCtx<L, C>,
    name: &str,
    reply: Vec<Event>,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let now_ms = now_ms();
    let count = ctx.log.partition_count(&ctx.topic).unwrap_or(1);
    let mut by_partition: BTreeMap<i32, Vec<crate::log::Record>> = BTreeMap::new();
    for e in &reply {
        let r = codec::kafka::to_record(e, now_ms);
        let p = ctx.partitioner.partition(r.key.as_deref(), count);
        by_partition.entry(p).or_default().push(r);
    }
    for (p, records) in by_partition {
        let mut delay = ctx
            .trigger
            .delivery
            .backoff_delay
            .max(Duration::from_millis(1));
        loop {
            match ctx.log.append(&ctx.topic, p, records.clone()).await {
                Ok(_) => {
                    ctx.stats
                        .replies
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(trigger = %name, error = %e, "reply append failed; retrying");
                    if sleep_or_stop(&*ctx.clock, delay, stop).await {
                        return Outcome::Aborted;
                    }
                    delay = (delay * 2).min(Duration::from_millis(STUCK_BACKOFF_MAX_MS));
                }
                Err(e) => {
                    tracing::warn!(trigger = %name, error = %e, "reply refused by the broker; dropped");
                    note_error(&ctx.stats, format!("reply refused: {e}"));
                    break;
                }
            }
        }
    }
    Outcome::Done
}

/// Sleeps on the clock; returns true if `stop` fired first.
async fn sleep_or_stop<C: Clock>(clock: &C, d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = clock.sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The event sent to a dead-letter sink: the original plus `knativeerrordest`,
/// `knativeerrorcode`, `knativeerrordata` (base64 of the first [`ERROR_DATA_MAX_BYTES`] of the
/// response body) and one extension per `Kne-*` response header (name lower-cased, dashes
/// removed: `Kne-Retry-Hint` becomes `kneretryhint`).
pub fn dead_letter_event(event: &Event, destination: &str, failure: &Failure) -> Event {
    let mut e = event.clone();
    e.set("knativeerrordest", destination);
    if let Some(status) = failure.status {
        e.attributes.insert(
            "knativeerrorcode".to_owned(),
            AttrValue::String(status.as_u16().to_string()),
        );
    }
    if !failure.body.is_empty() {
        let n = failure.body.len().min(ERROR_DATA_MAX_BYTES);
        e.set("knativeerrordata", BASE64.encode(&failure.body[..n]));
    }
    for (name, value) in &failure.headers {
        let lower = name.as_str();
        if !lower.starts_with("kne-") {
            continue;
        }
        let ext: String = lower.chars().filter(|c| *c != '-').collect();
        if check_extension_name(&ext).is_err() {
            continue;
        }
        if let Ok(v) = value.to_str()
            && !v.is_empty()
        {
            e.set(&ext, v);
        }
    }
    e
}

async fn dead_letter<L: EventLog, C: Clock>(
    ctx: &TriggerCtx<L, C>,
    name: &str,
    event: Event,
    failure: &Failure,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let trigger = &ctx.trigger;
    let Some(sink) = &trigger.delivery.dead_letter_sink else {
        ctx.stats.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("spate_cloudevents_dropped_total", "trigger" => name.to_owned())
            .increment(1);
        tracing::warn!(trigger = %name, id = event.id(), reason = %failure.reason, "delivery failed and the trigger has no dead-letter sink; event dropped");
        return Outcome::Done;
    };
    let dls_event = dead_letter_event(&event, &trigger.subscriber, failure);
    let headers = codec::http::binary_headers(&dls_event);
    let body = dls_event.data.clone().unwrap_or_default();
    let mut delay = trigger.delivery.backoff_delay.max(Duration::from_millis(1));
    loop {
        let Some((attempt, _)) = ctx
            .sender
            .send_with_retries(&*ctx.clock, sink, &headers, &body, &trigger.delivery, stop)
            .await
        else {
            return Outcome::Aborted;
        };
        match attempt {
            Attempt::Success { .. } => {
                ctx.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("spate_cloudevents_dead_lettered_total", "trigger" => name.to_owned()).increment(1);
                return Outcome::Done;
            }
            Attempt::Failure(f) => {
                ctx.stats
                    .dead_letter_failures
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("spate_cloudevents_dead_letter_failures_total", "trigger" => name.to_owned())
                    .increment(1);
                note_error(&ctx.stats, format!("dead-letter sink failed: {}", f.reason));
                if trigger.spec.dead_letter_failure == DeadLetterFailurePolicy::Drop {
                    ctx.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(trigger = %name, id = event.id(), reason = %f.reason, "dead-letter sink failed; event dropped as the trigger asks");
                    return Outcome::Done;
                }
                tracing::error!(trigger = %name, id = event.id(), reason = %f.reason, ?delay, "dead-letter sink failed; holding the offset and retrying");
                if sleep_or_stop(&*ctx.clock, delay, stop).await {
                    return Outcome::Aborted;
                }
                delay = (delay * 2).min(Duration::from_millis(STUCK_BACKOFF_MAX_MS));
            }
        }
    }
}

/// Headers a subscriber sees besides the event's own, for tests and docs.
pub const DELIVERY_EXTRA_HEADERS: [&str; 4] = [
    "ce-knativekafkapartition",
    "ce-knativekafkaoffset",
    "prefer",
    "kn-namespace",
];
