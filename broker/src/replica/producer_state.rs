//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! batches it wrote, so that a retried batch is answered with its original offsets and a gap in
//! sequence numbers is refused (Kafka's `ProducerStateManager`, KIP-98 / KIP-360).

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use spate_protocol::types::{Offset, ProducerEpoch, ProducerId};

/// Batches remembered per producer for duplicate detection; Kafka keeps the last five, matching
/// the largest `max.in.flight.requests.per.connection` that idempotence allows.
pub const CACHED_BATCHES_PER_PRODUCER: usize = 5;
/// Format version of the producer snapshot this build writes.
const SNAPSHOT_VERSION: u16 = 1;

/// What one appended batch looked like, for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the first record.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub first_offset: Offset,
    /// Offset of the last record.
    pub last_offset: Offset,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

/// State of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: ProducerEpoch,
    /// The most recent batches, oldest first.
    pub batches: VecDeque<BatchMetadata>,
    /// Timestamp of the last write, for DescribeProducers and expiry.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    /// Sequence of the last record written, -1 when none.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_sequence)
    }
}

/// Why a batch is refused by the sequence checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// An epoch older than the producer's current one: INVALID_PRODUCER_EPOCH.
    #[error(
        "epoch {batch_epoch} of producer {producer_id} is older than its current epoch {current_epoch}"
    )]
    StaleEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        batch_epoch: i16,
        /// The current epoch.
        current_epoch: i16,
    },
    /// A sequence that does not follow the last one: OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error(
        "out of order sequence number for producer {producer_id}: expected {expected}, got {received}"
    )]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The next sequence expected.
        expected: i32,
        /// The batch's first sequence.
        received: i32,
    },
}

/// The outcome of checking a batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended: answer with these offsets and do not append again.
    Duplicate(BatchMetadata),
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

/// Whether `next` directly follows `last`, with the wrap-around at `i32::MAX` Kafka uses.
fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStateTable {
    /// An empty table.
    pub fn new() -> ProducerStateTable {
        ProducerStateTable::default()
    }

    /// The entry of a producer.
    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id.0)
    }

    /// Every producer with state.
    pub fn iter(&self) -> impl Iterator<Item = (ProducerId, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (ProducerId(*id), e))
    }

    /// Checks a client batch against the producer's state (Kafka's `checkProducerEpoch`,
    /// `findDuplicateBatch` and `checkSequence`).
    pub fn check(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        first_sequence: i32,
        last_sequence: i32,
    ) -> Result<SequenceCheck, SequenceError> {
        let Some(entry) = self.producers.get(&producer_id.0) else {
            // Unknown producer (new, or its state expired): any sequence is accepted.
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: producer_id.0,
                batch_epoch: epoch.0,
                current_epoch: entry.epoch.0,
            });
        }
        if epoch == entry.epoch
            && let Some(duplicate) = entry
                .batches
                .iter()
                .find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate(*duplicate));
        }
        if epoch > entry.epoch {
            // A bumped epoch must start over at sequence 0 (KIP-360).
            if first_sequence != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id: producer_id.0,
                    expected: 0,
                    received: first_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last = entry.last_sequence();
        if last >= 0 && !in_sequence(last, first_sequence) {
            return Err(SequenceError::OutOfOrder {
                producer_id: producer_id.0,
                expected: last.wrapping_add(1),
                received: first_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (from a client, a replica fetch, or log recovery).
    pub fn record(&mut self, producer_id: ProducerId, epoch: ProducerEpoch, batch: BatchMetadata) {
        let entry = self
            .producers
            .entry(producer_id.0)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: batch.max_timestamp,
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = batch.max_timestamp;
        entry.batches.push_back(batch);
        while entry.batches.len() > CACHED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
    }

    /// Forgets every batch at or after `offset` (the log was truncated there).
    pub fn truncate_to(&mut self, offset: Offset) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.last_offset < offset);
            !entry.batches.is_empty()
        });
    }

    /// Forgets producers whose last write is older than `expire_before_ms`
    /// (`producer.id.expiration.ms`).
    pub fn expire(&mut self, expire_before_ms: i64) {
        self.producers
            .retain(|_, entry| entry.last_timestamp >= expire_before_ms);
    }

    /// Serializes the table for a producer snapshot file.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u16(SNAPSHOT_VERSION);
        out.put_u32(self.producers.len() as u32);
        for (id, entry) in &self.producers {
            out.put_i64(*id);
            out.put_i16(entry.epoch.0);
            out.put_i64(entry.last_timestamp);
            out.put_u8(entry.batches.len() as u8);
            for b in &entry.batches {
                out.put_i32(b.first_sequence);
                out.put_i32(b.last_sequence);
                out.put_i64(b.first_offset.0);
                out.put_i64(b.last_offset.0);
                out.put_i64(b.max_timestamp);
            }
        }
        out.freeze()
    }

    /// Parses a snapshot written by [`ProducerStateTable::encode`]; `None` when it is not one.
    pub fn decode(mut bytes: Bytes) -> Option<ProducerStateTable> {
        const ENTRY_HEADER_BYTES: usize = 8 + 2 + 8 + 1;
        const BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;
        if bytes.remaining() < 6 || bytes.get_u16() != SNAPSHOT_VERSION {
            return None;
        }
        let count = bytes.get_u32() as usize;
        let mut producers = HashMap::new();
        for _ in 0..count {
            if bytes.remaining() < ENTRY_HEADER_BYTES {
                return None;
            }
            let id = bytes.get_i64();
            let epoch = ProducerEpoch(bytes.get_i16());
            let last_timestamp = bytes.get_i64();
            let batch_count = bytes.get_u8() as usize;
            if bytes.remaining() < batch_count * BATCH_BYTES {
                return None;
            }
            let batches = (0..batch_count)
                .map(|_| BatchMetadata {
                    first_sequence: bytes.get_i32(),
                    last_sequence: bytes.get_i32(),
                    first_offset: Offset(bytes.get_i64()),
                    last_offset: Offset(bytes.get_i64()),
                    max_timestamp: bytes.get_i64(),
                })
                .collect();
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        bytes.is_empty().then_some(ProducerStateTable { producers })
    }
}

