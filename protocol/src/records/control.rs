//! Control records: the transaction markers (and KRaft's control records) that live in control
//! batches.
//!
//! A control record's key is `version: i16, type: i16`; Kafka writes version 0. The value of an
//! end-transaction marker (types ABORT = 0 and COMMIT = 1) is `version: i16,
//! coordinatorEpoch: i32`. As in Kafka, a newer key or value version is parsed as version 0 (new
//! versions only append fields), and a negative version is invalid.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::Compression;
use super::builder::{BuildError, NO_SEQUENCE, RecordBatchBuilder};
use super::record::{Record, RecordError};
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Version of the control record key that Kafka writes.
pub const CONTROL_KEY_VERSION: i16 = 0;
/// Size of a version 0 control record key: version and type.
pub const CONTROL_KEY_SIZE_BYTES: usize = 4;
/// Version of the end-transaction marker value that Kafka writes.
pub const END_TXN_MARKER_VERSION: i16 = 0;
/// Size of a version 0 end-transaction marker value: version and coordinator epoch.
pub const END_TXN_MARKER_VALUE_SIZE_BYTES: usize = 6;

/// The kind of a control record (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Transaction aborted.
    Abort,
    /// Transaction committed.
    Commit,
    /// KRaft: a new quorum leader.
    LeaderChange,
    /// KRaft: start of a snapshot.
    SnapshotHeader,
    /// KRaft: end of a snapshot.
    SnapshotFooter,
    /// KRaft: the kraft.version feature level.
    KraftVersion,
    /// KRaft: the voter set.
    KraftVoters,
    /// A type this version does not know; Kafka skips these rather than failing.
    Unknown(i16),
}

impl ControlRecordType {
    /// The type's id on the wire.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::LeaderChange => 2,
            ControlRecordType::SnapshotHeader => 3,
            ControlRecordType::SnapshotFooter => 4,
            ControlRecordType::KraftVersion => 5,
            ControlRecordType::KraftVoters => 6,
            ControlRecordType::Unknown(id) => id,
        }
    }

    /// The type for a wire id.
    pub fn from_id(id: i16) -> ControlRecordType {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KraftVersion,
            6 => ControlRecordType::KraftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }
}

/// A parsed control record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecordKey {
    /// Key version as written (newer versions are read as version 0).
    pub version: i16,
    /// What the control record marks.
    pub record_type: ControlRecordType,
}

fn invalid(reason: String) -> RecordError {
    RecordError::InvalidControlRecord { reason }
}

impl ControlRecordKey {
    /// A version 0 key of `record_type`.
    pub fn new(record_type: ControlRecordType) -> ControlRecordKey {
        ControlRecordKey {
            version: CONTROL_KEY_VERSION,
            record_type,
        }
    }

    /// Parses a control record's key.
    pub fn parse(key: &[u8]) -> Result<ControlRecordKey, RecordError> {
        if key.len() < CONTROL_KEY_SIZE_BYTES {
            return Err(invalid(format!(
                "key of {} bytes, need {CONTROL_KEY_SIZE_BYTES}",
                key.len()
            )));
        }
        let version = i16::from_be_bytes([key[0], key[1]]);
        if version < 0 {
            return Err(invalid(format!("negative key version {version}")));
        }
        let record_type = ControlRecordType::from_id(i16::from_be_bytes([key[2], key[3]]));
        Ok(ControlRecordKey {
            version,
            record_type,
        })
    }

    /// Parses the key of `record`, which Kafka requires to be present.
    pub fn of_record(record: &Record) -> Result<ControlRecordKey, RecordError> {
        match &record.key {
            Some(key) => ControlRecordKey::parse(key),
            None => Err(invalid("null key".to_string())),
        }
    }

    /// The encoded key.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(CONTROL_KEY_SIZE_BYTES);
        out.put_i16(self.version);
        out.put_i16(self.record_type.id());
        out.freeze()
    }
}

