//! `compare`: the end-to-end comparison of Spate with Apache Kafka on this machine (issue 8).
//!
//! Runs both systems with equivalent settings, alternating Spate and Kafka runs, drives them with
//! the same clients (librdkafka through `rdload`, and Kafka's own perf tools), and writes
//! `<out>/<stamp>.md`, `.json` and PNG plots. `benches/compare/run` installs what this needs and
//! calls it; see that script for the one-command form.
//!
//! Workloads, numbered as in the issue:
//! 1. produce throughput, 1 KiB records, acks=all, 6 partitions, batch 64 KiB, linger 5 ms, one
//!    node;
//! 2. the same on three nodes with RF=3 and `min.insync.replicas=2`;
//! 3. consume throughput from the backlog workload 1 wrote (2 GiB in a full run);
//! 4. end-to-end latency at a fixed rate, half of Kafka's measured maximum (librdkafka), and
//!    Kafka's one-record-at-a-time `EndToEndLatency`;
//! 5. idle and loaded RSS, startup time to the first acknowledged produce;
//! 6. many partitions (one topic of 2,000) and many idle connections (1,000).

mod clients;
mod cluster;
mod plots;
mod probe;
mod report;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use spate_benches::load::LoadReport;

use crate::cluster::{RssSampler, Running, Settings, SystemKind, Tools};
use crate::report::{Better, Cdf, Machine, Results, Spec};

/// The Kafka release compared with (the jars `compare/run` resolves).
const KAFKA_VERSION: &str = "4.3.1";
/// How often the loaded-RSS sampler looks.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
/// Records per MiB of 1 KiB records.
const RECORDS_PER_MIB: u64 = 1024;

#[derive(Parser)]
#[command(about = "End-to-end comparison of Spate with Apache Kafka")]
struct Cli {
    /// A short smoke run: small volumes, one repeat.
    #[arg(long)]
    quick: bool,
    /// Only these workloads (1-6), comma-separated; all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
    /// Repeats per workload (default: 3 for a full run, 1 for a quick one).
    #[arg(long)]
    repeats: Option<usize>,
    /// Profile Spate with `perf record` during the last single-node produce and consume runs.
    #[arg(long)]
    profile: bool,
    /// The `spate` binary (a release build).
    #[arg(long)]
    spate_bin: PathBuf,
    /// The `rdload` binary (a release build).
    #[arg(long)]
    rdload_bin: PathBuf,
    /// A file holding Kafka's classpath on one line.
    #[arg(long)]
    kafka_classpath_file: PathBuf,
    /// `java`.
    #[arg(long, default_value = "java")]
    java: PathBuf,
    /// Scratch space for data directories (removed after each run).
    #[arg(long)]
    work_dir: PathBuf,
    /// Where the results go.
    #[arg(long)]
    out_dir: PathBuf,
    /// The results' file name stem, e.g. the date.
    #[arg(long)]
    stamp: String,
    /// When the run started, for the report (RFC 3339).
    #[arg(long)]
    started: String,
    /// Do not run anything: write the report and plots again from this results JSON (an
    /// earlier run's), e.g. after a change to how they are drawn.
    #[arg(long)]
    render: Option<PathBuf>,
    /// A Markdown reading of the figures (where Spate is short and why, from the profiles),
    /// written after a run and rendered into the report after the targets.
    #[arg(long)]
    analysis: Option<PathBuf>,
}

/// Volumes and durations of a run.
#[derive(Debug, Clone)]
struct Plan {
    repeats: usize,
    /// Records of workload 1 per client (also the backlog of workload 3).
    single_records: u64,
    /// Records of workload 2 per client.
    cluster_records: u64,
    cluster_repeats: usize,
    /// Measured seconds of the fixed-rate latency run.
    latency_s: f64,
    /// Records of Kafka's `EndToEndLatency` (one at a time).
    e2e_records: u64,
    /// Partitions of the many-partitions topic.
    many_partitions: u32,
    /// Records produced across them.
    many_records: u64,
    /// Idle clients opened.
    idle_clients: usize,
    many_repeats: usize,
    /// Settle time before the idle RSS is read.
    idle_settle: Duration,
}

impl Plan {
    fn new(quick: bool, repeats: Option<usize>) -> Plan {
        if quick {
            let r = repeats.unwrap_or(1);
            Plan {
                repeats: r,
                single_records: 64 * RECORDS_PER_MIB,
                cluster_records: 32 * RECORDS_PER_MIB,
                cluster_repeats: r,
                latency_s: 5.0,
                e2e_records: 300,
                many_partitions: 500,
                many_records: 32 * RECORDS_PER_MIB,
                idle_clients: 200,
                many_repeats: r,
                idle_settle: Duration::from_secs(2),
            }
        } else {
            let r = repeats.unwrap_or(3);
            Plan {
                repeats: r,
                // 2 GiB: the issue's consume backlog.
                single_records: 2048 * RECORDS_PER_MIB,
                cluster_records: 512 * RECORDS_PER_MIB,
                cluster_repeats: r.min(2),
                latency_s: 30.0,
                e2e_records: 5000,
                many_partitions: 2000,
                many_records: 256 * RECORDS_PER_MIB,
                idle_clients: 1000,
                many_repeats: r.min(2),
                idle_settle: Duration::from_secs(5),
            }
        }
    }

