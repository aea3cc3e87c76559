//! Harness for Spate's end-to-end tests: real `spate` processes, a real Apache Kafka as the
//! differential baseline, and real Kafka clients in several languages.
//!
//! - [`spate::SpateNode`] starts `spate serve` on free loopback ports with a temp data dir;
//! - [`cluster::SpateCluster`] starts several `spate serve` processes forming one cluster;
//! - [`kafka::KafkaNode`] starts Apache Kafka 4.3.1 (KRaft, one node) from the Maven jars;
//! - [`target::Target`] is either, picked by `SPATE_E2E_TARGET` (`spate` default, or `kafka`);
//! - [`clients`] puts every client library behind [`clients::KafkaClient`];
//! - [`scenario`] is the standard round trip every client runs, checked by [`check`];
//! - [`groups`] runs consumer group members as processes and follows their events;
//! - [`netcluster`] runs a cluster in network namespaces, for tests that cut nodes off;
//! - [`history`] checks a produce/consume history of a faulty run for loss and duplicates;
//! - [`workload`] records such a history with librdkafka while a test injects faults;
//! - [`compat`] records each feature's outcome for `docs/compatibility.md`.
//! - [`cloudevents`] has a trigger subscriber and an ingress POST for CloudEvents tests.
//!
//! Clients and Kafka are installed by `tests/setup`; a test that needs one that is missing
//! fails and says so.
#![deny(missing_docs)]

pub mod check;
pub mod clients;
pub mod cloudevents;
pub mod cluster;
pub mod compat;
pub mod groups;
pub mod history;
pub mod kafka;
pub mod netcluster;
pub mod paths;
pub mod probe;
pub mod process;
pub mod rdkafka_client;
pub mod records;
pub mod scenario;
pub mod spate;
pub mod target;
pub mod workload;
