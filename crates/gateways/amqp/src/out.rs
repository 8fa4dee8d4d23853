//! [`Out`]: what the server sends, as encoded frames in one buffer. Commands answer by appending
//! to an `Out` instead of touching a socket; the connection writes it out once per burst of
//! events (so writes keep the order decisions were made in), and tests read it back with
//! [`Out::frames`]. It carries the negotiated `frame_max` because a message body is split into
//! body frames of at most that size.

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use bytes::BytesMut;
use porter_core::message::Message;
use tokio_util::codec::Decoder;

use crate::convert::properties_to_amqp;
use crate::error::AmqpError;
use crate::frame::{encode, encode_body, encode_method, Frame, FrameCodec};

/// Encoded frames waiting to be written.
#[derive(Debug)]
pub struct Out {
    bytes: Vec<u8>,
    frame_max: u32,
    /// The size of the last burst handed out, so the next buffer is allocated once at about
    /// the right size instead of regrown (and copied) frame by frame. At most
    /// [`OUT_RESERVE_MAX`]; nothing is allocated until something is written.
    reserve: usize,
}

/// The most a fresh burst buffer reserves up front: bursts larger than this grow as needed.
const OUT_RESERVE_MAX: usize = 64 << 10;

impl Out {
    pub fn new(frame_max: u32) -> Self {
        Out {
            bytes: Vec::new(),
            frame_max,
            reserve: 0,
        }
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// The buffer to append to, reserved at the last burst's size when fresh.
    fn buf(&mut self) -> &mut Vec<u8> {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(self.reserve);
        }
        &mut self.bytes
    }

    /// A method frame.
    pub fn method(&mut self, channel: u16, method: AMQPClass) {
        encode_method(channel, method, self.buf());
    }

    /// A content-carrying method (deliver, get-ok, return) with its header and body frames.
    pub fn content(&mut self, channel: u16, method: AMQPClass, message: &Message) {
        encode_method(channel, method, self.buf());
        encode(
            &AMQPFrame::Header(
                channel,
                AMQPContentHeader {
                    class_id: 60,
                    body_size: message.body.len() as u64,
                    properties: properties_to_amqp(&message.properties),
                },
            ),
            self.buf(),
        );
        let frame_max = self.frame_max;
        encode_body(channel, &message.body, frame_max, self.buf());
    }

    /// `basic.return` of an unroutable mandatory message (312 NO_ROUTE).
    pub fn basic_return(&mut self, channel: u16, message: &Message) {
        let method = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: message.exchange.as_str().into(),
            routing_key: message.routing_key.as_str().into(),
        }));
        self.content(channel, method, message);
    }

    pub fn heartbeat(&mut self) {
        encode(&AMQPFrame::Heartbeat, self.buf());
    }

    /// `channel.close` carrying a channel error.
    pub fn channel_close(&mut self, channel: u16, error: &AmqpError) {
        self.method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: error.code,
                reply_text: porter_gateway_kit::truncated(&error.text, SHORT_STRING_MAX).into(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        );
    }

    /// `connection.close` carrying a connection error.
    pub fn connection_close(&mut self, error: &AmqpError) {
        self.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: error.code,
                reply_text: porter_gateway_kit::truncated(&error.text, SHORT_STRING_MAX).into(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        );
    }

    /// Encoded bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// After a write: the buffer (and its capacity) is reused.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// The encoded bytes, handed to a writer; the buffer starts empty.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        self.reserve = self.bytes.len().min(OUT_RESERVE_MAX);
        std::mem::take(&mut self.bytes)
    }

    /// Frames larger than this are split from now on (after `connection.tune-ok`).
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// The frames held, decoded (for tests and diagnostics), and the buffer emptied.
    pub fn take_frames(&mut self) -> Vec<Frame> {
        let mut codec = FrameCodec {
            frame_max: self.frame_max,
        };
        let mut buffer = BytesMut::from(&self.bytes[..]);
        self.bytes.clear();
        let mut frames = Vec::new();
        while let Some(frame) = codec
            .decode(&mut buffer)
            .expect("Out holds only frames it encoded")
        {
            frames.push(frame);
        }
        debug_assert!(buffer.is_empty(), "Out holds whole frames");
        frames
    }
}

/// A short string holds 255 bytes; reply texts are cut there, at a character boundary.
const SHORT_STRING_MAX: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_split_by_frame_max_and_reads_back() {
        let mut out = Out::new(4096);
        let message = Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            properties: Default::default(),
            body: vec![1u8; 10_000].into(),
        };
        out.basic_return(5, &message);
        let frames = out.take_frames();
        assert!(out.is_empty());
        // return + header + ceil(10000 / 4088) = 3 bodies
        assert_eq!(frames.len(), 5);
        assert!(matches!(
            &frames[0],
            Frame::Method(5, AMQPClass::Basic(basic::AMQPMethod::Return(r))) if r.reply_code == 312
        ));
        let body: usize = frames
            .iter()
            .map(|f| match f {
                Frame::Body(5, b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(body, 10_000);
    }

    #[test]
    fn close_texts_are_cut_at_a_char_boundary() {
        let mut out = Out::new(4096);
        let error = AmqpError::channel(406, "é".repeat(200));
        out.channel_close(1, &error);
        let frames = out.take_frames();
        let Frame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) = &frames[0]
        else {
            panic!("expected channel.close, got {frames:?}");
        };
        assert!(close.reply_text.as_str().len() <= 255);
        assert!(close
            .reply_text
            .as_str()
            .starts_with("PRECONDITION_FAILED - é"));
    }
}
