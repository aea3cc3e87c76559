//! The single table of API versions Spate serves. ApiVersions answers from it, and the request
//! pipeline refuses anything outside it.
//!
//! Each range is the one Apache Kafka 4.3 advertises for that API, capped by what the
//! `kafka-protocol` schemas can decode (ListOffsets v11, DescribeLogDirs v5 and the topic-id
//! versions of OffsetCommit and OffsetFetch, v10, are patched into the vendored crate).
//! Produce is advertised from v0 exactly as Kafka 4 does (KAFKA-18659: librdkafka turns
//! compression off unless v0 is listed), while v0-v2 requests themselves are refused, again as
//! Kafka 4 refuses them.

use kafka_protocol::messages::ApiKey;

/// An inclusive range of API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Oldest version served.
    pub min: i16,
    /// Newest version served.
    pub max: i16,
}

impl Versions {
    /// Whether `version` lies in the range.
    pub fn contains(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Produce versions Kafka 4 advertises but no longer decodes (KIP-896).
pub const PRODUCE_REMOVED_MAX_VERSION: i16 = 2;

/// Every API Spate implements, with the versions it serves. Order is by API key.
pub const SUPPORTED_APIS: &[(ApiKey, Versions)] = &[
    (ApiKey::Produce, Versions { min: 0, max: 13 }),
    (ApiKey::Fetch, Versions { min: 4, max: 18 }),
    (ApiKey::ListOffsets, Versions { min: 1, max: 11 }),
    (ApiKey::Metadata, Versions { min: 0, max: 13 }),
    (ApiKey::OffsetCommit, Versions { min: 2, max: 10 }),
    (ApiKey::OffsetFetch, Versions { min: 1, max: 10 }),
    (ApiKey::FindCoordinator, Versions { min: 0, max: 6 }),
    (ApiKey::JoinGroup, Versions { min: 0, max: 9 }),
    (ApiKey::Heartbeat, Versions { min: 0, max: 4 }),
    (ApiKey::LeaveGroup, Versions { min: 0, max: 5 }),
    (ApiKey::SyncGroup, Versions { min: 0, max: 5 }),
    (ApiKey::DescribeGroups, Versions { min: 0, max: 6 }),
    (ApiKey::ListGroups, Versions { min: 0, max: 5 }),
    (ApiKey::ApiVersions, Versions { min: 0, max: 4 }),
    (ApiKey::CreateTopics, Versions { min: 2, max: 7 }),
    (ApiKey::DeleteTopics, Versions { min: 1, max: 6 }),
    (ApiKey::DeleteRecords, Versions { min: 0, max: 2 }),
    (ApiKey::InitProducerId, Versions { min: 0, max: 5 }),
    (ApiKey::OffsetForLeaderEpoch, Versions { min: 2, max: 4 }),
    (ApiKey::DescribeConfigs, Versions { min: 1, max: 4 }),
    (ApiKey::AlterConfigs, Versions { min: 0, max: 2 }),
    (ApiKey::DescribeLogDirs, Versions { min: 1, max: 5 }),
    (ApiKey::CreatePartitions, Versions { min: 0, max: 3 }),
    (ApiKey::DeleteGroups, Versions { min: 0, max: 2 }),
    (ApiKey::ElectLeaders, Versions { min: 0, max: 2 }),
    (ApiKey::IncrementalAlterConfigs, Versions { min: 0, max: 1 }),
    (ApiKey::OffsetDelete, Versions { min: 0, max: 0 }),
    (ApiKey::DescribeQuorum, Versions { min: 0, max: 2 }),
    (ApiKey::DescribeCluster, Versions { min: 0, max: 2 }),
    (ApiKey::DescribeProducers, Versions { min: 0, max: 0 }),
    (ApiKey::ConsumerGroupHeartbeat, Versions { min: 0, max: 1 }),
    (ApiKey::ConsumerGroupDescribe, Versions { min: 0, max: 1 }),
];

/// The versions served for `api_key`, or `None` when the API is not implemented.
pub fn supported_versions(api_key: ApiKey) -> Option<Versions> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _)| *key == api_key)
        .map(|(_, versions)| *versions)
}

/// Whether a request of `api_key` at `version` can be decoded and served.
pub fn is_servable(api_key: ApiKey, version: i16) -> bool {
    if api_key == ApiKey::Produce && version <= PRODUCE_REMOVED_MAX_VERSION {
        return false;
    }
    supported_versions(api_key).is_some_and(|v| v.contains(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_version_is_decodable_by_the_schemas() {
        for (key, versions) in SUPPORTED_APIS {
            let schema = key.valid_versions();
            let min = if *key == ApiKey::Produce {
                PRODUCE_REMOVED_MAX_VERSION + 1
            } else {
                versions.min
            };
            assert!(
                schema.min <= min && versions.max <= schema.max,
                "{key:?}: serving {versions:?} but schemas cover {schema:?}"
            );
        }
    }

    #[test]
    fn table_is_sorted_by_api_key_without_duplicates() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!((pair[0].0 as i16) < (pair[1].0 as i16));
        }
    }

    #[test]
    fn produce_v0_to_v2_are_advertised_but_not_served() {
        assert_eq!(supported_versions(ApiKey::Produce).map(|v| v.min), Some(0));
        assert!(!is_servable(ApiKey::Produce, 2));
        assert!(is_servable(ApiKey::Produce, 3));
    }
}
