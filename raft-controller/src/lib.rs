//! Cluster metadata: the records that describe it, the immutable image built by applying them,
//! and the controller that decides and orders them.
//!
//! Uses `spate-protocol` only for its newtypes; the broker reads the image and proposes changes
//! through a [`frontend::MetadataFrontend`], never by reaching into the state machine.
//!
//! # Layout
//! - [`records`]: the metadata records (prost messages, explicit never-reused tags).
//! - [`image`]: the immutable [`image::MetadataImage`] and how records apply to it.
//! - [`controller`]: pure decisions: placement, topic creation/deletion, configs, producer ids.
//! - [`frontend`]: the request/reply interface the broker uses, and the shared `decide` step.
//! - [`local`]: the single-node quorum (one voter, a local checksummed log).
#![deny(missing_docs)]

pub mod controller;
pub mod frontend;
pub mod image;
pub mod local;
pub mod records;
