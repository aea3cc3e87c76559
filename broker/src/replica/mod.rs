//! Local partition replicas: their logs, producer state and high watermarks.

pub mod manager;
pub mod partition;
pub mod producer_state;
pub mod settings;
