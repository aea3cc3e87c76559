//! The dispatcher against real HTTP subscribers on 127.0.0.1, with the in-memory stand-in for
//! the broker's log and group offsets. Semantics follow Knative Eventing's Kafka broker
//! (DeliverySpec, dead-letter extensions, delivery order) and the issue's "beyond" points.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Answer, Subscriber, start_subscriber, start_subscriber_on};
use spate_cloudevents::clock::{Clock, ManualClock, TokioClock};
use spate_cloudevents::codec::kafka::to_record;
use spate_cloudevents::delivery::{BackoffPolicy, DeliverySpec, Destination};
use spate_cloudevents::dispatcher::Dispatcher;
use spate_cloudevents::event::Event;
use spate_cloudevents::filter::FilterSpec;
use spate_cloudevents::log::{EventLog, Record};
use spate_cloudevents::memory::MemoryLog;
use spate_cloudevents::model::{BrokerSpec, DeadLetterFailurePolicy, DeliveryOrder, TriggerSpec};
use spate_cloudevents::registry::Registry;
use tokio::sync::watch;

const TOPIC: &str = "knative-broker-ns-b";
const WAIT: Duration = Duration::from_secs(10);

struct Harness<C: Clock> {
    log: Arc<MemoryLog>,
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher<MemoryLog, C>>,
    clock: Arc<C>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn harness_with<C: Clock>(
    clock: Arc<C>,
    partitions: i32,
    log: Option<Arc<MemoryLog>>,
) -> Harness<C> {
    let log = log.unwrap_or_else(|| Arc::new(MemoryLog::new()));
    let registry = Arc::new(Registry::new());
    let mut spec = BrokerSpec::new("ns", "b");
    spec.partitions = Some(partitions);
    log.create_topic(&spec.topic_spec()).await.unwrap();
    registry.put_broker(spec).unwrap();
    let dispatcher = Dispatcher::new(log.clone(), registry.clone(), clock.clone());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(dispatcher.clone().run(rx));
    Harness {
        log,
        registry,
        dispatcher,
        clock,
        stop,
        task,
    }
}

async fn harness(partitions: i32) -> Harness<TokioClock> {
    harness_with(Arc::new(TokioClock), partitions, None).await
}

impl<C: Clock> Harness<C> {
    async fn add_trigger(&self, t: TriggerSpec) {
        let (ns, name) = (t.namespace.clone(), t.name.clone());
        self.registry.put_trigger(t).unwrap();
        assert!(
            self.dispatcher.wait_ready(&ns, &name, WAIT).await,
            "trigger {name} became ready"
        );
    }

    async fn send(&self, partition: i32, event: &Event) -> i64 {
        self.log
            .append(TOPIC, partition, vec![to_record(event, 0)])
            .await
            .unwrap()
    }

