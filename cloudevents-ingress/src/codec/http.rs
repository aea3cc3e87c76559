//! The HTTP protocol binding (http-protocol-binding.md): binary mode with `ce-*` headers,
//! structured mode, and JSON batches.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::json::{decode_batch, decode_structured};
use super::{BATCH_JSON_MEDIA_TYPE, DecodeError, STRUCTURED_MEDIA_TYPE_PREFIX, media_type};
use crate::event::{AttrValue, Event};

/// Prefix of binary-mode attribute headers.
pub const CE_HEADER_PREFIX: &str = "ce-";

/// Extensions that travel in their own W3C Trace Context headers (distributed-tracing
/// extension), not as `ce-*` headers.
pub const TRACE_EXTENSIONS: [&str; 2] = ["traceparent", "tracestate"];

/// Characters percent-encoded in header values (http-protocol-binding.md 3.1.3.2): space,
/// double quote, percent and everything outside printable ASCII.
const HEADER_VALUE_ENCODE_SET: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(0x7f);

/// How a message carries its event(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Attributes in `ce-*` headers, data in the body.
    Binary,
    /// One JSON event in the body.
    Structured,
    /// A JSON array of events in the body.
    Batch,
}

/// Which mode a message uses, from its headers (http-protocol-binding.md 3).
pub fn detect_mode(headers: &HeaderMap) -> Result<Mode, DecodeError> {
    if let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let mt = media_type(ct);
        if mt == BATCH_JSON_MEDIA_TYPE {
            return Ok(Mode::Batch);
        }
        if mt.starts_with(STRUCTURED_MEDIA_TYPE_PREFIX) {
            if mt != super::STRUCTURED_JSON_MEDIA_TYPE {
                return Err(DecodeError::NotCloudEvent {
                    reason: format!("unsupported event format `{mt}`; only JSON is supported"),
                });
            }
            return Ok(Mode::Structured);
        }
    }
    if headers.contains_key("ce-specversion") {
        return Ok(Mode::Binary);
    }
    Err(DecodeError::NotCloudEvent {
        reason: "no ce-specversion header and no application/cloudevents content type".to_owned(),
    })
}

/// Decodes the event(s) of an HTTP message. Events are not validated here.
pub fn decode(headers: &HeaderMap, body: Bytes) -> Result<Vec<Event>, DecodeError> {
    let mut events = match detect_mode(headers)? {
        Mode::Binary => vec![decode_binary(headers, body)?],
        Mode::Structured => vec![decode_structured(&body)?],
        Mode::Batch => decode_batch(&body)?,
    };
    // W3C trace context travels as plain headers; keep it as the distributed-tracing extension
    // unless the event already carries it.
    for name in TRACE_EXTENSIONS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if value.is_empty() {
                continue;
            }
            for event in &mut events {
                event
                    .attributes
                    .entry(name.to_owned())
                    .or_insert_with(|| AttrValue::String(value.to_owned()));
            }
        }
    }
    Ok(events)
}

/// Decodes a binary-mode message (http-protocol-binding.md 3.1).
pub fn decode_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, DecodeError> {
    let mut event = Event::default();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix(CE_HEADER_PREFIX) else {
            continue;
        };
        let decoded = decode_header_value(name.as_str(), value.as_bytes())?;
        if event
            .attributes
            .insert(attr.to_owned(), AttrValue::String(decoded))
            .is_some()
        {
            return Err(DecodeError::DuplicateAttribute {
                attribute: attr.to_owned(),
            });
        }
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = decode_header_value("content-type", ct.as_bytes())?;
        event.set("datacontenttype", ct);
    }
    if !body.is_empty() {
        event.data = Some(body);
    }
    Ok(event)
}

