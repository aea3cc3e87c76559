//! The Spate broker: the Kafka API server and everything it wires together.
#![deny(missing_docs)]
