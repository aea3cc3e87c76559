//! The four Kafka codecs over byte buffers, with decompression bounded by a caller's cap.
//!
//! What each codec writes matches what Kafka's Java client writes for magic v2 batches, so a batch
//! Spate compresses (on recompression for a topic's `compression.type`, or in tests) reads back in
//! every client:
//!
//! - gzip: one RFC 1952 member; decoding accepts concatenated members as `GZIPInputStream` does.
//! - snappy: the xerial framing of `snappy-java`'s `SnappyOutputStream` (a 16-byte header, then
//!   blocks of `[i32 BE compressed length][raw snappy block]`, 32 KiB of input per block).
//!   Decoding detects the header and otherwise reads one raw snappy block, which is what
//!   librdkafka and other non-Java clients write.
//! - lz4: the LZ4 frame format with 64 KiB independent blocks and no checksums, as Kafka's
//!   `Lz4BlockOutputStream` writes; decoding accepts any valid frame, checksums included.
//! - zstd: one zstd frame at Kafka's default level.
//!
//! Decompression never trusts a size written in the input: output grows as it is produced, and a
//! stream that would inflate past `max_inflated_bytes` is rejected as soon as it does.

use std::io::{Read, Write};

use bytes::Bytes;

use super::batch::Compression;

/// Kafka's default gzip level (`compression.gzip.level`, `Deflater.DEFAULT_COMPRESSION`).
pub const GZIP_LEVEL_DEFAULT: i32 = 6;
/// Kafka's default zstd level (`compression.zstd.level`).
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;
/// Largest zstd window a frame may ask for, as a power of two. 27 (128 MiB) is zstd's own default
/// limit and that of the Java client's zstd-jni, so every frame any Kafka client writes decodes;
/// it also bounds the decoder's memory per stream whatever the frame header claims.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Largest zstd decompression context kept for reuse on a thread. A context holds buffers for
/// the largest window it has decoded; 8 MiB covers the windows of the default levels (a 2 MiB
/// window at level 3) while not pinning a 128 MiB window to every thread after one odd frame.
pub const ZSTD_CONTEXT_RETAINED_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Input bytes per xerial snappy block, as `snappy-java`'s `SnappyOutputStream` uses by default.
pub const SNAPPY_XERIAL_BLOCK_SIZE_BYTES: usize = 32 * 1024;
/// The most a raw snappy block can expand its input: the densest element is a 3-byte copy that
/// emits 64 bytes, so a block claiming more than 22 times its size (plus its length preamble) is
/// lying, and is refused before its claimed size is allocated.
pub const SNAPPY_EXPANSION_RATIO_MAX: usize = 22;

/// The 8-byte magic that opens a xerial snappy stream.
pub const SNAPPY_XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\0";
/// Size of the xerial header: magic, then version and minimum compatible version (i32 BE each).
pub const SNAPPY_XERIAL_HEADER_SIZE_BYTES: usize = 16;
/// The header `snappy-java` writes: magic, version 1, compatible version 1.
const SNAPPY_XERIAL_HEADER: [u8; SNAPPY_XERIAL_HEADER_SIZE_BYTES] =
    *b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01";

/// Why a buffer could not be compressed or decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The stream inflates past the caller's cap.
    #[error("{} data inflates past the limit of {max_inflated_bytes} bytes", codec.name())]
    InflatedTooLarge {
        /// Codec of the stream.
        codec: Compression,
        /// The cap that was exceeded.
        max_inflated_bytes: usize,
    },
    /// The compressed bytes are not a valid stream of this codec.
    #[error("corrupt {} data: {detail}", codec.name())]
    Corrupt {
        /// Codec of the stream.
        codec: Compression,
        /// What the decoder reported.
        detail: String,
    },
    /// The encoder failed (it only writes to memory, so this means an input it cannot take, such
    /// as one larger than the codec's format allows).
    #[error("{} compression failed: {detail}", codec.name())]
    Compress {
        /// Codec used.
        codec: Compression,
        /// What the encoder reported.
        detail: String,
    },
    /// A compression level the codec does not have.
    #[error("{} has no compression level {level}", codec.name())]
    InvalidLevel {
        /// Codec asked for.
        codec: Compression,
        /// The level asked for.
        level: i32,
    },
}

