//! `exchange.declare / delete / bind / unbind`: each becomes one virtual-host call and, unless
//! `nowait`, its `-ok`.

use amq_protocol::protocol::{exchange, AMQPClass};
use porter_core::routing::{Destination, Exchange, ExchangeKind};
use porter_core::users::access::{Access, Resource};
use porter_core::CoreError;

use crate::convert::{binding, table_from_amqp};
use crate::out::Out;
use crate::session::Session;

/// One exchange-class method on channel `id`.
pub async fn command(
    s: &Session,
    id: u16,
    method: exchange::AMQPMethod,
    out: &mut Out,
) -> Result<(), CoreError> {
    let (reply, nowait) = match method {
        exchange::AMQPMethod::Declare(d) => {
            if !d.passive {
                s.authorize(Access::Configure, Resource::Exchange(d.exchange.as_str()))?;
            }
            let arguments = table_from_amqp(&d.arguments);
            let (kind, delayed) = if d.passive {
                (ExchangeKind::Direct, false)
            } else {
                Exchange::declared_kind(d.exchange.as_str(), d.kind.as_str(), &arguments)?
            };
            let declared = Exchange {
                name: d.exchange.as_str().to_string(),
                kind,
                durable: d.durable,
                auto_delete: d.auto_delete,
                internal: d.internal,
                arguments,
                delayed,
            };
            s.vhost.declare_exchange(declared, d.passive).await?;
            (
                exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                d.nowait,
            )
        }
        exchange::AMQPMethod::Delete(d) => {
            s.authorize(Access::Configure, Resource::Exchange(d.exchange.as_str()))?;
            s.vhost
                .delete_exchange(d.exchange.as_str(), d.if_unused)
                .await?;
            (
                exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                d.nowait,
            )
        }
        exchange::AMQPMethod::Bind(b) => {
            s.authorize(Access::Write, Resource::Exchange(b.destination.as_str()))?;
            s.authorize_bind_source(b.source.as_str(), b.routing_key.as_str())?;
            let binding = binding(
                b.source.as_str(),
                Destination::Exchange(b.destination.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.bind(binding, s.owner).await?;
            (exchange::AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
        }
        exchange::AMQPMethod::Unbind(b) => {
            s.authorize(Access::Write, Resource::Exchange(b.destination.as_str()))?;
            s.authorize_bind_source(b.source.as_str(), b.routing_key.as_str())?;
            let binding = binding(
                b.source.as_str(),
                Destination::Exchange(b.destination.as_str().to_string()),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.unbind(binding, s.owner).await?;
            (
                exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                b.nowait,
            )
        }
        _ => return Ok(()),
    };
    if !nowait {
        out.method(id, AMQPClass::Exchange(reply));
    }
    Ok(())
}
