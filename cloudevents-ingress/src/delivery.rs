//! Knative's `DeliverySpec` (eventing.knative.dev/v1 duck type): retries, backoff, timeout,
//! dead-letter sink and `retryAfterMax`, with ISO-8601 durations; resolved into a
//! [`DeliveryPolicy`] with the broker's spec as the field-by-field default for its triggers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Backoff delay when neither trigger nor broker sets one.
pub const BACKOFF_DELAY_DEFAULT_MS: u64 = 200;
/// Per-attempt timeout when neither trigger nor broker sets one; bounds how long a hung
/// subscriber can hold a partition.
pub const TIMEOUT_DEFAULT_MS: u64 = 30_000;
/// Longest single backoff; exponential growth saturates here rather than overflowing.
pub const BACKOFF_DELAY_MAX_MS: u64 = 3_600_000;
/// Most retries a spec may ask for; beyond this a trigger should use a dead-letter sink.
pub const RETRY_MAX_COUNT: u32 = 1_000;

/// How the delay grows between retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackoffPolicy {
    /// delay x 2^n for retry n (1-based).
    #[default]
    Exponential,
    /// delay x n for retry n (1-based).
    Linear,
}

/// A Knative `Destination`: a URI, or a reference to an addressable object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// An absolute URI, or with `ref` a path relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// A reference to a Kubernetes object; only `Service` can be resolved here.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<ObjectRef>,
}

/// A Kubernetes object reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; defaults to the referring object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// Why a delivery spec or destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DeliveryError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: &str, reason: impl Into<String>) -> DeliveryError {
    DeliveryError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Destination {
    /// A destination with just a URI.
    pub fn uri(uri: &str) -> Self {
        Destination {
            uri: Some(uri.to_owned()),
            reference: None,
        }
    }

    /// The URL to POST to. A `Service` reference resolves to its cluster DNS name, as
    /// Knative's addressable resolver does for plain Kubernetes services.
    pub fn resolve(&self, namespace: &str, field: &str) -> Result<String, DeliveryError> {
        let url = match (&self.reference, &self.uri) {
            (None, None) => return Err(err(field, "needs a uri or a ref")),
            (None, Some(uri)) => uri.clone(),
            (Some(r), uri) => {
                if r.kind != "Service" {
                    return Err(err(
                        field,
                        format!("cannot resolve a ref of kind {}; use a uri", r.kind),
                    ));
                }
                let ns = r.namespace.as_deref().unwrap_or(namespace);
                let base = format!("http://{}.{}.svc.cluster.local", r.name, ns);
                match uri {
                    Some(path) if path.starts_with('/') => format!("{base}{path}"),
                    Some(path) if !path.is_empty() => format!("{base}/{path}"),
                    _ => format!("{base}/"),
                }
            }
        };
        let parsed: http::Uri = url
            .parse()
            .map_err(|e| err(field, format!("`{url}` is not a URI: {e}")))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(err(
                    field,
                    format!("scheme `{other}` is not supported; subscribers are reached over http"),
                ));
            }
            None => return Err(err(field, format!("`{url}` is not an absolute URI"))),
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(err(field, format!("`{url}` has no host")));
        }
        Ok(url)
    }
}

/// Knative's `DeliverySpec`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Where events go when delivery finally fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// `linear` or `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<BackoffPolicy>,
    /// ISO-8601 duration, the base backoff delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// ISO-8601 duration, the per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// ISO-8601 duration: the most a 429/503 `Retry-After` may delay a retry; unset means
    /// `Retry-After` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
}

impl DeliverySpec {
    /// This spec with every unset field taken from `defaults` (the broker's delivery).
    pub fn merged_over(&self, defaults: Option<&DeliverySpec>) -> DeliverySpec {
        let Some(d) = defaults else {
            return self.clone();
        };
        DeliverySpec {
            dead_letter_sink: self
                .dead_letter_sink
                .clone()
                .or_else(|| d.dead_letter_sink.clone()),
            retry: self.retry.or(d.retry),
            backoff_policy: self.backoff_policy.or(d.backoff_policy),
            backoff_delay: self
                .backoff_delay
                .clone()
                .or_else(|| d.backoff_delay.clone()),
            timeout: self.timeout.clone().or_else(|| d.timeout.clone()),
            retry_after_max: self
                .retry_after_max
                .clone()
                .or_else(|| d.retry_after_max.clone()),
        }
    }

