//! Every figure of a comparison run: the samples of each repeat, their medians, the Spate/Kafka
//! ratio and the target it is measured against; written as `<date>.json` and `<date>.md`.

use std::fmt::Write as _;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cluster::SystemKind;

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput and the like.
    Higher,
    /// Latency, memory, time.
    Lower,
}

/// The goal for a figure's Spate/Kafka ratio (issue 8's targets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The ratio to reach: at least this for [`Better::Higher`], at most for [`Better::Lower`].
    pub ratio: f64,
    /// How the issue states it.
    pub text: String,
}

/// One repeat's value of a figure for one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Which system.
    pub system: SystemKind,
    /// Which repeat (0-based).
    pub repeat: usize,
    /// The value, or `None` when the run failed.
    pub value: Option<f64>,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One figure compared between the systems.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable key, e.g. `w1.produce.rdload.mib_per_s`.
    pub id: String,
    /// The workload, as the issue numbers them.
    pub workload: String,
    /// What is measured and with which client.
    pub metric: String,
    /// Unit of the values.
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
    /// The goal for the ratio, if the issue sets one.
    pub target: Option<Target>,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// Median over Spate's successful samples.
    pub spate_median: Option<f64>,
    /// Median over Kafka's successful samples.
    pub kafka_median: Option<f64>,
    /// `spate_median / kafka_median`.
    pub ratio: Option<f64>,
    /// Whether the ratio meets the target.
    pub target_met: Option<bool>,
}

/// A latency distribution of one run, for the CDF plot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cdf {
    /// Which system.
    pub system: SystemKind,
    /// Which repeat.
    pub repeat: usize,
    /// The p99 of that run, to pick the median run for the plot.
    pub p99_ms: f64,
    /// (percentile, latency ms) points.
    pub points: Vec<(f64, f64)>,
}

/// Facts about the machine and the software, so that runs can be compared with care.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs available.
    pub cpus: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// 1, 5, 15 minute load averages when the run started (a busy machine skews everything).
    pub load_average_at_start: String,
    /// Load averages when the run ended.
    pub load_average_at_end: String,
    /// `java -version`.
    pub java: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Spate's commit (with `-dirty` when the tree had changes).
    pub spate_commit: String,
    /// Apache Kafka version.
    pub kafka_version: String,
}

impl Machine {
    /// Reads what it can; unknown facts stay empty.
    pub fn read(kafka_version: &str, java: &std::path::Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let output = |cmd: &mut Command| -> String {
            cmd.output()
                .ok()
                .map(|o| {
                    let text = if o.stdout.is_empty() {
                        o.stderr
                    } else {
                        o.stdout
                    };
                    String::from_utf8_lossy(&text)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default()
        };
        let commit = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]));
        let dirty =
            !output(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
                .is_empty();
        Machine {
            cpu: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_average_at_start: load_average(),
            load_average_at_end: String::new(),
            java: output(Command::new(java).arg("-version")),
            rustc: output(Command::new("rustc").arg("--version")),
            spate_commit: if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            },
            kafka_version: kafka_version.to_string(),
        }
    }
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything a run produced.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// `quick` or `full`.
    pub mode: String,
    /// Wall-clock seconds of the whole run.
    pub duration_s: f64,
    /// Machine facts.
    pub machine: Machine,
    /// The settings both systems ran with, as text lines.
    pub settings: Vec<String>,
    /// Every figure, in workload order.
    pub figures: Vec<Figure>,
    /// Latency distributions of the fixed-rate runs (librdkafka).
    pub latency_cdfs: Vec<Cdf>,
    /// Notes: profiles, skipped parts, reasons.
    pub notes: Vec<String>,
    /// A reading of the figures written after the run (where Spate is short and why), in
    /// Markdown; rendered after the targets.
    #[serde(default)]
    pub analysis: Option<String>,
}

