//! The content of a metadata snapshot: the image as the records that rebuild it, and the
//! controller addresses of the learners (voters' addresses come from configuration).
//!
//! The raft `Snapshot` around it carries the index, the term and the membership; this is its
//! `data`. Versioned like the records, so that a later build can read an older snapshot.

use std::collections::BTreeMap;

use prost::Message;
use spate_protocol::types::NodeId;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Format version written by this build.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// A snapshot's data.
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotData {
    /// [`SNAPSHOT_FORMAT_VERSION`] when written by this build.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The metadata offset (raft index) the image is at.
    #[prost(int64, tag = "2")]
    pub offset: i64,
    /// Records that rebuild the image from empty.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<MetadataRecord>,
    /// Learners' controller addresses.
    #[prost(message, repeated, tag = "4")]
    pub learners: Vec<LearnerAddress>,
}

/// A learner's controller address.
#[derive(Clone, PartialEq, Message)]
pub struct LearnerAddress {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub node_id: i32,
    /// `host:port` of its controller listener.
    #[prost(string, tag = "2")]
    pub address: String,
}

/// Why snapshot data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDataError {
    /// Not a valid prost message.
    #[error("snapshot data does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Written by a newer build.
    #[error("snapshot data has format version {0}, newer than this build reads")]
    Version(u32),
}

/// Encodes an image and the learner addresses.
pub fn encode(image: &MetadataImage, learners: &BTreeMap<NodeId, String>) -> Vec<u8> {
    SnapshotData {
        version: SNAPSHOT_FORMAT_VERSION,
        offset: image.offset,
        records: image.to_records(),
        learners: learners
            .iter()
            .map(|(id, address)| LearnerAddress {
                node_id: id.0,
                address: address.clone(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Rebuilds the image and the learner addresses from snapshot data.
pub fn decode(
    bytes: &[u8],
) -> Result<(MetadataImage, BTreeMap<NodeId, String>), SnapshotDataError> {
    let data = SnapshotData::decode(bytes)?;
    if data.version > SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotDataError::Version(data.version));
    }
    let mut image = MetadataImage::empty();
    for record in &data.records {
        if let Err(error) = image.apply(data.offset, record) {
            // The records were produced from a valid image; one that does not apply is skipped
            // the same way on every node, as during replay.
            tracing::warn!(%error, "skipping a snapshot record that does not apply");
        }
    }
    image.offset = data.offset;
    let learners = data
        .learners
        .into_iter()
        .map(|l| (NodeId(l.node_id), l.address))
        .collect();
    Ok((image, learners))
}
