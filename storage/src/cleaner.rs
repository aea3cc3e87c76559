//! Log compaction.
