//! Request and response headers, with the header version each API and version requires.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes of api key + api version + correlation id, the part of every request header that
/// never changes shape.
const PREAMBLE_BYTES: usize = 8;

/// Why a request header could not be decoded. Each closes the connection, as Kafka does.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The frame is shorter than the fixed header fields.
    #[error("request of {size_bytes} bytes is too short for a header")]
    TooShort {
        /// Frame size.
        size_bytes: usize,
    },
    /// The API key is not one Kafka defines.
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key as read.
        api_key: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The header fields after the preamble are malformed.
    #[error("malformed header for api key {api_key} v{api_version}: {reason}")]
    Malformed {
        /// The API key.
        api_key: i16,
        /// The API version.
        api_version: i16,
        /// What the decoder reported.
        reason: String,
    },
}

/// The fixed leading fields of a request header, readable before anything else is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// Raw API key.
    pub api_key: i16,
    /// Requested API version.
    pub api_version: i16,
    /// Correlation id to echo in the response.
    pub correlation_id: i32,
}

/// Reads the preamble of a request frame.
pub fn peek_preamble(frame: &[u8]) -> Result<Preamble, HeaderError> {
    if frame.len() < PREAMBLE_BYTES {
        return Err(HeaderError::TooShort {
            size_bytes: frame.len(),
        });
    }
    Ok(Preamble {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// A request whose header is decoded and whose body is still bytes.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The API.
    pub api_key: ApiKey,
    /// The decoded header.
    pub header: RequestHeader,
    /// The body, positioned after the header.
    pub body: Bytes,
}

/// Decodes the header of a request frame with the header version its API and version require.
///
/// A version the API does not define still decodes here (ApiVersions must answer it); callers
/// check the version against the support table.
pub fn decode_request(mut frame: Bytes) -> Result<RawRequest, HeaderError> {
    let preamble = peek_preamble(&frame)?;
    let api_key = ApiKey::try_from(preamble.api_key).map_err(|()| HeaderError::UnknownApiKey {
        api_key: preamble.api_key,
        correlation_id: preamble.correlation_id,
    })?;
    let header_version = api_key.request_header_version(preamble.api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|error| {
        HeaderError::Malformed {
            api_key: preamble.api_key,
            api_version: preamble.api_version,
            reason: error.to_string(),
        }
    })?;
    Ok(RawRequest {
        api_key,
        header,
        body: frame,
    })
}

/// Why a response could not be encoded: a programming error (a field set that the version
/// cannot carry), reported rather than panicking.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
pub struct EncodeError {
    /// The API.
    pub api_key: ApiKey,
    /// The response version.
    pub api_version: i16,
    /// What the encoder reported.
    pub reason: String,
}

/// The response header version for `api_key` at `api_version`. ApiVersions responses always use
/// header v0, so that a client sending a too-new version can still parse the answer.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    }
}

/// Encodes a response header and body into one frame body (without the size prefix).
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::new();
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, response_header_version(api_key, api_version))
        .map_err(|e| EncodeError {
            api_key,
            api_version,
            reason: e.to_string(),
        })?;
    body.encode(&mut buf, api_version)
        .map_err(|e| EncodeError {
            api_key,
            api_version,
            reason: e.to_string(),
        })?;
    Ok(buf)
}
