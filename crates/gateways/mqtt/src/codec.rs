//! Packets on the wire, through rumqttc's `mqttbytes` (its v4 module is MQTT 3.1.1, its v5
//! module MQTT 5.0). The gateway works with one packet model, the v5 one (3.1.1 is a subset);
//! this module converts 3.1.1 packets to and from it, and adds the checks the crate leaves out:
//!
//! - the fixed header's reserved flags (SUBSCRIBE, UNSUBSCRIBE and PUBREL must carry `0010`,
//!   the others `0000`) and PUBLISH's QoS 3, both malformed packets;
//! - the protocol name and level of CONNECT, read before choosing the module, so a wrong level
//!   gets CONNACK 0x01 / 0x84 rather than a parse error;
//! - a body-less MQTT 5 DISCONNECT (reason 0x00), which the crate's reader refuses;
//! - AUTH (type 15), which the crate's v5 reader does not know: it comes out as
//!   [`Inbound::Auth`] (MQTT 5 enhanced authentication during CONNECT, and re-authentication
//!   after CONNACK; refused with a reason code from a client that logged in without it). The crate's AUTH reader
//!   miscounts the authentication method's length prefix (every AUTH carries one, so it fails
//!   them all) and its AUTH types are not exported: [`AuthPacket`] is read here, bounded by the
//!   packet's own bytes, and [`encode_auth`] writes the broker's AUTH (MQTT 5 §3.15).
//!
//! The crate checks the remaining length against the maximum packet size before it waits for
//! the body, and every length inside a packet against the bytes actually received, so nothing
//! is allocated from a length on the wire (`PORTER_NOTES` in the crate docs).

use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::QoS as V4QoS;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::QoS;

pub use v5::Packet;

/// The protocol level a CONNECT asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

/// What a read produced.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per read, moved once: boxing would only add a copy
pub enum Inbound {
    Packet(Packet),
    /// An AUTH packet (MQTT 5 enhanced authentication); `None` when it does not parse (or
    /// comes from a 3.1.1 client, which has no AUTH).
    Auth(Option<AuthPacket>),
}

/// An AUTH packet as read: its reason code (0x18 continue, 0x19 re-authenticate, 0x00 success)
/// and the authentication method and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub reason: u8,
    pub method: Option<String>,
    pub data: Option<bytes::Bytes>,
}

impl AuthPacket {
    /// Reads one whole AUTH packet; `None` if it is malformed. Every length is checked against
    /// the bytes received: nothing is allocated from a length on the wire.
    fn read(packet: bytes::Bytes) -> Option<AuthPacket> {
        let mut rest = &packet[1..];
        read_variable_int(&mut rest)?;
        // No body: reason 0x00 and no properties (MQTT 5 §3.15.2.1).
        let Some((&reason, mut rest)) = rest.split_first() else {
            return Some(AuthPacket {
                reason: 0,
                method: None,
                data: None,
            });
        };
        let properties_len = if rest.is_empty() {
            0
        } else {
            read_variable_int(&mut rest)?
        };
        let mut properties = rest.get(..properties_len)?;
        let (mut method, mut data) = (None, None);
        while let Some((&id, after)) = properties.split_first() {
            properties = after;
            match id {
                0x15 => {
                    method = Some(
                        std::str::from_utf8(take_prefixed(&mut properties)?)
                            .ok()?
                            .to_string(),
                    )
                }
                0x16 => {
                    data = Some(bytes::Bytes::copy_from_slice(take_prefixed(
                        &mut properties,
                    )?))
                }
                0x1F => {
                    take_prefixed(&mut properties)?;
                }
                0x26 => {
                    take_prefixed(&mut properties)?;
                    take_prefixed(&mut properties)?;
                }
                _ => return None,
            }
        }
        Some(AuthPacket {
            reason,
            method,
            data,
        })
    }
}

/// A two-byte-length-prefixed field, taken off the front of `bytes`.
fn take_prefixed<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
    let field = bytes.get(2..2 + len)?;
    *bytes = &bytes[2 + len..];
    Some(field)
}

/// MQTT's variable byte integer (at most four bytes), taken off the front of `bytes`.
fn read_variable_int(bytes: &mut &[u8]) -> Option<usize> {
    let mut value = 0usize;
    for i in 0..4 {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Writes an MQTT 5 AUTH packet: `reason`, then the authentication method and data properties.
pub fn encode_auth(reason: u8, method: &str, data: &[u8], out: &mut BytesMut) {
    use bytes::BufMut;
    let properties = 1 + 2 + method.len() + 1 + 2 + data.len();
    let body = 1 + remaining_length_bytes(properties) + properties;
    out.put_u8(0xF0);
    put_variable_int(out, body);
    out.put_u8(reason);
    put_variable_int(out, properties);
    out.put_u8(0x15);
    out.put_u16(method.len() as u16);
    out.put_slice(method.as_bytes());
    out.put_u8(0x16);
    out.put_u16(data.len() as u16);
    out.put_slice(data);
}

/// MQTT's variable byte integer.
fn put_variable_int(out: &mut BytesMut, mut value: usize) {
    use bytes::BufMut;
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Why bytes are not a packet.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes is over the maximum packet size {max}")]
    TooLarge { size: usize, max: usize },
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("unsupported protocol: {0}")]
    Protocol(ProtocolRefusal),
}

/// A CONNECT for a protocol this broker does not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolRefusal {
    /// Not "MQTT" (e.g. MQTT 3.1's "MQIsdp") or a level other than 4 and 5.
    Level(u8),
}

