//! The clients that drive both systems: `rdload` (librdkafka) and Apache Kafka's own perf tools
//! (`kafka-producer-perf-test`, `kafka-consumer-perf-test`, `EndToEndLatency`), each a bounded
//! child process whose summary is parsed from its output.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use spate_benches::load::{Latency, LoadReport};

use crate::cluster::{Tools, kafka_tool, spawn_in, tail};

/// Producer settings of every throughput workload (the issue's: `acks=all`, 64 KiB batches,
/// 5 ms linger, no compression), for both clients.
pub const RECORD_BYTES: usize = 1024;
const ACKS: &str = "all";
const BATCH_BYTES: usize = 65536;
const LINGER_MS: u64 = 5;
/// Pause between a client's bounded-wait checks.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `cmd` in `dir` for at most `timeout`; its stdout.
pub fn run(mut cmd: Command, dir: &Path, timeout: Duration) -> Result<String> {
    fs::create_dir_all(dir)?;
    let mut child = spawn_in(&mut cmd, dir)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{:?} did not finish within {timeout:?}:\n{}",
                cmd.get_program(),
                tail(&dir.join("stderr.log"), 1500)
            );
        }
        thread::sleep(POLL_INTERVAL);
    };
    let stdout = fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    if !status.success() {
        bail!(
            "{:?} failed ({status}):\n{}{}",
            cmd.get_program(),
            tail(&dir.join("stderr.log"), 1500),
            stdout
                .chars()
                .rev()
                .take(500)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
    }
    Ok(stdout)
}

fn rdload(tools: &Tools, mode: &str, bootstrap: &str, topic: &str) -> Command {
    let mut cmd = Command::new(&tools.rdload_bin);
    cmd.args([mode, "--bootstrap", bootstrap, "--topic", topic]);
    cmd
}

fn parse_report(stdout: &str) -> Result<LoadReport> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("rdload printed no report")?;
    serde_json::from_str(line).context("bad rdload report")
}

/// Fails a report whose client gave up on records.
fn checked(report: LoadReport) -> Result<LoadReport> {
    if report.errors > 0 {
        bail!(
            "{} records failed: {}",
            report.errors,
            report.first_error.as_deref().unwrap_or("no message")
        );
    }
    Ok(report)
}

/// `rdload create-topic`, then a wait until every partition has a leader.
pub fn create_topic(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    replication_factor: u32,
    timeout: Duration,
) -> Result<()> {
    let mut cmd = rdload(tools, "create-topic", bootstrap, topic);
    cmd.args(["--partitions", &partitions.to_string()])
        .args(["--replication-factor", &replication_factor.to_string()]);
    run(cmd, dir, timeout)?;
    crate::probe::wait_topic_ready(bootstrap, topic, partitions, timeout)
}

/// `rdload produce`: `records` records of [`RECORD_BYTES`] as fast as possible.
pub fn rdload_produce(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    timeout: Duration,
) -> Result<LoadReport> {
    let mut cmd = rdload(tools, "produce", bootstrap, topic);
    cmd.args(["--records", &records.to_string()])
        .args(producer_args());
    checked(parse_report(&run(cmd, dir, timeout)?)?)
}

fn producer_args() -> Vec<String> {
    vec![
        "--record-bytes".into(),
        RECORD_BYTES.to_string(),
        "--acks".into(),
        ACKS.into(),
        "--batch-bytes".into(),
        BATCH_BYTES.to_string(),
        "--linger-ms".into(),
        LINGER_MS.to_string(),
    ]
}

/// `rdload consume`: `records` records from the beginning.
pub fn rdload_consume(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    timeout: Duration,
) -> Result<LoadReport> {
    let mut cmd = rdload(tools, "consume", bootstrap, topic);
    cmd.args(["--records", &records.to_string()]);
    checked(parse_report(&run(cmd, dir, timeout)?)?)
}

