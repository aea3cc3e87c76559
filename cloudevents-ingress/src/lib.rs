//! CloudEvents 1.0 over HTTP into Kafka topics, and triggers that deliver them to subscribers,
//! with the semantics of Knative Eventing's Kafka Broker.
//!
//! Owns the CloudEvents codecs, validation, the ingress HTTP router, the broker and trigger
//! model (with Knative YAML), trigger filters including CESQL, delivery specs, and the
//! dispatcher. Talks to the broker only through the [`log::EventLog`] trait (append, read,
//! commit, leadership, topic creation), never its internals; it must not depend on
//! spate-broker.
//!
//! Layout:
//! - [`event`]: the event model and CloudEvents 1.0.2 validation.
//! - [`codec`]: HTTP (binary, structured, batch), Kafka binary content mode, JSON format.
//! - [`cesql`]: CloudEvents SQL v1, parsed once, evaluated per event.
//! - [`filter`]: trigger filters (attributes and the SubscriptionsAPI dialects).
//! - [`delivery`]: Knative's DeliverySpec, ISO-8601 durations, backoff.
//! - [`model`]: brokers and triggers; [`knative`]: Knative Broker/Trigger YAML.
//! - [`ingress`]: the axum router for `POST /{namespace}/{broker}`.
//! - [`dispatcher`]: per trigger and led partition workers; [`sender`]: HTTP delivery with
//!   retries; [`clock`]: pausable time for backoff.
//! - [`registry`]: brokers and triggers in memory; [`store`]: their durable file;
//!   [`admin`]: management operations and the REST router.
//! - [`partitioner`]: Kafka's murmur2 partition choice.
//! - [`log`]: the trait the broker implements; [`memory`] an in-memory stand-in for tests.
#![deny(missing_docs)]

pub mod admin;
pub mod cesql;
pub mod clock;
pub mod codec;
pub mod delivery;
pub mod dispatcher;
pub mod event;
pub mod filter;
pub mod ingress;
pub mod knative;
pub mod log;
pub mod memory;
pub mod model;
pub mod partitioner;
pub mod registry;
pub mod sender;
pub mod store;