impl std::fmt::Display for ProtocolRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolRefusal::Level(level) => write!(f, "protocol level {level}"),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Malformed(e.to_string())
}

/// The remaining length of the packet at the start of `buf` and its fixed header's size, if
/// the header is complete. A fifth length byte is malformed.
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((len, 2 + i)));
        }
    }
    if buf.len() > 4 {
        return Err(malformed("remaining length over four bytes"));
    }
    Ok(None)
}

/// The size of the whole packet at the start of `buf`, once its fixed header is complete;
/// refused past `max`.
pub fn packet_len(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    let Some((remaining, header)) = fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header + remaining;
    if size > max {
        return Err(DecodeError::TooLarge { size, max });
    }
    Ok(Some(size))
}

/// Checks the fixed header's first byte as MQTT 3.1.1 §2.2.2 / MQTT 5 §2.1.3 require.
fn check_flags(first: u8) -> Result<(), DecodeError> {
    let (kind, flags) = (first >> 4, first & 0x0F);
    let ok = match kind {
        3 => (flags >> 1) & 0b11 != 0b11,
        6 | 8 | 10 => flags == 0b0010,
        1 | 2 | 4 | 5 | 7 | 9 | 11 | 12 | 13 | 14 | 15 => flags == 0,
        _ => return Err(malformed(format!("reserved packet type {kind}"))),
    };
    if ok {
        Ok(())
    } else {
        Err(malformed(format!(
            "packet type {kind} with reserved flags {flags:#06b}"
        )))
    }
}

/// The protocol a CONNECT at the start of `buf` (a whole packet) asks for.
pub fn connect_version(buf: &[u8]) -> Result<Version, DecodeError> {
    let Some((_, header)) = fixed_header(buf)? else {
        return Err(malformed("truncated CONNECT"));
    };
    if buf.first().map(|b| b >> 4) != Some(1) {
        return Err(malformed("the first packet is not CONNECT"));
    }
    let mut rest = &buf[header..];
    if rest.len() < 2 {
        return Err(malformed("truncated CONNECT"));
    }
    let name_len = rest.get_u16() as usize;
    if rest.len() < name_len + 1 {
        return Err(malformed("truncated CONNECT"));
    }
    let name = &rest[..name_len];
    let level = rest[name_len];
    match (name, level) {
        (b"MQTT", 4) => Ok(Version::V311),
        (b"MQTT", 5) => Ok(Version::V5),
        _ => Err(DecodeError::Protocol(ProtocolRefusal::Level(level))),
    }
}

/// Decodes the next packet of `buf` for `version`, if `buf` holds a whole one; consumes it.
pub fn decode(
    buf: &mut BytesMut,
    version: Version,
    max: usize,
) -> Result<Option<Inbound>, DecodeError> {
    let Some(size) = packet_len(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < size {
        return Ok(None);
    }
    check_flags(buf[0])?;
    if buf[0] >> 4 == 15 {
        let packet = buf.split_to(size).freeze();
        let auth = (version == Version::V5)
            .then(|| AuthPacket::read(packet))
            .flatten();
        return Ok(Some(Inbound::Auth(auth)));
    }
    if version == Version::V5 && buf[0] >> 4 == 14 && size == 2 {
        // MQTT 5 §3.14.2.1: a DISCONNECT without a body is reason 0x00, which the crate's
        // reader refuses ("payload required").
        buf.advance(size);
        return Ok(Some(Inbound::Packet(Packet::Disconnect(
            v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection),
        ))));
    }
    let packet = match version {
        Version::V5 => v5::Packet::read(buf, Some(max as u32)).map_err(malformed)?,
        Version::V311 => from_v4(v4::Packet::read(buf, max).map_err(malformed)?)?,
    };
    Ok(Some(Inbound::Packet(packet)))
}

/// Encodes `packet` for `version`. Packets with no 3.1.1 form (AUTH) and 5.0-only details
/// (properties, reason codes other than those 3.1.1 has) are dropped for 3.1.1 sessions.
pub fn encode(packet: &Packet, version: Version, out: &mut BytesMut) {
    let written = match version {
        Version::V5 => packet
            .write(out, None)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Version::V311 => match to_v4(packet) {
            Some(packet) => packet
                .write(out, usize::MAX)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        },
    };
    debug_assert!(
        written.is_ok(),
        "the broker's own packets encode: {written:?}"
    );
}