/// `rdload latency` at `rate` records per second for `duration_s` (plus a 2 s warm-up).
pub fn rdload_latency(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    rate: f64,
    duration_s: f64,
    timeout: Duration,
) -> Result<LoadReport> {
    let mut cmd = rdload(tools, "latency", bootstrap, topic);
    cmd.args(["--rate", &format!("{rate:.0}")])
        .args(["--duration-s", &duration_s.to_string()])
        .args(producer_args());
    checked(parse_report(&run(cmd, dir, timeout)?)?)
}

/// Kafka's `kafka-producer-perf-test`: throughput in MiB/s and records/s, with its latency
/// summary.
pub fn java_produce(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    timeout: Duration,
) -> Result<LoadReport> {
    fs::create_dir_all(dir)?;
    let mut cmd = kafka_tool(tools, dir, "org.apache.kafka.tools.ProducerPerformance");
    cmd.args(["--bootstrap-server", bootstrap, "--topic", topic])
        .args(["--num-records", &records.to_string()])
        .args(["--record-size", &RECORD_BYTES.to_string()])
        .args(["--throughput", "-1"])
        .arg("--command-property")
        .arg(format!("acks={ACKS}"))
        .arg(format!("batch.size={BATCH_BYTES}"))
        .arg(format!("linger.ms={LINGER_MS}"))
        .arg("compression.type=none");
    let stdout = run(cmd, dir, timeout)?;
    parse_producer_perf(&stdout, records)
}

/// Parses the final line of `ProducerPerformance`, e.g. `2000000 records sent, 181818.2
/// records/sec (177.56 MB/sec), 151.2 ms avg latency, 610.0 ms max latency, 140 ms 50th, 300 ms
/// 95th, 350 ms 99th, 400 ms 99.9th.` (its MB is 2^20 bytes).
fn parse_producer_perf(stdout: &str, expected: u64) -> Result<LoadReport> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("99.9th"))
        .context("kafka-producer-perf-test printed no summary")?;
    let number_before = |marker: &str| -> Option<f64> {
        let at = line.find(marker)?;
        line[..at]
            .trim_end()
            .rsplit([' ', '('])
            .next()?
            .parse()
            .ok()
    };
    let records = number_before(" records sent").context("no record count")? as u64;
    if records < expected {
        bail!("only {records} of {expected} records were sent");
    }
    let records_per_s = number_before(" records/sec").context("no records/sec")?;
    let mib_per_s = number_before(" MB/sec").context("no MB/sec")?;
    let bytes = records * RECORD_BYTES as u64;
    Ok(LoadReport {
        mode: "produce".into(),
        records,
        bytes,
        seconds: records as f64 / records_per_s,
        records_per_s,
        mib_per_s,
        latency: Some(Latency {
            p50_ms: number_before(" ms 50th").unwrap_or(f64::NAN),
            p99_ms: number_before(" ms 99th").unwrap_or(f64::NAN),
            p999_ms: number_before(" ms 99.9th").unwrap_or(f64::NAN),
            max_ms: number_before(" ms max latency").unwrap_or(f64::NAN),
            cdf: Vec::new(),
        }),
        ..LoadReport::default()
    })
}

/// Kafka's `kafka-consumer-perf-test`: the fetch throughput (rebalance time excluded).
pub fn java_consume(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    timeout: Duration,
) -> Result<LoadReport> {
    fs::create_dir_all(dir)?;
    let mut cmd = kafka_tool(tools, dir, "org.apache.kafka.tools.ConsumerPerformance");
    cmd.args(["--bootstrap-server", bootstrap, "--topic", topic])
        .args(["--num-records", &records.to_string()])
        .args(["--group", &format!("perf-{}", std::process::id())])
        .args(["--timeout", "60000"]);
    let stdout = run(cmd, dir, timeout)?;
    parse_consumer_perf(&stdout, records)
}