    /// Checks and resolves the spec; `namespace` resolves a dead-letter sink `ref`.
    pub fn resolve(&self, namespace: &str) -> Result<DeliveryPolicy, DeliveryError> {
        let retry = self.retry.unwrap_or(0);
        if retry > RETRY_MAX_COUNT {
            return Err(err("retry", format!("at most {RETRY_MAX_COUNT}")));
        }
        let duration =
            |field: &str, v: &Option<String>| -> Result<Option<Duration>, DeliveryError> {
                v.as_deref()
                    .map(|s| parse_iso8601_duration(s).map_err(|reason| err(field, reason)))
                    .transpose()
            };
        let timeout = duration("timeout", &self.timeout)?
            .unwrap_or(Duration::from_millis(TIMEOUT_DEFAULT_MS));
        if timeout.is_zero() {
            return Err(err("timeout", "must be greater than zero"));
        }
        Ok(DeliveryPolicy {
            retry,
            backoff_policy: self.backoff_policy.unwrap_or_default(),
            backoff_delay: duration("backoffDelay", &self.backoff_delay)?
                .unwrap_or(Duration::from_millis(BACKOFF_DELAY_DEFAULT_MS)),
            timeout,
            retry_after_max: duration("retryAfterMax", &self.retry_after_max)?,
            dead_letter_sink: self
                .dead_letter_sink
                .as_ref()
                .map(|d| d.resolve(namespace, "deadLetterSink"))
                .transpose()?,
        })
    }
}

/// A resolved delivery spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    pub retry: u32,
    /// Backoff growth.
    pub backoff_policy: BackoffPolicy,
    /// Base backoff delay.
    pub backoff_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Cap on honoured `Retry-After`; `None` ignores `Retry-After`.
    pub retry_after_max: Option<Duration>,
    /// Dead-letter sink URL.
    pub dead_letter_sink: Option<String>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliverySpec::default()
            .resolve("default")
            .unwrap_or(DeliveryPolicy {
                retry: 0,
                backoff_policy: BackoffPolicy::Exponential,
                backoff_delay: Duration::from_millis(BACKOFF_DELAY_DEFAULT_MS),
                timeout: Duration::from_millis(TIMEOUT_DEFAULT_MS),
                retry_after_max: None,
                dead_letter_sink: None,
            })
    }
}

impl DeliveryPolicy {
    /// The delay before retry `n` (1-based): linear delay x n, exponential delay x 2^n, capped
    /// at [`BACKOFF_DELAY_MAX_MS`].
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.backoff_delay.as_millis().min(u128::from(u64::MAX)) as u64;
        let factor: u64 = match self.backoff_policy {
            BackoffPolicy::Linear => u64::from(n),
            BackoffPolicy::Exponential => 1u64.checked_shl(n).unwrap_or(u64::MAX),
        };
        Duration::from_millis(base.saturating_mul(factor).min(BACKOFF_DELAY_MAX_MS))
    }

    /// The delay before retry `n` after a response that carried `Retry-After`: the larger of
    /// the backoff and the `Retry-After`, the latter capped at `retryAfterMax`; `Retry-After` is
    /// ignored when `retryAfterMax` is unset (Knative's delivery-retryafter feature).
    pub fn backoff_with_retry_after(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(n);
        match (self.retry_after_max, retry_after) {
            (Some(max), Some(ra)) => backoff.max(ra.min(max)),
            _ => backoff,
        }
    }
}

