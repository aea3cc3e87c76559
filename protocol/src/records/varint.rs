//! Zigzag variable-length integers, as Kafka's `ByteUtils` reads and writes them inside records.
//!
//! A varint is at most 5 bytes and a varlong at most 10; a longer encoding is rejected, exactly as
//! Kafka rejects it. As in Kafka, bits that do not fit the target width in the last allowed byte
//! are ignored rather than rejected, so every encoding the Java client accepts is accepted here.

use bytes::BufMut;

/// Longest encoding of a 32-bit varint, in bytes.
pub const VARINT_SIZE_BYTES_MAX: usize = 5;
/// Longest encoding of a 64-bit varlong, in bytes.
pub const VARLONG_SIZE_BYTES_MAX: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The buffer ended inside the varint.
    Truncated,
    /// The continuation bit was still set in the last allowed byte.
    TooLong,
}

/// Reads a zigzag varint (32-bit) at `*pos`, not reading at or past `end`, and advances `*pos`.
///
/// An `end` past `buf.len()` is treated as `buf.len()`.
pub fn read_varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<i32, VarintError> {
    let end = end.min(buf.len());
    let mut raw: u32 = 0;
    let mut at = *pos;
    for i in 0..VARINT_SIZE_BYTES_MAX {
        if at >= end {
            return Err(VarintError::Truncated);
        }
        let byte = buf[at];
        at += 1;
        // Shifting by 28 drops the top bits of the fifth byte, as Kafka's readVarint does.
        raw |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at;
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(VarintError::TooLong)
}

/// Reads a zigzag varlong (64-bit) at `*pos`, not reading at or past `end`, and advances `*pos`.
///
/// An `end` past `buf.len()` is treated as `buf.len()`.
pub fn read_varlong(buf: &[u8], pos: &mut usize, end: usize) -> Result<i64, VarintError> {
    let end = end.min(buf.len());
    let mut raw: u64 = 0;
    let mut at = *pos;
    for i in 0..VARLONG_SIZE_BYTES_MAX {
        if at >= end {
            return Err(VarintError::Truncated);
        }
        let byte = buf[at];
        at += 1;
        // `checked_shl` is not needed: 7 * 9 = 63 < 64, and high bits shifted out are dropped as
        // Kafka's readVarlong drops them.
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at;
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(VarintError::TooLong)
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Appends `value` as a zigzag varint.
pub fn put_varint<B: BufMut>(out: &mut B, value: i32) {
    let mut raw = zigzag32(value);
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// Appends `value` as a zigzag varlong.
pub fn put_varlong<B: BufMut>(out: &mut B, value: i64) {
    let mut raw = zigzag64(value);
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// Encoded size of `value` as a zigzag varint, in bytes.
pub fn varint_size_bytes(value: i32) -> usize {
    let bits = 32 - zigzag32(value).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Encoded size of `value` as a zigzag varlong, in bytes.
pub fn varlong_size_bytes(value: i64) -> usize {
    let bits = 64 - zigzag64(value).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_edges() {
        for value in [0, 1, -1, 63, -64, 64, -65, i32::MAX, i32::MIN, 300, -300] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_size_bytes(value), "size of {value}");
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos, out.len()), Ok(value));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn varlong_round_trips_edges() {
        for value in [
            0,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            i64::from(i32::MAX) + 1,
            -1_000_000_007,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            assert_eq!(out.len(), varlong_size_bytes(value), "size of {value}");
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos, out.len()), Ok(value));
            assert_eq!(pos, out.len());
        }
    }

    /// Kafka's zigzag encoding: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3 (ByteUtils.writeVarint).
    #[test]
    fn zigzag_matches_kafka() {
        let mut out = Vec::new();
        for value in [0, -1, 1, -2] {
            put_varint(&mut out, value);
        }
        assert_eq!(out, [0, 1, 2, 3]);
    }

    #[test]
    fn six_byte_varint_is_too_long_and_short_one_truncated() {
        let long = [0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01];
        let mut pos = 0;
        assert_eq!(
            read_varint(&long, &mut pos, long.len()),
            Err(VarintError::TooLong)
        );
        assert_eq!(pos, 0, "a failed read does not advance");
        let short = [0x80u8, 0x80];
        assert_eq!(
            read_varint(&short, &mut pos, short.len()),
            Err(VarintError::Truncated)
        );
        let eleven = [0xffu8; 11];
        assert_eq!(
            read_varlong(&eleven, &mut pos, eleven.len()),
            Err(VarintError::TooLong)
        );
    }

    #[test]
    fn end_bounds_the_read() {
        let mut out = Vec::new();
        put_varint(&mut out, 1_000_000);
        let mut pos = 0;
        assert_eq!(
            read_varint(&out, &mut pos, out.len() - 1),
            Err(VarintError::Truncated)
        );
    }
}
