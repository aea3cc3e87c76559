//! Request dispatch: header → version check → body decode → handler → encoded response.
//!
//! This is where Kafka's rules for bad requests live: an unknown API key, a version outside the
//! support table or an undecodable body closes the connection (as Kafka's `SocketServer` does),
//! except ApiVersions at a too-new version, which is answered in the v0 format with
//! UNSUPPORTED_VERSION and the supported ranges so the client can retry with one it knows.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::Encodable;
use spate_protocol::header::{EncodeError, HeaderError, decode_request};
use spate_protocol::versions::is_servable;

use crate::Broker;
use crate::handlers;
use crate::response_frame::{ResponseFrame, encode_response_frame};

/// A response body owed to the client: now, later, or never (acks=0 produce).
pub enum Reply {
    /// Encoded and ready to write.
    Ready(ResponseFrame),
    /// Encoded and ready to write, after which the connection closes: the client is to look for
    /// another node (see [`crate::Broker::out_of_contact`]).
    ReadyThenClose(ResponseFrame),
    /// Completes when the request does (replication, long poll). An empty frame closes the
    /// connection.
    Deferred(Pin<Box<dyn Future<Output = ResponseFrame> + Send>>),
    /// The request gets no response.
    None,
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address.
    pub peer: SocketAddr,
    /// The request header's `client_id` (empty for the connection as a whole).
    pub client_id: String,
}

/// Why a request closes its connection.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The header could not be decoded.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The API is not implemented or the version is not served.
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The requested version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
    },
    /// The body does not decode at the announced version.
    #[error("malformed {api_key:?} v{api_version} request: {reason}")]
    Malformed {
        /// The API.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// What the decoder reported.
        reason: String,
    },
    /// A response could not be encoded (a bug; reported, not panicked on).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The header fields a handler's response needs.
#[derive(Debug, Clone, Copy)]
pub struct ResponseTo {
    /// The API.
    pub api_key: ApiKey,
    /// The request (and response) version.
    pub version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
}

impl ResponseTo {
    /// Encodes `body` as this request's response; large record slices are sent by reference.
    pub fn encode<M: Encodable + 'static>(&self, body: &M) -> Result<ResponseFrame, EncodeError> {
        encode_response_frame(self.api_key, self.version, self.correlation_id, body)
    }

    /// Encodes `body` as a ready reply.
    pub fn ready<M: Encodable + 'static>(&self, body: &M) -> Result<Reply, DispatchError> {
        Ok(Reply::Ready(self.encode(body)?))
    }

    /// Encodes a response now, closing the connection once it is written.
    pub fn ready_then_close<M: Encodable + 'static>(
        &self,
        body: &M,
    ) -> Result<Reply, DispatchError> {
        Ok(Reply::ReadyThenClose(self.encode(body)?))
    }

    /// Wraps a future response, encoding it when it completes.
    pub fn deferred<M, F>(self, future: F) -> Reply
    where
        M: Encodable + Send + 'static,
        F: Future<Output = M> + Send + 'static,
    {
        Reply::Deferred(Box::pin(async move {
            let body = future.await;
            match self.encode(&body) {
                Ok(bytes) => bytes,
                Err(error) => {
                    // An empty body makes the client fail the request and reconnect, which is
                    // the best available answer to a response we cannot express.
                    tracing::error!(%error, "dropping response that cannot be encoded");
                    ResponseFrame::default()
                }
            }
        }))
    }
}

impl Broker {
    /// Decodes and serves one request frame.
    pub async fn dispatch(
        self: &Arc<Self>,
        context: &RequestContext,
        frame: Bytes,
    ) -> Result<Reply, DispatchError> {
        let raw = decode_request(frame)?;
        let version = raw.header.request_api_version;
        let to = ResponseTo {
            api_key: raw.api_key,
            version,
            correlation_id: raw.header.correlation_id,
        };
        if !is_servable(raw.api_key, version) {
            if raw.api_key == ApiKey::ApiVersions {
                return Ok(Reply::Ready(ResponseFrame::single(
                    handlers::api_versions::unsupported_version(raw.header.correlation_id)?,
                )));
            }
            return Err(DispatchError::UnsupportedVersion {
                api_key: raw.api_key,
                api_version: version,
                correlation_id: raw.header.correlation_id,
            });
        }
        let mut body = raw.body;
        let request = RequestKind::decode(raw.api_key, &mut body, version).map_err(|error| {
            DispatchError::Malformed {
                api_key: raw.api_key,
                api_version: version,
                reason: error.to_string(),
            }
        })?;
        let client_id = raw
            .header
            .client_id
            .as_ref()
            .map(|c| c.as_str())
            .unwrap_or("");
        tracing::trace!(peer = %context.peer, api = ?raw.api_key, version, client_id, "request");
        let context = RequestContext {
            client_id: client_id.to_string(),
            ..context.clone()
        };
        handlers::handle(self, &context, to, request).await
    }
}
