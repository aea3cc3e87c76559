//! Records inside a RecordBatch v2 (Kafka's `DefaultRecord`), parsed lazily and without copies.
//!
//! Each record is:
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused by Kafka, kept as read
//! timestampDelta  varlong  timestamp - batch baseTimestamp
//! offsetDelta     varint   offset - batch baseOffset
//! keyLength       varint   -1 for a null key
//! key             bytes
//! valueLength     varint   -1 for a null value
//! value           bytes
//! headersCount    varint
//! headers         [headerKeyLength varint, headerKey bytes (never null),
//!                  headerValueLength varint (-1 = null), headerValue bytes]
//! ```
//!
//! Keys, values and header fields are [`Bytes`] slices of the batch buffer (or of the one
//! decompressed buffer of a compressed batch), so iterating copies no payload.

use bytes::{BufMut, Bytes};

use super::batch::{Compression, RecordBatch, TimestampType};
use super::compression::{self, CompressionError};
use super::varint::{self, VarintError};
use crate::types::Offset;

/// Smallest possible encoded header: a one-byte key length (0) and a one-byte value length (-1).
const HEADER_SIZE_BYTES_MIN: usize = 2;

/// One record of a batch. Offsets and timestamps are deltas against the batch header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's `baseTimestamp`, in milliseconds.
    pub timestamp_delta: i64,
    /// The key; `None` is a null key (distinct from an empty one).
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on a compacted topic).
    pub value: Option<Bytes>,
    /// Headers in wire order; keys may repeat.
    pub headers: Vec<Header>,
    /// Record attributes; Kafka defines no bits yet, so they are carried as read.
    pub attributes: i8,
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key; Kafka forbids a null key. Usually UTF-8, but not checked (Kafka does not).
    pub key: Bytes,
    /// Header value; `None` is null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Header {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// Why records could not be read from a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The buffer ended inside a varint.
    #[error("record {record_index}: {field} varint truncated at byte {at_byte}")]
    VarintTruncated {
        /// Index of the record in the batch.
        record_index: i32,
        /// Which field was being read.
        field: &'static str,
        /// Position in the records buffer.
        at_byte: usize,
    },
    /// A varint longer than 5 bytes, or a varlong longer than 10.
    #[error("record {record_index}: {field} varint too long at byte {at_byte}")]
    VarintTooLong {
        /// Index of the record in the batch.
        record_index: i32,
        /// Which field was being read.
        field: &'static str,
        /// Position in the records buffer.
        at_byte: usize,
    },
    /// A negative length or count where none is allowed (below -1 for nullable fields).
    #[error("record {record_index}: {field} {length} is invalid at byte {at_byte}")]
    InvalidLength {
        /// Index of the record in the batch.
        record_index: i32,
        /// Which field was being read.
        field: &'static str,
        /// The value read.
        length: i32,
        /// Position in the records buffer.
        at_byte: usize,
    },
    /// A length that reaches past the record or the buffer.
    #[error(
        "record {record_index}: {field} of {length_bytes} bytes at byte {at_byte} runs past \
         the {available_bytes} bytes available"
    )]
    PastEnd {
        /// Index of the record in the batch.
        record_index: i32,
        /// Which field was being read.
        field: &'static str,
        /// The length read.
        length_bytes: usize,
        /// Position in the records buffer.
        at_byte: usize,
        /// Bytes left in the record (or buffer) at that position.
        available_bytes: usize,
    },
    /// The record's length prefix does not match the bytes its fields occupy.
    #[error("record {record_index}: length says {declared_bytes} bytes, fields use {read_bytes}")]
    RecordSizeMismatch {
        /// Index of the record in the batch.
        record_index: i32,
        /// The record's length field.
        declared_bytes: usize,
        /// Bytes its fields actually used.
        read_bytes: usize,
    },
    /// The buffer ended before the header's `recordsCount` records were read.
    #[error("batch declares {expected} records but holds only {found}")]
    RecordCountMismatch {
        /// `recordsCount` from the batch header.
        expected: i32,
        /// Records actually present.
        found: i32,
    },
    /// Bytes remain after the header's `recordsCount` records.
    #[error("{trailing_bytes} bytes follow the {records_count} records of the batch")]
    TrailingBytes {
        /// `recordsCount` from the batch header.
        records_count: i32,
        /// Bytes left over.
        trailing_bytes: usize,
    },
    /// The records of a compressed batch could not be decompressed (corrupt, or inflating past
    /// the caller's cap).
    #[error("record batch decompression failed: {0}")]
    Decompression(#[from] CompressionError),
    /// A control record whose key or value is not one Kafka writes.
    #[error("invalid control record: {reason}")]
    InvalidControlRecord {
        /// What is wrong.
        reason: String,
    },
}

