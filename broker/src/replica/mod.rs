//! Local partition replicas: their logs, producer state and high watermarks.

pub mod producer_state;
