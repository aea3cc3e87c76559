//! CloudEvents 1.0 over HTTP into Kafka topics, and triggers that deliver them to subscribers,
//! with the semantics of Knative Eventing's Kafka Broker.
//!
//! Talks to the broker only through a narrow trait (append, read, commit), never its internals.
#![deny(missing_docs)]