/// Parses an ISO-8601 duration: `PnW`, or `PnDTnHnMnS` with any part omitted and a decimal
/// fraction on the last one. Years and months are refused: their length is not fixed.
pub fn parse_iso8601_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not an ISO-8601 duration such as PT1S or PT0.5S");
    let rest = s
        .strip_prefix('P')
        .or_else(|| s.strip_prefix('p'))
        .ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: u128 = 0;
    let mut in_time = false;
    let mut number = String::new();
    let mut seen_any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            'T' if !in_time && number.is_empty() => in_time = true,
            d if d.is_ascii_digit() || d == '.' || d == ',' => {
                number.push(if d == ',' { '.' } else { d })
            }
            unit => {
                if number.is_empty() {
                    return Err(bad());
                }
                let value: f64 = number.parse().map_err(|_| bad())?;
                let seconds = match (unit, in_time) {
                    ('W', false) => 604_800.0,
                    ('D', false) => 86_400.0,
                    ('H', true) => 3_600.0,
                    ('M', true) => 60.0,
                    ('S', true) => 1.0,
                    ('Y' | 'M', false) => {
                        return Err(format!(
                            "`{s}`: years and months have no fixed length; use days"
                        ));
                    }
                    _ => return Err(bad()),
                };
                total_nanos += (value * seconds * 1e9).round() as u128;
                number.clear();
                seen_any = true;
            }
        }
    }
    if !number.is_empty() || !seen_any {
        return Err(bad());
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| format!("`{s}` is too long"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations() {
        assert_eq!(
            parse_iso8601_duration("PT1S").unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_iso8601_duration("PT0.2S").unwrap(),
            Duration::from_millis(200)
        );
        assert_eq!(
            parse_iso8601_duration("PT1M30S").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_iso8601_duration("P1DT1H").unwrap(),
            Duration::from_secs(90_000)
        );
        assert_eq!(
            parse_iso8601_duration("P2W").unwrap(),
            Duration::from_secs(1_209_600)
        );
        assert_eq!(
            parse_iso8601_duration("PT0,5S").unwrap(),
            Duration::from_millis(500)
        );
        for bad in [
            "", "P", "PT", "1S", "PT1", "PTS", "P1H", "P1M", "P1Y", "PT-1S", "PT1X",
        ] {
            assert!(parse_iso8601_duration(bad).is_err(), "{bad}");
        }
    }

    // Knative DeliverySpec: linear delay x n, exponential delay x 2^n.
    #[test]
    fn backoff_policies() {
        let mut p = DeliveryPolicy {
            backoff_delay: Duration::from_millis(100),
            ..DeliveryPolicy::default()
        };
        assert_eq!(
            (1..=4)
                .map(|n| p.backoff(n).as_millis())
                .collect::<Vec<_>>(),
            [200, 400, 800, 1600]
        );
        p.backoff_policy = BackoffPolicy::Linear;
        assert_eq!(
            (1..=4)
                .map(|n| p.backoff(n).as_millis())
                .collect::<Vec<_>>(),
            [100, 200, 300, 400]
        );
        p.backoff_policy = BackoffPolicy::Exponential;
        assert_eq!(p.backoff(200), Duration::from_millis(BACKOFF_DELAY_MAX_MS));
    }

    #[test]
    fn retry_after_is_capped_and_only_honoured_with_retry_after_max() {
        let mut p = DeliveryPolicy {
            backoff_delay: Duration::from_millis(100),
            ..DeliveryPolicy::default()
        };
        assert_eq!(
            p.backoff_with_retry_after(1, Some(Duration::from_secs(5))),
            Duration::from_millis(200)
        );
        p.retry_after_max = Some(Duration::from_secs(2));
        assert_eq!(
            p.backoff_with_retry_after(1, Some(Duration::from_secs(5))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.backoff_with_retry_after(1, Some(Duration::from_millis(50))),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn broker_defaults_merge_field_by_field() {
        let broker = DeliverySpec {
            retry: Some(5),
            backoff_delay: Some("PT1S".into()),
            dead_letter_sink: Some(Destination::uri("http://dls.example/")),
            ..DeliverySpec::default()
        };
        let trigger = DeliverySpec {
            retry: Some(2),
            backoff_policy: Some(BackoffPolicy::Linear),
            ..DeliverySpec::default()
        };
        let p = trigger.merged_over(Some(&broker)).resolve("ns").unwrap();
        assert_eq!(p.retry, 2);
        assert_eq!(p.backoff_policy, BackoffPolicy::Linear);
        assert_eq!(p.backoff_delay, Duration::from_secs(1));
        assert_eq!(p.dead_letter_sink.as_deref(), Some("http://dls.example/"));
        assert_eq!(p.timeout, Duration::from_millis(TIMEOUT_DEFAULT_MS));
    }

    #[test]
    fn destinations() {
        let d = Destination {
            uri: Some("/dead".into()),
            reference: Some(ObjectRef {
                kind: "Service".into(),
                name: "sink".into(),
                ..ObjectRef::default()
            }),
        };
        assert_eq!(
            d.resolve("prod", "x").unwrap(),
            "http://sink.prod.svc.cluster.local/dead"
        );
        assert!(
            Destination::uri("relative/path")
                .resolve("ns", "x")
                .is_err()
        );
        assert!(
            Destination::uri("https://tls.example/")
                .resolve("ns", "x")
                .is_err()
        );
        let bad = DeliverySpec {
            backoff_delay: Some("1s".into()),
            ..DeliverySpec::default()
        };
        assert_eq!(bad.resolve("ns").unwrap_err().field, "backoffDelay");
    }
}