/// The encoded size of `packet` for `version` (what a client's maximum packet size limits).
pub fn encoded_size(packet: &Packet, version: Version) -> usize {
    let body = match version {
        Version::V5 => packet.size(),
        Version::V311 => to_v4(packet).map_or(0, |p| p.size()),
    };
    body + 1 + remaining_length_bytes(body)
}

fn remaining_length_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn from_v4(packet: v4::Packet) -> Result<Packet, DecodeError> {
    Ok(match packet {
        v4::Packet::Connect(c) => {
            let will = c.last_will.map(|w| v5::LastWill {
                topic: w.topic.into(),
                message: w.message,
                qos: from_v4_qos(w.qos),
                retain: w.retain,
                properties: None,
            });
            let login = c.login.map(|l| v5::Login {
                username: l.username,
                password: l.password,
            });
            let connect = v5::Connect {
                keep_alive: c.keep_alive,
                client_id: c.client_id,
                clean_start: c.clean_session,
                properties: None,
            };
            Packet::Connect(connect, will, login)
        }
        v4::Packet::Publish(p) => Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: from_v4_qos(p.qos),
            retain: p.retain,
            topic: p.topic.into(),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        }),
        v4::Packet::PubAck(a) => Packet::PubAck(v5::PubAck::new(a.pkid, None)),
        v4::Packet::PubRec(a) => Packet::PubRec(v5::PubRec::new(a.pkid, None)),
        v4::Packet::PubRel(a) => Packet::PubRel(v5::PubRel::new(a.pkid, None)),
        v4::Packet::PubComp(a) => Packet::PubComp(v5::PubComp::new(a.pkid, None)),
        v4::Packet::Subscribe(s) => Packet::Subscribe(v5::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| v5::Filter {
                    path: f.path,
                    qos: from_v4_qos(f.qos),
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: v5::RetainForwardRule::OnEverySubscribe,
                })
                .collect(),
            properties: None,
        }),
        v4::Packet::Unsubscribe(u) => Packet::Unsubscribe(v5::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
            properties: None,
        }),
        v4::Packet::PingReq => Packet::PingReq(v5::PingReq),
        v4::Packet::Disconnect => Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::NormalDisconnection,
        )),
        other => {
            return Err(malformed(format!(
                "a client may not send {}",
                v4_name(&other)
            )))
        }
    })
}

fn v4_name(packet: &v4::Packet) -> &'static str {
    match packet {
        v4::Packet::ConnAck(_) => "CONNACK",
        v4::Packet::SubAck(_) => "SUBACK",
        v4::Packet::UnsubAck(_) => "UNSUBACK",
        v4::Packet::PingResp => "PINGRESP",
        _ => "this packet",
    }
}

