//! The partition log: segments of RecordBatch v2 bytes on local disk, read through memory maps.
//!
//! Owns segment files (`.log`, `.index`, `.timeindex`), the partition log built from them,
//! retention, compaction, crash recovery and checkpoints. Depends only on `spate-protocol` for the
//! RecordBatch byte format; never on the broker, the controller or any wire message struct.
#![deny(missing_docs)]