    async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn event(id: &str, ty: &str) -> Event {
    let mut e = Event::new(id, "/test", ty);
    e.set("datacontenttype", "text/plain");
    e.data = Some(bytes::Bytes::from(format!("data-{id}")));
    e
}

fn trigger(name: &str, sub: &Subscriber) -> TriggerSpec {
    TriggerSpec::new("ns", name, "b", &sub.url())
}

fn delivery(
    retry: u32,
    policy: BackoffPolicy,
    delay: &str,
    dls: Option<&Subscriber>,
) -> DeliverySpec {
    DeliverySpec {
        retry: Some(retry),
        backoff_policy: Some(policy),
        backoff_delay: Some(delay.to_owned()),
        dead_letter_sink: dls.map(|d| Destination::uri(&d.url())),
        timeout: Some("PT2S".to_owned()),
        ..DeliverySpec::default()
    }
}

/// Advances the paused clock each time the dispatcher sleeps, until `done` holds.
async fn drive(clock: &ManualClock, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out driving the clock");
        if clock.sleeping() > 0 {
            clock.advance_to_next();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn committed_eventually(log: &MemoryLog, group: &str, partition: i32, offset: i64) {
    let deadline = Instant::now() + WAIT;
    while log.committed(group, TOPIC, partition) != Some(offset) {
        assert!(
            Instant::now() < deadline,
            "committed {:?}, expected {offset}",
            log.committed(group, TOPIC, partition)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// Knative data-plane contract: binary mode with the event's attributes, plus the Kafka
// partition and offset extensions, Prefer: reply and the namespace.
#[tokio::test]
async fn delivers_in_binary_mode_with_knative_headers() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    h.add_trigger(trigger("t", &sub)).await;
    let mut e = event("e1", "com.example.created");
    e.set(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    e.set("note", "50% off");
    let offset = h.send(0, &e).await;
    let got = sub.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("ce-id"), Some("e1"));
    assert_eq!(r.header("ce-specversion"), Some("1.0"));
    assert_eq!(r.header("ce-type"), Some("com.example.created"));
    assert_eq!(r.header("ce-note"), Some("50%25%20off"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("ce-knativekafkapartition"), Some("0"));
    assert_eq!(
        r.header("ce-knativekafkaoffset"),
        Some(offset.to_string().as_str())
    );
    assert_eq!(r.header("prefer"), Some("reply"));
    assert_eq!(r.header("kn-namespace"), Some("ns"));
    assert!(r.header("traceparent").unwrap().starts_with("00-0af7"));
    assert_eq!(&r.body[..], b"data-e1");
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, offset + 1).await;
    let status = h.dispatcher.status("ns", "t").await.unwrap();
    assert!(status.ready);
    assert_eq!((status.delivered, status.lag_records), (1, 0));
    h.shutdown().await;
}

#[tokio::test]
async fn a_new_trigger_starts_at_the_end_of_the_topic() {
    let h = harness(1).await;
    h.send(0, &event("before", "t")).await;
    let sub = start_subscriber().await;
    h.add_trigger(trigger("t", &sub)).await;
    h.send(0, &event("after", "t")).await;
    let got = sub.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(sub.received()[0].header("ce-id"), Some("after"));
    h.shutdown().await;
}

#[tokio::test]
async fn filters_select_events() {
    let h = harness(2).await;
    let sub = start_subscriber().await;
    let mut t = trigger("t", &sub);
    t.filters = serde_json::from_str::<Vec<FilterSpec>>(
        r#"[{"any":[{"prefix":{"type":"com.example."}},{"cesql":"source LIKE '%/vip'"}]},{"not":{"exact":{"subject":"skip"}}}]"#,
    )
    .unwrap();
    h.add_trigger(t).await;
    let mut skip = event("3", "com.example.a");
    skip.set("subject", "skip");
    let mut vip = event("4", "org.other");
    vip.set("source", "/customers/vip");
    for (p, e) in [
        (0, event("1", "com.example.a")),
        (1, event("2", "org.other")),
        (0, skip),
        (1, vip),
    ] {
        h.send(p, &e).await;
    }
    sub.wait_for(2, WAIT).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, 2).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 1, 2).await;
    let mut ids: Vec<_> = sub
        .received()
        .iter()
        .map(|r| r.header("ce-id").unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "4"]);
    assert_eq!(h.dispatcher.status("ns", "t").await.unwrap().filtered, 2);
    h.shutdown().await;
}

async fn retry_schedule(policy: BackoffPolicy, expected_ms: [u64; 3]) {
    let h = harness_with(Arc::new(ManualClock::new()), 1, None).await;
    let sub = start_subscriber().await;
    sub.set_default(
        Answer::status(503)
            .header("kne-retry-hint", "later")
            .body("overloaded, try again"),
    );
    let dls = start_subscriber().await;
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(3, policy, "PT0.1S", Some(&dls)));
    h.add_trigger(t).await;
    let offset = h.send(0, &event("e1", "t")).await;
    drive(&h.clock, || dls.count() >= 1).await;
    // DeliverySpec: retry 3 means 4 attempts, backoff per the policy with n from 1.
    assert_eq!(sub.count(), 4);
    let requested: Vec<u64> = h
        .clock
        .requested()
        .iter()
        .map(|d| d.as_millis() as u64)
        .collect();
    assert_eq!(requested, expected_ms);
    let dead = &dls.received()[0];
    assert_eq!(dead.header("ce-id"), Some("e1"));
    assert_eq!(dead.header("ce-knativeerrordest"), Some(sub.url().as_str()));
    assert_eq!(dead.header("ce-knativeerrorcode"), Some("503"));
    let data = base64::engine::general_purpose::STANDARD.encode("overloaded, try again");
    assert_eq!(dead.header("ce-knativeerrordata"), Some(data.as_str()));
    assert_eq!(dead.header("ce-kneretryhint"), Some("later"));
    assert_eq!(&dead.body[..], b"data-e1");
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, offset + 1).await;
    let status = h.dispatcher.status("ns", "t").await.unwrap();
    assert_eq!((status.dead_lettered, status.attempts), (1, 4));
    h.shutdown().await;
}

#[tokio::test]
async fn linear_backoff_retries_then_dead_letters() {
    retry_schedule(BackoffPolicy::Linear, [100, 200, 300]).await;
}

#[tokio::test]
async fn exponential_backoff_retries_then_dead_letters() {
    retry_schedule(BackoffPolicy::Exponential, [200, 400, 800]).await;
}

// Real time: the gaps between attempts are at least the backoff.
#[tokio::test]
async fn backoff_timing_in_real_time() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.script(vec![
        Answer::status(500),
        Answer::status(500),
        Answer::status(200),
    ]);
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(5, BackoffPolicy::Linear, "PT0.15S", None));
    h.add_trigger(t).await;
    h.send(0, &event("e1", "t")).await;
    let got = sub.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(150) && gap1 < Duration::from_millis(1500),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(300) && gap2 < Duration::from_millis(1800),
        "{gap2:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn non_retryable_statuses_fail_at_once() {
    let h = harness_with(Arc::new(ManualClock::new()), 1, None).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(400));
    let dls = start_subscriber().await;
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(5, BackoffPolicy::Linear, "PT1S", Some(&dls)));
    h.add_trigger(t).await;
    h.send(0, &event("e1", "t")).await;
    dls.wait_for(1, WAIT).await;
    assert_eq!(sub.count(), 1);
    assert!(h.clock.requested().is_empty());
    assert_eq!(dls.received()[0].header("ce-knativeerrorcode"), Some("400"));
    h.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_retry_after_max() {
    let h = harness_with(Arc::new(ManualClock::new()), 1, None).await;
    let sub = start_subscriber().await;
    sub.script(vec![
        Answer::status(429).header("retry-after", "30"),
        Answer::status(503).header("retry-after", "1"),
        Answer::status(202),
    ]);
    let mut t = trigger("t", &sub);
    let mut d = delivery(3, BackoffPolicy::Linear, "PT0.1S", None);
    d.retry_after_max = Some("PT5S".into());
    t.delivery = Some(d);
    h.add_trigger(t).await;
    h.send(0, &event("e1", "t")).await;
    drive(&h.clock, || sub.count() >= 3).await;
    let requested: Vec<u64> = h
        .clock
        .requested()
        .iter()
        .map(|d| d.as_millis() as u64)
        .collect();
    assert_eq!(requested, [5_000, 1_000]);
    h.shutdown().await;
}

