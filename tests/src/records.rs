//! Test records: the generator, and the JSON-lines files every client program reads and writes.
//!
//! Files (one JSON object per line, bytes hex-encoded, `null` for a null key/value/header value):
//! - input:    `{"key","value","headers":[[name, value]...],"timestamp"}` — what to produce, in order;
//! - produced: `{"index","partition","offset"}` — the client's delivery report for input line `index`;
//! - consumed: `{"partition","offset","key","value","headers","timestamp","timestamp_type"}`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name (a string in every client API).
    pub name: String,
    /// Header value; `None` is a null value.
    pub value: Option<Vec<u8>>,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; unique per generated record (it starts with the record's index).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Explicit CreateTime timestamp in ms; `None` lets the client stamp it.
    pub timestamp: Option<i64>,
}

/// A client's delivery report for one input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    /// Line number (from 0) of the record in the input file.
    pub index: usize,
    /// Partition the record went to.
    pub partition: i32,
    /// Offset the broker assigned.
    pub offset: i64,
}

/// A record as a client consumed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Timestamp in ms.
    pub timestamp: i64,
    /// `CreateTime` or `LogAppendTime`.
    pub timestamp_type: String,
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Bytes of a hex string.
pub fn from_hex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("odd-length hex string ({} chars)", text.len());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .with_context(|| format!("bad hex {:?}", &text[i..i + 2]))
        })
        .collect()
}

fn opt_hex(bytes: &Option<Vec<u8>>) -> Option<String> {
    bytes.as_deref().map(to_hex)
}

fn opt_unhex(text: &Option<String>) -> Result<Option<Vec<u8>>> {
    text.as_deref().map(from_hex).transpose()
}

#[derive(Serialize, Deserialize)]
struct RecordLine {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, Option<String>)>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    timestamp: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct ConsumedLine {
    partition: i32,
    offset: i64,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Option<Vec<(String, Option<String>)>>,
    timestamp: i64,
    timestamp_type: String,
}

fn headers_to_lines(headers: &[Header]) -> Vec<(String, Option<String>)> {
    headers
        .iter()
        .map(|h| (h.name.clone(), opt_hex(&h.value)))
        .collect()
}

fn headers_from_lines(lines: Vec<(String, Option<String>)>) -> Result<Vec<Header>> {
    lines
        .into_iter()
        .map(|(name, value)| {
            Ok(Header {
                name,
                value: opt_unhex(&value)?,
            })
        })
        .collect()
}