impl RecordError {
    /// Whether this error is the decompression cap being hit (as opposed to corrupt bytes).
    pub fn is_inflation_cap(&self) -> bool {
        matches!(
            self,
            RecordError::Decompression(CompressionError::InflatedTooLarge { .. })
        )
    }
}

impl Record {
    /// The record's absolute offset in a batch starting at `base_offset`. Wraps rather than
    /// panicking on nonsense offsets, as Kafka's Java arithmetic does.
    pub fn offset(&self, base_offset: Offset) -> Offset {
        Offset(base_offset.0.wrapping_add(i64::from(self.offset_delta)))
    }

    /// The record's timestamp in a batch whose `baseTimestamp` is `base_timestamp`.
    ///
    /// For a LogAppendTime batch Kafka reports the batch's `maxTimestamp` for every record
    /// instead; [`Record::timestamp_in`] does that.
    pub fn timestamp(&self, base_timestamp: i64) -> i64 {
        base_timestamp.wrapping_add(self.timestamp_delta)
    }

    /// The record's timestamp as Kafka reports it: the batch's `maxTimestamp` for a LogAppendTime
    /// batch, `baseTimestamp + timestampDelta` otherwise.
    pub fn timestamp_in(&self, batch: &RecordBatch) -> i64 {
        match batch.timestamp_type() {
            TimestampType::LogAppendTime => batch.max_timestamp(),
            TimestampType::CreateTime => self.timestamp(batch.base_timestamp()),
        }
    }

    /// Size of this record once encoded, length prefix included.
    pub fn encoded_size_bytes(&self) -> usize {
        self.parts().encoded_size_bytes()
    }

    /// Appends the encoded record (length prefix included) to `out`.
    ///
    /// Lengths beyond `i32::MAX` cannot be encoded; callers bound record sizes long before that
    /// (the builder refuses them), so here they are clamped rather than checked twice.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        self.parts().encode(out);
    }

    fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            attributes: self.attributes,
            timestamp_delta: self.timestamp_delta,
            offset_delta: self.offset_delta,
            key: &self.key,
            value: &self.value,
            headers: &self.headers,
        }
    }
}

/// The fields of a record by reference, so the builder can encode without assembling a
/// [`Record`] (and cloning its headers) first.
pub(crate) struct RecordParts<'a> {
    pub(crate) attributes: i8,
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: &'a Option<Bytes>,
    pub(crate) value: &'a Option<Bytes>,
    pub(crate) headers: &'a [Header],
}

fn nullable_size_bytes(field: &Option<Bytes>) -> usize {
    match field {
        None => 1,
        Some(b) => varint::varint_size_bytes(len_i32(b.len())) + b.len(),
    }
}

fn put_nullable<B: BufMut>(out: &mut B, field: &Option<Bytes>) {
    match field {
        None => varint::put_varint(out, -1),
        Some(b) => {
            varint::put_varint(out, len_i32(b.len()));
            out.put_slice(b);
        }
    }
}

impl RecordParts<'_> {
    fn body_size_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| {
                varint::varint_size_bytes(len_i32(h.key.len()))
                    + h.key.len()
                    + nullable_size_bytes(&h.value)
            })
            .sum();
        1 + varint::varlong_size_bytes(self.timestamp_delta)
            + varint::varint_size_bytes(self.offset_delta)
            + nullable_size_bytes(self.key)
            + nullable_size_bytes(self.value)
            + varint::varint_size_bytes(len_i32(self.headers.len()))
            + headers
    }

    /// Size once encoded, length prefix included.
    pub(crate) fn encoded_size_bytes(&self) -> usize {
        let body = self.body_size_bytes();
        varint::varint_size_bytes(len_i32(body)) + body
    }

    /// Appends the encoded record, length prefix included.
    pub(crate) fn encode<B: BufMut>(&self, out: &mut B) {
        varint::put_varint(out, len_i32(self.body_size_bytes()));
        out.put_i8(self.attributes);
        varint::put_varlong(out, self.timestamp_delta);
        varint::put_varint(out, self.offset_delta);
        put_nullable(out, self.key);
        put_nullable(out, self.value);
        varint::put_varint(out, len_i32(self.headers.len()));
        for header in self.headers {
            varint::put_varint(out, len_i32(header.key.len()));
            out.put_slice(&header.key);
            put_nullable(out, &header.value);
        }
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// A bounded reader over one record inside the records buffer.
struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
    record_index: i32,
}

