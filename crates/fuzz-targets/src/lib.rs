//! The fuzz targets: one function per decoder a client's bytes reach, each taking arbitrary
//! bytes and returning nothing. A target may refuse its input (every decoder answers bad bytes
//! with an error); it must not panic, loop, or allocate past the decoder's named limits.
//!
//! `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run <target>`, see fuzz/README.md);
//! `tests/corpus.rs` replays every saved input of `fuzz/corpus/<target>/` with the test suite,
//! so a crash once found stays fixed.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Largest frame the targets let a decoder take: the inputs are far smaller (libFuzzer's
/// `-max_len`), so a decoder allocating near this would be sizing from a length it was told.
const FRAME_MAX: usize = 1 << 20;

/// A Kafka request frame (after its size prefix): the header and body, and a Produce's record
/// batches with every compression codec.
pub fn kafka_request(data: &[u8]) {
    use porter_gateway_kafka::frame::{decode_request, RequestKind};
    let Ok(request) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let RequestKind::Produce(produce) = request.body {
        for topic in produce.topic_data {
            for partition in topic.partition_data {
                if let Some(records) = partition.records {
                    let _ = porter_storage::records::decode_batches(records);
                }
            }
        }
    }
}

/// Record batches as a log holds them (what readers decode): every codec, every header field.
pub fn kafka_records(data: &[u8]) {
    let _ = porter_storage::records::decode_batches(Bytes::copy_from_slice(data));
}

/// AMQP 0-9-1 frames: methods with their field tables, content headers with properties.
pub fn amqp_frames(data: &[u8]) {
    let mut codec = porter_gateway_amqp::frame::FrameCodec {
        frame_max: FRAME_MAX as u32,
    };
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
}

/// MQTT packets, as 3.1.1 and as 5.0 (with properties), after CONNECT's version sniffing.
pub fn mqtt_packets(data: &[u8]) {
    use porter_gateway_mqtt::codec::{connect_version, decode, Version};
    let _ = connect_version(data);
    for version in [Version::V311, Version::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(_)) = decode(&mut buf, version, FRAME_MAX) {}
    }
}

/// STOMP frames, with and without 1.1+ header escapes, under small limits.
pub fn stomp_frames(data: &[u8]) {
    use porter_gateway_stomp::frame::{decode, FrameLimits};
    let limits = FrameLimits {
        frame_bytes_max: 64 << 10,
        headers_max: 100,
        header_line_bytes_max: 4096,
    };
    for escapes in [false, true] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(_)) = decode(&mut buf, &limits, escapes) {}
    }
}

/// RocketMQ 5 gRPC messages: the requests a client sends, as protobuf.
pub fn rocketmq_requests(data: &[u8]) {
    use porter_gateway_rocketmq::proto::*;
    use prost::Message as _;
    let _ = SendMessageRequest::decode(data);
    let _ = ReceiveMessageRequest::decode(data);
    let _ = AckMessageRequest::decode(data);
    let _ = TelemetryCommand::decode(data);
    let _ = QueryRouteRequest::decode(data);
    let _ = HeartbeatRequest::decode(data);
    let _ = ChangeInvisibleDurationRequest::decode(data);
    let _ = EndTransactionRequest::decode(data);
}

/// The management API's largest JSON body: a definitions import.
pub fn management_definitions(data: &[u8]) {
    porter_management::definitions::parse_for_fuzzing(data);
}

/// A fuzz target: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 7] = [
    ("kafka_request", kafka_request),
    ("kafka_records", kafka_records),
    ("amqp_frames", amqp_frames),
    ("mqtt_packets", mqtt_packets),
    ("stomp_frames", stomp_frames),
    ("rocketmq_requests", rocketmq_requests),
    ("management_definitions", management_definitions),
];
