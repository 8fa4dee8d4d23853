//! Frames: the 7-byte frame header and frame-end octet are checked here, against `frame_max`,
//! *before* a payload is buffered; the payload (method arguments, content header) is decoded by
//! amq-protocol. Reading is a `tokio_util` [`Decoder`], so it is cancel-safe inside `select!`.
//!
//! Encoding: methods and content headers through amq-protocol's `gen_frame`; body frames are
//! three header fields around the bytes, written directly so a body is copied once, into the
//! socket buffer.

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{constants, parse_class, AMQPClass};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Frame header: type (1), channel (2), payload size (4).
const FRAME_HEADER_BYTES: usize = 7;
/// Header plus the frame-end octet.
pub const FRAME_OVERHEAD: u32 = 8;

/// A frame as read, payload decoded.
#[derive(Debug)]
pub enum Frame {
    Method(u16, AMQPClass),
    Header(u16, AMQPContentHeader),
    Body(u16, Bytes),
    Heartbeat(u16),
    /// `basic.qos` with a non-zero prefetch-size: amq-protocol's `Qos` has no field for it
    /// (it parses and drops it), so the decoder looks at the raw arguments; RabbitMQ answers
    /// 540 NOT_IMPLEMENTED.
    QosPrefetchSize(u16),
}

/// Why the byte stream is not a valid frame sequence. All are connection errors.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// 501 FRAME_ERROR: payload past the negotiated `frame_max`.
    TooLarge { size: u32, frame_max: u32 },
    /// 501 FRAME_ERROR: the octet after the payload is not 0xCE.
    BadFrameEnd(u8),
    /// 501 FRAME_ERROR: a frame type that does not exist.
    UnknownType(u8),
    /// 502 SYNTAX_ERROR: a method or content header whose arguments do not decode.
    Syntax { channel: u16, what: &'static str },
    /// The socket failed.
    Io(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e.to_string())
    }
}

/// Decodes frames up to `frame_max` bytes each (payload + 8).
pub struct FrameCodec {
    pub frame_max: u32,
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let kind = src[0];
        let channel = u16::from_be_bytes([src[1], src[2]]);
        let size = u32::from_be_bytes([src[3], src[4], src[5], src[6]]);
        if !matches!(
            kind,
            constants::FRAME_METHOD
                | constants::FRAME_HEADER
                | constants::FRAME_BODY
                | constants::FRAME_HEARTBEAT
        ) {
            return Err(FrameError::UnknownType(kind));
        }
        if u64::from(size) + u64::from(FRAME_OVERHEAD) > u64::from(self.frame_max) {
            return Err(FrameError::TooLarge {
                size,
                frame_max: self.frame_max,
            });
        }
        let total = FRAME_HEADER_BYTES + size as usize + 1;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let end = src[total - 1];
        if end != constants::FRAME_END {
            return Err(FrameError::BadFrameEnd(end));
        }
        src.advance(FRAME_HEADER_BYTES);
        let payload = src.split_to(size as usize).freeze();
        src.advance(1);
        let frame = match kind {
            constants::FRAME_METHOD if is_qos_with_prefetch_size(&payload) => {
                Frame::QosPrefetchSize(channel)
            }
            constants::FRAME_METHOD => match parse_class(&payload[..]) {
                Ok((&[], class)) => Frame::Method(channel, class),
                _ => {
                    return Err(FrameError::Syntax {
                        channel,
                        what: "method frame",
                    })
                }
            },
            constants::FRAME_HEADER => {
                match amq_protocol::frame::parsing::parse_content_header(&payload[..]) {
                    Ok((&[], header)) => Frame::Header(channel, header),
                    _ => {
                        return Err(FrameError::Syntax {
                            channel,
                            what: "content header frame",
                        })
                    }
                }
            }
            constants::FRAME_BODY => Frame::Body(channel, payload),
            _ => Frame::Heartbeat(channel),
        };
        Ok(Some(frame))
    }
}

/// `basic.qos` (class 60, method 10) whose prefetch-size (the first long) is not zero.
fn is_qos_with_prefetch_size(payload: &[u8]) -> bool {
    payload.len() >= 8 && payload[..4] == [0, 60, 0, 10] && payload[4..8] != [0, 0, 0, 0]
}

/// Appends one frame (method, header, heartbeat) to `out`.
pub fn encode(frame: &AMQPFrame, out: &mut Vec<u8>) {
    let buffer = std::mem::take(out);
    let written = gen_frame(frame)(WriteContext::from(buffer))
        .expect("frames generate into a growable buffer");
    *out = written.into_inner().0;
}

/// Appends a method frame.
pub fn encode_method(channel: u16, method: AMQPClass, out: &mut Vec<u8>) {
    encode(&AMQPFrame::Method(channel, method), out);
}

/// Appends body frames carrying `body`, each at most `frame_max` bytes.
pub fn encode_body(channel: u16, body: &[u8], frame_max: u32, out: &mut Vec<u8>) {
    let chunk_max = (frame_max - FRAME_OVERHEAD) as usize;
    for chunk in body.chunks(chunk_max) {
        out.put_u8(constants::FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(chunk.len() as u32);
        out.extend_from_slice(chunk);
        out.put_u8(constants::FRAME_END);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::channel;

    fn decode_all(bytes: &[u8], frame_max: u32) -> Result<Vec<Frame>, FrameError> {
        let mut codec = FrameCodec { frame_max };
        let mut buffer = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buffer)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn round_trips_methods_and_splits_bodies() {
        let mut out = Vec::new();
        encode_method(
            3,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            &mut out,
        );
        encode_body(3, &[7u8; 10_000], 4096, &mut out);
        let frames = decode_all(&out, 4096).unwrap();
        assert!(matches!(frames[0], Frame::Method(3, AMQPClass::Channel(_))));
        let bodies: Vec<usize> = frames[1..]
            .iter()
            .map(|f| match f {
                Frame::Body(3, b) => b.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bodies, [4088, 4088, 1824]);
    }

    #[test]
    fn refuses_oversized_bad_end_unknown_type_and_garbage_methods() {
        let mut big = Vec::new();
        encode_body(1, &[0u8; 5000], 8192, &mut big);
        assert_eq!(
            decode_all(&big, 4096).err(),
            Some(FrameError::TooLarge {
                size: 5000,
                frame_max: 4096
            })
        );
        let mut bad_end = Vec::new();
        encode_body(1, b"abc", 4096, &mut bad_end);
        *bad_end.last_mut().unwrap() = 0;
        assert_eq!(
            decode_all(&bad_end, 4096).err(),
            Some(FrameError::BadFrameEnd(0))
        );
        assert_eq!(
            decode_all(&[9, 0, 0, 0, 0, 0, 0, 0xCE], 4096).err(),
            Some(FrameError::UnknownType(9))
        );
        // A method frame whose class/method ids do not exist.
        assert!(matches!(
            decode_all(&[1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE], 4096),
            Err(FrameError::Syntax { channel: 1, .. })
        ));
        // Truncated: waits for more bytes instead of failing.
        assert!(decode_all(&[1, 0, 1, 0, 0, 0, 20, 0, 10], 4096)
            .unwrap()
            .is_empty());
    }
}