/// The metadata of a figure, declared before its samples arrive.
pub struct Spec {
    /// See [`Figure::id`].
    pub id: &'static str,
    /// See [`Figure::workload`].
    pub workload: &'static str,
    /// See [`Figure::metric`].
    pub metric: &'static str,
    /// See [`Figure::unit`].
    pub unit: &'static str,
    /// See [`Figure::better`].
    pub better: Better,
    /// See [`Figure::target`]: the ratio and how the issue states it.
    pub target: Option<(f64, &'static str)>,
}

impl Results {
    /// An empty result set.
    pub fn new(started: String, mode: &str, machine: Machine, settings: Vec<String>) -> Results {
        Results {
            started,
            mode: mode.to_string(),
            duration_s: 0.0,
            machine,
            settings,
            figures: Vec::new(),
            latency_cdfs: Vec::new(),
            notes: Vec::new(),
            analysis: None,
        }
    }

    /// Records one sample of the figure `spec` (declared on first use).
    pub fn record(
        &mut self,
        spec: &Spec,
        system: SystemKind,
        repeat: usize,
        value: anyhow::Result<f64>,
    ) {
        let figure = match self.figures.iter().position(|f| f.id == spec.id) {
            Some(at) => &mut self.figures[at],
            None => {
                self.figures.push(Figure {
                    id: spec.id.to_string(),
                    workload: spec.workload.to_string(),
                    metric: spec.metric.to_string(),
                    unit: spec.unit.to_string(),
                    better: spec.better,
                    target: spec.target.map(|(ratio, text)| Target {
                        ratio,
                        text: text.to_string(),
                    }),
                    samples: Vec::new(),
                    spate_median: None,
                    kafka_median: None,
                    ratio: None,
                    target_met: None,
                });
                let last = self.figures.len() - 1;
                &mut self.figures[last]
            }
        };
        let sample = match value {
            Ok(v) if v.is_finite() => Sample {
                system,
                repeat,
                value: Some(v),
                error: None,
            },
            Ok(v) => Sample {
                system,
                repeat,
                value: None,
                error: Some(format!("not a number: {v}")),
            },
            Err(error) => Sample {
                system,
                repeat,
                value: None,
                error: Some(short_error(&error)),
            },
        };
        eprintln!(
            "compare: {} [{}] repeat {repeat}: {}",
            spec.id,
            system.name(),
            match (&sample.value, &sample.error) {
                (Some(v), _) => format!("{v:.3} {}", spec.unit),
                (None, Some(e)) => format!("FAILED: {e}"),
                (None, None) => "no value".into(),
            }
        );
        figure.samples.push(sample);
    }

    /// The median of a figure for one system, so far.
    pub fn median(&self, id: &str, system: SystemKind) -> Option<f64> {
        let figure = self.figures.iter().find(|f| f.id == id)?;
        median(&values(figure, system))
    }

    /// Computes medians, ratios and target verdicts.
    pub fn finish(&mut self, duration_s: f64) {
        self.duration_s = duration_s;
        self.machine.load_average_at_end = load_average();
        for figure in &mut self.figures {
            figure.spate_median = median(&values(figure, SystemKind::Spate));
            figure.kafka_median = median(&values(figure, SystemKind::Kafka));
            figure.ratio = match (figure.spate_median, figure.kafka_median) {
                (Some(s), Some(k)) if k != 0.0 => Some(s / k),
                _ => None,
            };
            figure.target_met = match (&figure.target, figure.ratio) {
                (Some(target), Some(ratio)) => Some(match figure.better {
                    Better::Higher => ratio >= target.ratio,
                    Better::Lower => ratio <= target.ratio,
                }),
                _ => None,
            };
        }
    }

