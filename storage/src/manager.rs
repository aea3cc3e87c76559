//! The log manager.

/// Placeholder.
pub struct LogManager;
