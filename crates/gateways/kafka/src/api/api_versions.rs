//! ApiVersions: which APIs and versions Porter serves. Also the KIP-511 answer to a client that
//! asks with a version Porter does not know: a v0-format response with UNSUPPORTED_VERSION and
//! the list, so the client can retry with a version both sides speak.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::supported_versions;

pub fn handle() -> ApiVersionsResponse {
    let api_keys = ApiKey::iter()
        .filter_map(|key| {
            let (min, max) = supported_versions(key)?;
            Some(
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The response to an ApiVersions request of an unsupported version; encode it as v0.
pub fn unsupported_version() -> ApiVersionsResponse {
    handle().with_error_code(ResponseError::UnsupportedVersion.code())
}