impl Cursor<'_> {
    fn varint_error(&self, field: &'static str, err: VarintError) -> RecordError {
        match err {
            VarintError::Truncated => RecordError::VarintTruncated {
                record_index: self.record_index,
                field,
                at_byte: self.pos,
            },
            VarintError::TooLong => RecordError::VarintTooLong {
                record_index: self.record_index,
                field,
                at_byte: self.pos,
            },
        }
    }

    fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        varint::read_varint(self.buf, &mut self.pos, self.end)
            .map_err(|e| self.varint_error(field, e))
    }

    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        varint::read_varlong(self.buf, &mut self.pos, self.end)
            .map_err(|e| self.varint_error(field, e))
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        if self.pos >= self.end {
            return Err(self.past_end(field, 1));
        }
        let byte = self.buf[self.pos] as i8;
        self.pos += 1;
        Ok(byte)
    }

    fn past_end(&self, field: &'static str, length_bytes: usize) -> RecordError {
        RecordError::PastEnd {
            record_index: self.record_index,
            field,
            length_bytes,
            at_byte: self.pos,
            available_bytes: self.end.saturating_sub(self.pos),
        }
    }

    fn bytes(&mut self, field: &'static str, length_bytes: usize) -> Result<Bytes, RecordError> {
        if length_bytes > self.end - self.pos {
            return Err(self.past_end(field, length_bytes));
        }
        let slice = self.buf.slice(self.pos..self.pos + length_bytes);
        self.pos += length_bytes;
        Ok(slice)
    }

    /// A varint length then that many bytes; -1 is null.
    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, RecordError> {
        let at_byte = self.pos;
        let length = self.varint(field)?;
        match length {
            -1 => Ok(None),
            _ if length < 0 => Err(RecordError::InvalidLength {
                record_index: self.record_index,
                field,
                length,
                at_byte,
            }),
            _ => self.bytes(field, length as usize).map(Some),
        }
    }
}

/// Parses one record starting at `*pos`, advancing `*pos` past it.
fn parse_record(buf: &Bytes, pos: &mut usize, record_index: i32) -> Result<Record, RecordError> {
    let mut cursor = Cursor {
        buf,
        pos: *pos,
        end: buf.len(),
        record_index,
    };
    let length_at = cursor.pos;
    let length = cursor.varint("record length")?;
    if length < 0 {
        return Err(RecordError::InvalidLength {
            record_index,
            field: "record length",
            length,
            at_byte: length_at,
        });
    }
    let declared_bytes = length as usize;
    if declared_bytes > cursor.end - cursor.pos {
        return Err(cursor.past_end("record", declared_bytes));
    }
    // From here on the cursor cannot read past this record's own bytes.
    let body_start = cursor.pos;
    cursor.end = body_start + declared_bytes;
    let attributes = cursor.i8("attributes")?;
    let timestamp_delta = cursor.varlong("timestamp delta")?;
    let offset_delta = cursor.varint("offset delta")?;
    let key = cursor.nullable_bytes("key")?;
    let value = cursor.nullable_bytes("value")?;
    let count_at = cursor.pos;
    let headers_count = cursor.varint("headers count")?;
    if headers_count < 0 {
        return Err(RecordError::InvalidLength {
            record_index,
            field: "headers count",
            length: headers_count,
            at_byte: count_at,
        });
    }
    // Never reserve what a count claims beyond what the remaining bytes could hold.
    let headers_max = (cursor.end - cursor.pos) / HEADER_SIZE_BYTES_MIN;
    let mut headers = Vec::with_capacity((headers_count as usize).min(headers_max));
    for _ in 0..headers_count {
        let key_at = cursor.pos;
        let key_length = cursor.varint("header key length")?;
        if key_length < 0 {
            // Kafka: "Invalid negative header key size".
            return Err(RecordError::InvalidLength {
                record_index,
                field: "header key length",
                length: key_length,
                at_byte: key_at,
            });
        }
        let key = cursor.bytes("header key", key_length as usize)?;
        let value = cursor.nullable_bytes("header value")?;
        headers.push(Header { key, value });
    }
    let read_bytes = cursor.pos - body_start;
    if read_bytes != declared_bytes {
        return Err(RecordError::RecordSizeMismatch {
            record_index,
            declared_bytes,
            read_bytes,
        });
    }
    *pos = cursor.pos;
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
        attributes,
    })
}