/// A header value as an attribute value: surrounding double quotes removed, then
/// percent-decoded once; the result must be UTF-8 (http-protocol-binding.md 3.1.3.2).
pub fn decode_header_value(header: &str, raw: &[u8]) -> Result<String, DecodeError> {
    let unquoted = if raw.len() >= 2 && raw[0] == b'"' && raw[raw.len() - 1] == b'"' {
        &raw[1..raw.len() - 1]
    } else {
        raw
    };
    let bad = |reason: &str| DecodeError::BadHeader {
        header: header.to_owned(),
        reason: reason.to_owned(),
    };
    let mut out = Vec::with_capacity(unquoted.len());
    let mut i = 0;
    while i < unquoted.len() {
        let b = unquoted[i];
        if b == b'%' {
            let hex = unquoted
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("truncated percent-encoding"))?;
            let hi = hex_value(hex[0]).ok_or_else(|| bad("invalid percent-encoding"))?;
            let lo = hex_value(hex[1]).ok_or_else(|| bad("invalid percent-encoding"))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("not valid UTF-8 after percent-decoding"))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes an attribute value for a header (http-protocol-binding.md 3.1.3.2).
pub fn encode_header_value(value: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(value, HEADER_VALUE_ENCODE_SET).to_string();
    // Only visible ASCII remains after encoding, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The headers of a binary-mode message for `event`: `ce-*` for each attribute,
/// `Content-Type` for `datacontenttype`, W3C trace headers for the tracing extension. Attribute
/// names that cannot be header names are skipped (validation refuses such events anyway).
pub fn binary_headers(event: &Event) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(event.attributes.len() + 1);
    for (name, value) in &event.attributes {
        let text = value.to_canonical_string();
        if name == "datacontenttype" {
            if let Ok(v) = HeaderValue::from_str(&text) {
                headers.insert(CONTENT_TYPE, v);
            }
            continue;
        }
        if TRACE_EXTENSIONS.contains(&name.as_str()) {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                headers.insert(n, v);
            }
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(format!("{CE_HEADER_PREFIX}{name}").as_bytes()) {
            headers.insert(n, encode_header_value(&text));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    // http-protocol-binding.md 3.1.3.2: values are percent-decoded once, quotes removed.
    #[test]
    fn binary_mode_header_values_are_unquoted_and_percent_decoded() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "\"a%20b\""),
            ("ce-source", "/s"),
            ("ce-type", "caf%C3%A9"),
            ("content-type", "text/plain"),
        ]);
        let events = decode(&h, Bytes::from_static(b"hello")).unwrap();
        assert_eq!(events[0].id(), "a b");
        assert_eq!(events[0].get_str("type"), Some("café"));
        assert_eq!(events[0].datacontenttype(), Some("text/plain"));
        assert_eq!(events[0].data.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn bad_percent_encoding_and_utf8_are_refused() {
        for bad in ["%zz", "%4", "%C3%28"] {
            let h = headers(&[("ce-specversion", "1.0"), ("ce-id", bad)]);
            let err = decode(&h, Bytes::new()).unwrap_err();
            assert!(
                matches!(err, DecodeError::BadHeader { ref header, .. } if header == "ce-id"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn mode_detection() {
        assert_eq!(
            detect_mode(&headers(&[("ce-specversion", "1.0")])).unwrap(),
            Mode::Binary
        );
        assert_eq!(
            detect_mode(&headers(&[(
                "content-type",
                "application/cloudevents+json; charset=utf-8"
            )]))
            .unwrap(),
            Mode::Structured
        );
        assert_eq!(
            detect_mode(&headers(&[(
                "content-type",
                "application/cloudevents-batch+json"
            )]))
            .unwrap(),
            Mode::Batch
        );
        assert!(detect_mode(&headers(&[("content-type", "application/json")])).is_err());
        assert!(
            detect_mode(&headers(&[(
                "content-type",
                "application/cloudevents+avro"
            )]))
            .is_err()
        );
    }

    #[test]
    fn traceparent_is_kept_as_an_extension() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ]);
        let e = &decode(&h, Bytes::new()).unwrap()[0];
        assert!(e.get_str("traceparent").unwrap().starts_with("00-0af7"));
    }

    #[test]
    fn binary_headers_round_trip() {
        let mut e = Event::new("id 1", "/s", "t\"q\"");
        e.set("datacontenttype", "application/json");
        e.set("ext", "ü%");
        e.set(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        let h = binary_headers(&e);
        assert_eq!(h.get("ce-id").unwrap(), "id%201");
        assert_eq!(h.get("ce-ext").unwrap(), "%C3%BC%25");
        assert!(h.get("traceparent").is_some());
        let back = &decode(&h, Bytes::new()).unwrap()[0];
        assert_eq!(back.attributes, e.attributes);
    }
}
