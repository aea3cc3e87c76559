//! Cluster metadata: the records that describe it, the immutable image built by applying them,
//! and the controller that decides and orders them.
//!
//! Uses `spate-protocol` only for its newtypes; the broker reads the image and proposes records
//! through a frontend, never by reaching into the state machine.
#![deny(missing_docs)]
