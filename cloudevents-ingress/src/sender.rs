//! HTTP delivery to subscribers and dead-letter sinks: one attempt with a timeout and a bounded
//! response, and the retry loop of a [`DeliveryPolicy`] with Knative's retry classification.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::clock::Clock;
use crate::codec;
use crate::delivery::DeliveryPolicy;
use crate::event::Event;

/// Largest response body read from a subscriber; a reply event bigger than this is a failed
/// delivery rather than unbounded memory.
pub const RESPONSE_BODY_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long to wait for a TCP connection before counting the attempt as failed.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long idle keep-alive connections to a subscriber stay pooled.
pub const POOL_IDLE_TIMEOUT_MS: u64 = 90_000;

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// A 2xx; `reply` holds the events of a CloudEvent reply, empty when the body was empty.
    Success {
        /// Status code.
        status: StatusCode,
        /// Reply events.
        reply: Vec<Event>,
    },
    /// Anything else.
    Failure(Failure),
}

/// A failed attempt, with what a dead-letter event reports about it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// HTTP status, `None` for connection errors and timeouts.
    pub status: Option<StatusCode>,
    /// Whether Knative would retry it: connection errors, timeouts, 404, 408, 409, 429, 5xx.
    pub retryable: bool,
    /// `Retry-After` (delta-seconds) of a 429 or 503.
    pub retry_after: Option<Duration>,
    /// Response headers (empty without a response).
    pub headers: HeaderMap,
    /// The start of the response body.
    pub body: Bytes,
    /// A description for logs and status.
    pub reason: String,
}

/// Whether a status is worth retrying (Knative's classification).
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 408 | 409 | 429) || status.is_server_error()
}

/// The HTTP client, pooled per host. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    /// A client with Spate's connection limits.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
            .build(connector);
        Sender { client }
    }

    /// One POST with a timeout over the whole exchange, body included.
    pub async fn send_once(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Attempt {
        let failure = |reason: String| Failure {
            status: None,
            retryable: true,
            retry_after: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            reason,
        };
        let mut builder = Request::builder().method(Method::POST).uri(url);
        if let Some(h) = builder.headers_mut() {
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            h.insert(CONTENT_LENGTH, body.len().into());
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failure(Failure {
                    retryable: false,
                    ..failure(format!("cannot build a request to {url}: {e}"))
                });
            }
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, RESPONSE_BODY_MAX_BYTES)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| format!("{url}: reading the response: {e}"))?;
            Ok::<_, String>((parts, bytes))
        };
        let (parts, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Attempt::Failure(failure(format!("{url}: no response within {timeout:?}")));
            }
            Ok(Err(e)) => return Attempt::Failure(failure(e)),
            Ok(Ok(x)) => x,
        };
        let status = parts.status;
        if status.is_success() {
            if body.is_empty() {
                return Attempt::Success {
                    status,
                    reply: Vec::new(),
                };
            }
            let decoded = codec::http::decode(&parts.headers, body.clone()).and_then(|events| {
                for e in &events {
                    e.validate()?;
                }
                Ok(events)
            });
            return match decoded {
                Ok(reply) => Attempt::Success { status, reply },
                Err(e) => Attempt::Failure(Failure {
                    status: Some(status),
                    retryable: false,
                    retry_after: None,
                    headers: parts.headers,
                    body,
                    reason: format!(
                        "{url} answered {status} with a body that is not a CloudEvent: {e}"
                    ),
                }),
            };
        }
        let retry_after = if matches!(status.as_u16(), 429 | 503) {
            parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        } else {
            None
        };
        Attempt::Failure(Failure {
            status: Some(status),
            retryable: is_retryable_status(status),
            retry_after,
            headers: parts.headers,
            body,
            reason: format!("{url} answered {status}"),
        })
    }

    /// The first attempt and up to `policy.retry` retries, sleeping on `clock` between them.
    /// Returns the last attempt and how many were made. `stop` ends the loop early (returning
    /// `None`) when it resolves during a backoff.
    pub async fn send_with_retries<C: Clock>(
        &self,
        clock: &C,
        url: &str,
        headers: &HeaderMap,
        body: &Bytes,
        policy: &DeliveryPolicy,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<(Attempt, u32)> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = self
                .send_once(url, headers, body.clone(), policy.timeout)
                .await;
            let failure = match &attempt {
                Attempt::Success { .. } => return Some((attempt, attempts)),
                Attempt::Failure(f) => f,
            };
            let retry_number = attempts; // retries so far + 1
            if !failure.retryable || retry_number > policy.retry {
                return Some((attempt, attempts));
            }
            let delay = policy.backoff_with_retry_after(retry_number, failure.retry_after);
            tracing::debug!(url, attempt = attempts, ?delay, reason = %failure.reason, "delivery failed; retrying");
            if *stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = clock.sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
    }
}
