//! Request frames in, response frames out. A frame is `i32 size | header | body`; the size prefix
//! was checked by the connection before this code sees the bytes.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::api::supported_versions;

/// Declares the request and response enums of the APIs Porter serves, with their decoding and
/// encoding. (kafka-protocol's own all-APIs enums double build times.)
macro_rules! served_apis {
    ($($api:ident => $request:ident, $response:ident;)*) => {
        #[derive(Debug)]
        pub enum RequestKind { $($api($request),)* }

        #[derive(Debug)]
        pub enum ResponseKind { $($api($response),)* }

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
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse;
    DeleteRecords => DeleteRecordsRequest, DeleteRecordsResponse;
    DescribeConfigs => DescribeConfigsRequest, DescribeConfigsResponse;
    AlterConfigs => AlterConfigsRequest, AlterConfigsResponse;
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse;
    DescribeLogDirs => DescribeLogDirsRequest, DescribeLogDirsResponse;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    SyncGroup => SyncGroupRequest, SyncGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    OffsetDelete => OffsetDeleteRequest, OffsetDeleteResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse;
    DeleteGroups => DeleteGroupsRequest, DeleteGroupsResponse;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
    DescribeProducers => DescribeProducersRequest, DescribeProducersResponse;
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
