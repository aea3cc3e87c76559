//! The ingress over real HTTP on 127.0.0.1, appending to the in-memory stand-in for the broker.
//! Status codes follow the issue's matrix; bindings follow http-protocol-binding.md and
//! kafka-protocol-binding.md.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{post, request, start_ingress};
use spate_cloudevents::ingress::IngressConfig;
use spate_cloudevents::log::{EventLog, LogError};
use spate_cloudevents::memory::{MemoryLog, configs};
use spate_cloudevents::model::BrokerSpec;
use spate_cloudevents::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOPIC: &str = "knative-broker-ns-b";

async fn setup(
    partitions: i32,
    config: IngressConfig,
    topic_configs: &[(&str, &str)],
) -> (Arc<MemoryLog>, Arc<Registry>, common::IngressServer) {
    let log = Arc::new(MemoryLog::new());
    let registry = Arc::new(Registry::new());
    let mut spec = BrokerSpec::new("ns", "b");
    spec.partitions = Some(partitions);
    spec.topic_configs = configs(topic_configs);
    log.create_topic(&spec.topic_spec()).await.unwrap();
    registry.put_broker(spec).unwrap();
    let server = start_ingress(log.clone(), registry.clone(), config).await;
    (log, registry, server)
}

const BINARY: &[(&str, &str)] = &[
    ("ce-specversion", "1.0"),
    ("ce-id", "e1"),
    ("ce-source", "/test"),
    ("ce-type", "com.example.created"),
    ("content-type", "application/json"),
];