#[tokio::test]
async fn a_2xx_body_that_is_not_a_cloudevent_is_a_failure() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(200).body("ok thanks"));
    let dls = start_subscriber().await;
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(2, BackoffPolicy::Linear, "PT0.01S", Some(&dls)));
    h.add_trigger(t).await;
    h.send(0, &event("e1", "t")).await;
    let dead = dls.wait_for(1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(sub.count(), 1, "not retried");
    assert_eq!(dead[0].header("ce-knativeerrorcode"), Some("200"));
    h.shutdown().await;
}

#[tokio::test]
async fn replies_chain_to_a_second_trigger() {
    let h = harness(2).await;
    let first = start_subscriber().await;
    first.set_default(
        Answer::status(200)
            .header("ce-specversion", "1.0")
            .header("ce-id", "reply-1")
            .header("ce-source", "/first")
            .header("ce-type", "com.example.reply")
            .header("content-type", "text/plain")
            .body("hello back"),
    );
    let second = start_subscriber().await;
    let mut t1 = trigger("first", &first);
    t1.filter =
        Some(serde_json::from_str(r#"{"attributes":{"type":"com.example.request"}}"#).unwrap());
    let mut t2 = trigger("second", &second);
    t2.filter =
        Some(serde_json::from_str(r#"{"attributes":{"type":"com.example.reply"}}"#).unwrap());
    h.add_trigger(t1).await;
    h.add_trigger(t2).await;
    h.send(1, &event("req-1", "com.example.request")).await;
    let got = second.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("ce-id"), Some("reply-1"));
    assert_eq!(&got[0].body[..], b"hello back");
    assert_eq!(first.count(), 1);
    assert_eq!(h.dispatcher.status("ns", "first").await.unwrap().replies, 1);
    h.shutdown().await;
}

async fn concurrency(order: DeliveryOrder) -> (usize, Vec<String>) {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(202).delay(Duration::from_millis(40)));
    let mut t = trigger("t", &sub);
    t.delivery_order = order;
    h.add_trigger(t).await;
    for i in 0..10 {
        h.send(0, &event(&format!("{i}"), "t")).await;
    }
    sub.wait_for(10, WAIT).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, 10).await;
    let ids = sub
        .received()
        .iter()
        .map(|r| r.header("ce-id").unwrap().to_owned())
        .collect();
    let max = sub.state.concurrent_max.load(Ordering::SeqCst);
    h.shutdown().await;
    (max, ids)
}

#[tokio::test]
async fn ordered_delivers_one_at_a_time_in_order() {
    let (max, ids) = concurrency(DeliveryOrder::Ordered).await;
    assert_eq!(max, 1);
    assert_eq!(ids, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn unordered_delivers_concurrently() {
    let (max, ids) = concurrency(DeliveryOrder::Unordered).await;
    assert!(max > 1, "max concurrency {max}");
    assert_eq!(ids.len(), 10);
}

// Unordered commits only the contiguous finished prefix: a slow first event holds the offset.
#[tokio::test]
async fn commits_cover_only_the_finished_prefix() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.script(vec![Answer::status(202).delay(Duration::from_millis(1500))]);
    h.add_trigger(trigger("t", &sub)).await;
    let base = h.log.end_offset(TOPIC, 0).await.unwrap();
    for i in 0..5 {
        h.send(0, &event(&format!("{i}"), "t")).await;
    }
    sub.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.log.committed("knative-trigger-ns-t", TOPIC, 0),
        Some(base),
        "held at the slow event"
    );
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, base + 5).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_down_for_a_while_loses_nothing() {
    let h = harness(2).await;
    let sub = start_subscriber().await;
    let addr = sub.addr;
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(100, BackoffPolicy::Linear, "PT0.05S", None));
    h.add_trigger(t).await;
    sub.stop();
    drop(sub);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        h.send(i % 2, &event(&format!("{i}"), "t")).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let back = start_subscriber_on(&addr.to_string()).await;
    back.wait_for(20, WAIT).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, 10).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 1, 10).await;
    let mut ids: Vec<u32> = back
        .received()
        .iter()
        .map(|r| r.header("ce-id").unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    assert_eq!(h.dispatcher.status("ns", "t").await.unwrap().dropped, 0);
    h.shutdown().await;
}

