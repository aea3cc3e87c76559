//! Config value types, parsing and validators with Apache Kafka's semantics.
//!
//! Kafka clients and tools see a config's type (DescribeConfigs v3+ `config_type`), its value as a
//! string, and, when a value is rejected, an error message. Those messages are part of the
//! interface: tools print them and some tests match them. So parsing follows Kafka's `ConfigDef`
//! exactly: values are trimmed, booleans are case-insensitive, lists split on commas with the
//! whitespace around them, and the messages read `Invalid value X for configuration Y: reason`.

use std::fmt;

/// The type of a config, numbered as DescribeConfigs v3+ reports it in `config_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigType {
    /// The broker does not know the type (Kafka uses it for unknown names).
    Unknown = 0,
    /// `true` or `false`, case-insensitive.
    Boolean = 1,
    /// Free text, trimmed.
    String = 2,
    /// A 32-bit signed integer.
    Int = 3,
    /// A 16-bit signed integer.
    Short = 4,
    /// A 64-bit signed integer.
    Long = 5,
    /// A 64-bit float.
    Double = 6,
    /// A comma-separated list of strings.
    List = 7,
    /// A Java class name (kept for compatibility; Spate loads no classes).
    Class = 8,
    /// A secret: never shown in DescribeConfigs.
    Password = 9,
}

impl ConfigType {
    /// The DescribeConfigs v3+ `config_type` code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The name Kafka prints for the type, as in `Not a number of type LONG`.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }

    /// Whether values of this type are hidden in DescribeConfigs (Kafka hides passwords and any
    /// config whose type it does not know).
    pub fn is_sensitive(self) -> bool {
        matches!(self, ConfigType::Password | ConfigType::Unknown)
    }
}

/// The rule a parsed value must satisfy, with the message Kafka gives when it does not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// Any value of the type.
    Any,
    /// A number within inclusive bounds (Kafka's `Range`).
    Range {
        /// The smallest allowed value, if any.
        min: Option<i64>,
        /// The largest allowed value, if any.
        max: Option<i64>,
    },
    /// A gzip level: 1 to 9, or -1 for the codec's default.
    GzipLevel,
    /// One of these strings, case-sensitive (Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// One of these strings, ignoring case (Kafka's `CaseInsensitiveValidString`).
    OneOfIgnoreCase(&'static [&'static str]),
    /// A list whose every element is one of these strings (Kafka's `ValidList`).
    ListOf {
        /// The allowed elements.
        allowed: &'static [&'static str],
        /// Whether the empty list is allowed.
        empty_allowed: bool,
    },
    /// A list with no empty element (the empty list itself is allowed, as in Kafka's quorum
    /// address lists).
    NonEmptyList,
    /// A string that is not empty.
    NonEmptyString,
    /// `*` or a list of `partition:broker` pairs (replication throttling).
    ThrottledReplicas,
}

impl Validator {
    /// The "valid values" text Kafka prints in its configuration reference.
    pub fn describe(&self) -> String {
        match self {
            Validator::Any => String::new(),
            Validator::Range { min, max } => match (min, max) {
                (Some(min), Some(max)) => format!("[{min},...,{max}]"),
                (Some(min), None) => format!("[{min},...]"),
                (None, Some(max)) => format!("[...,{max}]"),
                (None, None) => String::new(),
            },
            Validator::GzipLevel => "[1,...,9] or -1".to_string(),
            Validator::OneOf(values)
            | Validator::ListOf {
                allowed: values, ..
            } => {
                format!("[{}]", values.join(", "))
            }
            Validator::OneOfIgnoreCase(values) => {
                format!("(case insensitive) [{}]", values.join(", "))
            }
            Validator::NonEmptyList => "non-empty list".to_string(),
            Validator::NonEmptyString => "non-empty string".to_string(),
            Validator::ThrottledReplicas => {
                "[partitionId]:[brokerId],[partitionId]:[brokerId],...".to_string()
            }
        }
    }
}

/// A parsed config value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A BOOLEAN value.
    Boolean(bool),
    /// A STRING value (trimmed).
    String(String),
    /// An INT value.
    Int(i32),
    /// A SHORT value.
    Short(i16),
    /// A LONG value.
    Long(i64),
    /// A DOUBLE value.
    Double(f64),
    /// A LIST value.
    List(Vec<String>),
    /// A CLASS value (a class name).
    Class(String),
    /// A PASSWORD value.
    Password(String),
}

