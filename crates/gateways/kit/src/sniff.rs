//! Protocol recognition from a connection's first bytes, for the client that dialled the wrong
//! port. Without it an AMQP client on the Kafka port reads as "frame of 1095586128 bytes
//! exceeds the limit" (`AMQP` taken as a length), which tells a newcomer nothing.
//!
//! [`sniff`] is a pure function over whatever bytes have arrived: it names the protocol, or
//! says nothing when the bytes match no signature it knows (or too few have arrived to tell).
//! The kit decides *what* a client speaks; each gateway decides how it answers (the AMQP
//! gateway writes its protocol header as the spec asks; the Kafka gateway, which has no way to
//! say "wrong protocol", answers HTTP with a short 400 page and closes). [`WrongProtocol`] is
//! the one log line both use.
//!
//! Signatures are chosen so that no gateway's own valid first bytes are ever named as another
//! protocol: every foreign signature starts with a byte of 0x10 or more, so read as a Kafka
//! size prefix it is at least 256 MiB, far above [`KAFKA_FIRST_FRAME_BYTES_MAX`]; and every
//! AMQP header starts "AMQP", which no other signature does.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// The largest size prefix that can start a Kafka connection. A client's first request is an
/// ApiVersions or Metadata request of a few hundred bytes; 64 MiB leaves room for anything a
/// client could send first while staying below the 256 MiB that every foreign signature's
/// first four bytes read as.
pub const KAFKA_FIRST_FRAME_BYTES_MAX: u32 = 64 << 20;
/// The highest Kafka API key taken as plausible (Kafka 4.0 defines keys up to the low 80s).
pub const KAFKA_API_KEY_MAX: i16 = 80;
/// The highest API version taken as plausible in a first request (ApiVersions is at v4).
pub const KAFKA_API_VERSION_MAX: i16 = 20;
/// The fewest bytes a Kafka request can have after its size prefix: api key, version and
/// correlation id.
const KAFKA_HEADER_BYTES_MIN: u32 = 8;
/// A RocketMQ remoting header (JSON, `{"code":..,"language":..,"version":..}`) is never this
/// short; below it, the bytes could be a Kafka Produce request's version field.
const ROCKETMQ_HEADER_BYTES_MIN: u32 = KAFKA_API_VERSION_MAX as u32 + 1;
/// The bytes a gateway should have read to let [`sniff`] name any protocol it knows (the
/// longest signature is MQTT's: type, a 4-byte length, then `\0\x06MQIsdp`).
pub const SNIFF_BYTES: usize = 16;

/// An AMQP protocol header's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AmqpVersion {
    /// `AMQP\0\0\x09\x01`: what Porter serves.
    V0_9_1,
    /// `AMQP\x00\x01\x00\x00` (plain), `\x02` (TLS) or `\x03` (SASL) then `\x01\x00\x00`.
    V1_0,
    /// 0-8, 0-9, or a header of which fewer than 8 bytes arrived.
    Other,
}

/// A protocol a client's first bytes name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireProtocol {
    Amqp(AmqpVersion),
    Kafka,
    /// HTTP/1.x: a request line.
    Http,
    /// The HTTP/2 connection preface; gRPC clients send it too.
    Http2,
    /// A TLS ClientHello record.
    Tls,
    /// An MQTT CONNECT (3.1, 3.1.1 or 5).
    Mqtt,
    /// A STOMP `CONNECT` or `STOMP` frame.
    Stomp,
    /// A Redis RESP array (what redis-cli and client libraries send).
    Redis,
    /// An SSH identification string.
    Ssh,
    /// RocketMQ's remoting protocol with a JSON header.
    RocketMq,
}