// Beyond Knative: a failing dead-letter sink holds the offset (no loss) until it recovers.
#[tokio::test]
async fn a_failing_dead_letter_sink_holds_the_offset() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(400));
    let dls = start_subscriber().await;
    dls.set_default(Answer::status(500));
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(0, BackoffPolicy::Linear, "PT0.02S", Some(&dls)));
    h.add_trigger(t).await;
    let base = h.log.end_offset(TOPIC, 0).await.unwrap();
    h.send(0, &event("e1", "t")).await;
    dls.wait_for(3, WAIT).await;
    assert_eq!(
        h.log.committed("knative-trigger-ns-t", TOPIC, 0),
        Some(base)
    );
    let status = h.dispatcher.status("ns", "t").await.unwrap();
    assert!(status.dead_letter_failures >= 2);
    assert!(
        status
            .last_error
            .unwrap()
            .contains("dead-letter sink failed")
    );
    dls.set_default(Answer::status(202));
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, base + 1).await;
    assert_eq!(
        h.dispatcher.status("ns", "t").await.unwrap().dead_lettered,
        1
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_trigger_may_opt_into_dropping_when_the_sink_fails() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(400));
    let dls = start_subscriber().await;
    dls.set_default(Answer::status(500));
    let mut t = trigger("t", &sub);
    t.delivery = Some(delivery(0, BackoffPolicy::Linear, "PT0.02S", Some(&dls)));
    t.dead_letter_failure = DeadLetterFailurePolicy::Drop;
    h.add_trigger(t).await;
    let offset = h.send(0, &event("e1", "t")).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, offset + 1).await;
    assert_eq!(h.dispatcher.status("ns", "t").await.unwrap().dropped, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn no_sink_means_logged_counted_and_committed() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(422));
    h.add_trigger(trigger("t", &sub)).await;
    let offset = h.send(0, &event("e1", "t")).await;
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, offset + 1).await;
    assert_eq!(h.dispatcher.status("ns", "t").await.unwrap().dropped, 1);
    h.shutdown().await;
}

