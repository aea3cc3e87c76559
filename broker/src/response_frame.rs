//! Response frames that carry record data without copying it.
//!
//! A fetch response is mostly record batches that are already in memory as slices of a mapped
//! segment. Encoding it into one buffer would copy every byte; instead the encoder writes into a
//! [`ChunkedBuf`] that, when asked to copy one of the known record slices, appends a reference
//! to it as its own chunk. The connection then writes the chunks with vectored writes, so record
//! bytes go from the page cache to the socket without an intermediate copy (ARCHITECTURE.md,
//! "Request pipeline").

use std::any::Any;

use bytes::{BufMut, Bytes, BytesMut, buf::UninitSlice};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;
use spate_protocol::header::{EncodeError, response_header_version};

/// Record slices at least this large are sent by reference; smaller ones are cheaper to copy
/// than to give their own iovec.
pub const ZERO_COPY_THRESHOLD_BYTES: usize = 16 * 1024;

/// An encoded response body (header included, size prefix excluded) as a list of chunks.
#[derive(Debug, Clone, Default)]
pub struct ResponseFrame {
    chunks: Vec<Bytes>,
    len: usize,
}

impl ResponseFrame {
    /// A frame of one contiguous buffer.
    pub fn single(bytes: Bytes) -> ResponseFrame {
        let len = bytes.len();
        ResponseFrame {
            chunks: vec![bytes],
            len,
        }
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }
}

/// A `ByteBufMut` that turns writes of registered slices into references.
struct ChunkedBuf<'a> {
    external: &'a [Bytes],
    chunks: Vec<Bytes>,
    current: BytesMut,
    len_before_current: usize,
}

impl ChunkedBuf<'_> {
    fn finish(mut self) -> ResponseFrame {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
        let len = self.chunks.iter().map(Bytes::len).sum();
        ResponseFrame {
            chunks: self.chunks,
            len,
        }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, which upholds `BufMut`'s contract;
// `put_slice` only adds whole chunks of already-initialized bytes.
unsafe impl BufMut for ChunkedBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded from the caller, who initialized `cnt` bytes of `chunk_mut`.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= ZERO_COPY_THRESHOLD_BYTES
            && let Some(shared) = self
                .external
                .iter()
                .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
        {
            self.len_before_current += self.current.len() + src.len();
            if !self.current.is_empty() {
                self.chunks.push(self.current.split().freeze());
            }
            self.chunks.push(shared.clone());
            return;
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for ChunkedBuf<'_> {
    fn offset(&self) -> usize {
        self.len_before_current + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        // Message encoders never seek; gaps belong to record encoding, which is not used on
        // responses. Keep the contract within the current chunk.
        let local = offset.saturating_sub(self.len_before_current);
        self.current.resize(local, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.len_before_current);
        let end = r.end.saturating_sub(self.len_before_current);
        &mut self.current[start..end]
    }
}

/// The record slices of a response worth sending by reference.
fn record_slices(body: &dyn Any) -> Vec<Bytes> {
    let Some(fetch) = body.downcast_ref::<FetchResponse>() else {
        return Vec::new();
    };
    fetch
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .filter(|r| r.len() >= ZERO_COPY_THRESHOLD_BYTES)
        .collect()
}

/// Encodes a response header and body, sending large record slices by reference.
pub fn encode_response_frame<M: Encodable + Any>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<ResponseFrame, EncodeError> {
    let external = record_slices(body);
    let mut buf = ChunkedBuf {
        external: &external,
        chunks: Vec::new(),
        current: BytesMut::with_capacity(256),
        len_before_current: 0,
    };
    let error = |e: anyhow::Error| EncodeError {
        api_key,
        api_version,
        reason: e.to_string(),
    };
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, response_header_version(api_key, api_version))
        .map_err(error)?;
    body.encode(&mut buf, api_version).map_err(error)?;
    Ok(buf.finish())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiVersionsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use spate_protocol::header::encode_response;

    use super::*;

    fn fetch_with(records: &[Bytes]) -> FetchResponse {
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(
                    records
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            PartitionData::default()
                                .with_partition_index(i as i32)
                                .with_records(Some(r.clone()))
                        })
                        .collect(),
                ),
        ])
    }

    fn joined(frame: &ResponseFrame) -> Vec<u8> {
        frame
            .chunks()
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect()
    }

    #[test]
    fn large_records_are_referenced_and_the_bytes_match_a_plain_encoding() {
        let big = Bytes::from(vec![7u8; 64 * 1024]);
        let small = Bytes::from(vec![9u8; 100]);
        for version in [4, 11, 12, 16] {
            let body = fetch_with(&[big.clone(), small.clone(), big.slice(1..40_000)]);
            let frame = encode_response_frame(ApiKey::Fetch, version, 42, &body).unwrap();
            let plain = encode_response(ApiKey::Fetch, version, 42, &body).unwrap();
            assert_eq!(joined(&frame), plain.to_vec(), "v{version}");
            assert_eq!(frame.len(), plain.len());
            let referenced = frame
                .chunks()
                .iter()
                .filter(|c| c.as_ptr() == big.as_ptr() || c.as_ptr() == big.slice(1..).as_ptr())
                .count();
            assert_eq!(
                referenced, 2,
                "both large slices are sent by reference (v{version})"
            );
        }
    }

    #[test]
    fn other_responses_are_one_chunk() {
        let body = ApiVersionsResponse::default();
        let frame = encode_response_frame(ApiKey::ApiVersions, 3, 1, &body).unwrap();
        assert_eq!(frame.chunks().len(), 1);
    }
}