    /// Removes what must not reach the results files: the scratch directory's path (errors
    /// quote it) and the padding `perf report` puts after each line.
    pub fn scrub(&mut self, work_dir: &str) {
        let clean = |text: &str| -> String {
            let text = if work_dir.is_empty() {
                text.to_string()
            } else {
                text.replace(work_dir, "<scratch>")
            };
            text.lines()
                .map(|l| l.trim_end().trim_end_matches(['-', ' ']))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for note in &mut self.notes {
            *note = clean(note);
        }
        for figure in &mut self.figures {
            for sample in &mut figure.samples {
                if let Some(error) = &mut sample.error {
                    *error = clean(error);
                }
            }
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The Markdown report; `plots` are file names beside it.
    pub fn to_markdown(&self, plots: &[(String, String)]) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Spate vs Apache Kafka — {} ({} run)\n",
            self.started, self.mode
        );
        let _ = writeln!(
            md,
            "Produced by `benches/compare/run{}` in {:.1} minutes. Every figure is the median of \
             the repeats; Spate and Kafka runs alternate within the same run; the ratio is \
             Spate/Kafka from this run. The JSON beside this file holds every sample.\n",
            if self.mode == "quick" { " --quick" } else { "" },
            self.duration_s / 60.0
        );
        let m = &self.machine;
        let _ = writeln!(md, "## Machine\n");
        let _ = writeln!(md, "| fact | value |\n| --- | --- |");
        for (k, v) in [
            ("CPU", format!("{} ({} logical CPUs)", m.cpu, m.cpus)),
            ("memory", format!("{} GiB", m.memory_gib)),
            ("kernel", m.kernel.clone()),
            (
                "load average (1/5/15 min) at start / end",
                format!("{} / {}", m.load_average_at_start, m.load_average_at_end),
            ),
            ("Spate commit", m.spate_commit.clone()),
            ("Apache Kafka", m.kafka_version.clone()),
            ("Java", m.java.clone()),
            ("Rust", m.rustc.clone()),
        ] {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let _ = writeln!(md, "\n## Settings\n");
        for line in &self.settings {
            let _ = writeln!(md, "- {line}");
        }

        let _ = writeln!(md, "\n## Targets\n");
        let _ = writeln!(
            md,
            "| figure | Spate | Kafka | Spate/Kafka | target | met |\n| --- | ---: | ---: | ---: | --- | --- |"
        );
        for f in self.figures.iter().filter(|f| f.target.is_some()) {
            let _ = writeln!(
                md,
                "| {} — {} | {} | {} | {} | {} | {} |",
                f.workload,
                f.metric,
                cell(f.spate_median, &f.unit, failures(f, SystemKind::Spate)),
                cell(f.kafka_median, &f.unit, failures(f, SystemKind::Kafka)),
                f.ratio.map_or("—".into(), |r| format!("{r:.2}")),
                f.target.as_ref().map_or("", |t| t.text.as_str()),
                match f.target_met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                }
            );
        }
        if let Some(analysis) = &self.analysis {
            let _ = writeln!(md, "\n## Where Spate is short, and why\n");
            let _ = writeln!(md, "{}", analysis.trim_end());
        }

        let mut workload = String::new();
        for f in &self.figures {
            if f.workload != workload {
                workload = f.workload.clone();
                let _ = writeln!(md, "\n## {workload}\n");
                let _ = writeln!(
                    md,
                    "| figure | unit | Spate | Kafka | Spate/Kafka | samples (Spate; Kafka) |\n| --- | --- | ---: | ---: | ---: | --- |"
                );
            }
            let samples = |system| {
                f.samples
                    .iter()
                    .filter(|s| s.system == system)
                    .map(|s| {
                        s.value
                            .map_or("failed".into(), |v| format!("{}", round3(v)))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {}; {} |",
                f.metric,
                f.unit,
                cell(f.spate_median, "", failures(f, SystemKind::Spate)),
                cell(f.kafka_median, "", failures(f, SystemKind::Kafka)),
                f.ratio.map_or("—".into(), |r| format!("{r:.2}")),
                samples(SystemKind::Spate),
                samples(SystemKind::Kafka),
            );
        }

        let errors: Vec<String> = self
            .figures
            .iter()
            .flat_map(|f| {
                f.samples.iter().filter_map(move |s| {
                    s.error.as_ref().map(|e| {
                        format!(
                            "{} — {}, {} repeat {}: {}",
                            f.workload,
                            f.metric,
                            s.system.name(),
                            s.repeat,
                            e.replace('\n', " ")
                        )
                    })
                })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\n## Failed runs\n");
            let mut seen = std::collections::BTreeSet::new();
            for e in errors {
                if seen.insert(e.clone()) {
                    let _ = writeln!(md, "- {e}");
                }
            }
        }
        if !plots.is_empty() {
            let _ = writeln!(md, "\n## Plots\n");
            for (title, file) in plots {
                let _ = writeln!(md, "![{title}]({file})\n");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "{note}\n");
            }
        }
        md
    }
}

fn round3(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 1000.0).round() / 1000.0
    }
}

fn cell(value: Option<f64>, unit: &str, failed: usize) -> String {
    let mut text = match value {
        Some(v) if unit.is_empty() => format!("{}", round3(v)),
        Some(v) => format!("{} {unit}", round3(v)),
        None if failed > 0 => "failed".into(),
        // Not measured for this system (a Kafka-only figure, say).
        None => "—".into(),
    };
    if failed > 0 && value.is_some() {
        let _ = write!(text, " ({failed} failed)");
    }
    text
}

fn failures(figure: &Figure, system: SystemKind) -> usize {
    figure
        .samples
        .iter()
        .filter(|s| s.system == system && s.value.is_none())
        .count()
}

fn values(figure: &Figure, system: SystemKind) -> Vec<f64> {
    figure
        .samples
        .iter()
        .filter(|s| s.system == system)
        .filter_map(|s| s.value)
        .collect()
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// An error on one line, shortened: the report quotes it.
fn short_error(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let one_line: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    one_line.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            id: "t",
            workload: "w",
            metric: "m",
            unit: "MiB/s",
            better: Better::Higher,
            target: Some((1.5, ">= 1.5x")),
        }
    }