/// Lazily parses the records of one batch.
///
/// Yields exactly `recordsCount` records, then an error if bytes remain; yields an error if the
/// bytes run out first. After the first error it yields nothing more.
#[derive(Debug, Clone)]
pub struct RecordIter {
    buf: Bytes,
    pos: usize,
    records_count: i32,
    yielded: i32,
    done: bool,
}

impl RecordIter {
    /// Iterates `records_count` records encoded back to back in `records` (already decompressed).
    pub fn new(records: Bytes, records_count: i32) -> RecordIter {
        RecordIter {
            buf: records,
            pos: 0,
            records_count,
            yielded: 0,
            done: false,
        }
    }

    /// Records still to come, as declared by the header (an upper bound if the bytes are bad).
    pub fn remaining(&self) -> usize {
        if self.done {
            return 0;
        }
        usize::try_from(self.records_count.saturating_sub(self.yielded)).unwrap_or(0)
    }

    /// The (decompressed) bytes the records are parsed from.
    pub fn records_bytes(&self) -> &Bytes {
        &self.buf
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.yielded >= self.records_count {
            self.done = true;
            let trailing_bytes = self.buf.len() - self.pos;
            if trailing_bytes > 0 {
                return Some(Err(RecordError::TrailingBytes {
                    records_count: self.records_count,
                    trailing_bytes,
                }));
            }
            return None;
        }
        if self.pos >= self.buf.len() {
            self.done = true;
            return Some(Err(RecordError::RecordCountMismatch {
                expected: self.records_count,
                found: self.yielded,
            }));
        }
        match parse_record(&self.buf, &mut self.pos, self.yielded) {
            Ok(record) => {
                self.yielded += 1;
                Some(Ok(record))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // One extra item is possible: the trailing-bytes or count-mismatch error.
        (0, Some(self.remaining().saturating_add(1)))
    }
}

impl std::iter::FusedIterator for RecordIter {}

impl RecordBatch {
    /// Iterates this batch's records, decompressing them first if the batch is compressed.
    ///
    /// Decompression refuses to produce more than `max_inflated_bytes`; an uncompressed batch is
    /// iterated in place whatever its size. The CRC is not checked here: call
    /// [`RecordBatch::verify_crc`] first for bytes from an untrusted source.
    pub fn records(&self, max_inflated_bytes: usize) -> Result<RecordIter, RecordError> {
        let raw = self.records_bytes();
        let records = match self.compression() {
            Compression::None => raw,
            codec => compression::decompress(codec, &raw, max_inflated_bytes)?,
        };
        Ok(RecordIter::new(records, self.records_count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(records: &[Record]) -> Bytes {
        let mut out = Vec::new();
        for record in records {
            record.encode(&mut out);
        }
        Bytes::from(out)
    }

    fn sample(offset_delta: i32) -> Record {
        Record {
            offset_delta,
            timestamp_delta: i64::from(offset_delta) * 7 - 3,
            key: Some(Bytes::from(format!("key-{offset_delta}"))),
            value: if offset_delta % 2 == 0 {
                None
            } else {
                Some(Bytes::from_static(b""))
            },
            headers: vec![
                Header::new("h", "v"),
                Header {
                    key: Bytes::from_static(b""),
                    value: None,
                },
            ],
            attributes: 0,
        }
    }

    #[test]
    fn records_round_trip_and_sizes_agree() {
        let records: Vec<Record> = (0..5).map(sample).collect();
        let buf = encode(&records);
        let total: usize = records.iter().map(Record::encoded_size_bytes).sum();
        assert_eq!(buf.len(), total);
        let parsed: Vec<Record> = RecordIter::new(buf, 5)
            .collect::<Result<_, _>>()
            .expect("parse");
        assert_eq!(parsed, records);
    }

    #[test]
    fn keys_and_values_are_slices_of_the_buffer() {
        let buf = encode(&[sample(1)]);
        let record = RecordIter::new(buf.clone(), 1)
            .next()
            .expect("one")
            .expect("ok");
        let key = record.key.expect("key");
        let start = buf.as_ptr() as usize;
        let key_at = key.as_ptr() as usize;
        assert!(
            key_at > start && key_at < start + buf.len(),
            "key is not a copy"
        );
    }

    #[test]
    fn count_mismatch_and_trailing_bytes_are_reported() {
        let buf = encode(&[sample(0), sample(1)]);
        let mut iter = RecordIter::new(buf.clone(), 3);
        assert!(iter.next().expect("1").is_ok());
        assert!(iter.next().expect("2").is_ok());
        assert_eq!(
            iter.next(),
            Some(Err(RecordError::RecordCountMismatch {
                expected: 3,
                found: 2
            }))
        );
        assert_eq!(iter.next(), None);

        let mut iter = RecordIter::new(buf.clone(), 1);
        assert!(iter.next().expect("1").is_ok());
        let second_size = sample(1).encoded_size_bytes();
        assert_eq!(
            iter.next(),
            Some(Err(RecordError::TrailingBytes {
                records_count: 1,
                trailing_bytes: second_size
            }))
        );
        assert_eq!(iter.next(), None);
    }

    #[test]
    fn record_length_must_match_fields() {
        // A record whose length prefix claims one byte more than its fields use, padded with one
        // byte so that the claim stays inside the buffer.
        let record = sample(0);
        let mut body = Vec::new();
        record.encode(&mut body);
        let mut pos = 0;
        let body_len = varint::read_varint(&body, &mut pos, body.len()).expect("len") as usize;
        let mut bad = Vec::new();
        varint::put_varint(&mut bad, (body_len + 1) as i32);
        bad.extend_from_slice(&body[pos..]);
        bad.push(0);
        let err = RecordIter::new(Bytes::from(bad), 1)
            .next()
            .expect("item")
            .expect_err("bad size");
        assert_eq!(
            err,
            RecordError::RecordSizeMismatch {
                record_index: 0,
                declared_bytes: body_len + 1,
                read_bytes: body_len
            }
        );
    }

    #[test]
    fn negative_header_key_length_is_invalid() {
        let mut buf = Vec::new();
        let mut body = Vec::new();
        body.push(0u8); // attributes
        varint::put_varlong(&mut body, 0);
        varint::put_varint(&mut body, 0);
        varint::put_varint(&mut body, -1); // null key
        varint::put_varint(&mut body, -1); // null value
        varint::put_varint(&mut body, 1); // one header
        varint::put_varint(&mut body, -1); // null header key: forbidden
        varint::put_varint(&mut body, -1);
        varint::put_varint(&mut buf, body.len() as i32);
        buf.extend_from_slice(&body);
        let err = RecordIter::new(Bytes::from(buf), 1)
            .next()
            .expect("item")
            .expect_err("null header key");
        assert!(
            matches!(
                err,
                RecordError::InvalidLength {
                    field: "header key length",
                    length: -1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn huge_header_count_does_not_allocate_or_panic() {
        let mut buf = Vec::new();
        let mut body = vec![0u8];
        varint::put_varlong(&mut body, 0);
        varint::put_varint(&mut body, 0);
        varint::put_varint(&mut body, -1);
        varint::put_varint(&mut body, -1);
        varint::put_varint(&mut body, i32::MAX);
        varint::put_varint(&mut buf, body.len() as i32);
        buf.extend_from_slice(&body);
        let err = RecordIter::new(Bytes::from(buf), 1)
            .next()
            .expect("item")
            .expect_err("headers missing");
        assert!(
            matches!(
                err,
                RecordError::VarintTruncated {
                    field: "header key length",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