impl WireProtocol {
    /// The protocol's name as a user knows it.
    pub fn name(self) -> &'static str {
        match self {
            WireProtocol::Amqp(AmqpVersion::V0_9_1) => "AMQP 0-9-1",
            WireProtocol::Amqp(AmqpVersion::V1_0) => "AMQP 1.0",
            WireProtocol::Amqp(AmqpVersion::Other) => "AMQP",
            WireProtocol::Kafka => "Kafka",
            WireProtocol::Http => "HTTP",
            WireProtocol::Http2 => "HTTP/2 (or gRPC)",
            WireProtocol::Tls => "TLS",
            WireProtocol::Mqtt => "MQTT",
            WireProtocol::Stomp => "STOMP",
            WireProtocol::Redis => "Redis",
            WireProtocol::Ssh => "SSH",
            WireProtocol::RocketMq => "RocketMQ",
        }
    }

    /// The port Porter serves this protocol on by default, if Porter serves it.
    pub fn porter_default_port(self) -> Option<u16> {
        match self {
            WireProtocol::Amqp(AmqpVersion::V0_9_1 | AmqpVersion::Other) => Some(5672),
            WireProtocol::Kafka => Some(9092),
            WireProtocol::Stomp => Some(61613),
            _ => None,
        }
    }

    /// "an" or "a", for the log line.
    fn article(self) -> &'static str {
        match self.name().as_bytes()[0] {
            // Said as letters: "an AMQP", "an HTTP", "an MQTT", "an SSH"; "a STOMP", "a TLS".
            b'A' | b'H' | b'M' | b'S' if !matches!(self, WireProtocol::Stomp) => "an",
            _ => "a",
        }
    }
}

impl fmt::Display for WireProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Names the protocol `first` (a connection's first bytes, as many as have arrived) speaks, or
/// `None` when they match no signature known here or are too few to tell. Never panics.
pub fn sniff(first: &[u8]) -> Option<WireProtocol> {
    if let Some(rest) = first.strip_prefix(b"AMQP") {
        return Some(WireProtocol::Amqp(match rest {
            [0, 0, 9, 1, ..] => AmqpVersion::V0_9_1,
            [0..=3, 1, 0, 0, ..] => AmqpVersion::V1_0,
            _ => AmqpVersion::Other,
        }));
    }
    if first.starts_with(b"PRI * HTTP/2.0") {
        return Some(WireProtocol::Http2);
    }
    // STOMP before HTTP: `CONNECT` is both a STOMP frame and an HTTP method.
    for command in [&b"CONNECT"[..], b"STOMP"] {
        if let Some(rest) = first.strip_prefix(command) {
            if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
                return Some(WireProtocol::Stomp);
            }
        }
    }
    const HTTP_METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    if HTTP_METHODS.iter().any(|method| first.starts_with(method)) {
        return Some(WireProtocol::Http);
    }
    if first.starts_with(b"SSH-") {
        return Some(WireProtocol::Ssh);
    }
    match first {
        // Handshake record, SSL 3.0 .. TLS 1.3 record versions.
        [0x16, 0x03, 0x00..=0x04, ..] => return Some(WireProtocol::Tls),
        [b'*', b'0'..=b'9', ..] => return Some(WireProtocol::Redis),
        [0x10, rest @ ..] if is_mqtt_connect(rest) => return Some(WireProtocol::Mqtt),
        _ => {}
    }
    sniff_length_prefixed(first)
}

/// MQTT CONNECT after its type byte: the remaining length (a 1-4 byte varint), then the
/// protocol name `\0\x04MQTT` (3.1.1, 5) or `\0\x06MQIsdp` (3.1).
fn is_mqtt_connect(after_type: &[u8]) -> bool {
    let Some(varint_len) = after_type
        .iter()
        .take(4)
        .position(|byte| byte & 0x80 == 0)
        .map(|last| last + 1)
    else {
        return false;
    };
    let name = &after_type[varint_len..];
    name.starts_with(b"\x00\x04MQTT") || name.starts_with(b"\x00\x06MQIsdp")
}