/// Writes the input file for a client program.
pub fn write_input(path: &Path, records: &[Record]) -> Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for r in records {
        let line = RecordLine {
            key: opt_hex(&r.key),
            value: opt_hex(&r.value),
            headers: headers_to_lines(&r.headers),
            timestamp: r.timestamp,
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: bad line {line:.200}", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

/// Reads a produced (delivery report) file.
pub fn read_produced(path: &Path) -> Result<Vec<Produced>> {
    read_lines(path)
}

/// Reads a consumed file.
pub fn read_consumed(path: &Path) -> Result<Vec<Consumed>> {
    read_lines::<ConsumedLine>(path)?
        .into_iter()
        .map(|l| {
            Ok(Consumed {
                partition: l.partition,
                offset: l.offset,
                key: opt_unhex(&l.key)?,
                value: opt_unhex(&l.value)?,
                headers: headers_from_lines(l.headers.unwrap_or_default())?,
                timestamp: l.timestamp,
                timestamp_type: l.timestamp_type,
            })
        })
        .collect()
}

/// Writes a consumed file (for clients driven in-process or through a shell tool).
pub fn write_consumed(path: &Path, records: &[Consumed]) -> Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for c in records {
        let line = ConsumedLine {
            partition: c.partition,
            offset: c.offset,
            key: opt_hex(&c.key),
            value: opt_hex(&c.value),
            headers: Some(headers_to_lines(&c.headers)),
            timestamp: c.timestamp,
            timestamp_type: c.timestamp_type.clone(),
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What the client can carry, which decides what the generator makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Keys, values and header values may be any bytes; otherwise UTF-8 text without tabs or
    /// newlines (a line-oriented tool such as kcat reads them from stdin).
    pub binary: bool,
    /// Each record gets its own headers; otherwise every record carries `fixed_headers`.
    pub per_record_headers: bool,
    /// The headers of every record when `per_record_headers` is false.
    pub fixed_headers: Vec<Header>,
    /// Records carry explicit timestamps; otherwise the client stamps them at send time.
    pub explicit_timestamps: bool,
}

impl Profile {
    /// Everything a full-featured client API can express.
    pub fn full() -> Profile {
        Profile {
            binary: true,
            per_record_headers: true,
            fixed_headers: Vec::new(),
            explicit_timestamps: true,
        }
    }
}

/// Every 1000th record carries a value this large, so some batches hold a single big record.
pub const LARGE_VALUE_BYTES: usize = 20_000;
/// Upper bound of the ordinary value body length.
const VALUE_BODY_BYTES_MAX: u64 = 300;
/// Distinct keys; a prime, so keys spread over any partition count.
pub const DISTINCT_KEYS: usize = 97;

/// splitmix64: a small deterministic generator, so a failing run can be reproduced from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "spate", "flood", "river", "delta", "stream", "torrent", "brook", "eddy", "café", "naïve",
    "雪", "川", "🙂", "Ωmega", "straße",
];

/// `count` records for `profile`; deterministic in `seed`. Values are unique (they start with
/// the zero-padded index and a `|`), keys repeat over [`DISTINCT_KEYS`], and headers that repeat
/// a name are adjacent (kafkajs cannot express interleaved repeats). Timestamps, when explicit,
/// are `base_timestamp_ms + index`, so they increase in send order.
pub fn generate(count: usize, seed: u64, base_timestamp_ms: i64, profile: &Profile) -> Vec<Record> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| {
            let k = i % DISTINCT_KEYS;
            let key = if profile.binary {
                let mut key = format!("key-{k}").into_bytes();
                key.extend_from_slice(&[0x00, 0xfe, k as u8]);
                key
            } else {
                format!("key-{k}-ü").into_bytes()
            };
            let mut value = format!("{i:06}|").into_bytes();
            let body = if i % 1000 == 999 {
                LARGE_VALUE_BYTES
            } else if i % 7 == 0 {
                0
            } else {
                1 + rng.below(VALUE_BODY_BYTES_MAX) as usize
            };
            if profile.binary {
                // Half a repeated pattern (compressible), half noise, so every codec has work.
                let half = body / 2;
                let pattern = rng.next().to_le_bytes();
                value.extend((0..half).map(|j| pattern[j % pattern.len()]));
                value.extend((half..body).map(|_| rng.next() as u8));
            } else {
                let mut text = String::new();
                while text.len() < body {
                    text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                    text.push(' ');
                }
                value.extend_from_slice(text.as_bytes());
            }
            let headers = if profile.per_record_headers {
                per_record_headers(i, &mut rng, profile.binary)
            } else {
                profile.fixed_headers.clone()
            };
            Record {
                key: Some(key),
                value: Some(value),
                headers,
                timestamp: profile
                    .explicit_timestamps
                    .then_some(base_timestamp_ms + i as i64),
            }
        })
        .collect()
}

fn per_record_headers(i: usize, rng: &mut Rng, binary: bool) -> Vec<Header> {
    let h = |name: &str, value: &[u8]| Header {
        name: name.to_owned(),
        value: Some(value.to_vec()),
    };
    match i % 4 {
        0 => Vec::new(),
        1 => vec![h("trace-id", to_hex(&rng.next().to_be_bytes()).as_bytes())],
        2 => vec![h("dup", b"first"), h("dup", b""), h("dup", b"third")],
        _ => {
            let bin: Vec<u8> = if binary {
                vec![0x00, 0xff, 0x80, i as u8, (i >> 8) as u8]
            } else {
                "bïnary-ish ☃".as_bytes().to_vec()
            };
            vec![
                h("content-type", b"application/octet-stream"),
                h("bin", &bin),
                h("empty", b""),
                h("ünïcode-name", "välue".as_bytes()),
            ]
        }
    }
}

/// The index a generated value starts with, or `None` if it does not look generated.
pub fn index_of_value(value: &[u8]) -> Option<usize> {
    let digits = value.get(..6)?;
    if value.get(6) != Some(&b'|') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
