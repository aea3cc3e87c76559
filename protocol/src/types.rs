//! Newtypes for the numbers that must never mix.
//!
//! A Kafka offset, a leader epoch, a partition index and a node id are all small integers on the
//! wire; keeping them as distinct types means a leader epoch can never be passed where an offset is
//! expected. Conversions to and from the raw wire integers happen here and only here.

use std::fmt;

macro_rules! newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

newtype!(
    /// A Kafka log offset: the position of a record in a partition, counted in records.
    Offset(i64)
);
newtype!(
    /// A partition leader epoch, bumped by the controller on every leader change.
    LeaderEpoch(i32)
);
newtype!(
    /// A partition index within a topic.
    PartitionId(i32)
);
newtype!(
    /// A broker or controller node id.
    NodeId(i32)
);
newtype!(
    /// A producer id assigned by InitProducerId.
    ProducerId(i64)
);
newtype!(
    /// A producer epoch, bumped on every InitProducerId for the same transactional id.
    ProducerEpoch(i16)
);

impl Offset {
    /// The offset `n` records after this one.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl LeaderEpoch {
    /// The epoch Kafka uses for "no epoch known" (`-1` on the wire).
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);
}

impl ProducerId {
    /// The producer id of a producer without idempotence (`-1` on the wire).
    pub const NONE: ProducerId = ProducerId(-1);
}
