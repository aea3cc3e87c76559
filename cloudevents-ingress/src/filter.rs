//! Trigger filters: Knative's `filter.attributes` exact match, and the SubscriptionsAPI
//! `filters` dialects (exact, prefix, suffix, all, any, not, cesql; CloudEvents Subscriptions
//! API, "Filters"). Compiled once when a trigger is created.
//!
//! A missing attribute compares as "", and `time` in its UTC `Z` form ([`Event::filter_string`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cesql::{CompileError, Expression};
use crate::event::Event;

/// `filter` of a Knative trigger: exact AND-match on attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributesFilterSpec {
    /// Attribute name to required value; "" means any value.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One SubscriptionsAPI filter expression, as written: exactly one member must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Attribute equals the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<BTreeMap<String, String>>,
    /// Attribute starts with the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<BTreeMap<String, String>>,
    /// Attribute ends with the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<BTreeMap<String, String>>,
    /// Every nested filter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<FilterSpec>>,
    /// At least one nested filter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<FilterSpec>>,
    /// The nested filter does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<FilterSpec>>,
    /// A CESQL v1 expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cesql: Option<String>,
}

/// Why a filter was refused, with where in the spec it sits (`filters[1].any[0].exact`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    /// Where the bad filter is.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Attribute equals value.
    Exact(String, String),
    /// Attribute starts with value.
    Prefix(String, String),
    /// Attribute ends with value.
    Suffix(String, String),
    /// All match (true when empty).
    All(Vec<Filter>),
    /// Any matches (false when empty).
    Any(Vec<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// CESQL; an evaluation error is no match.
    Cesql(Box<Expression>),
    /// `filter.attributes`: every (name, value) pair equal, "" matching anything.
    Attributes(Vec<(String, String)>),
}

impl Filter {
    /// Whether the event passes.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Exact(a, v) => event.filter_string(a) == *v,
            Filter::Prefix(a, v) => event.filter_string(a).starts_with(v.as_str()),
            Filter::Suffix(a, v) => event.filter_string(a).ends_with(v.as_str()),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
            Filter::Cesql(e) => e.matches(event),
            Filter::Attributes(pairs) => pairs
                .iter()
                .all(|(a, v)| v.is_empty() || event.filter_string(a) == *v),
        }
    }
}

