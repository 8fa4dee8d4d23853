//! The protocol header, the first 8 bytes of every AMQP connection. The spec (section 4.2.2):
//! a server that receives a header it does not accept writes the header it does accept and
//! closes. That covers clients on the wrong port too (Kafka, HTTP, TLS...): the kit's
//! [`sniff`] names what they speak, so the log says what happened rather than showing bytes.

use std::net::SocketAddr;

use porter_gateway_kit::sniff::SNIFF_BYTES;
use porter_gateway_kit::{sniff, AmqpVersion, WireProtocol, WrongProtocol};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The header Porter accepts, and answers any other with: AMQP 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// What the client's first bytes were.
pub(super) enum Heard {
    /// Our header; `pipelined` is what the client sent after it (frames, for the codec).
    Ours { pipelined: Vec<u8> },
    /// Anything else: reply with [`PROTOCOL_HEADER`], log `why`, close.
    Other { why: String },
    /// The client went away before 8 bytes arrived.
    Gone,
}

/// Reads until the 8 header bytes have arrived, or until the bytes so far can no longer be an
/// AMQP header (then the client is not kept waiting for bytes it will never send: a Kafka or
/// HTTP client sends its request and waits for an answer).
pub(super) async fn read_protocol_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    local: SocketAddr,
    peer: SocketAddr,
) -> Heard {
    let mut first = [0u8; SNIFF_BYTES];
    let mut got = 0;
    while got < PROTOCOL_HEADER.len() && could_be_amqp(&first[..got]) {
        match reader.read(&mut first[got..]).await {
            Ok(0) | Err(_) => return Heard::Gone,
            Ok(n) => got += n,
        }
    }
    let first = &first[..got];
    if first.starts_with(PROTOCOL_HEADER) {
        return Heard::Ours {
            pipelined: first[PROTOCOL_HEADER.len()..].to_vec(),
        };
    }
    let why = match sniff(first) {
        // (0-9-1 with other bytes after "AMQP" is named `Other` too: only ours is `V0_9_1`.)
        Some(WireProtocol::Amqp(AmqpVersion::V0_9_1 | AmqpVersion::Other)) => format!(
            "a client at {peer} asked the AMQP listener at {local} for protocol header {}; \
             Porter serves AMQP 0-9-1 only",
            shown(&first[..first.len().min(PROTOCOL_HEADER.len())])
        ),
        Some(found) => WrongProtocol {
            found,
            listener: "AMQP",
            local,
            peer,
        }
        .to_string(),
        None => format!(
            "a client at {peer} sent the AMQP listener at {local} {}, which is no AMQP \
             protocol header",
            shown(first)
        ),
    };
    Heard::Other {
        why: format!("{why}; answered with the AMQP 0-9-1 protocol header"),
    }
}

/// Whether `so_far` is a prefix of "AMQP" or starts with it.
fn could_be_amqp(so_far: &[u8]) -> bool {
    let n = so_far.len().min(4);
    so_far[..n] == b"AMQP"[..n]
}

/// Bytes as the log shows them: text where printable, `\xNN` escapes elsewhere.
fn shown(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn heard(bytes: &[u8]) -> Heard {
        let (local, peer) = (
            "127.0.0.1:5672".parse().unwrap(),
            "127.0.0.1:54321".parse().unwrap(),
        );
        read_protocol_header(&mut &bytes[..], local, peer).await
    }

    fn why(heard: Heard) -> String {
        match heard {
            Heard::Other { why } => why,
            Heard::Ours { .. } => panic!("accepted"),
            Heard::Gone => panic!("gone"),
        }
    }

    #[tokio::test]
    async fn our_header_is_accepted_and_what_follows_is_kept() {
        let Heard::Ours { pipelined } = heard(b"AMQP\x00\x00\x09\x01\x01\x00").await else {
            panic!("refused");
        };
        assert_eq!(pipelined, b"\x01\x00");
    }

    #[tokio::test]
    async fn every_other_header_is_named() {
        let kafka = why(heard(b"\x00\x00\x00\x1f\x00\x12\x00\x03\x00\x00\x00\x01").await);
        assert!(kafka.starts_with("a Kafka client connected to the AMQP listener at 127.0.0.1:5672 from 127.0.0.1:54321"), "{kafka}");
        let amqp10 = why(heard(b"AMQP\x03\x01\x00\x00").await);
        assert!(amqp10.contains("AMQP 1.0"), "{amqp10}");
        let amqp08 = why(heard(b"AMQP\x01\x01\x08\x00").await);
        assert!(
            amqp08.contains(r#"header "AMQP\x01\x01\x08\x00""#),
            "{amqp08}"
        );
        let http = why(heard(b"GET / HTTP/1.1\r\n").await);
        assert!(http.starts_with("an HTTP client"), "{http}");
        let unknown = why(heard(b"hello\n").await);
        assert!(unknown.contains(r#""hello\n""#), "{unknown}");
    }

    #[tokio::test]
    async fn a_short_header_is_gone() {
        assert!(matches!(heard(b"AMQP\x00").await, Heard::Gone));
    }
}