/// Producers remembered by a [`RefusedHeads`] at most; past that it starts over, which only
/// gives back Kafka's plain answer for the producers it forgot.
const REFUSED_HEADS_MAX: usize = 4096;

/// The next batch of each producer that this replica refused with a retriable error before
/// appending it (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER), keyed by producer id.
///
/// A producer pipelines batches, so when the head of its sequence is refused the batches behind
/// it are already on the way. Should the refusal's cause clear in between (the ISR grows back,
/// leadership is taken up), Kafka answers them OUT_OF_ORDER_SEQUENCE_NUMBER, and librdkafka
/// answers that by bumping its epoch and re-sequencing every unacknowledged message, including
/// ones an earlier leader may already hold: a duplicate. Refusing such a batch with the head's
/// own retriable error instead makes the producer retry in order, so the head is appended (or
/// deduplicated) first and no epoch bump happens.
#[derive(Debug)]
pub struct RefusedHeads<T> {
    heads: HashMap<i64, (ProducerEpoch, i32, T)>,
}

impl<T> Default for RefusedHeads<T> {
    fn default() -> RefusedHeads<T> {
        RefusedHeads {
            heads: HashMap::new(),
        }
    }
}

impl<T: Copy> RefusedHeads<T> {
    /// Remembers that `sequence`, the next one of `producer_id` at `epoch`, was refused with
    /// `refusal`.
    pub fn remember(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        sequence: i32,
        refusal: T,
    ) {
        if self.heads.len() >= REFUSED_HEADS_MAX && !self.heads.contains_key(&producer_id.0) {
            self.heads.clear();
        }
        self.heads.insert(producer_id.0, (epoch, sequence, refusal));
    }

    /// The refusal to repeat for a batch of `producer_id` at `epoch` that was refused as out of
    /// order because `expected` is missing: the missing batch's own refusal, if this replica
    /// refused it.
    pub fn refusal_for_gap(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        expected: i32,
    ) -> Option<T> {
        match self.heads.get(&producer_id.0) {
            Some(&(e, sequence, refusal)) if e == epoch && sequence == expected => Some(refusal),
            _ => None,
        }
    }

    /// Forgets the producer once one of its batches is appended.
    pub fn forget(&mut self, producer_id: ProducerId) {
        self.heads.remove(&producer_id.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_sequence: i32, last_sequence: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_sequence,
            last_sequence,
            first_offset: Offset(first_offset),
            last_offset: Offset(first_offset + i64::from(last_sequence - first_sequence)),
            max_timestamp: 1000,
        }
    }

    const PID: ProducerId = ProducerId(7);
    const E0: ProducerEpoch = ProducerEpoch(0);

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
        let mut table = ProducerStateTable::new();
        table.record(PID, E0, batch(0, 9, 100));
        assert_eq!(
            table.check(PID, E0, 0, 9),
            Ok(SequenceCheck::Duplicate(batch(0, 9, 100)))
        );
        assert_eq!(table.check(PID, E0, 10, 19), Ok(SequenceCheck::Append));
    }

    #[test]
    fn a_gap_in_sequences_is_out_of_order() {
        let mut table = ProducerStateTable::new();
        table.record(PID, E0, batch(0, 9, 100));
        assert!(matches!(
            table.check(PID, E0, 11, 20),
            Err(SequenceError::OutOfOrder {
                expected: 10,
                received: 11,
                ..
            })
        ));
    }

    #[test]
    fn epochs_fence_and_reset_sequences() {
        let mut table = ProducerStateTable::new();
        table.record(PID, ProducerEpoch(3), batch(0, 0, 0));
        assert!(matches!(
            table.check(PID, ProducerEpoch(2), 1, 1),
            Err(SequenceError::StaleEpoch { .. })
        ));
        assert_eq!(
            table.check(PID, ProducerEpoch(4), 0, 0),
            Ok(SequenceCheck::Append)
        );
        assert!(table.check(PID, ProducerEpoch(4), 5, 5).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::new();
        for i in 0..7 {
            table.record(PID, E0, batch(i, i, i64::from(i)));
        }
        assert_eq!(table.get(PID).unwrap().batches.len(), 5);
        // The oldest retained batch is still recognised; an evicted one is not a duplicate and,
        // being behind the last sequence, is out of order.
        assert!(matches!(
            table.check(PID, E0, 2, 2),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert!(table.check(PID, E0, 0, 0).is_err());
    }

    #[test]
    fn snapshots_round_trip_and_truncation_forgets_later_batches() {
        let mut table = ProducerStateTable::new();
        table.record(PID, E0, batch(0, 4, 0));
        table.record(PID, E0, batch(5, 9, 5));
        table.record(ProducerId(8), ProducerEpoch(1), batch(0, 0, 10));
        let decoded = ProducerStateTable::decode(table.encode()).unwrap();
        assert_eq!(decoded, table);
        table.truncate_to(Offset(5));
        assert_eq!(table.get(PID).unwrap().last_sequence(), 4);
        assert!(table.get(ProducerId(8)).is_none());
        assert!(ProducerStateTable::decode(Bytes::from_static(b"garbage")).is_none());
    }
}
