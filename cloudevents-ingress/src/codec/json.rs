//! The JSON event format (json-format.md): structured events and batches.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{BATCH_EVENTS_MAX_COUNT, DecodeError, is_json_content_type};
use crate::event::{AttrValue, Event};

/// Decodes one structured event from JSON bytes. The event is not validated here.
pub fn decode_structured(body: &[u8]) -> Result<Event, DecodeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError::MalformedJson {
        reason: e.to_string(),
    })?;
    match value {
        Value::Object(map) => from_object(map),
        _ => Err(DecodeError::MalformedJson {
            reason: "a structured CloudEvent must be a JSON object".to_owned(),
        }),
    }
}

/// Decodes a batch (a JSON array of structured events). Events are not validated here.
pub fn decode_batch(body: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError::MalformedJson {
        reason: e.to_string(),
    })?;
    let Value::Array(items) = value else {
        return Err(DecodeError::MalformedJson {
            reason: "a CloudEvents batch must be a JSON array".to_owned(),
        });
    };
    if items.len() > BATCH_EVENTS_MAX_COUNT {
        return Err(DecodeError::BatchTooLarge {
            count: items.len(),
            max: BATCH_EVENTS_MAX_COUNT,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            match item {
                Value::Object(map) => from_object(map),
                _ => Err(DecodeError::MalformedJson {
                    reason: "each batch member must be a JSON object".to_owned(),
                }),
            }
            .map_err(|e| DecodeError::InBatch {
                index,
                source: Box::new(e),
            })
        })
        .collect()
}

/// Builds an event from a JSON object's members (json-format.md 2 and 3).
pub fn from_object(map: Map<String, Value>) -> Result<Event, DecodeError> {
    let mut event = Event::default();
    let mut data: Option<Value> = None;
    let mut data_base64: Option<Value> = None;
    for (name, value) in map {
        match name.as_str() {
            "data" => data = Some(value),
            "data_base64" => data_base64 = Some(value),
            _ => {
                let attr = match value {
                    // json-format.md 2.4: a null attribute is treated as absent.
                    Value::Null => continue,
                    Value::Bool(b) => AttrValue::Bool(b),
                    Value::String(s) => AttrValue::String(s),
                    Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                        Some(i) => AttrValue::Integer(i),
                        None => {
                            return Err(DecodeError::BadAttributeType {
                                attribute: name,
                                reason: format!("{n} is not a 32-bit integer"),
                            });
                        }
                    },
                    Value::Array(_) | Value::Object(_) => {
                        return Err(DecodeError::BadAttributeType {
                            attribute: name,
                            reason: "objects and arrays are not CloudEvents attribute types"
                                .to_owned(),
                        });
                    }
                };
                event.attributes.insert(name, attr);
            }
        }
    }
    match (data, data_base64) {
        (Some(d), Some(b)) if !d.is_null() && !b.is_null() => {
            return Err(DecodeError::BothDataMembers);
        }
        (_, Some(Value::String(b64))) => {
            let bytes = BASE64
                .decode(b64.as_bytes())
                .map_err(|e| DecodeError::BadBase64 {
                    reason: e.to_string(),
                })?;
            event.data = Some(Bytes::from(bytes));
        }
        (_, Some(Value::Null)) | (None, None) => {}
        (_, Some(_)) => {
            return Err(DecodeError::BadBase64 {
                reason: "must be a string".to_owned(),
            });
        }
        (Some(Value::Null), None) => {}
        (Some(d), None) => {
            let is_json = is_json_content_type(event.datacontenttype());
            event.data = Some(match d {
                // A string under a non-JSON content type is the payload itself (json-format.md
                // 3.1); under a JSON type it is a JSON string value and keeps its quotes.
                Value::String(s) if !is_json => Bytes::from(s),
                other => {
                    if event.datacontenttype().is_none() {
                        // Stored in binary mode later, the implied type must become explicit.
                        event.set("datacontenttype", "application/json");
                    }
                    Bytes::from(serde_json::to_vec(&other).unwrap_or_default())
                }
            });
        }
    }
    Ok(event)
}

/// Encodes an event as a structured JSON object (json-format.md): JSON data inline, text as a
/// string, anything else as `data_base64`.
pub fn to_object(event: &Event) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in &event.attributes {
        let v = match value {
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Integer(i) => Value::from(*i),
            AttrValue::String(s) => Value::String(s.clone()),
        };
        map.insert(name.clone(), v);
    }
    if let Some(data) = &event.data {
        let json = is_json_content_type(event.datacontenttype())
            .then(|| serde_json::from_slice::<Value>(data).ok())
            .flatten();
        match json {
            Some(v) => {
                map.insert("data".to_owned(), v);
            }
            None => match std::str::from_utf8(data) {
                Ok(s) if is_text(event.datacontenttype()) => {
                    map.insert("data".to_owned(), Value::String(s.to_owned()));
                }
                _ => {
                    map.insert("data_base64".to_owned(), Value::String(BASE64.encode(data)));
                }
            },
        }
    }
    map
}

/// Encodes an event as structured JSON bytes.
pub fn encode_structured(event: &Event) -> Vec<u8> {
    serde_json::to_vec(&Value::Object(to_object(event))).unwrap_or_default()
}

fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let mt = super::media_type(ct);
        mt.starts_with("text/") || mt.ends_with("+xml") || mt == "application/xml"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // json-format.md 3.1: `data` holds JSON, `data_base64` binary, never both.
    #[test]
    fn data_and_data_base64() {
        let e = decode_structured(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(e.data.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(e.datacontenttype(), Some("application/json"));
        let e = decode_structured(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}"#).unwrap();
        assert_eq!(e.data.as_deref(), Some(&b"hi"[..]));
        let e = decode_structured(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(e.data.as_deref(), Some(&[0u8, 1, 2][..]));
        let err = decode_structured(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AAEC"}"#).unwrap_err();
        assert_eq!(err, DecodeError::BothDataMembers);
    }

    #[test]
    fn typed_extensions() {
        let e = decode_structured(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","b":true,"n":7,"x":null}"#,
        )
        .unwrap();
        assert_eq!(e.get("b"), Some(&AttrValue::Bool(true)));
        assert_eq!(e.get("n"), Some(&AttrValue::Integer(7)));
        assert_eq!(e.get("x"), None);
        let err = decode_structured(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","f":1.5}"#,
        )
        .unwrap_err();
        assert_eq!(err.attribute(), Some("f"));
    }

    #[test]
    fn round_trip() {
        let mut e = Event::new("1", "/s", "t");
        e.set("datacontenttype", "application/octet-stream");
        e.data = Some(Bytes::from_static(&[0xff, 0x00]));
        assert_eq!(decode_structured(&encode_structured(&e)).unwrap(), e);
    }

    #[test]
    fn malformed_json_is_reported() {
        assert!(matches!(
            decode_structured(b"{"),
            Err(DecodeError::MalformedJson { .. })
        ));
        assert!(matches!(
            decode_batch(b"{}"),
            Err(DecodeError::MalformedJson { .. })
        ));
        let err = decode_batch(br#"[{"id":"1"}, 3]"#).unwrap_err();
        assert!(matches!(err, DecodeError::InBatch { index: 1, .. }));
    }
}