fn corrupt(codec: Compression, detail: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        detail: detail.to_string(),
    }
}

fn compress_failed(codec: Compression, detail: impl ToString) -> CompressionError {
    CompressionError::Compress {
        codec,
        detail: detail.to_string(),
    }
}

/// Compresses `input` with `codec` at Kafka's default level. `Compression::None` copies.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Bytes, CompressionError> {
    compress_with_level(codec, input, None)
}

/// Compresses `input` with `codec` at `level` (Kafka's `compression.<codec>.level`), or the
/// codec's default when `None`.
///
/// gzip takes 1..=9; zstd takes its full range (negative "fast" levels up to 22); snappy and lz4
/// ignore the level (lz4 here has only its fast mode, whose output every LZ4 decoder reads).
pub fn compress_with_level(
    codec: Compression,
    input: &[u8],
    level: Option<i32>,
) -> Result<Bytes, CompressionError> {
    match codec {
        Compression::None => Ok(Bytes::copy_from_slice(input)),
        Compression::Gzip => {
            let level = level.unwrap_or(GZIP_LEVEL_DEFAULT);
            let level = u32::try_from(level)
                .ok()
                .filter(|l| (1..=9).contains(l))
                .ok_or(CompressionError::InvalidLevel { codec, level })?;
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::new(level),
            );
            encoder
                .write_all(input)
                .map_err(|e| compress_failed(codec, e))?;
            let out = encoder.finish().map_err(|e| compress_failed(codec, e))?;
            Ok(Bytes::from(out))
        }
        Compression::Snappy => compress_snappy_xerial(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            encoder
                .write_all(input)
                .map_err(|e| compress_failed(codec, e))?;
            let out = encoder.finish().map_err(|e| compress_failed(codec, e))?;
            Ok(Bytes::from(out))
        }
        Compression::Zstd => {
            let level = level.unwrap_or(ZSTD_LEVEL_DEFAULT);
            if !zstd::compression_level_range().contains(&level) {
                return Err(CompressionError::InvalidLevel { codec, level });
            }
            let out = zstd::bulk::compress(input, level).map_err(|e| compress_failed(codec, e))?;
            Ok(Bytes::from(out))
        }
    }
}

fn compress_snappy_xerial(input: &[u8]) -> Result<Bytes, CompressionError> {
    let codec = Compression::Snappy;
    let blocks = input.len().div_ceil(SNAPPY_XERIAL_BLOCK_SIZE_BYTES);
    let mut out = Vec::with_capacity(
        SNAPPY_XERIAL_HEADER_SIZE_BYTES
            + blocks * (4 + snap::raw::max_compress_len(SNAPPY_XERIAL_BLOCK_SIZE_BYTES)),
    );
    out.extend_from_slice(&SNAPPY_XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(SNAPPY_XERIAL_BLOCK_SIZE_BYTES) {
        let length_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let block_at = out.len();
        out.resize(block_at + snap::raw::max_compress_len(block.len()), 0);
        let written = encoder
            .compress(block, &mut out[block_at..])
            .map_err(|e| compress_failed(codec, e))?;
        out.truncate(block_at + written);
        // A block of at most 32 KiB compresses to well under 2 GiB.
        let written = u32::try_from(written).map_err(|e| compress_failed(codec, e))?;
        out[length_at..block_at].copy_from_slice(&written.to_be_bytes());
    }
    Ok(Bytes::from(out))
}

/// Decompresses `input` written with `codec`, refusing to produce more than `max_inflated_bytes`.
///
/// `Compression::None` returns `input` itself (no copy, no cap: it is already as large as it
/// will get). Never panics, whatever `input` holds.
pub fn decompress(
    codec: Compression,
    input: &Bytes,
    max_inflated_bytes: usize,
) -> Result<Bytes, CompressionError> {
    match codec {
        Compression::None => Ok(input.clone()),
        Compression::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(&input[..]),
            codec,
            input.len(),
            max_inflated_bytes,
        ),
        Compression::Snappy => decompress_snappy(input, max_inflated_bytes),
        Compression::Lz4 => read_capped(
            lz4_flex::frame::FrameDecoder::new(&input[..]),
            codec,
            input.len(),
            max_inflated_bytes,
        ),
        Compression::Zstd => decompress_zstd(input, max_inflated_bytes),
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused across batches: creating a context
    /// costs more than decoding a typical 16 KiB producer batch.
    static ZSTD_CONTEXT: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn new_zstd_context() -> Result<zstd::zstd_safe::DCtx<'static>, CompressionError> {
    let mut context = zstd::zstd_safe::DCtx::create();
    context
        .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
            ZSTD_WINDOW_LOG_MAX,
        ))
        .map_err(|code| corrupt(Compression::Zstd, zstd::zstd_safe::get_error_name(code)))?;
    Ok(context)
}

