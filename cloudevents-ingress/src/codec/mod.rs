//! CloudEvents bindings: HTTP (binary, structured, batch; http-protocol-binding.md), Kafka
//! (binary content mode; kafka-protocol-binding.md) and the JSON event format
//! (json-format.md) they share.

pub mod http;
pub mod json;
pub mod kafka;

use crate::event::ValidationError;

/// Media type of a structured-mode CloudEvent in JSON.
pub const STRUCTURED_JSON_MEDIA_TYPE: &str = "application/cloudevents+json";
/// Media type prefix of structured mode in any format.
pub const STRUCTURED_MEDIA_TYPE_PREFIX: &str = "application/cloudevents";
/// Media type of a JSON batch of CloudEvents.
pub const BATCH_JSON_MEDIA_TYPE: &str = "application/cloudevents-batch+json";
/// Most events one batch may carry; bounds the work one request can cause beyond its byte size.
pub const BATCH_EVENTS_MAX_COUNT: usize = 10_000;

/// Why bytes could not be read as CloudEvents. Every variant is a client error (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Neither a `ce-specversion` header nor a CloudEvents content type.
    #[error("not a CloudEvent: {reason}")]
    NotCloudEvent {
        /// What was missing.
        reason: String,
    },
    /// A header value that is not valid percent-encoded UTF-8.
    #[error("header `{header}`: {reason}")]
    BadHeader {
        /// Header name.
        header: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The same attribute given twice.
    #[error("attribute `{attribute}` given more than once")]
    DuplicateAttribute {
        /// Attribute name.
        attribute: String,
    },
    /// A structured or batch body that is not the expected JSON.
    #[error("malformed JSON: {reason}")]
    MalformedJson {
        /// The parser's description, with line and column.
        reason: String,
    },
    /// An attribute of a JSON type CloudEvents has no mapping for.
    #[error("attribute `{attribute}`: {reason}")]
    BadAttributeType {
        /// Attribute name.
        attribute: String,
        /// Which type was given.
        reason: String,
    },
    /// Both `data` and `data_base64` in one structured event (json-format.md 3.1).
    #[error("`data` and `data_base64` are mutually exclusive")]
    BothDataMembers,
    /// `data_base64` that is not a base64 string.
    #[error("`data_base64` is not valid base64: {reason}")]
    BadBase64 {
        /// The decoder's description.
        reason: String,
    },
    /// A batch with more events than [`BATCH_EVENTS_MAX_COUNT`].
    #[error("batch of {count} events exceeds the limit of {max}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Decoded, but not a valid CloudEvent.
    #[error("invalid CloudEvent: {0}")]
    Invalid(#[from] ValidationError),
    /// In a batch: which event failed and why.
    #[error("event {index} of the batch: {source}")]
    InBatch {
        /// Zero-based position in the batch.
        index: usize,
        /// The failure.
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// The attribute the error is about, when it is about one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            DecodeError::DuplicateAttribute { attribute }
            | DecodeError::BadAttributeType { attribute, .. } => Some(attribute),
            DecodeError::Invalid(v) => Some(&v.attribute),
            DecodeError::InBatch { source, .. } => source.attribute(),
            DecodeError::BothDataMembers => Some("data"),
            DecodeError::BadBase64 { .. } => Some("data_base64"),
            _ => None,
        }
    }
}

/// The media type of a `Content-Type` value: the part before any parameter, trimmed and
/// lower-cased.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether data of this content type is JSON (json-format.md 3.1: absent means JSON).
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let mt = media_type(ct);
            mt == "application/json" || mt == "text/json" || mt.ends_with("+json")
        }
    }
}