/// Parses `ConsumerPerformance`'s CSV: a header naming the columns, then one line of values.
fn parse_consumer_perf(stdout: &str, expected: u64) -> Result<LoadReport> {
    let mut lines = stdout.lines().filter(|l| l.contains(", "));
    let header: Vec<&str> = lines
        .find(|l| l.contains("fetch.MB.sec"))
        .context("kafka-consumer-perf-test printed no header")?
        .split(',')
        .map(str::trim)
        .collect();
    let values: Vec<&str> = lines
        .next()
        .context("kafka-consumer-perf-test printed no figures")?
        .split(',')
        .map(str::trim)
        .collect();
    let column = |name: &str| -> Result<f64> {
        let at = header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))?;
        values
            .get(at)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no value for {name}"))
    };
    let records = column("data.consumed.in.nMsg")? as u64;
    if records < expected {
        bail!("only {records} of {expected} records were consumed");
    }
    Ok(LoadReport {
        mode: "consume".into(),
        records,
        bytes: records * RECORD_BYTES as u64,
        seconds: column("fetch.time.ms")? / 1000.0,
        records_per_s: column("fetch.nMsg.sec")?,
        mib_per_s: column("fetch.MB.sec")?,
        ..LoadReport::default()
    })
}

/// Kafka's `EndToEndLatency`: one record at a time, produced with `acks=all` and consumed
/// before the next is sent; whole-millisecond percentiles.
pub fn java_latency(
    tools: &Tools,
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    records: u64,
    timeout: Duration,
) -> Result<LoadReport> {
    fs::create_dir_all(dir)?;
    let mut cmd = kafka_tool(tools, dir, "org.apache.kafka.tools.EndToEndLatency");
    cmd.args([
        bootstrap,
        topic,
        &records.to_string(),
        "all",
        &RECORD_BYTES.to_string(),
    ]);
    let stdout = run(cmd, dir, timeout)?;
    let percentiles = stdout
        .lines()
        .find(|l| l.starts_with("Percentiles"))
        .context("EndToEndLatency printed no percentiles")?;
    let value = |name: &str| -> Option<f64> {
        let at = percentiles.find(&format!("{name} = "))? + name.len() + 3;
        percentiles[at..]
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()?
            .parse()
            .ok()
    };
    let average = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Avg latency: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    Ok(LoadReport {
        mode: "latency".into(),
        records,
        seconds: average.map_or(f64::NAN, |a| a * records as f64 / 1000.0),
        latency: Some(Latency {
            p50_ms: value("50th").context("no 50th")?,
            p99_ms: value("99th").context("no 99th")?,
            p999_ms: value("99.9th").context("no 99.9th")?,
            max_ms: f64::NAN,
            cdf: Vec::new(),
        }),
        ..LoadReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_perf_summary_is_parsed() {
        let out = "1000 records sent, 500.0 records/sec (0.49 MB/sec), 10.0 ms avg latency\n\
                   2000000 records sent, 181818.2 records/sec (177.56 MB/sec), 151.2 ms avg latency, 610.0 ms max latency, 140 ms 50th, 300 ms 95th, 350 ms 99th, 400 ms 99.9th.\n";
        let report = parse_producer_perf(out, 2_000_000).expect("parsed");
        assert_eq!(report.records, 2_000_000);
        assert!((report.mib_per_s - 177.56).abs() < 1e-9);
        assert!((report.records_per_s - 181_818.2).abs() < 1e-9);
        let latency = report.latency.expect("latency");
        assert_eq!(latency.p99_ms, 350.0);
        assert_eq!(latency.p999_ms, 400.0);
        assert_eq!(latency.max_ms, 610.0);
    }

    #[test]
    fn consumer_perf_csv_is_parsed() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                   2026-01-01 10:00:00:000, 2026-01-01 10:00:10:000, 1953.1250, 195.3125, 2000000, 200000.0000, 3000, 7000, 279.0179, 285714.2857\n";
        let report = parse_consumer_perf(out, 2_000_000).expect("parsed");
        assert_eq!(report.records, 2_000_000);
        assert!((report.mib_per_s - 279.0179).abs() < 1e-9);
        assert!((report.seconds - 7.0).abs() < 1e-9);
        assert!(parse_consumer_perf(out, 3_000_000).is_err());
    }
}
