//! The CloudEvents HTTP ingress: `POST /{namespace}/{broker}` appends events to the broker's
//! topic and answers 202 only once the append is durable.
//!
//! Status codes: 202 accepted; 400 not a valid CloudEvent (JSON body naming the attribute and
//! the rule); 404 unknown broker or path; 405 other methods on a broker path; 408 a body that
//! does not arrive in time; 413 too large (the ingress body limit or the topic's
//! `max.message.bytes`); 429 with `Retry-After` when too many requests are in flight or the
//! broker throttles; 503 with `Retry-After` when a partition has no leader, its leader cannot be
//! reached, or it has too few in-sync replicas. `GET /healthz` and `/readyz` answer 200.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::codec::{self, DecodeError};
use crate::log::{EventLog, LogError, Record};
use crate::partitioner::Partitioner;
use crate::registry::Registry;

/// Largest request body accepted, matching Kafka's default `max.message.bytes` plus framing;
/// a larger one is refused with 413 before it is read.
pub const BODY_MAX_BYTES_DEFAULT: usize = 1_048_588 + 64 * 1024;
/// Requests being appended at once before new ones get 429.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 4_096;
/// How long a client may take to send its body before it gets 408; bounds slow clients.
pub const BODY_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// `Retry-After` seconds sent with 429 and 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Ingress limits.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Largest request body, bytes.
    pub body_max_bytes: usize,
    /// Requests in flight before 429.
    pub in_flight_max: usize,
    /// Time allowed to receive a body.
    pub body_read_timeout: Duration,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            body_max_bytes: BODY_MAX_BYTES_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            body_read_timeout: Duration::from_millis(BODY_READ_TIMEOUT_MS_DEFAULT),
        }
    }
}

/// The ingress state shared by requests.
pub struct Ingress<L> {
    log: Arc<L>,
    registry: Arc<Registry>,
    config: IngressConfig,
    in_flight: Arc<Semaphore>,
    partitioner: Partitioner,
}

impl<L: EventLog> Ingress<L> {
    /// An ingress appending to `log` for the brokers in `registry`.
    pub fn new(log: Arc<L>, registry: Arc<Registry>, config: IngressConfig) -> Arc<Self> {
        Arc::new(Ingress {
            log,
            registry,
            in_flight: Arc::new(Semaphore::new(config.in_flight_max)),
            config,
            partitioner: Partitioner::default(),
        })
    }
}

/// The ingress router.
pub fn router<L: EventLog>(ingress: Arc<Ingress<L>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route("/readyz", get(|| async { StatusCode::OK }))
        .route("/{namespace}/{broker}", any(handle::<L>))
        .route("/{namespace}/{broker}/", any(handle::<L>))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such path; POST events to /{namespace}/{broker}",
                None,
            )
        })
        .with_state(ingress)
}

/// Serves the ingress on `listener` until `shutdown` completes, then finishes open requests.
pub async fn serve<L: EventLog>(
    listener: tokio::net::TcpListener,
    ingress: Arc<Ingress<L>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ingress))
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, message: &str, attribute: Option<(&str, Option<&str>)>) -> Response {
    let mut body = json!({ "error": message });
    if let Some((attr, rule)) = attribute {
        body["attribute"] = json!(attr);
        if let Some(rule) = rule {
            body["rule"] = json!(rule);
        }
    }
    let mut response = (status, axum::Json(body)).into_response();
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

fn decode_error(e: &DecodeError) -> Response {
    let rule = match e {
        DecodeError::Invalid(v) => Some(v.rule.clone()),
        DecodeError::InBatch { source, .. } => match source.as_ref() {
            DecodeError::Invalid(v) => Some(v.rule.clone()),
            _ => None,
        },
        _ => None,
    };
    let attribute = e.attribute().map(|a| (a, rule.as_deref()));
    error(StatusCode::BAD_REQUEST, &e.to_string(), attribute)
}

fn log_error(e: &LogError) -> Response {
    match e {
        LogError::TooLarge { .. } => error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), None),
        LogError::Throttled { .. } => error(StatusCode::TOO_MANY_REQUESTS, &e.to_string(), None),
        LogError::NotLeader { .. }
        | LogError::NotEnoughReplicas { .. }
        | LogError::Timeout
        | LogError::CoordinatorNotAvailable { .. }
        | LogError::Unreachable { .. }
        | LogError::UnknownTopic { .. } => {
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), None)
        }
        LogError::OffsetOutOfRange { .. } | LogError::Other(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None)
        }
    }
}

async fn handle<L: EventLog>(
    State(ingress): State<Arc<Ingress<L>>>,
    Path((namespace, broker)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "only POST is allowed on a broker path",
            None,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let Some(spec) = ingress.registry.broker(&namespace, &broker) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("broker {namespace}/{broker} not found"),
            None,
        );
    };
    let Ok(_permit) = ingress.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("spate_cloudevents_ingress_rejected_total", "reason" => "backpressure")
            .increment(1);
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in flight",
            None,
        );
    };
    let limit = ingress.config.body_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {limit} bytes"),
            None,
        );
    }
    let body = match tokio::time::timeout(
        ingress.config.body_read_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
                None,
            );
        }
        Ok(Err(e)) => {
            // to_bytes fails on the length limit or on a broken connection; only the first has
            // a client to answer.
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body larger than {limit} bytes or unreadable: {e}"),
                None,
            );
        }
        Ok(Ok(b)) => b,
    };
    let events = match codec::http::decode(&headers, body) {
        Ok(events) => events,
        Err(e) => return decode_error(&e),
    };
    for (index, event) in events.iter().enumerate() {
        if let Err(v) = event.validate() {
            let e = if events.len() > 1 {
                DecodeError::InBatch {
                    index,
                    source: Box::new(DecodeError::Invalid(v)),
                }
            } else {
                DecodeError::Invalid(v)
            };
            return decode_error(&e);
        }
    }
    if events.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let topic = spec.topic();
    let count = match ingress.log.partition_count(&topic) {
        Ok(n) => n,
        Err(e) => return log_error(&e),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // Keyless events of one request share one partition, so that a batch without partition
    // keys is a single append: all or nothing. It is one this node leads when there is one, so
    // that the append needs no hop; a keyed event goes where Kafka's partitioner puts its key,
    // and the log forwards it when another node leads that partition.
    let mut keyless_partition = None;
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for event in &events {
        let record = codec::kafka::to_record(event, now_ms);
        let p = match &record.key {
            Some(k) => ingress.partitioner.partition(Some(k), count),
            None => *keyless_partition.get_or_insert_with(|| {
                let led = ingress.log.led_partitions(&topic);
                ingress.partitioner.keyless(&led, count)
            }),
        };
        by_partition.entry(p).or_default().push(record);
    }
    let appends = by_partition.into_iter().map(|(p, records)| {
        let log = ingress.log.clone();
        let topic = topic.clone();
        async move { log.append(&topic, p, records).await }
    });
    for result in futures::future::join_all(appends).await {
        if let Err(e) = result {
            metrics::counter!("spate_cloudevents_ingress_rejected_total", "reason" => "append")
                .increment(1);
            return log_error(&e);
        }
    }
    metrics::counter!("spate_cloudevents_ingress_events_total").increment(events.len() as u64);
    StatusCode::ACCEPTED.into_response()
}