    #[test]
    fn medians_ratios_and_targets() {
        let mut r = Results::new("now".into(), "quick", Machine::default(), vec![]);
        for (i, v) in [300.0, 100.0, 200.0].into_iter().enumerate() {
            r.record(&spec(), SystemKind::Spate, i, Ok(v));
        }
        r.record(&spec(), SystemKind::Kafka, 0, Ok(100.0));
        r.record(
            &spec(),
            SystemKind::Kafka,
            1,
            Err(anyhow::anyhow!("boom\nline")),
        );
        r.finish(1.0);
        let f = &r.figures[0];
        assert_eq!(f.spate_median, Some(200.0));
        assert_eq!(f.kafka_median, Some(100.0));
        assert_eq!(f.ratio, Some(2.0));
        assert_eq!(f.target_met, Some(true));
        assert_eq!(
            f.samples[4].error.as_deref(),
            Some("boom | line"),
            "errors are kept on one line"
        );
        let md = r.to_markdown(&[]);
        assert!(md.contains("| w — m | 200 MiB/s | 100 MiB/s (1 failed) | 2.00 | >= 1.5x | yes |"));
        assert!(md.contains("## Failed runs"));
    }

    #[test]
    fn scrub_removes_the_scratch_path_and_perf_padding() {
        let mut r = Results::new("now".into(), "quick", Machine::default(), vec![]);
        r.notes
            .push("node in /scratch/x/kafka-3n-1/node-2 did not stop".into());
        r.notes
            .push("```\n  9.68%  [k] _copy_to_iter        -      -   \n```".into());
        r.scrub("/scratch/x");
        assert_eq!(
            r.notes[0],
            "node in <scratch>/kafka-3n-1/node-2 did not stop"
        );
        assert_eq!(r.notes[1], "```\n  9.68%  [k] _copy_to_iter\n```");
    }

    #[test]
    fn median_of_even_count_is_the_middle_mean() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
