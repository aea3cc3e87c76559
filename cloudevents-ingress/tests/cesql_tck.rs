//! The CloudEvents SQL v1 TCK (cloudevents/spec, cesql/cesql-tck), every case, unchanged:
//! tests/testdata/cesql-tck holds the upstream YAML files and their licence.

use std::path::PathBuf;

use serde_json::{Map, Value as Json};
use spate_cloudevents::cesql::{CompileError, ErrorKind, Expression, Value};
use spate_cloudevents::codec::json::from_object;
use spate_cloudevents::event::Event;

#[derive(serde::Deserialize)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    result: Option<serde_norway::Value>,
    error: Option<String>,
    event: Option<Json>,
    event_overrides: Option<Map<String, Json>>,
}

fn tck_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/cesql-tck")
}

fn event_for(case: &Case) -> Event {
    let mut object = match &case.event {
        Some(Json::Object(map)) => map.clone(),
        Some(other) => panic!("{}: event is not an object: {other}", case.name),
        None => serde_json::from_str(
            r#"{"specversion":"1.0","id":"myId","source":"localhost.localdomain","type":"myType"}"#,
        )
        .expect("default event"),
    };
    for (k, v) in case.event_overrides.iter().flatten() {
        object.insert(k.clone(), v.clone());
    }
    from_object(object).unwrap_or_else(|e| panic!("{}: bad event: {e}", case.name))
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Math => "math",
        ErrorKind::Cast => "cast",
        ErrorKind::MissingAttribute => "missingAttribute",
        ErrorKind::FunctionEvaluation => "functionEvaluation",
    }
}

fn same_value(actual: &Value<'_>, expected: &serde_norway::Value) -> bool {
    match (actual, expected) {
        (Value::Bool(a), serde_norway::Value::Bool(b)) => a == b,
        (Value::Int(a), serde_norway::Value::Number(n)) => n.as_i64() == Some(i64::from(*a)),
        (Value::Str(a), serde_norway::Value::String(b)) => a == b,
        _ => false,
    }
}

/// Runs one case; `Err` describes a mismatch.
fn run(case: &Case) -> Result<(), String> {
    let compiled = Expression::parse(&case.expression);
    let expression = match compiled {
        Err(e) => {
            let kind = match e {
                CompileError::Parse { .. } => "parse",
                CompileError::MissingFunction { .. } => "missingFunction",
            };
            return if case.error.as_deref() == Some(kind) {
                Ok(())
            } else {
                Err(format!(
                    "refused at creation ({e}), expected error {:?}",
                    case.error
                ))
            };
        }
        Ok(x) => x,
    };
    let event = event_for(case);
    let (value, error) = expression.evaluate(&event);
    let error = error.map(kind_name);
    if error != case.error.as_deref() {
        return Err(format!(
            "error {error:?}, expected {:?} (value {value:?})",
            case.error
        ));
    }
    if let Some(expected) = &case.result
        && !same_value(&value, expected)
    {
        return Err(format!("value {value:?}, expected {expected:?}"));
    }
    Ok(())
}

#[test]
fn every_tck_case_passes() {
    let mut files: Vec<_> = std::fs::read_dir(tck_dir())
        .expect("TCK directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 18, "the TCK has 18 suites");
    let (mut passed, mut failures) = (0, Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read suite");
        let suite: Suite =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &suite.tests {
            match run(case) {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!(
                    "{} / {} [{}]: {why}",
                    suite.name, case.name, case.expression
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} TCK cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed, 275, "every case of the TCK runs");
    println!("{passed} CESQL TCK cases passed");
}