/// Attribute names in filters: `^[a-z][a-z0-9]*$` (Knative's trigger validation).
pub fn valid_filter_attribute(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Compiles a trigger's filters: `filters` (an implicit `all`) when non-empty, which overrides
/// `filter`; otherwise `filter.attributes`; otherwise everything passes.
pub fn compile(
    attributes: Option<&AttributesFilterSpec>,
    filters: &[FilterSpec],
) -> Result<Filter, FilterError> {
    if !filters.is_empty() {
        let compiled = filters
            .iter()
            .enumerate()
            .map(|(i, f)| compile_one(f, &format!("filters[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Filter::All(compiled));
    }
    let mut pairs = Vec::new();
    for (name, value) in attributes.map(|a| &a.attributes).into_iter().flatten() {
        if !valid_filter_attribute(name) {
            return Err(FilterError {
                path: format!("filter.attributes.{name}"),
                reason: "attribute names must match ^[a-z][a-z0-9]*$".to_owned(),
            });
        }
        pairs.push((name.clone(), value.clone()));
    }
    Ok(Filter::Attributes(pairs))
}

fn single(map: &BTreeMap<String, String>, path: &str) -> Result<(String, String), FilterError> {
    if map.len() != 1 {
        return Err(FilterError {
            path: path.to_owned(),
            reason: format!("must hold exactly one attribute, found {}", map.len()),
        });
    }
    let (name, value) = map
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap_or_default();
    if !valid_filter_attribute(&name) {
        return Err(FilterError {
            path: format!("{path}.{name}"),
            reason: "attribute names must match ^[a-z][a-z0-9]*$".to_owned(),
        });
    }
    Ok((name, value))
}

fn compile_one(spec: &FilterSpec, path: &str) -> Result<Filter, FilterError> {
    let set = [
        spec.exact.is_some(),
        spec.prefix.is_some(),
        spec.suffix.is_some(),
        spec.all.is_some(),
        spec.any.is_some(),
        spec.not.is_some(),
        spec.cesql.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(FilterError {
            path: path.to_owned(),
            reason: format!(
                "exactly one dialect (exact, prefix, suffix, all, any, not, cesql) must be set, found {set}"
            ),
        });
    }
    let nested = |list: &[FilterSpec], kind: &str| {
        list.iter()
            .enumerate()
            .map(|(i, f)| compile_one(f, &format!("{path}.{kind}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
    };
    if let Some(m) = &spec.exact {
        let (a, v) = single(m, &format!("{path}.exact"))?;
        return Ok(Filter::Exact(a, v));
    }
    if let Some(m) = &spec.prefix {
        let (a, v) = single(m, &format!("{path}.prefix"))?;
        return Ok(Filter::Prefix(a, v));
    }
    if let Some(m) = &spec.suffix {
        let (a, v) = single(m, &format!("{path}.suffix"))?;
        return Ok(Filter::Suffix(a, v));
    }
    if let Some(list) = &spec.all {
        return Ok(Filter::All(nested(list, "all")?));
    }
    if let Some(list) = &spec.any {
        return Ok(Filter::Any(nested(list, "any")?));
    }
    if let Some(inner) = &spec.not {
        return Ok(Filter::Not(Box::new(compile_one(
            inner,
            &format!("{path}.not"),
        )?)));
    }
    let source = spec.cesql.as_deref().unwrap_or_default();
    Expression::parse(source)
        .map(|e| Filter::Cesql(Box::new(e)))
        .map_err(|e: CompileError| FilterError {
            path: format!("{path}.cesql"),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Vec<FilterSpec> {
        serde_json::from_str(json).unwrap()
    }

    fn event() -> Event {
        let mut e = Event::new(
            "1",
            "https://example.com/orders",
            "com.example.order.created",
        );
        e.set("time", "2024-05-01T12:00:00+02:00");
        e.set("region", "eu");
        e
    }

    // Subscriptions API "Filters": each dialect on its own.
    #[test]
    fn each_dialect() {
        let e = event();
        let m = |json: &str| compile(None, &spec(json)).unwrap().matches(&e);
        assert!(m(r#"[{"exact":{"type":"com.example.order.created"}}]"#));
        assert!(!m(r#"[{"exact":{"type":"com.example.order"}}]"#));
        assert!(m(r#"[{"prefix":{"type":"com.example."}}]"#));
        assert!(m(r#"[{"suffix":{"source":"/orders"}}]"#));
        assert!(m(
            r#"[{"all":[{"exact":{"region":"eu"}},{"prefix":{"type":"com."}}]}]"#
        ));
        assert!(!m(
            r#"[{"all":[{"exact":{"region":"us"}},{"prefix":{"type":"com."}}]}]"#
        ));
        assert!(m(
            r#"[{"any":[{"exact":{"region":"us"}},{"prefix":{"type":"com."}}]}]"#
        ));
        assert!(!m(r#"[{"any":[]}]"#));
        assert!(m(r#"[{"not":{"exact":{"region":"us"}}}]"#));
        assert!(m(
            r#"[{"cesql":"region = 'eu' AND type LIKE '%.created'"}]"#
        ));
        assert!(!m(r#"[{"cesql":"missing = 'x'"}]"#));
        // Implicit all across the list.
        assert!(!m(
            r#"[{"exact":{"region":"eu"}},{"exact":{"region":"us"}}]"#
        ));
    }

    #[test]
    fn missing_attributes_compare_as_empty_and_time_in_utc() {
        let e = event();
        let m = |json: &str| compile(None, &spec(json)).unwrap().matches(&e);
        assert!(m(r#"[{"exact":{"subject":""}}]"#));
        assert!(m(r#"[{"exact":{"time":"2024-05-01T10:00:00Z"}}]"#));
        assert!(m(r#"[{"prefix":{"time":"2024-05-01T10"}}]"#));
    }

    #[test]
    fn attributes_filter_and_override() {
        let e = event();
        let attrs = AttributesFilterSpec {
            attributes: [
                ("region".to_owned(), "eu".to_owned()),
                ("type".to_owned(), String::new()),
            ]
            .into(),
        };
        assert!(compile(Some(&attrs), &[]).unwrap().matches(&e));
        let other = AttributesFilterSpec {
            attributes: [("region".to_owned(), "us".to_owned())].into(),
        };
        assert!(!compile(Some(&other), &[]).unwrap().matches(&e));
        // `filters` overrides `filter`.
        assert!(
            compile(Some(&other), &spec(r#"[{"exact":{"region":"eu"}}]"#))
                .unwrap()
                .matches(&e)
        );
        assert!(compile(None, &[]).unwrap().matches(&e));
    }

    #[test]
    fn bad_filters_are_refused_with_their_path() {
        let err = compile(
            None,
            &spec(r#"[{"exact":{"a":"1"}},{"any":[{"exact":{"a":"1"},"prefix":{"a":"1"}}]}]"#),
        )
        .unwrap_err();
        assert_eq!(err.path, "filters[1].any[0]");
        let err = compile(None, &spec(r#"[{"cesql":"a = "}]"#)).unwrap_err();
        assert_eq!(err.path, "filters[0].cesql");
        assert!(err.reason.contains("position 5"), "{}", err.reason);
        let err = compile(None, &spec(r#"[{"exact":{"Type":"x"}}]"#)).unwrap_err();
        assert_eq!(err.path, "filters[0].exact.Type");
        let err = compile(None, &spec(r#"[{"exact":{"a":"x","b":"y"}}]"#)).unwrap_err();
        assert!(err.reason.contains("exactly one"));
        assert!(serde_json::from_str::<Vec<FilterSpec>>(r#"[{"regex":{"a":"x"}}]"#).is_err());
    }
}