/// Protocols whose frames start with a 4-byte big-endian size: Kafka and RocketMQ.
fn sniff_length_prefixed(first: &[u8]) -> Option<WireProtocol> {
    let [s0, s1, s2, s3, k0, k1, v0, v1, rest @ ..] = first else {
        return None;
    };
    let size = u32::from_be_bytes([*s0, *s1, *s2, *s3]);
    if !(KAFKA_HEADER_BYTES_MIN..=KAFKA_FIRST_FRAME_BYTES_MAX).contains(&size) {
        return None;
    }
    let api_key = i16::from_be_bytes([*k0, *k1]);
    let version = i16::from_be_bytes([*v0, *v1]);
    if (0..=KAFKA_API_KEY_MAX).contains(&api_key) && (0..=KAFKA_API_VERSION_MAX).contains(&version)
    {
        return Some(WireProtocol::Kafka);
    }
    // RocketMQ: size | serialize type (0 = JSON) and a 24-bit header length | `{"...`. Its
    // header is longer than any Kafka version number, so the two never overlap.
    let header_len = u32::from_be_bytes([0, *k1, *v0, *v1]);
    if *k0 == 0
        && (ROCKETMQ_HEADER_BYTES_MIN..=size - 4).contains(&header_len)
        && rest.starts_with(b"{\"")
    {
        return Some(WireProtocol::RocketMq);
    }
    None
}

/// The line a gateway logs (as its close reason) when a client speaks another protocol:
/// "an AMQP 0-9-1 client connected to the Kafka listener at 127.0.0.1:9092 from
/// 127.0.0.1:54321 (Porter serves AMQP 0-9-1 on port 5672 by default)".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongProtocol {
    /// What the client speaks.
    pub found: WireProtocol,
    /// The listener's protocol, as users name it ("Kafka", "AMQP 0-9-1").
    pub listener: &'static str,
    /// The listener's address.
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
}

impl fmt::Display for WrongProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let WrongProtocol {
            found,
            listener,
            local,
            peer,
        } = *self;
        write!(
            f,
            "{} {found} client connected to the {listener} listener at {local} from {peer}",
            found.article()
        )?;
        match found {
            WireProtocol::Tls => f.write_str(" (TLS is not enabled on this listener)"),
            WireProtocol::Amqp(AmqpVersion::V1_0) => {
                f.write_str(" (Porter does not support AMQP 1.0; it serves AMQP 0-9-1)")
            }
            _ => match found.porter_default_port() {
                Some(port) => write!(f, " (Porter serves {found} on port {port} by default)"),
                None => write!(f, " (Porter does not serve {found})"),
            },
        }
    }
}

