//! A minimal Kafka client that asks a broker for Metadata: the readiness check for a broker,
//! independent of every client library under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// Api key of Metadata.
const METADATA_API_KEY: i16 = 3;
/// Metadata v1: the oldest version with a null topic list meaning "all topics", served by every
/// Kafka since 0.10 and by Kafka 4.x.
const METADATA_VERSION: i16 = 1;
/// Bound on the response a probe accepts; a real one for an empty cluster is a few hundred bytes.
const RESPONSE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Socket timeout for one probe.
const PROBE_IO_TIMEOUT_MS: u64 = 2_000;

/// Sends Metadata v1 (all topics) to `addr` and returns how many brokers the answer lists.
/// Errors when the connection fails or the answer is not a well-formed Metadata response.
pub fn metadata_broker_count(addr: &str) -> Result<usize> {
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .with_context(|| format!("bad address {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))?;
    let timeout = Duration::from_millis(PROBE_IO_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let correlation_id: i32 = 0x5eed;
    let client_id = b"spate-e2e-probe";
    let mut body = Vec::new();
    body.extend_from_slice(&METADATA_API_KEY.to_be_bytes());
    body.extend_from_slice(&METADATA_VERSION.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.extend_from_slice(&(-1i32).to_be_bytes()); // topics: null = all
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame)?;

    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len)).context("negative response size")?;
    ensure!(
        len <= RESPONSE_SIZE_BYTES_MAX,
        "response of {len} bytes is too large"
    );
    let mut resp = vec![0u8; len];
    stream.read_exact(&mut resp)?;
    let mut r = Reader(&resp);
    ensure!(r.i32()? == correlation_id, "correlation id mismatch");
    let brokers = r.i32()?;
    if brokers < 0 {
        bail!("negative broker count {brokers}");
    }
    for _ in 0..brokers {
        r.i32()?; // node id
        r.string()?; // host
        r.i32()?; // port
        r.string()?; // rack (nullable)
    }
    Ok(brokers as usize)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        ensure!(self.0.len() >= n, "truncated Metadata response");
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<()> {
        let b = self.take(2)?;
        let len = i16::from_be_bytes([b[0], b[1]]);
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }
}
