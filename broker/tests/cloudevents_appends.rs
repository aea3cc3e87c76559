//! Concurrent ingress requests to one partition share record batches (group commit), and each
//! request still stays whole: its events are stored once, in order, at consecutive offsets, and
//! its 202 comes only after they are committed.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use spate_broker::cloudevents::BrokerLog;
use spate_broker::replica::partition::Isolation;
use spate_cloudevents::admin::call;
use spate_cloudevents::log::EventLog;
use spate_protocol::records::RecordBatch;
use support::TestBroker;

const REQUESTS: usize = 60;
const EVENTS_PER_REQUEST: usize = 3;

fn batch_body(request: usize) -> String {
    let events: Vec<String> = (0..EVENTS_PER_REQUEST)
        .map(|j| {
            format!(
                r#"{{"specversion":"1.0","id":"r{request}-{j}","source":"/t","type":"t.e","data":{{"n":{j}}}}}"#
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_batches_and_each_stays_whole_and_in_order() {
    let node = TestBroker::start().await;
    let server = node.server.as_ref().expect("running");
    let admin = server.admin_addr.to_string();
    let ingress = server.cloudevents_addr.to_string();
    let (status, body) = call(
        &admin,
        Method::POST,
        "/v1/brokers",
        Some((
            "application/json",
            br#"{"namespace":"ns","name":"b","partitions":1}"#.to_vec(),
        )),
    )
    .await
    .expect("admin answers");
    assert_eq!(status, 201, "{body}");

    let posts: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let ingress = ingress.clone();
            tokio::spawn(async move {
                call(
                    &ingress,
                    Method::POST,
                    "/ns/b",
                    Some((
                        "application/cloudevents-batch+json",
                        batch_body(i).into_bytes(),
                    )),
                )
                .await
            })
        })
        .collect();
    for post in posts {
        let (status, body) = post.await.expect("task").expect("ingress answers");
        assert_eq!(status, 202, "{body}");
    }

    // Every 202 came after its commit: everything is readable now.
    let log = BrokerLog::new(server.broker.clone());
    let records = log
        .read(
            "knative-broker-ns-b",
            0,
            0,
            10 * REQUESTS * EVENTS_PER_REQUEST,
            Duration::from_millis(100),
        )
        .await
        .expect("read");
    assert_eq!(records.len(), REQUESTS * EVENTS_PER_REQUEST);
    let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
    for stored in &records {
        let id = stored.record.header("ce_id").expect("ce_id header");
        let id = String::from_utf8_lossy(id).into_owned();
        assert!(
            offsets.insert(id.clone(), stored.offset).is_none(),
            "{id} stored twice"
        );
    }
    // Every batch holds whole requests. (How many requests share one depends on timing: the
    // load benchmark shows the effect; here it is only reported.)
    let partition = server
        .broker
        .replicas
        .get("knative-broker-ns-b", 0)
        .expect("the partition is here");
    let read = partition
        .read(0, 16 << 20, Isolation::ReadCommitted, true)
        .expect("raw read");
    let mut bytes = read.records;
    let mut batches = 0;
    while let Ok(batch) = RecordBatch::split_first(&mut bytes) {
        assert_eq!(
            batch.records_count() % EVENTS_PER_REQUEST as i32,
            0,
            "a batch holds part of a request"
        );
        batches += 1;
    }
    println!("{REQUESTS} requests stored in {batches} batches");
    for i in 0..REQUESTS {
        let first = offsets[&format!("r{i}-0")];
        for j in 1..EVENTS_PER_REQUEST {
            assert_eq!(
                offsets[&format!("r{i}-{j}")],
                first + j as i64,
                "request {i}'s events are not contiguous and in order"
            );
        }
    }
}