#[tokio::test]
async fn binary_mode_is_stored_in_kafka_binary_content_mode() {
    let (log, _, server) = setup(1, IngressConfig::default(), &[]).await;
    let mut headers = BINARY.to_vec();
    headers.push(("ce-partitionkey", "customer-7"));
    headers.push(("ce-comment", "caf%C3%A9%20au%20lait"));
    headers.push((
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ));
    let r = post(&server.url("/ns/b"), &headers, r#"{"n":1}"#).await;
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty(), "202 has an empty body");
    let records = log.records(TOPIC, 0);
    assert_eq!(records.len(), 1);
    let rec = &records[0].record;
    assert_eq!(rec.key.as_deref(), Some(&b"customer-7"[..]));
    assert_eq!(rec.value.as_deref(), Some(&br#"{"n":1}"#[..]));
    let h = |k: &str| {
        rec.header(k)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(h("ce_id").as_deref(), Some("e1"));
    assert_eq!(h("ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    // Kafka headers carry UTF-8, not percent-encoding.
    assert_eq!(h("ce_comment").as_deref(), Some("café au lait"));
    assert!(h("ce_traceparent").unwrap().starts_with("00-0af7"));
    assert_eq!(h("ce_datacontenttype"), None);
}

#[tokio::test]
async fn structured_and_batch_modes() {
    let (log, _, server) = setup(3, IngressConfig::default(), &[]).await;
    let r = post(
        &server.url("/ns/b/"),
        &[("content-type", "application/cloudevents+json")],
        r#"{"specversion":"1.0","id":"s1","source":"/x","type":"t","data":{"a":1}}"#,
    )
    .await;
    assert_eq!(r.status, 202, "trailing slash tolerated: {:?}", r.body);
    let batch = r#"[{"specversion":"1.0","id":"b1","source":"/x","type":"t"},
                    {"specversion":"1.0","id":"b2","source":"/x","type":"t","data_base64":"AAE="}]"#;
    let r = post(
        &server.url("/ns/b"),
        &[("content-type", "application/cloudevents-batch+json")],
        batch,
    )
    .await;
    assert_eq!(r.status, 202);
    let all = log.all_records(TOPIC);
    assert_eq!(all.len(), 3);
    let s1 = all
        .iter()
        .find(|r| r.record.header("ce_id").map(|v| &v[..]) == Some(b"s1"))
        .unwrap();
    assert_eq!(s1.record.value.as_deref(), Some(&br#"{"a":1}"#[..]));
    assert_eq!(
        s1.record.header("content-type").map(|v| &v[..]),
        Some(&b"application/json"[..])
    );
    // A batch without partition keys is one append to one partition.
    let b1 = all
        .iter()
        .find(|r| r.record.header("ce_id").map(|v| &v[..]) == Some(b"b1"))
        .unwrap();
    let b2 = all
        .iter()
        .find(|r| r.record.header("ce_id").map(|v| &v[..]) == Some(b"b2"))
        .unwrap();
    assert_eq!(b2.offset, b1.offset + 1);
    assert_eq!(b2.record.value.as_deref(), Some(&[0u8, 1][..]));
    assert_eq!(b1.record.value, None, "no data is a null value");
}

#[tokio::test]
async fn invalid_events_get_400_naming_attribute_and_rule() {
    let (log, _, server) = setup(1, IngressConfig::default(), &[]).await;
    let url = server.url("/ns/b");
    // Missing id (binary).
    let r = post(
        &url,
        &BINARY[..1]
            .iter()
            .chain(&BINARY[2..])
            .copied()
            .collect::<Vec<_>>(),
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["attribute"], "id");
    assert_eq!(r.json()["rule"], "is required");
    // Bad time.
    let mut h = BINARY.to_vec();
    h.push(("ce-time", "yesterday"));
    let r = post(&url, &h, "").await;
    assert_eq!(
        (r.status.as_u16(), r.json()["attribute"].as_str()),
        (400, Some("time"))
    );
    // Bad percent-encoding.
    let mut h = BINARY.to_vec();
    h[1] = ("ce-id", "%G1");
    let r = post(&url, &h, "").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("percent"));
    // Malformed JSON.
    let r = post(
        &url,
        &[("content-type", "application/cloudevents+json")],
        "{\"specversion\":",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    // data and data_base64 together.
    let r = post(
        &url,
        &[("content-type", "application/cloudevents+json")],
        r#"{"specversion":"1.0","id":"1","source":"/x","type":"t","data":1,"data_base64":"AA=="}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    // Not a CloudEvent at all.
    let r = post(&url, &[("content-type", "application/json")], "{}").await;
    assert_eq!(r.status, 400);
    // Extension name too long.
    let mut h = BINARY.to_vec();
    h.push(("ce-abcdefghijklmnopqrstu", "x"));
    let r = post(&url, &h, "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["attribute"], "abcdefghijklmnopqrstu");
    // A batch with one bad event appends nothing.
    let batch = r#"[{"specversion":"1.0","id":"ok","source":"/x","type":"t"},{"specversion":"1.0","source":"/x","type":"t"}]"#;
    let r = post(
        &url,
        &[("content-type", "application/cloudevents-batch+json")],
        batch,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("event 1"));
    assert!(log.all_records(TOPIC).is_empty());
}

#[tokio::test]
async fn status_code_matrix() {
    let config = IngressConfig {
        body_max_bytes: 10_000,
        ..IngressConfig::default()
    };
    let (log, _, server) = setup(1, config, &[("max.message.bytes", "2000")]).await;
    let url = server.url("/ns/b");
    assert_eq!(
        request("GET", &server.url("/healthz"), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        request("GET", &server.url("/readyz"), &[], "").await.status,
        200
    );
    let r = request("GET", &url, &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(request("PUT", &url, BINARY, "").await.status, 405);
    assert_eq!(post(&server.url("/ns/nope"), BINARY, "").await.status, 404);
    assert_eq!(
        post(&server.url("/ns/b/deeper"), BINARY, "").await.status,
        404
    );
    assert_eq!(post(&server.url("/ns"), BINARY, "").await.status, 404);
    // Over the ingress body limit.
    assert_eq!(post(&url, BINARY, vec![b'x'; 20_000]).await.status, 413);
    // Over the topic's max.message.bytes.
    assert_eq!(post(&url, BINARY, vec![b'x'; 5_000]).await.status, 413);
    // No leader here / not enough in-sync replicas: 503 with Retry-After.
    log.fail_appends(
        TOPIC,
        0,
        vec![
            LogError::NotLeader {
                topic: TOPIC.into(),
                partition: 0,
            },
            LogError::NotEnoughReplicas {
                topic: TOPIC.into(),
                partition: 0,
            },
            LogError::Throttled {
                retry_after_ms: 100,
            },
        ],
    );
    for expected in [503, 503, 429] {
        let r = post(&url, BINARY, "").await;
        assert_eq!(r.status, expected);
        assert_eq!(r.headers["retry-after"], "1");
    }
    assert_eq!(post(&url, BINARY, "").await.status, 202);
}

#[tokio::test]
async fn backpressure_answers_429() {
    let config = IngressConfig {
        in_flight_max: 0,
        ..IngressConfig::default()
    };
    let (_, _, server) = setup(1, config, &[]).await;
    let r = post(&server.url("/ns/b"), BINARY, "").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "1");
}

#[tokio::test]
async fn a_stalled_body_gets_408_within_the_timeout() {
    let config = IngressConfig {
        body_read_timeout: Duration::from_millis(300),
        ..IngressConfig::default()
    };
    let (_, _, server) = setup(1, config, &[]).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /ns/b HTTP/1.1\r\nhost: x\r\nce-specversion: 1.0\r\nce-id: 1\r\nce-source: /s\r\nce-type: t\r\ncontent-length: 100\r\n\r\npartial";
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn keyed_events_follow_kafkas_partitioner() {
    let (log, _, server) = setup(4, IngressConfig::default(), &[]).await;
    let mut headers = BINARY.to_vec();
    headers.push(("ce-partitionkey", "21"));
    for _ in 0..3 {
        assert_eq!(post(&server.url("/ns/b"), &headers, "").await.status, 202);
    }
    // (murmur2("21") & 0x7fffffff) % 4, as a Kafka producer would place key "21".
    let expected = ((-973932308i32) & 0x7fff_ffff) % 4;
    assert_eq!(log.records(TOPIC, expected).len(), 3);
}

#[tokio::test]
async fn keyless_events_go_to_partitions_this_node_leads() {
    let (log, _, server) = setup(4, IngressConfig::default(), &[]).await;
    let url = server.url("/ns/b");
    let counts = || {
        (0..4)
            .map(|p| log.records(TOPIC, p).len())
            .collect::<Vec<_>>()
    };
    // Another node leads 0 and 2: keyless events go round-robin over 1 and 3, with no hop.
    log.set_not_led(TOPIC, vec![0, 2]);
    for _ in 0..4 {
        assert_eq!(post(&url, BINARY, "").await.status, 202);
    }
    assert_eq!(counts(), [0, 2, 0, 2]);
    // A keyless batch still shares one partition, one this node leads.
    let batch = r#"[{"specversion":"1.0","id":"b1","source":"/x","type":"t"},
                    {"specversion":"1.0","id":"b2","source":"/x","type":"t"},
                    {"specversion":"1.0","id":"b3","source":"/x","type":"t"}]"#;
    let r = post(
        &url,
        &[("content-type", "application/cloudevents-batch+json")],
        batch,
    )
    .await;
    assert_eq!(r.status, 202);
    let after = counts();
    assert_eq!(after[0] + after[2], 0, "{after:?}");
    assert!(after == [0, 5, 0, 2] || after == [0, 2, 0, 5], "{after:?}");
    // A keyed event goes where Kafka's partitioner puts its key, led here or not.
    let mut keyed = BINARY.to_vec();
    keyed.push(("ce-partitionkey", "21"));
    assert_eq!(post(&url, &keyed, "").await.status, 202);
    let expected = ((-973932308i32) & 0x7fff_ffff) % 4;
    assert_eq!(
        log.records(TOPIC, expected).len(),
        after[expected as usize] + 1
    );
    // This node leads nothing: every partition, round-robin.
    log.set_not_led(TOPIC, vec![0, 1, 2, 3]);
    let before = counts();
    for _ in 0..4 {
        assert_eq!(post(&url, BINARY, "").await.status, 202);
    }
    let grown: Vec<usize> = counts().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(grown, [1, 1, 1, 1]);
}