impl ConfigValue {
    /// The value as Kafka writes it back (`ConfigDef.convertToString`): lists joined by commas
    /// without spaces, doubles in Java's notation.
    pub fn to_kafka_string(&self) -> String {
        match self {
            ConfigValue::Boolean(value) => value.to_string(),
            ConfigValue::String(value)
            | ConfigValue::Class(value)
            | ConfigValue::Password(value) => value.clone(),
            ConfigValue::Int(value) => value.to_string(),
            ConfigValue::Short(value) => value.to_string(),
            ConfigValue::Long(value) => value.to_string(),
            ConfigValue::Double(value) => java_double_string(*value),
            ConfigValue::List(values) => values.join(","),
        }
    }

    /// The value as Java's `toString` prints it inside error messages (lists as `[a, b]`).
    fn to_java_display(&self) -> String {
        match self {
            ConfigValue::List(values) => format!("[{}]", values.join(", ")),
            other => other.to_kafka_string(),
        }
    }

    /// The value as a 64-bit integer, for INT, SHORT and LONG values.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ConfigValue::Int(value) => Some(i64::from(*value)),
            ConfigValue::Short(value) => Some(i64::from(*value)),
            ConfigValue::Long(value) => Some(*value),
            _ => None,
        }
    }
}

/// A config value Kafka would reject, with Kafka's message.
///
/// Kafka answers these with INVALID_CONFIG in CreateTopics, AlterConfigs and
/// IncrementalAlterConfigs; the `Display` text is the error message it sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    /// A value that does not parse or does not pass its validator.
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        /// The config name.
        name: String,
        /// The value as Kafka prints it (the raw text, or the parsed value for range errors).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An empty list where the config needs at least one element.
    #[error("Configuration '{name}' must not be empty. Valid values include: [{allowed}]")]
    EmptyList {
        /// The config name.
        name: String,
        /// The allowed elements, comma-separated.
        allowed: String,
    },
    /// A list with an empty element, such as `compact,,delete`.
    #[error("Configuration '{name}' values must not be empty.")]
    EmptyListElement {
        /// The config name.
        name: String,
    },
    /// A topic config name Kafka does not define.
    #[error("Unknown topic config name: {0}")]
    UnknownTopicConfig(String),
    /// A broker config name Spate does not define.
    #[error("Unknown broker config name: {0}")]
    UnknownBrokerConfig(String),
    /// `min.compaction.lag.ms` greater than `max.compaction.lag.ms`.
    #[error(
        "conflict topic config setting min.compaction.lag.ms ({min_ms}) > max.compaction.lag.ms ({max_ms})"
    )]
    CompactionLagConflict {
        /// The minimum compaction lag.
        min_ms: i64,
        /// The maximum compaction lag.
        max_ms: i64,
    },
    /// `remote.storage.enable=true`: Spate has no tiered storage, like a Kafka broker whose
    /// `remote.log.storage.system.enable` is false.
    #[error(
        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
    )]
    RemoteStorageDisabled,
    /// Any other rejection: values that do not fit together, or operations a config's type
    /// does not allow. The text is the whole message.
    #[error("{0}")]
    Other(String),
}

/// Parses `raw` as a value of type `config_type` for config `name` and checks it against
/// `validator`, as Kafka's `ConfigDef.parseValue` does.
pub fn parse_value(
    name: &str,
    raw: &str,
    config_type: ConfigType,
    validator: &Validator,
) -> Result<ConfigValue, InvalidConfig> {
    let value = parse_type(name, raw, config_type)?;
    validate(name, &value, validator)?;
    Ok(value)
}

/// Java's `String.trim`: strips every character up to and including U+0020 at both ends.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// The characters Java's regex `\s` matches.
fn is_java_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Splits a LIST value as Kafka does: trim, empty text is the empty list, otherwise split on
/// commas with any whitespace around them, keeping empty elements.
pub fn split_list(raw: &str) -> Vec<String> {
    let trimmed = java_trim(raw);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(',')
        .map(|part| part.trim_matches(is_java_regex_space).to_string())
        .collect()
}

fn not_a_number(name: &str, raw: &str, config_type: ConfigType) -> InvalidConfig {
    InvalidConfig::InvalidValue {
        name: name.to_string(),
        value: raw.to_string(),
        reason: format!("Not a number of type {}", config_type.kafka_name()),
    }
}

