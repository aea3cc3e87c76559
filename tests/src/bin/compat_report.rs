//! Renders the compatibility results the end-to-end tests record into a Markdown table.
//!
//! ```text
//! compat-report [--target spate|kafka] [--out FILE] [--check]
//! ```
//!
//! `--target spate` (default) writes `docs/compatibility.md`; `--target kafka` (the differential
//! baseline) writes `<cargo target dir>/compat/kafka.md`. `--check` writes nothing and fails if
//! the file differs from what the results say, so CI can insist the committed table is current.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use spate_e2e::clients::Codec;
use spate_e2e::compat::{ClientResults, Status, read_results, results_dir};
use spate_e2e::kafka::KAFKA_VERSION;
use spate_e2e::paths;
use spate_e2e::scenario::features;
use spate_e2e::target::TargetKind;

struct Args {
    target: TargetKind,
    out: Option<PathBuf>,
    check: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        target: TargetKind::Spate,
        out: None,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--target" => {
                args.target = match it.next().as_deref() {
                    Some("spate") => TargetKind::Spate,
                    Some("kafka") => TargetKind::Kafka,
                    other => bail!("--target expects spate or kafka, got {other:?}"),
                }
            }
            "--out" => args.out = Some(it.next().context("--out expects a path")?.into()),
            "--check" => args.check = true,
            other => bail!(
                "unknown argument {other}; usage: compat-report [--target spate|kafka] [--out FILE] [--check]"
            ),
        }
    }
    Ok(args)
}

/// The columns of the client table, in order.
fn client_columns() -> Vec<String> {
    let mut cols = vec![features::CREATE_TOPIC.to_owned()];
    cols.extend(Codec::ALL.iter().map(|&c| features::codec(c)));
    cols.push(features::LIST_OFFSETS.to_owned());
    cols.push(features::DESCRIBE_CONFIGS.to_owned());
    cols
}

/// Renders one table; unsupported cells point at numbered notes.
fn table(
    out: &mut String,
    first: &str,
    columns: &[String],
    rows: &[&ClientResults],
    notes: &mut Vec<String>,
) {
    let _ = writeln!(out, "| {first} | {} |", columns.join(" | "));
    let _ = writeln!(out, "| --- |{}", " --- |".repeat(columns.len()));
    for row in rows {
        let by_feature: BTreeMap<&str, _> = row
            .features
            .iter()
            .map(|f| (f.feature.as_str(), f))
            .collect();
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match by_feature.get(c.as_str()) {
                None => "not run".to_owned(),
                Some(f) => match f.status {
                    Status::Pass => "pass".to_owned(),
                    Status::Fail => "**FAIL**".to_owned(),
                    Status::Unsupported => {
                        let note = format!("{}: {}", row.client, f.detail);
                        let n = match notes.iter().position(|n| *n == note) {
                            Some(i) => i + 1,
                            None => {
                                notes.push(note);
                                notes.len()
                            }
                        };
                        format!("n/a [{n}]")
                    }
                },
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", row.description, cells.join(" | "));
    }
}

fn render(target: TargetKind, results: &[ClientResults]) -> String {
    let against = match target {
        TargetKind::Spate => "Spate".to_owned(),
        TargetKind::Kafka => format!("Apache Kafka {KAFKA_VERSION} (the differential baseline)"),
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Client compatibility: {against}\n");
    let _ = writeln!(
        out,
        "Generated from the results the end-to-end tests in `tests/` record (`tests/run` \
         regenerates this file; CI fails when it is out of date). Do not edit by hand.\n\n\
         Each client runs the same scenario against a single node: for every compression codec it \
         supports, create a topic with 3 partitions, produce 10,000 keyed records with headers, \
         consume them all from the earliest offset and compare keys, values, headers, timestamps \
         and per-partition order byte for byte; then ListOffsets by timestamp and DescribeConfigs \
         of a topic. `pass` means the step ran and every check held; `**FAIL**` means it ran and \
         failed; `n/a` means the client cannot do it; `not run` means no result was recorded.\n\n\
         `SPATE_E2E_TARGET=kafka` runs the same tests against Apache Kafka {KAFKA_VERSION}.\n"
    );
    let clients: Vec<&ClientResults> = results.iter().filter(|r| r.suite == "clients").collect();
    let tools: Vec<&ClientResults> = results.iter().filter(|r| r.suite == "tools").collect();
    let mut notes = Vec::new();

    let _ = writeln!(out, "## Kafka clients\n");
    if clients.is_empty() {
        let _ = writeln!(out, "No client results were recorded.\n");
    } else {
        table(&mut out, "client", &client_columns(), &clients, &mut notes);
        out.push('\n');
    }

    let _ = writeln!(out, "## Apache Kafka's command-line tools\n");
    if tools.is_empty() {
        let _ = writeln!(out, "No tool results were recorded.\n");
    } else {
        // Tool columns: every step any tool recorded, in recording order.
        let mut columns: Vec<String> = Vec::new();
        for r in &tools {
            for f in &r.features {
                if !columns.contains(&f.feature) {
                    columns.push(f.feature.clone());
                }
            }
        }
        table(&mut out, "tool", &columns, &tools, &mut notes);
        out.push('\n');
    }

    if !notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(out, "{}. {n}", i + 1);
        }
    }
    out
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compat-report: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args = parse_args()?;
    let results = read_results(&results_dir(args.target)?)?;
    let rendered = render(args.target, &results);
    let out = match (args.out, args.target) {
        (Some(out), _) => out,
        (None, TargetKind::Spate) => paths::repo_root().join("docs/compatibility.md"),
        (None, TargetKind::Kafka) => paths::cargo_target_dir()?.join("compat/kafka.md"),
    };
    if args.check {
        let current = fs::read_to_string(&out).unwrap_or_default();
        if current != rendered {
            eprintln!(
                "compat-report: {} is out of date with this run's results; run `tests/run` \
                 (or `cargo run -p spate-e2e --bin compat-report`) and commit it. It would read:\n\n{rendered}",
                out.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("compat-report: {} is current", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(&out, &rendered).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("compat-report: wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
