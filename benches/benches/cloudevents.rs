//! CloudEvents hot paths, per event: HTTP binary and structured decoding with validation, the
//! Kafka binary-content-mode encoding and decoding, trigger filters (attributes, SubscriptionsAPI
//! prefix, CESQL) and CESQL parsing. Throughput is events/s.
//!
//! Smoke-run with `cargo bench -p spate-benches --bench cloudevents -- --test`. The ingress load
//! test (HTTP 202 rate and latency at 64 connections) is `benches/cloudevents-load.sh`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use spate_cloudevents::cesql::Expression;
use spate_cloudevents::codec::{http as ce_http, json, kafka};
use spate_cloudevents::event::Event;
use spate_cloudevents::filter::{self, AttributesFilterSpec, FilterSpec};

/// A typical small JSON event payload.
const DATA: &[u8] = br#"{"orderId":"o-12345","customer":"c-987","total":129.95,"items":3}"#;

fn binary_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "5f2b5c1e-8a0f-4a3e-9c55-2b1f0d6a7e21"),
        ("ce-source", "https://shop.example.com/orders"),
        ("ce-type", "com.example.order.created"),
        ("ce-time", "2024-05-01T12:00:00.123Z"),
        ("ce-subject", "orders/o-12345"),
        ("ce-partitionkey", "c-987"),
        ("content-type", "application/json"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn event() -> Event {
    let events = ce_http::decode(&binary_headers(), Bytes::from_static(DATA)).expect("decodes");
    events.into_iter().next().expect("one event")
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("cloudevents_codec");
    g.throughput(Throughput::Elements(1));
    let headers = binary_headers();
    g.bench_function("http_binary_decode_validate", |b| {
        b.iter(|| {
            let events =
                ce_http::decode(black_box(&headers), Bytes::from_static(DATA)).expect("decodes");
            events[0].validate().expect("valid");
            events
        })
    });
    let structured = Bytes::from(json::encode_structured(&event()));
    let mut sh = HeaderMap::new();
    sh.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents+json"),
    );
    g.bench_function("http_structured_decode_validate", |b| {
        b.iter(|| {
            let events = ce_http::decode(black_box(&sh), structured.clone()).expect("decodes");
            events[0].validate().expect("valid");
            events
        })
    });
    let e = event();
    g.bench_function("kafka_encode", |b| {
        b.iter(|| kafka::to_record(black_box(&e), 0))
    });
    let record = kafka::to_record(&e, 0);
    g.bench_function("kafka_decode", |b| {
        b.iter(|| kafka::from_record(black_box(&record)).expect("decodes"))
    });
    g.finish();
}

fn filters(c: &mut Criterion) {
    let mut g = c.benchmark_group("cloudevents_filter");
    g.throughput(Throughput::Elements(1));
    let e = event();
    let attributes = AttributesFilterSpec {
        attributes: [
            ("type".to_owned(), "com.example.order.created".to_owned()),
            (
                "source".to_owned(),
                "https://shop.example.com/orders".to_owned(),
            ),
        ]
        .into(),
    };
    let f = filter::compile(Some(&attributes), &[]).expect("compiles");
    g.bench_function("attributes_exact", |b| {
        b.iter(|| assert!(f.matches(black_box(&e))))
    });
    let specs: Vec<FilterSpec> = serde_json::from_str(
        r#"[{"prefix":{"type":"com.example."}},{"not":{"suffix":{"subject":"/cancelled"}}}]"#,
    )
    .expect("spec");
    let f = filter::compile(None, &specs).expect("compiles");
    g.bench_function("subscriptions_prefix_not_suffix", |b| {
        b.iter(|| assert!(f.matches(black_box(&e))))
    });
    let source = "type LIKE 'com.example.%' AND (subject LIKE 'orders/%' OR EXISTS partitionkey) AND LENGTH(id) > 10";
    let expr = Expression::parse(source).expect("parses");
    g.bench_function("cesql_evaluate", |b| {
        b.iter(|| assert!(expr.matches(black_box(&e))))
    });
    g.bench_function("cesql_parse", |b| {
        b.iter(|| Expression::parse(black_box(source)).expect("parses"))
    });
    g.finish();
}

criterion_group!(benches, codecs, filters);
criterion_main!(benches);
