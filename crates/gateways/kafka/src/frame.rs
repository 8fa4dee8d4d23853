//! Request frames in, response frames out. A frame is `i32 size | header | body`; the size prefix
//! was checked by the connection before this code sees the bytes.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

pub use crate::fetch_frame::FetchAnswer;

/// Declares the APIs Porter serves, each once with its version range: the request and response
/// enums, their decoding and encoding, and [`supported_versions`] (what ApiVersions advertises
/// and what [`decode_request`] accepts). One table, so advertising an API and decoding it cannot
/// disagree. (kafka-protocol's own all-APIs enums double build times.)
macro_rules! served_apis {
    ($($(#[$doc:meta])* $api:ident => $request:ident, $response:ident, $min:literal ..= $max:literal;)*) => {
        #[derive(Debug)]
        pub enum RequestKind { $($api($request),)* }

        #[derive(Debug)]
        pub enum ResponseKind { $($api($response),)* }

        /// The versions Porter serves of `api_key`: (min, max), or None if it is not served.
        /// Kept within what `kafka-protocol` can decode.
        pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
            let ours: (i16, i16) = match api_key {
                $(ApiKey::$api => ($min, $max),)*
                _ => return None,
            };
            let crate_range = api_key.valid_versions();
            let min = ours.0.max(crate_range.min);
            let max = ours.1.min(crate_range.max);
            (min <= max).then_some((min, max))
        }

        impl RequestKind {
            fn decode(api_key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Option<Self>> {
                Ok(Some(match api_key {
                    $(ApiKey::$api => RequestKind::$api(Decodable::decode(buf, version)?),)*
                    _ => return Ok(None),
                }))
            }
        }

        impl ResponseKind {
            fn encode(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
                match self { $(ResponseKind::$api(r) => r.encode(buf, version),)* }
            }

            fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
                match self { $(ResponseKind::$api(r) => r.compute_size(version),)* }
            }
        }
    };
}

served_apis! {
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse, 0..=3;
    Metadata => MetadataRequest, MetadataResponse, 0..=12;
    // KIP-966: Metadata's topics, paginated, for clients of large clusters.
    DescribeTopicPartitions => DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, 0..=0;
    // v13 of Produce and of Fetch name topics by id (KIP-516). Fetch v15+ only adds fields of
    // follower fetches (replica state, directory id, high watermark), v16 leader endpoints in
    // the response for NOT_LEADER answers, which a single broker never gives.
    Produce => ProduceRequest, ProduceResponse, 3..=13;
    // The answer's records stay in the segment files until written (see `fetch_frame`).
    Fetch => FetchRequest, FetchAnswer, 4..=18;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse, 1..=7;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse, 2..=7;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse, 1..=6;
    // Topic admin. None of these versions carries topic ids.
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse, 0..=3;
    DeleteRecords => DeleteRecordsRequest, DeleteRecordsResponse, 0..=2;
    DescribeConfigs => DescribeConfigsRequest, DescribeConfigsResponse, 1..=4;
    AlterConfigs => AlterConfigsRequest, AlterConfigsResponse, 0..=2;
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, 0..=1;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse, 0..=2;
    DescribeLogDirs => DescribeLogDirsRequest, DescribeLogDirsResponse, 1..=4;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse, 0..=4;
    JoinGroup => JoinGroupRequest, JoinGroupResponse, 0..=9;
    SyncGroup => SyncGroupRequest, SyncGroupResponse, 0..=5;
    Heartbeat => HeartbeatRequest, HeartbeatResponse, 0..=4;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse, 0..=5;
    // v9+ belong to the KIP-848 consumer protocol, v10 to topic IDs.
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse, 2..=8;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse, 1..=8;
    OffsetDelete => OffsetDeleteRequest, OffsetDeleteResponse, 0..=0;
    ListGroups => ListGroupsRequest, ListGroupsResponse, 0..=4;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse, 0..=5;
    DeleteGroups => DeleteGroupsRequest, DeleteGroupsResponse, 0..=2;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse, 0..=4;
    DescribeProducers => DescribeProducersRequest, DescribeProducersResponse, 0..=0;
    // v0 sent raw SASL tokens outside Kafka framing; Kafka 4.0 removed it (KIP-896).
    SaslHandshake => SaslHandshakeRequest, SaslHandshakeResponse, 1..=1;
    SaslAuthenticate => SaslAuthenticateRequest, SaslAuthenticateResponse, 0..=2;
    DescribeUserScramCredentials => DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, 0..=0;
    AlterUserScramCredentials => AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, 0..=0;
    DescribeAcls => DescribeAclsRequest, DescribeAclsResponse, 1..=3;
    CreateAcls => CreateAclsRequest, CreateAclsResponse, 1..=3;
    DeleteAcls => DeleteAclsRequest, DeleteAclsResponse, 1..=3;
    DescribeClientQuotas => DescribeClientQuotasRequest, DescribeClientQuotasResponse, 0..=1;
    AlterClientQuotas => AlterClientQuotasRequest, AlterClientQuotasResponse, 0..=1;
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

#[derive(Debug)]
pub enum FrameError {
    /// Fewer than the 8 bytes every request header starts with.
    TooShort(usize),
    UnknownApiKey {
        api_key: i16,
        correlation_id: i32,
    },
    /// A known API at a version Porter does not serve.
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "request of {n} bytes is shorter than a header"),
            FrameError::UnknownApiKey { api_key, .. } => write!(f, "unknown API key {api_key}"),
            FrameError::UnsupportedVersion {
                api_key, version, ..
            } => write!(f, "unsupported version {version} of {api_key:?}"),
            FrameError::Malformed {
                api_key,
                version,
                reason,
            } => write!(f, "malformed {api_key:?} v{version} request: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Decodes one request frame (without its size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    match supported_versions(api_key) {
        Some((min, max)) if (min..=max).contains(&version) => {}
        _ => {
            return Err(FrameError::UnsupportedVersion {
                api_key,
                version,
                correlation_id,
            })
        }
    }
    let malformed = |e: anyhow::Error| FrameError::Malformed {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version)
        .map_err(malformed)?
        // Unreachable: the table that admits a version also declares the decoder.
        .ok_or(FrameError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        })?;
    Ok(Request {
        api_key,
        version,
        header,
        body,
    })
}

/// Encodes a response frame, size prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    // Sized up front: a fetch response can be tens of MiB, and growing by doubling would
    // briefly hold two or three copies of it.
    let mut buf = BytesMut::with_capacity(64 + body.compute_size(version)?);
    buf.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api_key.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised (API, version) decodes: an empty request of each, at both ends of its
    /// range, passes `decode_request`; and one past the range is refused.
    #[test]
    fn advertised_versions_are_the_decodable_ones() {
        let mut served = 0;
        for api_key in ApiKey::iter() {
            let Some((min, max)) = supported_versions(api_key) else {
                continue;
            };
            served += 1;
            for version in [min, max] {
                let frame = header_only(api_key, version);
                match decode_request(frame) {
                    Ok(request) => {
                        assert_eq!((request.api_key, request.version), (api_key, version))
                    }
                    // An empty body may be too short for some APIs; it must not be refused as
                    // an unsupported version.
                    Err(FrameError::Malformed { .. }) => {}
                    Err(e) => panic!("{api_key:?} v{version} advertised but refused: {e}"),
                }
            }
            assert!(matches!(
                decode_request(header_only(api_key, max + 1)),
                Err(FrameError::UnsupportedVersion { .. })
            ));
        }
        assert_eq!(served, 37);
    }

    fn header_only(api_key: ApiKey, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        buf.freeze()
    }
}
