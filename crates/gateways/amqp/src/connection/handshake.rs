//! The `start / tune / open` negotiation after the protocol header: authenticate (PLAIN or
//! AMQPLAIN, [`crate::auth`]), settle frame_max, channel_max and the heartbeat, open the
//! virtual host, and build the connection's [`Session`].

use std::net::SocketAddr;

use amq_protocol::frame::ProtocolVersion;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use futures::StreamExt;
use porter_gateway_kit::auth::Authenticator;
use porter_gateway_kit::{OutboundSender, Stream};

use super::{send, Context, Frames};
use crate::auth::authenticate;
use crate::config::FRAME_MIN_SIZE;
use crate::error::{AmqpError, COMMAND_INVALID, NOT_ALLOWED};
use crate::frame::{Frame, FrameError};
use crate::out::Out;
use crate::session::{Capabilities, Session, SessionFeeds};

/// What the handshake settled.
pub(super) struct Negotiated {
    pub session: Session,
    pub feeds: SessionFeeds,
    pub frame_max: u32,
    /// Seconds; 0 = off.
    pub heartbeat: u16,
    pub channel_max: u16,
}

/// start → start-ok → tune → tune-ok → open → open-ok. `Err(None)`: the client went away.
pub(super) async fn handshake<S: Stream>(
    frames: &mut Frames<S>,
    writer: &OutboundSender,
    peer: SocketAddr,
    authenticator: Option<&dyn Authenticator>,
    client_login: Option<&str>,
    ctx: &Context,
) -> Result<Negotiated, Option<AmqpError>> {
    let mut out = Out::new(FRAME_MIN_SIZE);
    out.method(0, start_method(client_login.is_some()));
    send(writer, &mut out, None).await.map_err(|_| None)?;
    let start_ok = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)) => ok,
        _ => return Err(Some(unexpected("connection.start-ok"))),
    };
    // The listener's authenticator (the kit's hook), else the configured users.
    let authenticator = authenticator.unwrap_or(&ctx.users);
    let user = authenticate(&start_ok, peer, authenticator, client_login)
        .await
        .map_err(Some)?;
    let capabilities = client_capabilities(&start_ok.client_properties);
    let config = &ctx.config;
    out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat_s,
        })),
    );
    send(writer, &mut out, None).await.map_err(|_| None)?;
    let tune_ok = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(ok)) => ok,
        _ => return Err(Some(unexpected("connection.tune-ok"))),
    };
    let frame_max = match tune_ok.frame_max {
        0 => config.frame_max,
        n => n.clamp(FRAME_MIN_SIZE, config.frame_max),
    };
    frames.decoder_mut().frame_max = frame_max;
    let open = match next_method(frames).await? {
        AMQPClass::Connection(connection::AMQPMethod::Open(open)) => open,
        _ => return Err(Some(unexpected("connection.open"))),
    };
    let vhost = ctx.broker.vhost(open.virtual_host.as_str()).map_err(|_| {
        Some(
            AmqpError::connection(
                NOT_ALLOWED,
                format!("vhost {} not found", open.virtual_host.as_str()),
            )
            .on(10, 40),
        )
    })?;
    let vhost_name = open.virtual_host.as_str();
    if !authenticator.may_use_vhost(&user, vhost_name) {
        tracing::warn!(%peer, user = %user, vhost = %vhost_name, "amqp: vhost access refused: the user has no permissions there");
        return Err(Some(
            AmqpError::connection(
                NOT_ALLOWED,
                format!("access to vhost '{vhost_name}' refused for user '{user}'"),
            )
            .on(10, 40),
        ));
    }
    // Counted against the vhost's and the user's max-connections while the session lives.
    let vhost_slot = ctx.broker.open_client_connection(&user, vhost_name).map_err(|e| {
        tracing::warn!(%peer, user = %user, vhost = %vhost_name, error = %e, "amqp: connection limit");
        Some(
            AmqpError::connection(
                NOT_ALLOWED,
                format!("access to vhost '{vhost_name}' refused for user '{user}': {e}"),
            )
            .on(10, 40),
        )
    })?;
    out.method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    send(writer, &mut out, None).await.map_err(|_| None)?;
    let (mut session, feeds) = Session::new(
        vhost,
        user,
        ctx.config.clone(),
        capabilities,
        ctx.replies.clone(),
    );
    session.permissions_checked = authenticator.enforces_permissions();
    session.vhost_slot = Some(vhost_slot);
    tracing::debug!(%peer, user = %session.user, vhost = %session.vhost.name(), frame_max, heartbeat = tune_ok.heartbeat, channel_max = tune_ok.channel_max, "amqp: connection open");
    Ok(Negotiated {
        session,
        feeds,
        frame_max,
        heartbeat: tune_ok.heartbeat,
        channel_max: match tune_ok.channel_max {
            0 => config.channel_max,
            n => n.min(config.channel_max),
        },
    })
}

async fn next_method<S: Stream>(frames: &mut Frames<S>) -> Result<AMQPClass, Option<AmqpError>> {
    loop {
        match frames.next().await {
            Some(Ok(Frame::Method(0, method))) => return Ok(method),
            Some(Ok(Frame::Heartbeat(_))) => continue,
            Some(Ok(_)) => return Err(Some(unexpected("a connection method on channel 0"))),
            Some(Err(FrameError::Io(_))) | None => return Err(None),
            Some(Err(e)) => return Err(Some(AmqpError::from_frame(&e))),
        }
    }
}

fn unexpected(expected: &str) -> AmqpError {
    AmqpError::connection(COMMAND_INVALID, format!("expected {expected}"))
}

/// `connection.start`; EXTERNAL is offered, first, when mutual TLS verified a certificate (as
/// RabbitMQ's `rabbitmq_auth_mechanism_ssl` offers it).
fn start_method(external: bool) -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    capabilities.insert("direct_reply_to".into(), AMQPValue::Boolean(true));
    let mut properties = FieldTable::default();
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    for (key, value) in [
        ("product", "Porter"),
        ("version", env!("CARGO_PKG_VERSION")),
        ("platform", "Rust"),
        ("information", "https://github.com/porter-broker/porter"),
        ("cluster_name", "porter"),
    ] {
        properties.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    let version = ProtocolVersion::amqp_0_9_1();
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: version.major,
        version_minor: version.minor,
        server_properties: properties,
        mechanisms: LongString::from(match external {
            true => "EXTERNAL PLAIN AMQPLAIN",
            false => "PLAIN AMQPLAIN",
        }),
        locales: LongString::from("en_US"),
    }))
}

fn client_capabilities(properties: &FieldTable) -> Capabilities {
    let mut caps = Capabilities::default();
    if let Some(AMQPValue::FieldTable(table)) = properties.inner().get("capabilities") {
        let flag = |name: &str| matches!(table.inner().get(name), Some(AMQPValue::Boolean(true)));
        caps.consumer_cancel_notify = flag("consumer_cancel_notify");
        caps.connection_blocked = flag("connection.blocked");
    }
    caps
}