fn to_v4(packet: &Packet) -> Option<v4::Packet> {
    Some(match packet {
        Packet::ConnAck(a) => v4::Packet::ConnAck(v4::ConnAck {
            session_present: a.session_present,
            code: v4_connack_code(a.code),
        }),
        Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: to_v4_qos(p.qos),
            retain: p.retain,
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }),
        Packet::PubAck(a) => v4::Packet::PubAck(v4::PubAck { pkid: a.pkid }),
        Packet::PubRec(a) => v4::Packet::PubRec(v4::PubRec { pkid: a.pkid }),
        Packet::PubRel(a) => v4::Packet::PubRel(v4::PubRel { pkid: a.pkid }),
        Packet::PubComp(a) => v4::Packet::PubComp(v4::PubComp { pkid: a.pkid }),
        Packet::SubAck(a) => v4::Packet::SubAck(v4::SubAck {
            pkid: a.pkid,
            return_codes: a
                .return_codes
                .iter()
                .map(|c| match c {
                    v5::SubscribeReasonCode::Success(qos) => {
                        v4::SubscribeReasonCode::Success(to_v4_qos(*qos))
                    }
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        Packet::UnsubAck(a) => v4::Packet::UnsubAck(v4::UnsubAck { pkid: a.pkid }),
        Packet::PingResp(_) => v4::Packet::PingResp,
        // 3.1.1 has no server DISCONNECT or AUTH: the server just closes.
        _ => return None,
    })
}

/// CONNACK codes of MQTT 3.1.1 for the 5.0 reasons the broker refuses with.
fn v4_connack_code(code: v5::ConnectReturnCode) -> v4::ConnectReturnCode {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => v4::ConnectReturnCode::Success,
        C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => {
            v4::ConnectReturnCode::RefusedProtocolVersion
        }
        C::ClientIdentifierNotValid | C::BadClientId => v4::ConnectReturnCode::BadClientId,
        C::BadUserNamePassword => v4::ConnectReturnCode::BadUserNamePassword,
        C::NotAuthorized | C::BadAuthenticationMethod | C::Banned => {
            v4::ConnectReturnCode::NotAuthorized
        }
        _ => v4::ConnectReturnCode::ServiceUnavailable,
    }
}

fn from_v4_qos(qos: V4QoS) -> QoS {
    qos_from(qos as u8)
}

fn to_v4_qos(qos: QoS) -> V4QoS {
    match qos {
        QoS::AtMostOnce => V4QoS::AtMostOnce,
        QoS::AtLeastOnce => V4QoS::AtLeastOnce,
        QoS::ExactlyOnce => V4QoS::ExactlyOnce,
    }
}

/// QoS from the number a subscription or header holds (anything above 2 is 2).
pub fn qos_from(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_auth_packet_written_is_read_back() {
        let mut buf = BytesMut::new();
        encode_auth(0x18, "SCRAM-SHA-256", b"r=nonce,s=salt,i=4096", &mut buf);
        let Some(Inbound::Auth(Some(auth))) = decode(&mut buf, Version::V5, 1 << 20).unwrap()
        else {
            panic!("not an AUTH");
        };
        assert_eq!(auth.reason, 0x18);
        assert_eq!(auth.method.as_deref(), Some("SCRAM-SHA-256"));
        assert_eq!(auth.data.as_deref(), Some(&b"r=nonce,s=salt,i=4096"[..]));
        // A 3.1.1 client has no AUTH: it is read as nothing the broker accepts.
        encode_auth(0x18, "SCRAM-SHA-256", b"x", &mut buf);
        assert!(matches!(
            decode(&mut buf, Version::V311, 1 << 20).unwrap(),
            Some(Inbound::Auth(None))
        ));
    }

    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn v4_bytes(packet: v4::Packet) -> BytesMut {
        let mut out = BytesMut::new();
        packet.write(&mut out, usize::MAX).unwrap();
        out
    }

    #[test]
    fn connect_levels_are_read_before_decoding() {
        let connect = v4::Connect::new("c");
        let bytes = v4_bytes(v4::Packet::Connect(connect));
        assert_eq!(connect_version(&bytes).unwrap(), Version::V311);
        let mut v3 = bytes.to_vec();
        v3[8] = 3;
        assert!(matches!(
            connect_version(&v3),
            Err(DecodeError::Protocol(ProtocolRefusal::Level(3)))
        ));
    }

    #[test]
    fn reserved_flags_and_qos_3_are_malformed() {
        let mut subscribe = v4_bytes(v4::Packet::Subscribe(v4::Subscribe::new(
            "a/b",
            V4QoS::AtLeastOnce,
        )));
        subscribe[0] = 0x80;
        assert!(matches!(
            decode(&mut subscribe, Version::V311, 1024),
            Err(DecodeError::Malformed(_))
        ));
        let mut publish = v4_bytes(v4::Packet::Publish(v4::Publish::new(
            "a",
            V4QoS::AtMostOnce,
            Bytes::from_static(b"x"),
        )));
        publish[0] |= 0b0110;
        assert!(matches!(
            decode(&mut publish, Version::V311, 1024),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn remaining_length_overflow_is_malformed() {
        let mut bytes = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert!(matches!(
            decode(&mut bytes, Version::V5, 1 << 20),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_packet_over_the_maximum_is_refused_before_its_body_arrives() {
        let mut bytes = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0x7F][..]);
        assert!(matches!(
            decode(&mut bytes, Version::V5, 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder, and what it decodes consumed bytes.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for version in [Version::V311, Version::V5] {
                let mut buf = BytesMut::from(&data[..]);
                let before = buf.len();
                if let Ok(Some(_)) = decode(&mut buf, version, 256) {
                    prop_assert!(buf.len() < before);
                }
            }
        }

        /// A 3.1.1 PUBLISH survives the trip through the v5 model and back.
        #[test]
        fn v311_publish_round_trips(topic in "[a-z/]{1,20}", payload in proptest::collection::vec(any::<u8>(), 0..100), qos in 0u8..3, pkid in 1u16..) {
            let mut p = v4::Publish::new(topic.clone(), to_v4_qos(qos_from(qos)), payload.clone());
            if qos > 0 { p.pkid = pkid; }
            let mut bytes = v4_bytes(v4::Packet::Publish(p.clone()));
            let Some(Inbound::Packet(packet)) = decode(&mut bytes, Version::V311, 1 << 16).unwrap() else {
                panic!("a whole packet");
            };
            let mut out = BytesMut::new();
            encode(&packet, Version::V311, &mut out);
            prop_assert_eq!(out, v4_bytes(v4::Packet::Publish(p)));
        }
    }
}
