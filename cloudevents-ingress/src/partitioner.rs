//! Partition choice, the same as Kafka's default partitioner for keyed records, so events with
//! a `partitionkey` land where a Kafka producer would put the same key.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Picks partitions: keyed records by murmur2 like Kafka, keyless ones round-robin.
#[derive(Debug, Default)]
pub struct Partitioner {
    next: AtomicU32,
}

impl Partitioner {
    /// The partition for a record with this key among `count` partitions (`count` >= 1).
    pub fn partition(&self, key: Option<&[u8]>, count: i32) -> i32 {
        let count = count.max(1);
        match key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) % count,
            None => (self.next.fetch_add(1, Ordering::Relaxed) % count as u32) as i32,
        }
    }

    /// The partition for a keyless record: round-robin over `preferred` (the partitions this
    /// node leads, whose appends need no hop to another node), or over all `count` partitions
    /// when `preferred` is empty.
    pub fn keyless(&self, preferred: &[i32], count: i32) -> i32 {
        if preferred.is_empty() {
            return self.partition(None, count);
        }
        let next = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        preferred[next % preferred.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Kafka's UtilsTest.testMurmur2 vectors.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn keyless_round_robin() {
        let p = Partitioner::default();
        let got: Vec<i32> = (0..6).map(|_| p.partition(None, 3)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        assert_eq!(p.partition(Some(b"k"), 3), p.partition(Some(b"k"), 3));
    }

    #[test]
    fn keyless_prefers_the_given_partitions() {
        let p = Partitioner::default();
        let got: Vec<i32> = (0..4).map(|_| p.keyless(&[1, 4], 6)).collect();
        assert_eq!(got, [1, 4, 1, 4]);
        // None preferred (this node leads nothing): every partition, round-robin.
        let p = Partitioner::default();
        let got: Vec<i32> = (0..4).map(|_| p.keyless(&[], 3)).collect();
        assert_eq!(got, [0, 1, 2, 0]);
    }
}
