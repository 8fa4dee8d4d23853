//! The gateway's errors and their reason codes, decided once: [`Refusal`] is a CONNACK that
//! refuses a connection, [`Disconnect`] ends an open one (MQTT 5: a server DISCONNECT with that
//! reason; 3.1.1 has none, the connection just closes). Core errors map here and nowhere else.

use porter_core::error::ErrorKind;
use porter_core::CoreError;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode, PubAckReason};

/// A refused CONNECT: the CONNACK code and the reason (logged; MQTT 5's Reason String).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: ConnectReturnCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: ConnectReturnCode, reason: impl Into<String>) -> Self {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    pub fn core(error: CoreError) -> Self {
        let code = match error.kind() {
            ErrorKind::Unavailable => ConnectReturnCode::ServerUnavailable,
            ErrorKind::Locked => ConnectReturnCode::ClientIdentifierNotValid,
            ErrorKind::Forbidden => ConnectReturnCode::NotAuthorized,
            _ => ConnectReturnCode::UnspecifiedError,
        };
        Refusal::new(code, error.to_string())
    }
}

/// Why the server ends a connection.
#[derive(Debug, Clone)]
pub struct Disconnect {
    pub code: DisconnectReasonCode,
    pub reason: String,
}

impl Disconnect {
    pub fn new(code: DisconnectReasonCode, reason: impl Into<String>) -> Self {
        Disconnect {
            code,
            reason: reason.into(),
        }
    }

    pub fn protocol(reason: impl Into<String>) -> Self {
        Disconnect::new(DisconnectReasonCode::ProtocolError, reason)
    }

    pub fn malformed(reason: impl Into<String>) -> Self {
        Disconnect::new(DisconnectReasonCode::MalformedPacket, reason)
    }

    pub fn core(error: CoreError) -> Self {
        let code = match error.kind() {
            ErrorKind::Unavailable => DisconnectReasonCode::ServerBusy,
            ErrorKind::Forbidden => DisconnectReasonCode::NotAuthorized,
            ErrorKind::Precondition => DisconnectReasonCode::QuotaExceeded,
            _ => DisconnectReasonCode::UnspecifiedError,
        };
        Disconnect::new(code, error.to_string())
    }
}

/// A PUBACK/PUBREC reason for a publish the core refused.
pub fn publish_reason(error: &CoreError) -> PubAckReason {
    match error.kind() {
        ErrorKind::Forbidden => PubAckReason::NotAuthorized,
        ErrorKind::Precondition | ErrorKind::TooLarge => PubAckReason::QuotaExceeded,
        ErrorKind::Invalid => PubAckReason::PayloadFormatInvalid,
        _ => PubAckReason::ImplementationSpecificError,
    }
}

/// The number MQTT 5 gives a DISCONNECT reason (for close reasons and logs).
pub fn disconnect_number(code: DisconnectReasonCode) -> u32 {
    code as u32
}