fn decompress_zstd(input: &Bytes, max_inflated_bytes: usize) -> Result<Bytes, CompressionError> {
    let codec = Compression::Zstd;
    ZSTD_CONTEXT.with(|cell| {
        // The cell is only borrowed here and nothing below re-enters it; should it ever be
        // busy, a one-off context does the job.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            let mut context = new_zstd_context()?;
            let decoder = zstd::stream::read::Decoder::with_context(&input[..], &mut context);
            return read_capped(decoder, codec, input.len(), max_inflated_bytes);
        };
        let mut context = match slot.take() {
            Some(context) => context,
            None => new_zstd_context()?,
        };
        // `with_context` resets the session, so nothing of the previous stream leaks in.
        let decoder = zstd::stream::read::Decoder::with_context(&input[..], &mut context);
        let result = read_capped(decoder, codec, input.len(), max_inflated_bytes);
        // A context keeps buffers sized for the largest window it has seen; one grown past a
        // typical producer's window is dropped rather than pinned to the thread.
        if context.sizeof() <= ZSTD_CONTEXT_RETAINED_BYTES_MAX {
            *slot = Some(context);
        }
        result
    })
}

/// Reads `reader` to its end, failing as soon as it yields more than `max_inflated_bytes`.
fn read_capped<R: Read>(
    reader: R,
    codec: Compression,
    input_len: usize,
    max_inflated_bytes: usize,
) -> Result<Bytes, CompressionError> {
    // Start from a guess based on the input, never on anything the stream claims; `read_to_end`
    // grows the buffer as output actually arrives.
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(max_inflated_bytes));
    let limit = u64::try_from(max_inflated_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > max_inflated_bytes {
        return Err(CompressionError::InflatedTooLarge {
            codec,
            max_inflated_bytes,
        });
    }
    Ok(Bytes::from(out))
}

/// Whether `input` opens with the xerial snappy header (rather than being one raw block).
pub fn is_snappy_xerial(input: &[u8]) -> bool {
    input.len() >= SNAPPY_XERIAL_HEADER_SIZE_BYTES && input[..8] == SNAPPY_XERIAL_MAGIC
}

fn decompress_snappy(input: &[u8], max_inflated_bytes: usize) -> Result<Bytes, CompressionError> {
    let mut out = Vec::new();
    if is_snappy_xerial(input) {
        let mut pos = 0;
        while pos < input.len() {
            // snappy-java's SnappyInputStream accepts concatenated streams: a header may follow
            // the blocks of the one before. A block length never starts with 0x82 (it would be
            // negative), so the magic is unambiguous here.
            if is_snappy_xerial(&input[pos..]) {
                pos += SNAPPY_XERIAL_HEADER_SIZE_BYTES;
                continue;
            }
            let Some(length_bytes) = input.get(pos..pos + 4) else {
                return Err(corrupt(
                    Compression::Snappy,
                    format!("xerial block length truncated at byte {pos}"),
                ));
            };
            let length = i32::from_be_bytes([
                length_bytes[0],
                length_bytes[1],
                length_bytes[2],
                length_bytes[3],
            ]);
            pos += 4;
            let block = usize::try_from(length)
                .ok()
                .and_then(|len| input.get(pos..pos.checked_add(len)?))
                .ok_or_else(|| {
                    corrupt(
                        Compression::Snappy,
                        format!(
                            "xerial block of {length} bytes at byte {pos} runs past the {} input bytes",
                            input.len()
                        ),
                    )
                })?;
            pos += block.len();
            decompress_snappy_raw_into(block, &mut out, max_inflated_bytes)?;
        }
    } else {
        decompress_snappy_raw_into(input, &mut out, max_inflated_bytes)?;
    }
    Ok(Bytes::from(out))
}

