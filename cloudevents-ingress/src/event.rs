//! The CloudEvent model and its validation against CloudEvents 1.0.2 (spec.md, "Context
//! Attributes").
//!
//! Every context attribute, required, optional or extension, lives in one ordered map, so
//! filters, CESQL and the codecs see one shape. Values keep the CloudEvents type system's three
//! JSON-representable kinds (Boolean, Integer, String); URI, URI-reference and Timestamp are
//! strings checked by validation.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest extension attribute name the spec recommends, and that Spate enforces (spec.md,
/// "Attribute Naming Convention": names SHOULD NOT exceed 20 characters).
pub const EXTENSION_NAME_LENGTH_MAX_CHARS: usize = 20;

/// The spec versions Spate accepts: 1.0, and 0.3 as Knative still does.
pub const SPEC_VERSIONS: [&str; 2] = ["1.0", "0.3"];

/// Attributes defined by the spec itself; everything else is an extension.
pub const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// One attribute value, in the CloudEvents type system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// Boolean (only extensions may carry one, and only in structured mode).
    Bool(bool),
    /// Integer: a 32-bit signed number, as the spec defines it.
    Integer(i32),
    /// String, URI, URI-reference or Timestamp, in their canonical string form.
    String(String),
}

impl AttrValue {
    /// The canonical string form (spec.md, "Type System"): what goes into an HTTP or Kafka
    /// header and what string filters compare against.
    pub fn to_canonical_string(&self) -> String {
        match self {
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Integer(i) => i.to_string(),
            AttrValue::String(s) => s.clone(),
        }
    }

    /// The string value, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Integer(i) => write!(f, "{i}"),
            AttrValue::String(s) => f.write_str(s),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::String(s.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::String(s)
    }
}

/// A CloudEvent: its context attributes and its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Every attribute by name, required ones included. Ordered so encodings are stable.
    pub attributes: BTreeMap<String, AttrValue>,
    /// The event payload, already decoded from `data_base64` where that was used. `None` when
    /// the event carries no data (a Kafka record with a null value).
    pub data: Option<Bytes>,
}

/// Why an event is not a valid CloudEvent: the attribute and the rule it breaks. Rendered as
/// the 400 body by the ingress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute `{attribute}` {rule}")]
pub struct ValidationError {
    /// The attribute at fault.
    pub attribute: String,
    /// The rule it breaks, as a sentence fragment ("is required", "must be an absolute URI").
    pub rule: String,
}

impl ValidationError {
    fn new(attribute: &str, rule: impl Into<String>) -> Self {
        ValidationError {
            attribute: attribute.to_owned(),
            rule: rule.into(),
        }
    }
}

impl Event {
    /// A 1.0 event with the three other required attributes set.
    pub fn new(id: &str, source: &str, ty: &str) -> Self {
        let mut event = Event::default();
        event.set("specversion", "1.0");
        event.set("id", id);
        event.set("source", source);
        event.set("type", ty);
        event
    }

    /// Sets an attribute, replacing any earlier value.
    pub fn set(&mut self, name: &str, value: impl Into<AttrValue>) {
        self.attributes.insert(name.to_owned(), value.into());
    }

    /// An attribute by name.
    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.get(name)
    }

    /// A string attribute by name (`None` when absent or not a string).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(AttrValue::as_str)
    }

    /// `id`, or "" when absent (only an invalid event lacks it).
    pub fn id(&self) -> &str {
        self.get_str("id").unwrap_or("")
    }

    /// `datacontenttype`, when set.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.get_str("datacontenttype")
    }

    /// The `partitionkey` extension (Partitioning extension), which becomes the Kafka key.
    pub fn partition_key(&self) -> Option<String> {
        self.get("partitionkey").map(AttrValue::to_canonical_string)
    }

    /// The string an attribute compares as in attribute and SubscriptionsAPI filters: its
    /// canonical string, "" when absent, and `time` in the UTC `Z` form so that equal instants
    /// written with different offsets compare equal.
    pub fn filter_string(&self, name: &str) -> String {
        match self.attributes.get(name) {
            None => String::new(),
            Some(AttrValue::String(s)) if name == "time" => {
                normalize_time(s).unwrap_or_else(|| s.clone())
            }
            Some(v) => v.to_canonical_string(),
        }
    }

    /// Checks the event against CloudEvents 1.0.2 (spec.md, "Context Attributes" and "Type
    /// System"); the first broken rule is returned.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self.attributes.get("specversion") {
            None => return Err(ValidationError::new("specversion", "is required")),
            Some(AttrValue::String(v)) if SPEC_VERSIONS.contains(&v.as_str()) => {}
            Some(_) => {
                return Err(ValidationError::new(
                    "specversion",
                    "must be \"1.0\" (or \"0.3\")",
                ));
            }
        }
        for name in ["id", "source", "type"] {
            match self.attributes.get(name) {
                None => return Err(ValidationError::new(name, "is required")),
                Some(AttrValue::String(s)) if !s.is_empty() => {}
                Some(AttrValue::String(_)) => {
                    return Err(ValidationError::new(name, "must be a non-empty string"));
                }
                Some(_) => return Err(ValidationError::new(name, "must be a string")),
            }
        }
        for (name, value) in &self.attributes {
            let is_context = CONTEXT_ATTRIBUTES.contains(&name.as_str());
            if !is_context {
                check_extension_name(name)?;
            }
            if is_context && !matches!(value, AttrValue::String(_)) {
                return Err(ValidationError::new(name, "must be a string"));
            }
            if let AttrValue::String(s) = value
                && s.is_empty()
            {
                return Err(ValidationError::new(name, "must not be empty when present"));
            }
        }
        if let Some(source) = self.get_str("source")
            && !is_uri_reference(source)
        {
            return Err(ValidationError::new(
                "source",
                "must be a URI-reference (RFC 3986)",
            ));
        }
        if let Some(schema) = self.get_str("dataschema")
            && !is_absolute_uri(schema)
        {
            return Err(ValidationError::new(
                "dataschema",
                "must be an absolute URI (RFC 3986)",
            ));
        }
        if let Some(time) = self.get_str("time")
            && OffsetDateTime::parse(time, &Rfc3339).is_err()
        {
            return Err(ValidationError::new(
                "time",
                "must be an RFC 3339 timestamp",
            ));
        }
        Ok(())
    }
}

