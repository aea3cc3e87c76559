//! Cluster metadata: the records that describe it, the immutable image built by applying them,
//! the controller that decides them, and the Raft quorum (tikv's raft-rs) that orders them.
//!
//! Uses `spate-protocol` only for its newtypes; the broker reads the image and proposes changes
//! through a [`frontend::MetadataFrontend`], never by reaching into the state machine.
//!
//! # Layout
//! - [`records`]: the metadata records (prost messages, explicit never-reused tags).
//! - [`image`]: the immutable [`image::MetadataImage`] and how records apply to it.
//! - [`controller`]: pure decisions: placement, topics, configs, producer ids, broker fencing,
//!   leader election, ISR changes.
//! - [`frontend`]: the request/reply interface the broker uses, and the shared `decide` step.
//! - [`node`]: one quorum member as a deterministic state machine over raft-rs's `RawNode`.
//! - [`store`]: the raft log raft-rs reads, over a durable backend.
//! - [`disk`]: the file backend under `<data_dir>/__cluster_metadata/`.
//! - [`snapshot`]: what a metadata snapshot holds.
//! - [`wire`]: the controller port's frames (length-prefixed prost).
//! - [`transport`]: TCP connections between members: hello, backoff, bounded queues.
//! - [`quorum`]: [`quorum::RaftQuorum`], the running member the broker uses.
#![deny(missing_docs)]

pub mod controller;
pub mod disk;
pub mod frontend;
pub mod image;
pub mod node;
pub mod quorum;
pub mod records;
pub mod snapshot;
pub mod store;
pub mod transport;
pub mod wire;
