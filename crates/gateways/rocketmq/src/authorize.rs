//! Per-topic and per-group authorisation of RocketMQ calls, with the broker's ACLs (the same
//! bindings Kafka's AdminClient makes, [`porter_core::acl`]): with `[rocketmq] acls = true`,
//! a call is allowed only if an ACL allows its signer (`User:<AccessKey>`, or `User:ANONYMOUS`
//! unsigned) the operation, as Kafka's broker decides it:
//!
//! | call | operation | resource |
//! |---|---|---|
//! | SendMessage, EndTransaction | Write | topic |
//! | QueryRoute | Describe | topic |
//! | QueryAssignment | Describe | topic, Read on the group |
//! | ReceiveMessage, AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue | Read | topic and group |
//!
//! Users tagged `administrator` are super users. A refusal is RocketMQ's `FORBIDDEN` (40300).

use std::net::SocketAddr;

pub use porter_core::acl::{Operation, ResourceType};

use crate::error::Refusal;
use crate::proto::Code;
use crate::service::Gateway;

/// Who made a call, put into each request by the connection's interceptor.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The signing user; `None` unsigned (authentication off).
    pub user: Option<String>,
    /// The user is tagged `administrator` (Kafka's `super.users`).
    pub super_user: bool,
    pub peer: SocketAddr,
}

impl Caller {
    /// The caller a request carries (an anonymous one from nowhere if none was put: tests
    /// calling the service directly).
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller {
                user: None,
                super_user: false,
                peer: ([0, 0, 0, 0], 0).into(),
            })
    }

    fn principal(&self) -> String {
        format!("User:{}", self.user.as_deref().unwrap_or("ANONYMOUS"))
    }

    /// `Ok` if the caller may do `operation` on the resource, else `FORBIDDEN`.
    pub fn may(
        &self,
        gateway: &Gateway,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), Refusal> {
        if !gateway.config.acls || self.super_user {
            return Ok(());
        }
        let (principal, host) = (self.principal(), self.peer.ip().to_string());
        if gateway
            .broker
            .acls()
            .authorize(&principal, &host, operation, resource_type, name)
        {
            return Ok(());
        }
        tracing::debug!(%principal, %host, ?operation, ?resource_type, name, "RocketMQ ACLs refused");
        let kind = match resource_type {
            ResourceType::Group => "group",
            _ => "topic",
        };
        Err(Refusal::new(
            Code::Forbidden,
            format!("{principal} may not {operation:?} {kind} {name}"),
        ))
    }

    /// A consumer's call: `Read` on the group and on the topic.
    pub fn may_consume(&self, gateway: &Gateway, group: &str, topic: &str) -> Result<(), Refusal> {
        self.may(gateway, Operation::Read, ResourceType::Group, group)?;
        self.may(gateway, Operation::Read, ResourceType::Topic, topic)
    }
}
