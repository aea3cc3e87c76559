//! Local partition replicas: their logs, producer state and high watermarks, and their
//! replication (leaders, followers, ISR).
//!
//! # Layout
//! - [`manager`]: the set of hosted replicas, reconciled with the metadata image.
//! - [`partition`]: one replica; its [`partition::replicated`] half is the replication protocol.
//! - [`replication`]: the pure leader-side rules (high watermark, ISR membership, truncation).
//! - [`fetcher`]: the follower side, fetching from leaders.
//! - [`tasks`]: ISR changes sent to the controller, ISR shrink checks, high-watermark
//!   checkpoints and replication metrics.
//! - [`producer_state`], [`settings`].

pub mod fetcher;
pub mod manager;
pub mod partition;
pub mod producer_state;
pub mod replication;
pub mod settings;
pub mod tasks;
