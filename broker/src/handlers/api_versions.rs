//! ApiVersions (key 18): the versions of every API this broker serves.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use spate_protocol::header::{EncodeError, encode_response};
use spate_protocol::versions::SUPPORTED_APIS;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, versions)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(versions.min)
                .with_max_version(versions.max)
        })
        .collect()
}

/// Whether a client software name or version is acceptable (KIP-511): non-empty, and made of
/// letters, digits, `.`, `-`, starting and ending with a letter or digit.
fn valid_software_field(value: &StrBytes) -> bool {
    let s = value.as_str();
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && alnum(s.chars().next())
        && alnum(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Serves ApiVersions at a supported version.
pub fn handle(request: &ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    // v3+ carries the client's name and version (KIP-511); Kafka refuses malformed ones with
    // INVALID_REQUEST and no version list.
    if version >= 3
        && (!valid_software_field(&request.client_software_name)
            || !valid_software_field(&request.client_software_version))
    {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::InvalidRequest.code());
    }
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The answer to ApiVersions at a version newer than served: v0 format, header v0,
/// UNSUPPORTED_VERSION, and the supported ranges.
pub fn unsupported_version(correlation_id: i32) -> Result<Bytes, EncodeError> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &response).map(|b| b.freeze())
}