/// Extension names are lower-case ASCII letters and digits, at most
/// [`EXTENSION_NAME_LENGTH_MAX_CHARS`] long (spec.md, "Attribute Naming Convention").
pub fn check_extension_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(ValidationError::new(
            name,
            "is not a valid attribute name: only a-z and 0-9 are allowed",
        ));
    }
    if name.len() > EXTENSION_NAME_LENGTH_MAX_CHARS {
        return Err(ValidationError::new(
            name,
            format!("is longer than {EXTENSION_NAME_LENGTH_MAX_CHARS} characters"),
        ));
    }
    if name == "data" {
        return Err(ValidationError::new(
            name,
            "is reserved for the event payload",
        ));
    }
    Ok(())
}

/// Whether `s` is an RFC 3986 URI-reference (absolute or relative).
pub fn is_uri_reference(s: &str) -> bool {
    fluent_uri::UriRef::parse(s).is_ok()
}

/// Whether `s` is an RFC 3986 URI with a scheme.
pub fn is_absolute_uri(s: &str) -> bool {
    fluent_uri::Uri::parse(s).is_ok()
}

/// An RFC 3339 timestamp rewritten in UTC with the `Z` designator, or `None` when it does not
/// parse.
pub fn normalize_time(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_event_is_valid() {
        assert_eq!(Event::new("1", "/src", "t").validate(), Ok(()));
    }

    // spec.md "REQUIRED Attributes": id, source, specversion, type.
    #[test]
    fn required_attributes_are_named_when_missing() {
        for name in ["specversion", "id", "source", "type"] {
            let mut e = Event::new("1", "/src", "t");
            e.attributes.remove(name);
            assert_eq!(e.validate().unwrap_err().attribute, name);
        }
    }

    #[test]
    fn spec_version_must_be_known() {
        let mut e = Event::new("1", "/src", "t");
        e.set("specversion", "0.3");
        assert!(e.validate().is_ok());
        e.set("specversion", "2.0");
        assert_eq!(e.validate().unwrap_err().attribute, "specversion");
    }

    #[test]
    fn optional_attributes_must_not_be_empty() {
        let mut e = Event::new("1", "/src", "t");
        e.set("subject", "");
        let err = e.validate().unwrap_err();
        assert_eq!(err.attribute, "subject");
        assert!(err.rule.contains("empty"));
    }

    #[test]
    fn source_dataschema_and_time_are_checked() {
        let mut e = Event::new("1", "not a uri", "t");
        assert_eq!(e.validate().unwrap_err().attribute, "source");
        e.set("source", "https://example.com/a?b=c#d");
        e.set("dataschema", "/relative");
        assert_eq!(e.validate().unwrap_err().attribute, "dataschema");
        e.set("dataschema", "https://example.com/schema");
        e.set("time", "2024-13-01T00:00:00Z");
        assert_eq!(e.validate().unwrap_err().attribute, "time");
        e.set("time", "2018-04-26T14:48:09+02:00");
        assert_eq!(e.validate(), Ok(()));
    }

    #[test]
    fn extension_names_follow_the_naming_convention() {
        let mut e = Event::new("1", "/src", "t");
        e.set("abcdefghijklmnopqrst", "x");
        assert_eq!(e.validate(), Ok(()));
        e.set("abcdefghijklmnopqrstu", "x");
        assert!(e.validate().unwrap_err().rule.contains("20"));
        let mut e = Event::new("1", "/src", "t");
        e.set("My_Ext", "x");
        assert_eq!(e.validate().unwrap_err().attribute, "My_Ext");
    }

    #[test]
    fn time_filters_in_utc() {
        let mut e = Event::new("1", "/src", "t");
        e.set("time", "2018-04-26T14:48:09+02:00");
        assert_eq!(e.filter_string("time"), "2018-04-26T12:48:09Z");
        assert_eq!(e.filter_string("missing"), "");
    }
}
