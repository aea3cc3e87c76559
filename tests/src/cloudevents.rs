//! Helpers for CloudEvents tests: a real HTTP subscriber that records what triggers deliver,
//! and a plain HTTP/1.1 POST to a node's ingress.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Largest request a test subscriber reads.
pub const SUBSCRIBER_REQUEST_MAX_BYTES: usize = 1024 * 1024;
/// Socket timeout of one HTTP request: longer than an ingress `acks=all` append may wait (30 s).
pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// How often a subscriber's deliveries are looked at while waiting for some.
const SUBSCRIBER_POLL_INTERVAL_MS: u64 = 50;

/// One request a subscriber received: lower-cased headers and the body.
pub type Delivery = (BTreeMap<String, String>, Vec<u8>);

/// A blocking HTTP/1.1 subscriber on 127.0.0.1 answering 202 after `delay_ms`.
pub struct Subscriber {
    /// Its URL, for a trigger's `subscriber.uri`.
    pub url: String,
    /// Every request received, in arrival order.
    pub received: Arc<Mutex<Vec<Delivery>>>,
    /// How long it takes before answering each request; tests raise it to keep dispatch busy.
    pub delay_ms: Arc<AtomicU64>,
}

impl Subscriber {
    /// Listens on a free port; each connection is served on its own thread.
    pub fn start() -> Subscriber {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind subscriber");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (r, d) = (received.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, d) = (r.clone(), d.clone());
                std::thread::spawn(move || serve_connection(stream, &r, &d));
            }
        });
        Subscriber {
            url,
            received,
            delay_ms,
        }
    }

    /// The `ce-id` of every delivery so far, repeats included.
    pub fn ids(&self) -> Vec<String> {
        let received = self.received.lock().expect("lock");
        received
            .iter()
            .filter_map(|(h, _)| h.get("ce-id").cloned())
            .collect()
    }

    /// Waits up to `timeout` until every id in `wanted` was delivered; the ids delivered.
    pub fn wait_for_ids(&self, wanted: &BTreeSet<String>, timeout: Duration) -> BTreeSet<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: BTreeSet<String> = self.ids().into_iter().collect();
            if wanted.is_subset(&got) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(SUBSCRIBER_POLL_INTERVAL_MS));
        }
    }
}

fn serve_connection(stream: TcpStream, received: &Mutex<Vec<Delivery>>, delay_ms: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(SUBSCRIBER_REQUEST_MAX_BYTES);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(delay_ms.load(Ordering::Relaxed)));
        received.lock().expect("lock").push((headers, body));
        if writer
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Sends one HTTP/1.1 request on a fresh connection to `address` (an ingress or an admin
/// listener); the status and the body.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("cannot connect to {address}"))?;
    let timeout = Duration::from_millis(HTTP_REQUEST_TIMEOUT_MS);
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    // `connection: close`: the answer ends where the stream does.
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("no answer from {address} to {method} {path}"))?;
    let text = String::from_utf8_lossy(&answer);
    // "HTTP/1.1 202 Accepted"
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{address} answered {text:?}"))?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|end| answer[end + 4..].to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

/// POSTs `body` with `headers` to `http://{address}{path}`; the status.
pub fn post(address: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<u16> {
    Ok(http(address, "POST", path, headers, body)?.0)
}
