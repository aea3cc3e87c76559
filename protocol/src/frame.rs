//! Size-prefixed frames: the outermost layer of the Kafka protocol.
//!
//! Every request and response is a big-endian `i32` size followed by that many bytes. Decoding is
//! two-phase (STYLE 5): first "is a whole frame buffered?", then hand the frame on. The size is
//! checked against the cap before a single byte of the body is buffered, so an oversized or
//! negative size is refused without reading it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Kafka's default for `socket.request.max.bytes`: the largest request frame a broker accepts.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: usize = 100 * 1024 * 1024;

/// Bytes of the size prefix.
const SIZE_PREFIX_BYTES: usize = 4;

/// Why a frame could not be decoded. Any of these closes the connection it came from.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix exceeds the configured cap.
    #[error("frame of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge {
        /// Size announced by the prefix.
        size_bytes: usize,
        /// The cap (`socket.request.max.bytes`).
        max_bytes: usize,
    },
    /// The size prefix is negative.
    #[error("frame size {size} is negative")]
    NegativeSize {
        /// The prefix as read.
        size: i32,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Codec for Kafka frames with a size cap.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec refusing frames larger than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> FrameCodec {
        FrameCodec { max_frame_bytes }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < SIZE_PREFIX_BYTES {
            return Ok(None);
        }
        let size = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if size < 0 {
            return Err(FrameError::NegativeSize { size });
        }
        let size_bytes = size as usize;
        if size_bytes > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size_bytes,
                max_bytes: self.max_frame_bytes,
            });
        }
        let total = SIZE_PREFIX_BYTES + size_bytes;
        if src.len() < total {
            // Reserve what the frame needs now that the size is known to be acceptable.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(SIZE_PREFIX_BYTES);
        Ok(Some(src.split_to(size_bytes).freeze()))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(SIZE_PREFIX_BYTES + item.len());
        dst.put_u32(item.len() as u32);
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frame_is_a_normal_state() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 1, 2][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[3, 4, 5, 0, 0]);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3, 4, 5]);
        assert_eq!(
            buf.len(),
            2,
            "the next frame's partial prefix stays buffered"
        );
    }

    #[test]
    fn oversized_frame_is_refused_from_its_prefix_alone() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&2048u32.to_be_bytes()[..]);
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge {
                size_bytes: 2048,
                max_bytes: 1024,
            }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn negative_size_is_refused() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::NegativeSize { size: -1 })
        ));
    }
}