/// An end-transaction marker: the control record that commits or aborts a producer's
/// transaction on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// Commit (`true`) or abort.
    pub commit: bool,
    /// Epoch of the transaction coordinator that wrote it, so a zombie coordinator's markers can be
    /// told apart.
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The control record type of this marker.
    pub fn record_type(&self) -> ControlRecordType {
        if self.commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        }
    }

    /// The encoded key.
    pub fn key(&self) -> Bytes {
        ControlRecordKey::new(self.record_type()).encode()
    }

    /// The encoded value.
    pub fn value(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(END_TXN_MARKER_VALUE_SIZE_BYTES);
        out.put_i16(END_TXN_MARKER_VERSION);
        out.put_i32(self.coordinator_epoch);
        out.freeze()
    }

    /// Reads the marker from a control record; `Ok(None)` if the record is a control record of
    /// another type (KRaft's, or an unknown one).
    pub fn from_record(record: &Record) -> Result<Option<EndTxnMarker>, RecordError> {
        let key = ControlRecordKey::of_record(record)?;
        let commit = match key.record_type {
            ControlRecordType::Commit => true,
            ControlRecordType::Abort => false,
            _ => return Ok(None),
        };
        let Some(value) = &record.value else {
            return Err(invalid(
                "end transaction marker with a null value".to_string(),
            ));
        };
        if value.len() < END_TXN_MARKER_VALUE_SIZE_BYTES {
            return Err(invalid(format!(
                "end transaction marker value of {} bytes, need {END_TXN_MARKER_VALUE_SIZE_BYTES}",
                value.len()
            )));
        }
        let version = i16::from_be_bytes([value[0], value[1]]);
        if version < 0 {
            return Err(invalid(format!(
                "negative end transaction marker version {version}"
            )));
        }
        let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        Ok(Some(EndTxnMarker {
            commit,
            coordinator_epoch,
        }))
    }

    /// A control batch holding just this marker, as Kafka's
    /// `MemoryRecords.withEndTransactionMarker` writes it: transactional, control, uncompressed,
    /// CreateTime at `timestamp`, no sequence.
    pub fn build_batch(
        &self,
        base_offset: Offset,
        timestamp: i64,
        partition_leader_epoch: LeaderEpoch,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> Result<Bytes, BuildError> {
        let mut builder = RecordBatchBuilder::new(Compression::None)
            .base_offset(base_offset)
            .partition_leader_epoch(partition_leader_epoch)
            .producer(producer_id, producer_epoch, NO_SEQUENCE)
            .transactional(true)
            .control(true);
        builder.append(timestamp, Some(self.key()), Some(self.value()), Vec::new())?;
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordBatch;

    #[test]
    fn commit_marker_batch_round_trips() {
        let marker = EndTxnMarker {
            commit: true,
            coordinator_epoch: 7,
        };
        let bytes = marker
            .build_batch(
                Offset(42),
                1_000,
                LeaderEpoch(3),
                ProducerId(9),
                ProducerEpoch(2),
            )
            .expect("build");
        let batch = RecordBatch::new(bytes).expect("view");
        batch.verify_crc().expect("crc");
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(batch.base_sequence(), NO_SEQUENCE);
        assert_eq!(batch.producer_id(), ProducerId(9));
        let records: Vec<Record> = batch
            .records(1024)
            .expect("records")
            .collect::<Result<_, _>>()
            .expect("parse");
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].key.as_deref(),
            Some(&[0u8, 0, 0, 1][..]),
            "key is version 0, type COMMIT"
        );
        assert_eq!(
            records[0].value.as_deref(),
            Some(&[0u8, 0, 0, 0, 0, 7][..]),
            "value is version 0, coordinator epoch 7"
        );
        assert_eq!(EndTxnMarker::from_record(&records[0]), Ok(Some(marker)));
    }

    #[test]
    fn bad_keys_and_values_are_errors_and_unknown_types_are_skipped() {
        assert!(ControlRecordKey::parse(&[0, 0, 0]).is_err());
        assert!(ControlRecordKey::parse(&[0xff, 0xff, 0, 0]).is_err());
        // A newer key version with extra bytes is read as version 0.
        let key = ControlRecordKey::parse(&[0, 1, 0, 0, 9, 9]).expect("v1");
        assert_eq!(key.record_type, ControlRecordType::Abort);
        let mut record = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(Bytes::from_static(&[0, 0, 0, 2])),
            value: None,
            headers: vec![],
            attributes: 0,
        };
        assert_eq!(
            EndTxnMarker::from_record(&record),
            Ok(None),
            "leader change"
        );
        record.key = Some(Bytes::from_static(&[0, 0, 0, 1]));
        assert!(EndTxnMarker::from_record(&record).is_err(), "null value");
        record.value = Some(Bytes::from_static(&[0, 0, 0]));
        assert!(EndTxnMarker::from_record(&record).is_err(), "short value");
        record.key = None;
        assert!(EndTxnMarker::from_record(&record).is_err(), "null key");
    }
}
