//! Real HTTP on 127.0.0.1 for the integration tests: a client, the ingress on port 0, and
//! subscribers whose answers a test scripts.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use spate_cloudevents::ingress::{Ingress, IngressConfig, serve};
use spate_cloudevents::memory::MemoryLog;
use spate_cloudevents::registry::Registry;
use tokio::sync::watch;

/// A response from [`post`].
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).expect("request"))
        .await
        .expect("HTTP exchange");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    request("POST", url, headers, body).await
}

/// The ingress served on an ephemeral port; stops when dropped.
pub struct IngressServer {
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

impl IngressServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

pub async fn start_ingress(
    log: Arc<MemoryLog>,
    registry: Arc<Registry>,
    config: IngressConfig,
) -> IngressServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut rx) = watch::channel(false);
    let ingress = Ingress::new(log, registry, config);
    tokio::spawn(serve(listener, ingress, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    IngressServer { addr, _stop: stop }
}

/// One request a subscriber received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn body(mut self, b: &str) -> Self {
        self.body = Bytes::copy_from_slice(b.as_bytes());
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Default)]
pub struct SubscriberState {
    pub received: Mutex<Vec<Received>>,
    /// Answers used in order; when empty, `default` answers.
    pub script: Mutex<VecDeque<Answer>>,
    pub default: Mutex<Option<Answer>>,
    pub concurrent: AtomicUsize,
    pub concurrent_max: AtomicUsize,
}

/// An HTTP subscriber on 127.0.0.1; stops when dropped.
pub struct Subscriber {
    pub addr: SocketAddr,
    pub state: Arc<SubscriberState>,
    stop: watch::Sender<bool>,
}

impl Subscriber {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().clone()
    }
    pub fn count(&self) -> usize {
        self.state.received.lock().len()
    }
    pub fn set_default(&self, a: Answer) {
        *self.state.default.lock() = Some(a);
    }
    pub fn script(&self, answers: Vec<Answer>) {
        self.state.script.lock().extend(answers);
    }
    /// Waits until at least `n` requests arrived, up to `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.received();
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn answer(
    State(state): State<Arc<SubscriberState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    state.concurrent_max.fetch_max(now, Ordering::SeqCst);
    state.received.lock().push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    let a = state
        .script
        .lock()
        .pop_front()
        .or_else(|| state.default.lock().clone())
        .unwrap_or_else(|| Answer::status(202));
    if !a.delay.is_zero() {
        tokio::time::sleep(a.delay).await;
    }
    state.concurrent.fetch_sub(1, Ordering::SeqCst);
    let mut r = (StatusCode::from_u16(a.status).expect("status"), a.body).into_response();
    for (k, v) in a.headers {
        r.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(&v).expect("value"),
        );
    }
    r
}

pub async fn start_subscriber() -> Subscriber {
    start_subscriber_on("127.0.0.1:0").await
}

pub async fn start_subscriber_on(addr: &str) -> Subscriber {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind subscriber");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(SubscriberState::default());
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(state.clone());
    let (stop, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    Subscriber { addr, state, stop }
}