/// Decodes one raw snappy block and appends it to `out`, keeping `out` within the cap.
fn decompress_snappy_raw_into(
    block: &[u8],
    out: &mut Vec<u8>,
    max_inflated_bytes: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let claimed = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if claimed > max_inflated_bytes.saturating_sub(out.len()) {
        return Err(CompressionError::InflatedTooLarge {
            codec,
            max_inflated_bytes,
        });
    }
    // The claimed length is only trusted once it is both under the cap and physically possible
    // for a block of this size.
    if claimed > block.len().saturating_mul(SNAPPY_EXPANSION_RATIO_MAX) {
        return Err(corrupt(
            codec,
            format!(
                "block of {} bytes claims {claimed} bytes of output",
                block.len()
            ),
        ));
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, e))?;
    if written != claimed {
        return Err(corrupt(
            codec,
            format!("block claims {claimed} bytes but holds {written}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for len in [0, 1, 100, SNAPPY_XERIAL_BLOCK_SIZE_BYTES + 1, 300_000] {
                let input = sample(len);
                let packed = compress(codec, &input).expect("compress");
                let unpacked = decompress(codec, &packed, len).expect("decompress");
                assert_eq!(unpacked, input, "{codec:?} len {len}");
            }
        }
    }

    #[test]
    fn snappy_writes_xerial_framing_with_32k_blocks() {
        let input = sample(SNAPPY_XERIAL_BLOCK_SIZE_BYTES * 2 + 10);
        let packed = compress(Compression::Snappy, &input).expect("compress");
        assert_eq!(&packed[..16], &SNAPPY_XERIAL_HEADER[..]);
        // Walk the blocks: three of them, each a valid raw snappy block.
        let mut pos = 16;
        let mut sizes = Vec::new();
        while pos < packed.len() {
            let len =
                u32::from_be_bytes(packed[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            pos += 4;
            let block = snap::raw::Decoder::new()
                .decompress_vec(&packed[pos..pos + len])
                .expect("raw block");
            sizes.push(block.len());
            pos += len;
        }
        assert_eq!(sizes, [32 * 1024, 32 * 1024, 10]);
    }

    #[test]
    fn capped_decompression_refuses_one_byte_over() {
        for codec in ALL.into_iter().skip(1) {
            let input = sample(10_000);
            let packed = compress(codec, &input).expect("compress");
            assert!(decompress(codec, &packed, 10_000).is_ok(), "{codec:?}");
            assert_eq!(
                decompress(codec, &packed, 9_999),
                Err(CompressionError::InflatedTooLarge {
                    codec,
                    max_inflated_bytes: 9_999
                }),
                "{codec:?}"
            );
        }
    }

    /// The per-thread zstd context is reused: a stream cut short, a corrupt one or one over the
    /// cap must not leave state behind that changes how the next stream decodes.
    #[test]
    fn zstd_context_reuse_leaves_nothing_behind() {
        let input = sample(200_000);
        let packed = compress(Compression::Zstd, &input).expect("compress");
        let cut = packed.slice(..packed.len() / 2);
        let mut garbled = packed.to_vec();
        garbled[packed.len() / 2] ^= 0xff;
        let garbled = Bytes::from(garbled);
        for bad in [&cut, &garbled] {
            assert!(decompress(Compression::Zstd, bad, input.len()).is_err());
            assert_eq!(
                decompress(Compression::Zstd, &packed, input.len()).expect("good stream"),
                input
            );
        }
        assert!(decompress(Compression::Zstd, &packed, 1000).is_err());
        assert_eq!(
            decompress(Compression::Zstd, &packed, input.len()).expect("good stream"),
            input
        );
    }

    #[test]
    fn invalid_levels_are_refused() {
        assert!(matches!(
            compress_with_level(Compression::Gzip, b"x", Some(10)),
            Err(CompressionError::InvalidLevel { level: 10, .. })
        ));
        assert!(matches!(
            compress_with_level(Compression::Zstd, b"x", Some(99)),
            Err(CompressionError::InvalidLevel { level: 99, .. })
        ));
        let packed = compress_with_level(Compression::Zstd, b"abcabcabc", Some(19)).expect("19");
        assert_eq!(
            decompress(Compression::Zstd, &packed, 100).expect("decode"),
            &b"abcabcabc"[..]
        );
    }
}