// A dispatcher that dies mid-dispatch leaves offsets at the finished prefix; the next one
// re-delivers the rest: nothing is skipped.
#[tokio::test]
async fn a_crash_mid_dispatch_redelivers_and_loses_nothing() {
    let log = Arc::new(MemoryLog::new());
    let h = harness_with(Arc::new(TokioClock), 1, Some(log.clone())).await;
    let sub = start_subscriber().await;
    sub.set_default(Answer::status(202).delay(Duration::from_millis(30)));
    let mut t = trigger("t", &sub);
    t.delivery_order = DeliveryOrder::Ordered;
    h.add_trigger(t.clone()).await;
    for i in 0..30 {
        h.send(0, &event(&format!("{i}"), "t")).await;
    }
    sub.wait_for(5, WAIT).await;
    // Crash: abort the dispatcher and its workers without any clean stop.
    h.task.abort();
    drop(h.dispatcher);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let delivered_before = sub.count();
    let committed = log.committed("knative-trigger-ns-t", TOPIC, 0).unwrap();
    assert!(
        committed as usize <= delivered_before,
        "never past what was delivered"
    );
    // A new dispatcher on the same log.
    let registry = Arc::new(Registry::new());
    let mut b = BrokerSpec::new("ns", "b");
    b.partitions = Some(1);
    registry.put_broker(b).unwrap();
    registry.put_trigger(t).unwrap();
    let d2 = Dispatcher::new(log.clone(), registry, Arc::new(TokioClock));
    let (stop2, rx2) = watch::channel(false);
    let task2 = tokio::spawn(d2.clone().run(rx2));
    committed_eventually(&log, "knative-trigger-ns-t", 0, 30).await;
    let mut ids: Vec<u32> = sub
        .received()
        .iter()
        .map(|r| r.header("ce-id").unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    let _ = stop2.send(true);
    let _ = task2.await;
}

// One trigger's hung subscriber never slows another trigger.
#[tokio::test]
async fn a_slow_subscriber_does_not_slow_another_trigger() {
    let h = harness(1).await;
    let slow = start_subscriber().await;
    slow.set_default(Answer::status(202).delay(Duration::from_secs(3)));
    let fast = start_subscriber().await;
    let mut ts = trigger("slow", &slow);
    ts.delivery_order = DeliveryOrder::Ordered;
    h.add_trigger(ts).await;
    h.add_trigger(trigger("fast", &fast)).await;
    let start = Instant::now();
    for i in 0..5 {
        h.send(0, &event(&format!("{i}"), "t")).await;
    }
    fast.wait_for(5, WAIT).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(slow.count() <= 1);
    h.shutdown().await;
}

// Records written by any Kafka producer: structured JSON without content-type (Dapr).
#[tokio::test]
async fn structured_records_without_content_type_are_dispatched() {
    let h = harness(1).await;
    let sub = start_subscriber().await;
    h.add_trigger(trigger("t", &sub)).await;
    let record = Record {
        value: Some(bytes::Bytes::from_static(
            br#"{"specversion":"1.0","id":"dapr-1","source":"orders","type":"com.dapr.event.sent","datacontenttype":"application/json","data":{"n":1}}"#,
        )),
        ..Record::default()
    };
    h.log.append(TOPIC, 0, vec![record]).await.unwrap();
    h.log
        .append(
            TOPIC,
            0,
            vec![Record {
                value: Some(bytes::Bytes::from_static(b"not an event")),
                ..Record::default()
            }],
        )
        .await
        .unwrap();
    let got = sub.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("ce-id"), Some("dapr-1"));
    assert_eq!(&got[0].body[..], br#"{"n":1}"#);
    committed_eventually(&h.log, "knative-trigger-ns-t", 0, 2).await;
    assert_eq!(h.dispatcher.status("ns", "t").await.unwrap().skipped, 1);
    h.shutdown().await;
}