/// A minimal `HTTP/1.1 400 Bad Request` for a browser or curl that reached a binary listener:
/// a short text saying which port this is, so the user sees why their request failed.
pub fn http_bad_request(listener: &str) -> Bytes {
    let body = format!(
        "This is Porter's {listener} port: it speaks the {listener} wire protocol, not HTTP.\n"
    );
    Bytes::from(format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What real clients send first, as captured from their libraries.
    #[test]
    fn names_what_common_clients_send_first() {
        let mut kafka_api_versions = vec![0, 0, 0, 0x1f, 0, 18, 0, 3, 0, 0, 0, 1, 0, 7];
        kafka_api_versions.extend_from_slice(b"rdkafka");
        let cases: &[(&[u8], Option<WireProtocol>)] = &[
            (
                b"AMQP\x00\x00\x09\x01",
                Some(WireProtocol::Amqp(AmqpVersion::V0_9_1)),
            ),
            (
                b"AMQP\x00\x01\x00\x00",
                Some(WireProtocol::Amqp(AmqpVersion::V1_0)),
            ),
            (
                b"AMQP\x03\x01\x00\x00",
                Some(WireProtocol::Amqp(AmqpVersion::V1_0)),
            ),
            (
                b"AMQP\x01\x01\x00\x09",
                Some(WireProtocol::Amqp(AmqpVersion::Other)),
            ),
            (b"AMQP", Some(WireProtocol::Amqp(AmqpVersion::Other))),
            (&kafka_api_versions, Some(WireProtocol::Kafka)),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                Some(WireProtocol::Http),
            ),
            (b"POST /topics HTTP/1.1\r\n", Some(WireProtocol::Http)),
            (b"HEAD / HTTP/1.0\r\n", Some(WireProtocol::Http)),
            (b"OPTIONS * HTTP/1.1\r\n", Some(WireProtocol::Http)),
            (b"CONNECT host:443 HTTP/1.1\r\n", Some(WireProtocol::Http)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                Some(WireProtocol::Http2),
            ),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Some(WireProtocol::Tls),
            ),
            (
                b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c",
                Some(WireProtocol::Mqtt),
            ),
            (b"\x10\xc8\x01\x00\x04MQTT\x05", Some(WireProtocol::Mqtt)),
            (b"\x10\x1a\x00\x06MQIsdp\x03", Some(WireProtocol::Mqtt)),
            (
                b"CONNECT\naccept-version:1.2\n\n\x00",
                Some(WireProtocol::Stomp),
            ),
            (b"STOMP\r\nhost:/\r\n\r\n\x00", Some(WireProtocol::Stomp)),
            (b"*1\r\n$4\r\nPING\r\n", Some(WireProtocol::Redis)),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Some(WireProtocol::Ssh)),
            (
                b"\x00\x00\x00\x80\x00\x00\x00\x60{\"code\":105,\"language\":\"JAVA\"",
                Some(WireProtocol::RocketMq),
            ),
            // Too few bytes, or nothing known.
            (b"", None),
            (b"\x00\x00", None),
            (b"GE", None),
            (b"hello\n", None),
            (b"\x10\x10\x00\x04MQXX", None),
            // A size prefix no Kafka client sends first.
            (b"\x7f\xff\xff\xff\x00\x12\x00\x03", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                sniff(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn the_log_line_names_the_protocol_the_listener_and_where_to_go() {
        let line = |found| {
            WrongProtocol {
                found,
                listener: "Kafka",
                local: "127.0.0.1:9092".parse().unwrap(),
                peer: "127.0.0.1:54321".parse().unwrap(),
            }
            .to_string()
        };
        assert_eq!(
            line(WireProtocol::Amqp(AmqpVersion::V0_9_1)),
            "an AMQP 0-9-1 client connected to the Kafka listener at 127.0.0.1:9092 from \
             127.0.0.1:54321 (Porter serves AMQP 0-9-1 on port 5672 by default)"
        );
        assert!(line(WireProtocol::Tls).starts_with("a TLS client"));
        assert!(line(WireProtocol::Tls).ends_with("(TLS is not enabled on this listener)"));
        assert!(line(WireProtocol::Http).starts_with("an HTTP client"));
        assert!(line(WireProtocol::Stomp).starts_with("a STOMP client"));
        assert!(line(WireProtocol::Mqtt).ends_with("(Porter does not serve MQTT)"));
        assert!(line(WireProtocol::Amqp(AmqpVersion::V1_0)).contains("does not support AMQP 1.0"));
    }

    #[test]
    fn the_http_answer_is_a_well_formed_400() {
        let answer = http_bad_request("Kafka");
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("Porter's Kafka port"));
    }

    proptest::proptest! {
        /// Any bytes at all: no panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = sniff(&bytes);
        }

        /// A Kafka request header of any plausible shape, however much of it has arrived, is
        /// never named as another protocol.
        #[test]
        fn kafka_first_bytes_are_never_foreign(
            size in KAFKA_HEADER_BYTES_MIN..=KAFKA_FIRST_FRAME_BYTES_MAX,
            api_key in 0..=KAFKA_API_KEY_MAX,
            version in 0..=KAFKA_API_VERSION_MAX,
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            arrived in 0usize..32,
        ) {
            let mut bytes = size.to_be_bytes().to_vec();
            bytes.extend_from_slice(&api_key.to_be_bytes());
            bytes.extend_from_slice(&version.to_be_bytes());
            bytes.extend_from_slice(&rest);
            let found = sniff(&bytes[..arrived.min(bytes.len())]);
            proptest::prop_assert!(found.is_none() || found == Some(WireProtocol::Kafka), "{:?}", found);
            proptest::prop_assert_eq!(sniff(&bytes), Some(WireProtocol::Kafka));
        }

        /// Any prefix of the AMQP 0-9-1 header, followed by anything, is AMQP or unknown.
        #[test]
        fn amqp_first_bytes_are_never_foreign(
            arrived in 0usize..=8,
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..8),
        ) {
            let mut bytes = b"AMQP\x00\x00\x09\x01"[..arrived].to_vec();
            if arrived == 8 {
                bytes.extend_from_slice(&rest);
            }
            let found = sniff(&bytes);
            proptest::prop_assert!(
                found.is_none() || matches!(found, Some(WireProtocol::Amqp(_))),
                "{:?}", found
            );
        }
    }
}