fn parse_type(
    name: &str,
    raw: &str,
    config_type: ConfigType,
) -> Result<ConfigValue, InvalidConfig> {
    let trimmed = java_trim(raw);
    match config_type {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(ConfigValue::Boolean(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(ConfigValue::Boolean(false))
            } else {
                Err(InvalidConfig::InvalidValue {
                    name: name.to_string(),
                    value: raw.to_string(),
                    reason: "Expected value to be either true or false".to_string(),
                })
            }
        }
        ConfigType::String | ConfigType::Unknown => Ok(ConfigValue::String(trimmed.to_string())),
        ConfigType::Class => Ok(ConfigValue::Class(trimmed.to_string())),
        // Kafka keeps passwords exactly as given.
        ConfigType::Password => Ok(ConfigValue::Password(raw.to_string())),
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(ConfigValue::Int)
            .map_err(|_| not_a_number(name, raw, config_type)),
        ConfigType::Short => trimmed
            .parse::<i16>()
            .map(ConfigValue::Short)
            .map_err(|_| not_a_number(name, raw, config_type)),
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(ConfigValue::Long)
            .map_err(|_| not_a_number(name, raw, config_type)),
        ConfigType::Double => parse_java_double(trimmed)
            .map(ConfigValue::Double)
            .ok_or_else(|| not_a_number(name, raw, config_type)),
        ConfigType::List => Ok(ConfigValue::List(split_list(raw))),
    }
}

/// Parses a double the way Java's `Double.parseDouble` does for the forms people write:
/// decimal and exponent notation, `NaN`, `Infinity`, and a trailing `d`/`f` type suffix.
fn parse_java_double(text: &str) -> Option<f64> {
    let unsigned = text.trim_start_matches(['+', '-']);
    if unsigned == "NaN" || unsigned == "Infinity" {
        return text.replace("Infinity", "inf").parse::<f64>().ok();
    }
    // Rust also accepts `inf`, `nan` and `infinity` in any case; Java does not.
    if unsigned
        .chars()
        .any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E' | 'd' | 'D' | 'f' | 'F'))
    {
        return None;
    }
    let number = text.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(text);
    if number.is_empty() || number.ends_with(['d', 'D', 'f', 'F']) {
        return None;
    }
    number.parse::<f64>().ok()
}

