//! A small Kafka protocol client: one connection, one request at a time, encoded with
//! `kafka-protocol` at the highest version both sides know (learned from ApiVersions), so the
//! CLI works against Spate and against any Apache Kafka cluster. Nodes also use it to talk to
//! each other: replica fetchers, and CloudEvents appends and offset commits forwarded to the
//! partition leader or group coordinator.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on connecting and on one request's round trip.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Largest response frame accepted (a generous cap; group listings are small).
pub const CLIENT_RESPONSE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The client id the CLI sends.
pub const CLIENT_ID: &str = "spate-cli";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("{address}: {source}")]
    Io {
        /// The broker.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("{address}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The broker.
        address: String,
        /// The bound.
        timeout_ms: u64,
    },
    /// The broker does not serve the API in a version this client speaks.
    #[error("{address} does not support {api:?} in versions {min}-{max}")]
    Unsupported {
        /// The broker.
        address: String,
        /// The API.
        api: ApiKey,
        /// Our oldest.
        min: i16,
        /// Our newest.
        max: i16,
    },
    /// A message could not be encoded or decoded.
    #[error("{address}: {what}")]
    Protocol {
        /// The broker.
        address: String,
        /// What went wrong.
        what: String,
    },
}

/// One connection to a broker.
pub struct KafkaConnection {
    address: String,
    stream: TcpStream,
    /// Sent in every request header, so the broker's logs and quotas can tell callers apart.
    client_id: &'static str,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl KafkaConnection {
    /// Connects as [`CLIENT_ID`] and learns the broker's API versions.
    pub async fn connect(address: &str) -> Result<KafkaConnection, ClientError> {
        KafkaConnection::connect_as(address, CLIENT_ID).await
    }

    /// Connects as `client_id` and learns the broker's API versions (ApiVersions v0 works with
    /// every broker).
    pub async fn connect_as(
        address: &str,
        client_id: &'static str,
    ) -> Result<KafkaConnection, ClientError> {
        let io = |source| ClientError::Io {
            address: address.to_string(),
            source,
        };
        let stream = tokio::time::timeout(
            Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS),
            TcpStream::connect(address),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            address: address.to_string(),
            timeout_ms: CLIENT_REQUEST_TIMEOUT_MS,
        })?
        .map_err(io)?;
        let mut connection = KafkaConnection {
            address: address.to_string(),
            stream,
            client_id,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        let response: ApiVersionsResponse = connection
            .send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
            .await?;
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    /// The broker address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `api` in `ours` (inclusive) that the broker serves.
    pub fn version(&self, api: ApiKey, ours: (i16, i16)) -> Result<i16, ClientError> {
        let unsupported = || ClientError::Unsupported {
            address: self.address.clone(),
            api,
            min: ours.0,
            max: ours.1,
        };
        let (min, max) = *self.versions.get(&(api as i16)).ok_or_else(unsupported)?;
        let version = max.min(ours.1);
        if version < ours.0 || version < min {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Whether the connection still looks usable: the peer has not closed it and has sent
    /// nothing unasked. A connection kept idle for reuse is checked before a request goes out
    /// on it, so that the request is not written into a socket the peer already closed (after
    /// a restart, or at its idle timeout). A connection that fails the check must be dropped:
    /// the check may consume a byte.
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            // Nothing to read: open and quiet, as an idle connection should be.
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            // End of stream, or bytes no request asked for.
            Ok(_) => false,
        }
    }

    /// Sends one request at `version` and decodes its response, within
    /// [`CLIENT_REQUEST_TIMEOUT_MS`].
    pub async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        self.send_within(
            api,
            version,
            request,
            Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS),
        )
        .await
    }

    /// Sends one request at `version` and decodes its response, which must arrive within
    /// `timeout` (a request that waits on the broker side, such as an `acks=all` Produce, needs
    /// longer than its own timeout). After any error the connection's state is unknown (a late
    /// answer may still arrive): drop it.
    pub async fn send_within<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let protocol = |what: String| ClientError::Protocol {
            address: self.address.clone(),
            what,
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut frame = BytesMut::new();
        frame.put_u32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)))
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|e| protocol(format!("request header: {e}")))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| protocol(format!("{api:?} v{version} request: {e}")))?;
        let length = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        let address = self.address.clone();
        let round_trip = async {
            self.stream.write_all(&frame).await?;
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await?;
            let size = u32::from_be_bytes(size) as usize;
            if size > CLIENT_RESPONSE_MAX_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response of {size} bytes exceeds {CLIENT_RESPONSE_MAX_BYTES}"),
                ));
            }
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        };
        let mut body = tokio::time::timeout(timeout, round_trip)
            .await
            .map_err(|_| ClientError::Timeout {
                address: address.clone(),
                timeout_ms: timeout.as_millis() as u64,
            })?
            .map_err(|source| ClientError::Io {
                address: address.clone(),
                source,
            })?;
        // ApiVersions answers with header v0 whatever the request version.
        let header_version = if api == ApiKey::ApiVersions {
            0
        } else {
            api.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| protocol(format!("response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol(format!(
                "correlation id {} answers request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        let response = Resp::decode(&mut body, version)
            .map_err(|e| protocol(format!("{api:?} v{version} response: {e}")))?;
        if body.has_remaining() {
            tracing::debug!(api = ?api, version, trailing = body.remaining(), "response has trailing bytes");
        }
        Ok(response)
    }
}
