//! The Kafka protocol binding (kafka-protocol-binding.md): events are stored in binary content
//! mode, and read back from binary mode, structured mode, or structured JSON without a
//! `content-type` header (what Dapr writes).

use bytes::Bytes;

use super::json::decode_structured;
use super::{DecodeError, STRUCTURED_MEDIA_TYPE_PREFIX, media_type};
use crate::event::{AttrValue, Event};
use crate::log::{Record, RecordHeader};

/// Prefix of binary-mode attribute headers (kafka-protocol-binding.md 3.2.3).
pub const CE_HEADER_PREFIX: &str = "ce_";
/// The header that carries `datacontenttype`.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// Encodes an event as a Kafka record in binary content mode: `ce_<attr>` headers (UTF-8, not
/// percent-encoded), `datacontenttype` in `content-type`, the data as the value (null when the
/// event has none) and the `partitionkey` extension as the key.
pub fn to_record(event: &Event, timestamp_ms: i64) -> Record {
    let mut headers = Vec::with_capacity(event.attributes.len());
    for (name, value) in &event.attributes {
        let text = value.to_canonical_string();
        let key = if name == "datacontenttype" {
            CONTENT_TYPE_HEADER.to_owned()
        } else {
            format!("{CE_HEADER_PREFIX}{name}")
        };
        headers.push(RecordHeader {
            key,
            value: Some(Bytes::from(text)),
        });
    }
    Record {
        key: event.partition_key().map(Bytes::from),
        value: event.data.clone(),
        headers,
        timestamp_ms,
    }
}

/// Decodes a Kafka record as a CloudEvent. The event is not validated here.
pub fn from_record(record: &Record) -> Result<Event, DecodeError> {
    let content_type = match record.header(CONTENT_TYPE_HEADER) {
        Some(v) => Some(std::str::from_utf8(v).map_err(|_| DecodeError::BadHeader {
            header: CONTENT_TYPE_HEADER.to_owned(),
            reason: "not valid UTF-8".to_owned(),
        })?),
        None => None,
    };
    let is_binary = record.headers.iter().any(|h| h.key == "ce_specversion");
    if !is_binary {
        let structured = match content_type {
            Some(ct) => media_type(ct).starts_with(STRUCTURED_MEDIA_TYPE_PREFIX),
            // Dapr and others write a structured JSON event with no content-type at all.
            None => record
                .value
                .as_ref()
                .is_some_and(|v| v.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')),
        };
        if !structured {
            return Err(DecodeError::NotCloudEvent {
                reason: "record has no ce_specversion header and is not a structured CloudEvent"
                    .to_owned(),
            });
        }
        return decode_structured(record.value.as_deref().unwrap_or(b""));
    }
    let mut event = Event::default();
    for header in &record.headers {
        let Some(attr) = header.key.strip_prefix(CE_HEADER_PREFIX) else {
            continue;
        };
        let Some(value) = &header.value else { continue };
        let text = std::str::from_utf8(value).map_err(|_| DecodeError::BadHeader {
            header: header.key.clone(),
            reason: "not valid UTF-8".to_owned(),
        })?;
        event
            .attributes
            .insert(attr.to_owned(), AttrValue::String(text.to_owned()));
    }
    if let Some(ct) = content_type {
        event.set("datacontenttype", ct);
    }
    event.data = record.value.clone();
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    // kafka-protocol-binding.md 3.2: binary content mode.
    #[test]
    fn binary_content_mode_round_trip() {
        let mut e = Event::new("1", "/s", "t");
        e.set("datacontenttype", "application/json");
        e.set("partitionkey", "k1");
        e.set("ext", "ü");
        e.data = Some(Bytes::from_static(b"{}"));
        let r = to_record(&e, 5);
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(
            r.header("content-type").map(|b| &b[..]),
            Some(&b"application/json"[..])
        );
        assert_eq!(r.header("ce_ext").map(|b| &b[..]), Some("ü".as_bytes()));
        assert!(r.header("ce_datacontenttype").is_none());
        assert_eq!(from_record(&r).unwrap(), e);
    }

    #[test]
    fn no_data_is_a_null_value() {
        let e = Event::new("1", "/s", "t");
        let r = to_record(&e, 0);
        assert_eq!(r.value, None);
        assert_eq!(r.key, None);
        assert_eq!(from_record(&r).unwrap(), e);
    }

    #[test]
    fn structured_json_without_content_type_is_recognised() {
        let r = Record {
            value: Some(Bytes::from_static(br#" {"specversion":"1.0","id":"d","source":"dapr","type":"com.dapr.event.sent","data":{"x":1}}"#)),
            ..Record::default()
        };
        let e = from_record(&r).unwrap();
        assert_eq!(e.id(), "d");
        assert_eq!(e.data.as_deref(), Some(&br#"{"x":1}"#[..]));
        let plain = Record {
            value: Some(Bytes::from_static(b"hello")),
            ..Record::default()
        };
        assert!(matches!(
            from_record(&plain),
            Err(DecodeError::NotCloudEvent { .. })
        ));
    }
}