fn validate(name: &str, value: &ConfigValue, validator: &Validator) -> Result<(), InvalidConfig> {
    let invalid = |shown: String, reason: String| InvalidConfig::InvalidValue {
        name: name.to_string(),
        value: shown,
        reason,
    };
    match validator {
        Validator::Any => Ok(()),
        Validator::Range { min, max } => {
            // Kafka compares every number as a double; NaN passes both checks, as in Kafka.
            let (below, above) = match value {
                ConfigValue::Double(number) => (
                    min.is_some_and(|min| *number < min as f64),
                    max.is_some_and(|max| *number > max as f64),
                ),
                other => match other.as_i64() {
                    Some(number) => (
                        min.is_some_and(|min| number < min),
                        max.is_some_and(|max| number > max),
                    ),
                    None => (false, false),
                },
            };
            if let (true, Some(min)) = (below, min) {
                return Err(invalid(
                    value.to_java_display(),
                    format!("Value must be at least {min}"),
                ));
            }
            if let (true, Some(max)) = (above, max) {
                return Err(invalid(
                    value.to_java_display(),
                    format!("Value must be no more than {max}"),
                ));
            }
            Ok(())
        }
        Validator::GzipLevel => match value.as_i64() {
            Some(level) if level == -1 || (1..=9).contains(&level) => Ok(()),
            _ => Err(invalid(
                value.to_java_display(),
                "Value must be between 1 and 9 or equal to -1".to_string(),
            )),
        },
        Validator::OneOf(allowed) => {
            let text = value.to_kafka_string();
            if allowed.contains(&text.as_str()) {
                Ok(())
            } else {
                Err(invalid(
                    text,
                    format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        Validator::OneOfIgnoreCase(allowed) => {
            let text = value.to_kafka_string();
            if allowed
                .iter()
                .any(|candidate| candidate.eq_ignore_ascii_case(&text))
            {
                Ok(())
            } else {
                Err(invalid(
                    text,
                    format!(
                        "String must be one of (case insensitive): {}",
                        allowed.join(", ")
                    ),
                ))
            }
        }
        Validator::ListOf {
            allowed,
            empty_allowed,
        } => {
            let ConfigValue::List(elements) = value else {
                return Ok(());
            };
            if elements.is_empty() && !empty_allowed {
                return Err(InvalidConfig::EmptyList {
                    name: name.to_string(),
                    allowed: allowed.join(", "),
                });
            }
            if elements.iter().any(String::is_empty) {
                return Err(InvalidConfig::EmptyListElement {
                    name: name.to_string(),
                });
            }
            match elements
                .iter()
                .find(|element| !allowed.contains(&element.as_str()))
            {
                Some(element) => Err(invalid(
                    element.clone(),
                    format!("String must be one of: {}", allowed.join(", ")),
                )),
                None => Ok(()),
            }
        }
        Validator::NonEmptyList => match value {
            ConfigValue::List(elements) if elements.iter().any(String::is_empty) => {
                Err(InvalidConfig::EmptyListElement {
                    name: name.to_string(),
                })
            }
            _ => Ok(()),
        },
        Validator::NonEmptyString => {
            if value.to_kafka_string().is_empty() {
                Err(invalid(
                    String::new(),
                    "String must be non-empty".to_string(),
                ))
            } else {
                Ok(())
            }
        }
        Validator::ThrottledReplicas => {
            let ConfigValue::List(elements) = value else {
                return Ok(());
            };
            let trimmed: Vec<&str> = elements.iter().map(|element| java_trim(element)).collect();
            let all_pairs = trimmed
                .iter()
                .all(|element| element.is_empty() || is_replica_pair(element));
            if all_pairs || trimmed.concat() == "*" {
                Ok(())
            } else {
                Err(invalid(
                    value.to_java_display(),
                    format!(
                        "{name} must be the literal '*' or a list of replicas in the following format: \
                         [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                    ),
                ))
            }
        }
    }
}

/// Whether `text` is `digits:digits`.
fn is_replica_pair(text: &str) -> bool {
    match text.split_once(':') {
        Some((partition, broker)) => {
            !partition.is_empty()
                && !broker.is_empty()
                && partition.bytes().all(|b| b.is_ascii_digit())
                && broker.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Formats a double as Java's `Double.toString` does, so values and messages match Kafka's:
/// `0.5`, `2.0`, `1.0E10`, `-1.0E-4`, `NaN`, `Infinity`.
pub fn java_double_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let magnitude = value.abs();
    // Rust's `{:e}` gives the shortest digits that round-trip, as `d.ddde<exp>`.
    let scientific = format!("{magnitude:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (1e-3..1e7).contains(&magnitude) {
        if exponent >= 0 {
            let point = exponent as usize + 1;
            let mut integer = digits.clone();
            while integer.len() < point {
                integer.push('0');
            }
            let (integer, fraction) = integer.split_at(point);
            let fraction = if fraction.is_empty() { "0" } else { fraction };
            format!("{sign}{integer}.{fraction}")
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

impl fmt::Display for ConfigType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kafka_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, raw: &str, ty: ConfigType, validator: Validator) -> String {
        match parse_value(name, raw, ty, &validator) {
            Ok(value) => panic!("{raw} parsed as {value:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn java_double_formatting_matches_double_to_string() {
        assert_eq!(java_double_string(0.5), "0.5");
        assert_eq!(java_double_string(2.0), "2.0");
        assert_eq!(java_double_string(1e10), "1.0E10");
        assert_eq!(java_double_string(12345678.0), "1.2345678E7");
        assert_eq!(java_double_string(-0.0001), "-1.0E-4");
        assert_eq!(java_double_string(0.001), "0.001");
        assert_eq!(java_double_string(1234567.5), "1234567.5");
        assert_eq!(java_double_string(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double_string(0.0), "0.0");
    }

    #[test]
    fn number_messages_match_kafka() {
        assert_eq!(
            err("retention.ms", "abc", ConfigType::Long, Validator::Any),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            err(
                "segment.bytes",
                "3000000000",
                ConfigType::Int,
                Validator::Any
            ),
            "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            err("x", "40000", ConfigType::Short, Validator::Any),
            "Invalid value 40000 for configuration x: Not a number of type SHORT"
        );
        assert_eq!(
            err("retention.ms", "", ConfigType::Long, Validator::Any),
            "Invalid value  for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            err("r", "x", ConfigType::Double, Validator::Any),
            "Invalid value x for configuration r: Not a number of type DOUBLE"
        );
        assert_eq!(
            err("r", "inf", ConfigType::Double, Validator::Any),
            "Invalid value inf for configuration r: Not a number of type DOUBLE"
        );
    }

    #[test]
    fn values_are_trimmed_and_signs_accepted_like_java() {
        let range = Validator::Range {
            min: Some(-1),
            max: None,
        };
        assert_eq!(
            parse_value("r", " 100 ", ConfigType::Long, &range),
            Ok(ConfigValue::Long(100))
        );
        assert_eq!(
            parse_value("r", "+5", ConfigType::Long, &range),
            Ok(ConfigValue::Long(5))
        );
        assert_eq!(
            parse_value("p", " TRUE", ConfigType::Boolean, &Validator::Any),
            Ok(ConfigValue::Boolean(true))
        );
        assert_eq!(
            parse_value("d", "1e-1", ConfigType::Double, &Validator::Any),
            Ok(ConfigValue::Double(0.1))
        );
        assert_eq!(
            parse_value("d", "1.5d", ConfigType::Double, &Validator::Any),
            Ok(ConfigValue::Double(1.5))
        );
    }

    #[test]
    fn range_messages_print_the_parsed_value() {
        let ratio = Validator::Range {
            min: Some(0),
            max: Some(1),
        };
        assert_eq!(
            err("min.cleanable.dirty.ratio", "2", ConfigType::Double, ratio),
            "Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
        );
        assert_eq!(
            err(
                "min.cleanable.dirty.ratio",
                "-0.0001",
                ConfigType::Double,
                ratio
            ),
            "Invalid value -1.0E-4 for configuration min.cleanable.dirty.ratio: Value must be at least 0"
        );
        assert_eq!(
            err(
                "retention.ms",
                "-5",
                ConfigType::Long,
                Validator::Range {
                    min: Some(-1),
                    max: None
                }
            ),
            "Invalid value -5 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(
            err(
                "compression.gzip.level",
                "0",
                ConfigType::Int,
                Validator::GzipLevel
            ),
            "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"
        );
    }

    #[test]
    fn string_and_list_messages_match_kafka() {
        const POLICIES: &[&str] = &["compact", "delete"];
        let list = Validator::ListOf {
            allowed: POLICIES,
            empty_allowed: true,
        };
        assert_eq!(
            err("cleanup.policy", "compact,foo,bar", ConfigType::List, list),
            "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete"
        );
        assert_eq!(
            err("cleanup.policy", "compact,,delete", ConfigType::List, list),
            "Configuration 'cleanup.policy' values must not be empty."
        );
        assert_eq!(
            parse_value(
                "cleanup.policy",
                " compact , delete ",
                ConfigType::List,
                &list
            ),
            Ok(ConfigValue::List(vec!["compact".into(), "delete".into()]))
        );
        let strict = Validator::ListOf {
            allowed: POLICIES,
            empty_allowed: false,
        };
        assert_eq!(
            err("p", "", ConfigType::List, strict),
            "Configuration 'p' must not be empty. Valid values include: [compact, delete]"
        );
        assert_eq!(
            err("b", "yes", ConfigType::Boolean, Validator::Any),
            "Invalid value yes for configuration b: Expected value to be either true or false"
        );
        const POLICY: &[&str] = &["DISABLED", "UPGRADE"];
        assert_eq!(
            err(
                "m",
                "foo",
                ConfigType::String,
                Validator::OneOfIgnoreCase(POLICY)
            ),
            "Invalid value foo for configuration m: String must be one of (case insensitive): DISABLED, UPGRADE"
        );
        assert!(
            parse_value(
                "m",
                "upgrade",
                ConfigType::String,
                &Validator::OneOfIgnoreCase(POLICY)
            )
            .is_ok()
        );
    }

    #[test]
    fn throttled_replicas_follow_kafka_rules() {
        let ok = |raw: &str| {
            parse_value("t", raw, ConfigType::List, &Validator::ThrottledReplicas).is_ok()
        };
        assert!(ok(""));
        assert!(ok(" * "));
        assert!(ok("0:1,1:2"));
        assert!(ok("0:1, 1:2"));
        assert!(ok("0:1,"));
        assert!(!ok("0:1,*"));
        assert!(!ok("0 : 1"));
        assert_eq!(
            err(
                "leader.replication.throttled.replicas",
                "0:1,a:b",
                ConfigType::List,
                Validator::ThrottledReplicas
            ),
            "Invalid value [0:1, a:b] for configuration leader.replication.throttled.replicas: \
             leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the \
             following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
        );
    }
}