    /// A client's time bound for `records` records: at least 2 minutes, and no slower than
    /// 3 MiB/s (a system slower than that has failed the workload).
    fn client_timeout(&self, records: u64) -> Duration {
        Duration::from_secs((records / RECORDS_PER_MIB / 3).max(120))
    }
}

const THROUGHPUT_TARGET: (f64, &str) = (1.5, ">= 1.5x Kafka");
const LATENCY_TARGET: (f64, &str) = (0.2, "<= 1/5 of Kafka");
const RSS_TARGET: (f64, &str) = (0.1, "<= 1/10 of Kafka");
const STARTUP_TARGET: (f64, &str) = (0.05, "<= 1/20 of Kafka");

const W1: &str = "1. Produce throughput, single node";
const W2: &str = "2. Produce throughput, three nodes, RF=3";
const W3: &str = "3. Consume throughput from the backlog";
const W4: &str = "4. End-to-end latency at a fixed rate";
const W5: &str = "5. Memory and startup";
const W6: &str = "6. Many partitions and connections";

fn spec(
    id: &'static str,
    workload: &'static str,
    metric: &'static str,
    unit: &'static str,
    better: Better,
    target: Option<(f64, &'static str)>,
) -> Spec {
    Spec {
        id,
        workload,
        metric,
        unit,
        better,
        target,
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("compare: {error:#}");
        std::process::exit(1);
    }
}

struct RunContext {
    tools: Tools,
    plan: Plan,
    profile: bool,
    out_dir: PathBuf,
    stamp: String,
}

fn run(cli: Cli) -> Result<()> {
    if let Some(json) = &cli.render {
        let text = std::fs::read_to_string(json)
            .with_context(|| format!("cannot read {}", json.display()))?;
        let mut results: Results = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a results document", json.display()))?;
        std::fs::create_dir_all(&cli.out_dir)?;
        return write_outputs(&cli, &mut results);
    }
    let started = Instant::now();
    let classpath = std::fs::read_to_string(&cli.kafka_classpath_file)
        .with_context(|| format!("cannot read {}", cli.kafka_classpath_file.display()))?
        .trim()
        .to_string();
    std::fs::create_dir_all(&cli.work_dir)?;
    std::fs::create_dir_all(&cli.out_dir)?;
    let tools = Tools {
        spate_bin: cli.spate_bin.clone(),
        rdload_bin: cli.rdload_bin.clone(),
        java: cli.java.clone(),
        kafka_classpath: classpath,
        work_dir: cli.work_dir.clone(),
    };
    let plan = Plan::new(cli.quick, cli.repeats);
    let wants = |w: u32| cli.only.is_empty() || cli.only.contains(&w);
    let machine = Machine::read(KAFKA_VERSION, &cli.java);
    let settings = vec![
        format!(
            "Both systems: 6 partitions; RF 1 and min.insync.replicas 1 on one node, RF 3 and \
             min.insync.replicas 2 on three; no forced fsync (Kafka's default flush policy, \
             leaving durability to replication and the page cache; Spate's default is the same); \
             retention 7 days, unlimited bytes; 1 GiB segments; topics created before each \
             workload through the admin API."
        ),
        format!(
            "Apache Kafka {KAFKA_VERSION} in KRaft mode (each node broker and controller), JVM \
             heap -Xms{0}m -Xmx{0}m with the G1 options of Kafka's start script; its tools with \
             -Xmx{1}m.",
            cluster::KAFKA_HEAP_MIB,
            cluster::KAFKA_TOOL_HEAP_MIB
        ),
        "Spate: the release build of `spate serve`, default settings otherwise.".to_string(),
        "Three nodes run on 127.0.0.1, 127.0.0.2 and 127.0.0.3 of this one machine, so \
         replication traffic shares its CPUs with the brokers and the clients."
            .to_string(),
        format!(
            "Producers (both clients): 1 KiB values, no key, acks=all, batch.size 65536, linger.ms \
             5, no compression. Workload 1 writes {} MiB per client; workload 3 reads back the \
             {} MiB that librdkafka wrote; workload 2 writes {} MiB per client.",
            plan.single_records / RECORDS_PER_MIB,
            plan.single_records / RECORDS_PER_MIB,
            plan.cluster_records / RECORDS_PER_MIB
        ),
        format!(
            "Repeats: {} per single-node workload, {} for three nodes and for workload 6; Spate \
             and Kafka runs alternate (S K, K S, ...).",
            plan.repeats, plan.cluster_repeats
        ),
        "Units: MiB = 2^20 bytes of record values (what Kafka's perf tools call MB); RSS is \
         VmRSS (all resident pages, including mapped page-cache pages) and RssAnon (anonymous \
         memory only) from /proc/PID/status; startup is process start to the first produce \
         (acks=all, auto-created topic) acknowledged, measured by a raw-socket probe polling \
         every 20 ms."
            .to_string(),
    ];
    let mode = if cli.quick { "quick" } else { "full" };
    let mut results = Results::new(cli.started.clone(), mode, machine, settings);
    let ctx = RunContext {
        tools,
        plan,
        profile: cli.profile,
        out_dir: cli.out_dir.clone(),
        stamp: cli.stamp.clone(),
    };
    eprintln!("compare: {mode} run, plan {:?}", ctx.plan);

    if wants(1) || wants(3) || wants(5) {
        single_node(&ctx, &mut results);
    }
    if wants(4) {
        latency(&ctx, &mut results);
    }
    if wants(6) {
        many(&ctx, &mut results);
    }
    if wants(2) {
        three_nodes(&ctx, &mut results);
    }
    results.finish(started.elapsed().as_secs_f64());
    write_outputs(&cli, &mut results)?;
    eprintln!(
        "compare: done in {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Writes the JSON, the plots and the Markdown report, with the scratch path scrubbed.
fn write_outputs(cli: &Cli, results: &mut Results) -> Result<()> {
    if let Some(path) = &cli.analysis {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        results.analysis = Some(text);
    }
    results.scrub(&cli.work_dir.to_string_lossy());
    let mut plots = Vec::new();
    match plots::init_font() {
        Ok(()) => draw_plots(&cli.out_dir, &cli.stamp, results, &mut plots),
        Err(error) => results.notes.push(format!("Plots: {error:#}")),
    }
    let json = cli.out_dir.join(format!("{}.json", cli.stamp));
    std::fs::write(&json, results.to_json()?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = cli.out_dir.join(format!("{}.md", cli.stamp));
    std::fs::write(&md, results.to_markdown(&plots))
        .with_context(|| format!("cannot write {}", md.display()))?;
    eprintln!("compare: wrote {} and {}", md.display(), json.display());
    Ok(())
}

/// Spate first on even repeats, Kafka first on odd ones.
fn order(repeat: usize) -> [SystemKind; 2] {
    if repeat.is_multiple_of(2) {
        [SystemKind::Spate, SystemKind::Kafka]
    } else {
        [SystemKind::Kafka, SystemKind::Spate]
    }
}

fn single_settings() -> Settings {
    Settings {
        nodes: 1,
        partitions: 6,
        replication_factor: 1,
        min_insync_replicas: 1,
    }
}

fn client_dir(ctx: &RunContext, kind: SystemKind, name: &str, repeat: usize) -> PathBuf {
    ctx.tools
        .work_dir
        .join("clients")
        .join(format!("{}-{name}-{repeat}", kind.name()))
}

fn mib_of_kib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

const STARTUP: Spec = Spec {
    id: "w5.startup.first_produce_ms",
    workload: W5,
    metric: "startup: process start to first acknowledged produce",
    unit: "ms",
    better: Better::Lower,
    target: Some(STARTUP_TARGET),
};

const KAFKA_FORMAT: Spec = Spec {
    id: "w5.startup.kafka_format_ms",
    workload: W5,
    metric: "Kafka only: `kafka-storage format` before the first start (not in its startup)",
    unit: "ms",
    better: Better::Lower,
    target: None,
};

/// Workloads 1, 3 and 5 share one start per system and repeat.
fn single_node(ctx: &RunContext, results: &mut Results) {
    let specs = [
        spec(
            "w5.startup.listening_ms",
            W5,
            "startup: process start to Kafka port open",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w5.idle.rss_total_mib",
            W5,
            "idle RSS (VmRSS)",
            "MiB",
            Better::Lower,
            Some(RSS_TARGET),
        ),
        spec(
            "w5.idle.rss_anon_mib",
            W5,
            "idle RSS, anonymous only (RssAnon)",
            "MiB",
            Better::Lower,
            Some(RSS_TARGET),
        ),
        spec(
            "w1.produce.rdload.mib_per_s",
            W1,
            "produce, librdkafka (rdload)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w1.produce.rdload.ack_p99_ms",
            W1,
            "produce acknowledgement p99 at full speed, librdkafka",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w1.produce.java.mib_per_s",
            W1,
            "produce, kafka-producer-perf-test (Java)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w1.produce.java.ack_p99_ms",
            W1,
            "produce acknowledgement p99 at full speed, Java",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w3.consume.rdload.mib_per_s",
            W3,
            "consume, librdkafka (rdload)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w3.consume.java.mib_per_s",
            W3,
            "consume, kafka-consumer-perf-test (Java)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w5.loaded.rss_total_mib",
            W5,
            "peak RSS under workloads 1 and 3 (VmRSS)",
            "MiB",
            Better::Lower,
            Some(RSS_TARGET),
        ),
        spec(
            "w5.loaded.rss_anon_mib",
            W5,
            "peak RSS under workloads 1 and 3, anonymous only (RssAnon)",
            "MiB",
            Better::Lower,
            Some(RSS_TARGET),
        ),
    ];
    let plan = &ctx.plan;
    for repeat in 0..plan.repeats {
        for kind in order(repeat) {
            let running =
                match cluster::start(kind, &single_settings(), &ctx.tools, "startup-probe") {
                    Ok(running) => running,
                    Err(error) => {
                        let message = format!("{error:#}");
                        results.record(&STARTUP, kind, repeat, Err(anyhow::anyhow!("{message}")));
                        for s in &specs {
                            results.record(
                                s,
                                kind,
                                repeat,
                                Err(anyhow::anyhow!("start failed: {message}")),
                            );
                        }
                        continue;
                    }
                };
            results.record(
                &STARTUP,
                kind,
                repeat,
                Ok(running.startup.first_produce.as_secs_f64() * 1000.0),
            );
            results.record(
                &specs[0],
                kind,
                repeat,
                Ok(running.startup.listening.as_secs_f64() * 1000.0),
            );
            if let Some(format) = running.startup.format {
                results.record(
                    &KAFKA_FORMAT,
                    kind,
                    repeat,
                    Ok(format.as_secs_f64() * 1000.0),
                );
            }
            thread::sleep(plan.idle_settle);
            let pids = running.pids();
            let idle = cluster::rss_sum(&pids);
            results.record(
                &specs[1],
                kind,
                repeat,
                idle.as_ref()
                    .map(|r| mib_of_kib(r.total_kib))
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            results.record(
                &specs[2],
                kind,
                repeat,
                idle.map(|r| mib_of_kib(r.anon_kib)),
            );

            let bootstrap = running.bootstrap();
            let sampler = RssSampler::start(pids.clone(), RSS_SAMPLE_INTERVAL);
            let timeout = plan.client_timeout(plan.single_records);
            let profile_this =
                ctx.profile && kind == SystemKind::Spate && repeat + 1 == plan.repeats;
            let created = clients::create_topic(
                &ctx.tools,
                &client_dir(ctx, kind, "create-w1", repeat),
                &bootstrap,
                "w1-rdload",
                6,
                1,
                timeout,
            )
            .and_then(|()| {
                clients::create_topic(
                    &ctx.tools,
                    &client_dir(ctx, kind, "create-w1j", repeat),
                    &bootstrap,
                    "w1-java",
                    6,
                    1,
                    timeout,
                )
            });
            let profiler = profile_this
                .then(|| Profiler::start(pids[0], &ctx.tools.work_dir.join("perf-produce.data")));
            let produced = created.and_then(|()| {
                clients::rdload_produce(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w1-rdload", repeat),
                    &bootstrap,
                    "w1-rdload",
                    plan.single_records,
                    timeout,
                )
            });
            if let Some(p) = profiler {
                profile_note(
                    ctx,
                    results,
                    p,
                    "produce (librdkafka, workload 1)",
                    "produce",
                );
            }
            record_throughput(results, &specs[3], Some(&specs[4]), kind, repeat, &produced);
            let java = clients::java_produce(
                &ctx.tools,
                &client_dir(ctx, kind, "w1-java", repeat),
                &bootstrap,
                "w1-java",
                plan.single_records,
                timeout,
            );
            record_throughput(results, &specs[5], Some(&specs[6]), kind, repeat, &java);

            let profiler = profile_this
                .then(|| Profiler::start(pids[0], &ctx.tools.work_dir.join("perf-consume.data")));
            let consumed = match &produced {
                Ok(_) => clients::rdload_consume(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w3-rdload", repeat),
                    &bootstrap,
                    "w1-rdload",
                    plan.single_records,
                    timeout,
                ),
                Err(_) => Err(anyhow::anyhow!(
                    "no backlog: workload 1 (librdkafka) failed"
                )),
            };
            if let Some(p) = profiler {
                profile_note(
                    ctx,
                    results,
                    p,
                    "consume (librdkafka, workload 3)",
                    "consume",
                );
            }
            record_throughput(results, &specs[7], None, kind, repeat, &consumed);
            let consumed = match &produced {
                Ok(_) => clients::java_consume(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w3-java", repeat),
                    &bootstrap,
                    "w1-rdload",
                    plan.single_records,
                    timeout,
                ),
                Err(_) => Err(anyhow::anyhow!(
                    "no backlog: workload 1 (librdkafka) failed"
                )),
            };
            record_throughput(results, &specs[8], None, kind, repeat, &consumed);
            let peak = sampler.finish();
            results.record(&specs[9], kind, repeat, Ok(mib_of_kib(peak.total_kib)));
            results.record(&specs[10], kind, repeat, Ok(mib_of_kib(peak.anon_kib)));
            stop(running, results, kind);
        }
    }
}

fn record_throughput(
    results: &mut Results,
    throughput: &Spec,
    p99: Option<&Spec>,
    kind: SystemKind,
    repeat: usize,
    report: &Result<LoadReport>,
) {
    results.record(
        throughput,
        kind,
        repeat,
        report
            .as_ref()
            .map(|r| r.mib_per_s)
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    if let Some(p99) = p99 {
        results.record(
            p99,
            kind,
            repeat,
            report
                .as_ref()
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .and_then(|r| {
                    r.latency
                        .as_ref()
                        .map(|l| l.p99_ms)
                        .context("no latency figures")
                }),
        );
    }
}

fn stop(running: Running, results: &mut Results, kind: SystemKind) {
    if let Err(error) = running.stop() {
        results
            .notes
            .push(format!("{} did not stop cleanly: {error:#}", kind.name()));
    }
}

/// The fixed rate of workload 4: half of Kafka's median librdkafka produce rate from workload 1,
/// or, without it, half of Spate's; a quick run with neither uses a modest default.
fn latency_rate(results: &Results) -> (f64, String) {
    const FALLBACK_RATE_PER_S: f64 = 20_000.0;
    let records_per_s = |system| {
        results
            .median("w1.produce.rdload.mib_per_s", system)
            .map(|mib| mib * RECORDS_PER_MIB as f64)
    };
    match (
        records_per_s(SystemKind::Kafka),
        records_per_s(SystemKind::Spate),
    ) {
        (Some(k), _) => (
            k / 2.0,
            format!("half of Kafka's measured maximum ({k:.0} records/s, librdkafka, workload 1)"),
        ),
        (None, Some(s)) => (
            s / 2.0,
            format!(
                "half of Spate's measured maximum ({s:.0} records/s), since Kafka's is missing"
            ),
        ),
        (None, None) => (
            FALLBACK_RATE_PER_S,
            "a fixed 20,000 records/s, since workload 1 did not run".to_string(),
        ),
    }
}

fn latency(ctx: &RunContext, results: &mut Results) {
    let (rate, why) = latency_rate(results);
    results.notes.push(format!(
        "Workload 4 rate: {rate:.0} records/s of 1 KiB ({:.1} MiB/s), {why}; {} s measured after a 2 s warm-up, \
         same producer settings as workload 1; latency is consumer receive time minus the \
         intended send time stamped in the record (no coordinated omission). Kafka's \
         `EndToEndLatency` sends {} records one at a time (acks=all) and reports whole milliseconds.",
        rate / RECORDS_PER_MIB as f64,
        ctx.plan.latency_s,
        ctx.plan.e2e_records
    ));
    let specs = [
        spec(
            "w4.latency.rdload.p50_ms",
            W4,
            "p50, librdkafka at the fixed rate",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w4.latency.rdload.p99_ms",
            W4,
            "p99, librdkafka at the fixed rate",
            "ms",
            Better::Lower,
            Some(LATENCY_TARGET),
        ),
        spec(
            "w4.latency.rdload.p999_ms",
            W4,
            "p99.9, librdkafka at the fixed rate",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w4.latency.java_e2e.p50_ms",
            W4,
            "p50, Kafka's EndToEndLatency (one at a time)",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w4.latency.java_e2e.p99_ms",
            W4,
            "p99, Kafka's EndToEndLatency (one at a time)",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w4.latency.java_e2e.p999_ms",
            W4,
            "p99.9, Kafka's EndToEndLatency (one at a time)",
            "ms",
            Better::Lower,
            None,
        ),
    ];
    let plan = &ctx.plan;
    for repeat in 0..plan.repeats {
        for kind in order(repeat) {
            let running =
                match cluster::start(kind, &single_settings(), &ctx.tools, "startup-probe") {
                    Ok(running) => running,
                    Err(error) => {
                        let message = format!("{error:#}");
                        for s in &specs {
                            results.record(
                                s,
                                kind,
                                repeat,
                                Err(anyhow::anyhow!("start failed: {message}")),
                            );
                        }
                        continue;
                    }
                };
            results.record(
                &STARTUP,
                kind,
                plan.repeats + repeat,
                Ok(running.startup.first_produce.as_secs_f64() * 1000.0),
            );
            let bootstrap = running.bootstrap();
            let timeout = Duration::from_secs_f64(plan.latency_s + 120.0);
            let report = clients::create_topic(
                &ctx.tools,
                &client_dir(ctx, kind, "create-w4", repeat),
                &bootstrap,
                "w4",
                6,
                1,
                timeout,
            )
            .and_then(|()| {
                clients::rdload_latency(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w4-rdload", repeat),
                    &bootstrap,
                    "w4",
                    rate,
                    plan.latency_s,
                    timeout,
                )
            });
            record_latency(results, &specs[..3], kind, repeat, &report);
            if let Ok(LoadReport {
                latency: Some(l), ..
            }) = &report
            {
                results.latency_cdfs.push(Cdf {
                    system: kind,
                    repeat,
                    p99_ms: l.p99_ms,
                    points: l.cdf.clone(),
                });
            }
            let report = clients::create_topic(
                &ctx.tools,
                &client_dir(ctx, kind, "create-w4e", repeat),
                &bootstrap,
                "w4-e2e",
                1,
                1,
                timeout,
            )
            .and_then(|()| {
                clients::java_latency(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w4-java", repeat),
                    &bootstrap,
                    "w4-e2e",
                    plan.e2e_records,
                    timeout,
                )
            });
            record_latency(results, &specs[3..], kind, repeat, &report);
            stop(running, results, kind);
        }
    }
}

fn record_latency(
    results: &mut Results,
    specs: &[Spec],
    kind: SystemKind,
    repeat: usize,
    report: &Result<LoadReport>,
) {
    let pick = |f: fn(&spate_benches::load::Latency) -> f64| -> Result<f64> {
        match report {
            Ok(r) => r.latency.as_ref().map(f).context("no latency figures"),
            Err(e) => Err(anyhow::anyhow!("{e:#}")),
        }
    };
    results.record(&specs[0], kind, repeat, pick(|l| l.p50_ms));
    results.record(&specs[1], kind, repeat, pick(|l| l.p99_ms));
    results.record(&specs[2], kind, repeat, pick(|l| l.p999_ms));
}

fn many(ctx: &RunContext, results: &mut Results) {
    let plan = &ctx.plan;
    let specs = [
        spec(
            "w6.partitions.create_s",
            W6,
            "create one topic with many partitions (CreateTopics answered)",
            "s",
            Better::Lower,
            None,
        ),
        spec(
            "w6.partitions.produce_mib_per_s",
            W6,
            "produce across all of them, librdkafka",
            "MiB/s",
            Better::Higher,
            None,
        ),
        spec(
            "w6.partitions.rss_total_mib",
            W6,
            "RSS after that (VmRSS)",
            "MiB",
            Better::Lower,
            None,
        ),
        spec(
            "w6.partitions.rss_anon_mib",
            W6,
            "RSS after that, anonymous only",
            "MiB",
            Better::Lower,
            None,
        ),
        spec(
            "w6.connections.open_s",
            W6,
            "open idle clients (connect + ApiVersions each)",
            "s",
            Better::Lower,
            None,
        ),
        spec(
            "w6.connections.rss_anon_kib_per_client",
            W6,
            "anonymous RSS per idle client",
            "KiB",
            Better::Lower,
            None,
        ),
        spec(
            "w6.connections.produce_mib_per_s",
            W6,
            "produce while they are connected, librdkafka",
            "MiB/s",
            Better::Higher,
            None,
        ),
    ];
    results.notes.push(format!(
        "Workload 6: one topic of {} partitions (RF 1), then {} MiB produced across them; then {} \
         idle clients, each a TCP connection that completed ApiVersions v3, held open while \
         librdkafka produces {} MiB to a 6-partition topic. The JVM's \
         heap is reserved up front (-Xms), so Kafka's per-client memory shows inside it, not as \
         RSS growth, and its figure can even be negative after a GC.",
        plan.many_partitions,
        plan.many_records / RECORDS_PER_MIB,
        plan.idle_clients,
        plan.many_records / RECORDS_PER_MIB / 4
    ));
    for repeat in 0..plan.many_repeats {
        for kind in order(repeat) {
            let running =
                match cluster::start(kind, &single_settings(), &ctx.tools, "startup-probe") {
                    Ok(running) => running,
                    Err(error) => {
                        let message = format!("{error:#}");
                        for s in &specs {
                            results.record(
                                s,
                                kind,
                                repeat,
                                Err(anyhow::anyhow!("start failed: {message}")),
                            );
                        }
                        continue;
                    }
                };
            let bootstrap = running.bootstrap();
            let pids = running.pids();
            let timeout = plan.client_timeout(plan.many_records);
            let began = Instant::now();
            let created = clients::create_topic(
                &ctx.tools,
                &client_dir(ctx, kind, "create-w6", repeat),
                &bootstrap,
                "w6-many",
                plan.many_partitions,
                1,
                timeout,
            );
            results.record(
                &specs[0],
                kind,
                repeat,
                created
                    .as_ref()
                    .map(|()| began.elapsed().as_secs_f64())
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            let produced = created.and_then(|()| {
                clients::rdload_produce(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w6-many", repeat),
                    &bootstrap,
                    "w6-many",
                    plan.many_records,
                    timeout,
                )
            });
            results.record(
                &specs[1],
                kind,
                repeat,
                produced
                    .as_ref()
                    .map(|r| r.mib_per_s)
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            let rss = cluster::rss_sum(&pids);
            results.record(
                &specs[2],
                kind,
                repeat,
                rss.as_ref()
                    .map(|r| mib_of_kib(r.total_kib))
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            results.record(&specs[3], kind, repeat, rss.map(|r| mib_of_kib(r.anon_kib)));

            let before = cluster::rss_sum(&pids).map(|r| r.anon_kib).unwrap_or(0);
            let began = Instant::now();
            let idle = probe::open_idle_clients(&bootstrap, plan.idle_clients);
            results.record(
                &specs[4],
                kind,
                repeat,
                idle.as_ref()
                    .map(|_| began.elapsed().as_secs_f64())
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            if idle.is_ok() {
                thread::sleep(plan.idle_settle);
            }
            let after = cluster::rss_sum(&pids).map(|r| r.anon_kib);
            results.record(
                &specs[5],
                kind,
                repeat,
                match (&idle, after) {
                    (Ok(_), Ok(after)) => {
                        Ok((after as f64 - before as f64) / plan.idle_clients as f64)
                    }
                    (Err(e), _) => Err(anyhow::anyhow!("{e:#}")),
                    (_, Err(e)) => Err(e),
                },
            );
            let produced = clients::create_topic(
                &ctx.tools,
                &client_dir(ctx, kind, "create-w6c", repeat),
                &bootstrap,
                "w6-conn",
                6,
                1,
                timeout,
            )
            .and_then(|()| {
                clients::rdload_produce(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w6-conn", repeat),
                    &bootstrap,
                    "w6-conn",
                    plan.many_records / 4,
                    timeout,
                )
            });
            results.record(
                &specs[6],
                kind,
                repeat,
                produced
                    .as_ref()
                    .map(|r| r.mib_per_s)
                    .map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            drop(idle);
            stop(running, results, kind);
        }
    }
}

fn three_nodes(ctx: &RunContext, results: &mut Results) {
    let plan = &ctx.plan;
    let settings = Settings {
        nodes: 3,
        partitions: 6,
        replication_factor: 3,
        min_insync_replicas: 2,
    };
    let specs = [
        spec(
            "w2.startup.first_produce_ms",
            W2,
            "startup of three nodes to first acknowledged produce (RF=3)",
            "ms",
            Better::Lower,
            None,
        ),
        spec(
            "w2.produce.rdload.mib_per_s",
            W2,
            "produce, librdkafka (rdload)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w2.produce.java.mib_per_s",
            W2,
            "produce, kafka-producer-perf-test (Java)",
            "MiB/s",
            Better::Higher,
            Some(THROUGHPUT_TARGET),
        ),
        spec(
            "w2.produce.rdload.ack_p99_ms",
            W2,
            "produce acknowledgement p99 at full speed, librdkafka",
            "ms",
            Better::Lower,
            None,
        ),
    ];
    for repeat in 0..plan.cluster_repeats {
        for kind in order(repeat) {
            let running = match cluster::start(kind, &settings, &ctx.tools, "startup-probe") {
                Ok(running) => running,
                Err(error) => {
                    let message = format!("{error:#}");
                    for s in &specs {
                        results.record(
                            s,
                            kind,
                            repeat,
                            Err(anyhow::anyhow!("start failed: {message}")),
                        );
                    }
                    continue;
                }
            };
            results.record(
                &specs[0],
                kind,
                repeat,
                Ok(running.startup.first_produce.as_secs_f64() * 1000.0),
            );
            let bootstrap = running.bootstrap();
            let timeout = plan.client_timeout(plan.cluster_records);
            let create = |name: &str, topic: &str| {
                clients::create_topic(
                    &ctx.tools,
                    &client_dir(ctx, kind, name, repeat),
                    &bootstrap,
                    topic,
                    6,
                    3,
                    timeout,
                )
            };
            let produced = create("create-w2", "w2-rdload").and_then(|()| {
                clients::rdload_produce(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w2-rdload", repeat),
                    &bootstrap,
                    "w2-rdload",
                    plan.cluster_records,
                    timeout,
                )
            });
            record_throughput(results, &specs[1], Some(&specs[3]), kind, repeat, &produced);
            let java = create("create-w2j", "w2-java").and_then(|()| {
                clients::java_produce(
                    &ctx.tools,
                    &client_dir(ctx, kind, "w2-java", repeat),
                    &bootstrap,
                    "w2-java",
                    plan.cluster_records,
                    timeout,
                )
            });
            record_throughput(results, &specs[2], None, kind, repeat, &java);
            stop(running, results, kind);
        }
    }
}

/// `perf record` (software clock, so it works where hardware counters are not exposed) attached
/// to a process.
struct Profiler {
    child: Option<std::process::Child>,
    data: PathBuf,
    error: Option<String>,
}

impl Profiler {
    fn start(pid: u32, data: &Path) -> Profiler {
        let mut cmd = std::process::Command::new("perf");
        cmd.args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "499",
            "-g",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        match cmd.spawn() {
            Ok(child) => Profiler {
                child: Some(child),
                data: data.to_path_buf(),
                error: None,
            },
            Err(error) => Profiler {
                child: None,
                data: data.to_path_buf(),
                error: Some(format!("cannot run perf: {error}")),
            },
        }
    }

    /// Stops recording and returns the flat profile (top symbols by self time).
    fn finish(mut self) -> Result<String> {
        if let Some(error) = self.error.take() {
            bail!(error);
        }
        let Some(mut child) = self.child.take() else {
            bail!("perf did not start");
        };
        // SAFETY: kill(2) with SIGINT on our own child: perf writes its data and exits.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        child.wait()?;
        let output = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--sort",
                "dso,symbol",
                "--percent-limit",
                "0.7",
                "-i",
            ])
            .arg(&self.data)
            .output()
            .context("cannot run perf report")?;
        let _ = std::fs::remove_file(&self.data);
        let text = String::from_utf8_lossy(&output.stdout);
        // perf pads every line to the terminal width and appends empty columns ("-").
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.trim_end().trim_end_matches(['-', ' ']))
            .take(30)
            .collect();
        if lines.is_empty() {
            bail!("perf recorded nothing");
        }
        Ok(lines.join("\n"))
    }
}

fn profile_note(
    ctx: &RunContext,
    results: &mut Results,
    profiler: Profiler,
    what: &str,
    file: &str,
) {
    match profiler.finish() {
        Ok(profile) => {
            let name = format!("{}-profile-spate-{file}.txt", ctx.stamp);
            let _ = std::fs::write(ctx.out_dir.join(&name), &profile);
            results.notes.push(format!(
                "Profile of Spate during {what} (`perf record -e cpu-clock`, self time by \
                 symbol; full list in `{name}`):\n\n```\n{}\n```",
                profile.lines().take(15).collect::<Vec<_>>().join("\n")
            ));
        }
        Err(error) => results.notes.push(format!(
            "Profile of Spate during {what}: not taken ({error:#})."
        )),
    }
}

fn draw_plots(out_dir: &Path, stamp: &str, results: &Results, plots: &mut Vec<(String, String)>) {
    let group = |id: &str, label: &str| {
        results
            .figures
            .iter()
            .find(|f| f.id == id)
            .map(|f| plots::BarGroup {
                label: label.to_string(),
                spate: f.spate_median,
                kafka: f.kafka_median,
            })
    };
    let mut draw = |title: &str, file: &str, unit: &str, groups: Vec<plots::BarGroup>| {
        if groups.is_empty() {
            return;
        }
        let name = format!("{}-{file}.png", stamp);
        match plots::bars(&out_dir.join(&name), title, unit, &groups) {
            Ok(()) => plots.push((title.to_string(), name)),
            Err(error) => eprintln!("compare: plot {file}: {error:#}"),
        }
    };
    draw(
        "Throughput (median, MiB/s of 1 KiB records)",
        "throughput",
        "MiB/s",
        [
            group("w1.produce.rdload.mib_per_s", "1 produce rdkafka"),
            group("w1.produce.java.mib_per_s", "1 produce Java"),
            group("w2.produce.rdload.mib_per_s", "2 RF3 rdkafka"),
            group("w2.produce.java.mib_per_s", "2 RF3 Java"),
            group("w3.consume.rdload.mib_per_s", "3 consume rdkafka"),
            group("w3.consume.java.mib_per_s", "3 consume Java"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    draw(
        "Resident memory (median, MiB)",
        "memory",
        "MiB",
        [
            group("w5.idle.rss_total_mib", "idle VmRSS"),
            group("w5.idle.rss_anon_mib", "idle RssAnon"),
            group("w5.loaded.rss_total_mib", "loaded VmRSS"),
            group("w5.loaded.rss_anon_mib", "loaded RssAnon"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    draw(
        "Startup to first acknowledged produce (median, ms)",
        "startup",
        "ms",
        [
            group("w5.startup.first_produce_ms", "one node"),
            group("w2.startup.first_produce_ms", "three nodes"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    );
    if !results.latency_cdfs.is_empty() {
        let name = format!("{}-latency-cdf.png", stamp);
        match plots::latency_cdf(
            &out_dir.join(&name),
            "End-to-end latency at a fixed rate (librdkafka, median run)",
            &results.latency_cdfs,
        ) {
            Ok(()) => plots.push(("Latency CDF".to_string(), name)),
            Err(error) => eprintln!("compare: plot latency: {error:#}"),
        }
    }
}
