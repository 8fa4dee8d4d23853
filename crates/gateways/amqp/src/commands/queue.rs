//! `queue.declare / bind / unbind / purge / delete`: each becomes one virtual-host call and,
//! unless `nowait`, its `-ok`. An empty queue name means the channel's last declared queue.

use amq_protocol::protocol::{queue, AMQPClass};
use porter_core::queue::QueueDefinition;
use porter_core::routing::Destination;
use porter_core::users::access::{Access, Resource};

use crate::channel::Channel;
use crate::convert::{binding, table_from_amqp};
use crate::error::{AmqpError, PRECONDITION_FAILED};
use crate::out::Out;
use crate::session::Session;

/// One queue-class method; `ids` name it in errors.
pub async fn command(
    ch: &mut Channel,
    s: &Session,
    method: queue::AMQPMethod,
    ids: (u16, u16),
    out: &mut Out,
) -> Result<(), AmqpError> {
    let id = ch.id;
    let core = |e| s.error(&e).on(ids.0, ids.1);
    // A missing last queue is reported as RabbitMQ's precondition failure of the method.
    let name_of = |ch: &Channel, name: &str| {
        ch.queue_name(name)
            .map_err(|e| AmqpError::channel(PRECONDITION_FAILED, e.text).on(ids.0, ids.1))
    };
    let (reply, nowait) = match method {
        queue::AMQPMethod::Declare(d) => {
            // A server-named queue (empty name) is the connection's own: no check.
            if !d.passive && !d.queue.as_str().is_empty() {
                s.authorize(Access::Configure, Resource::Queue(d.queue.as_str()))
                    .map_err(core)?;
            }
            let definition = QueueDefinition {
                name: d.queue.as_str().to_string(),
                id: Default::default(),
                durable: d.durable,
                exclusive_owner: d.exclusive.then_some(s.owner),
                auto_delete: d.auto_delete,
                arguments: table_from_amqp(&d.arguments),
            };
            let declared = s
                .vhost
                .declare_queue(definition, d.passive, s.owner)
                .await
                .map_err(core)?;
            ch.last_queue = Some(declared.name.clone());
            (
                queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: declared.name.as_str().into(),
                    message_count: declared.message_count.min(u64::from(u32::MAX)) as u32,
                    consumer_count: declared.consumer_count,
                }),
                d.nowait,
            )
        }
        queue::AMQPMethod::Bind(b) => {
            let name = name_of(ch, b.queue.as_str())?;
            s.authorize(Access::Write, Resource::Queue(&name))
                .and_then(|()| s.authorize_bind_source(b.exchange.as_str(), b.routing_key.as_str()))
                .map_err(core)?;
            let binding = binding(
                b.exchange.as_str(),
                Destination::Queue(name),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.bind(binding, s.owner).await.map_err(core)?;
            (queue::AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
        }
        queue::AMQPMethod::Unbind(b) => {
            let name = name_of(ch, b.queue.as_str())?;
            s.authorize(Access::Write, Resource::Queue(&name))
                .and_then(|()| s.authorize_bind_source(b.exchange.as_str(), b.routing_key.as_str()))
                .map_err(core)?;
            let binding = binding(
                b.exchange.as_str(),
                Destination::Queue(name),
                b.routing_key.as_str(),
                &b.arguments,
            );
            s.vhost.unbind(binding, s.owner).await.map_err(core)?;
            (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
        }
        queue::AMQPMethod::Purge(p) => {
            let name = name_of(ch, p.queue.as_str())?;
            s.authorize(Access::Read, Resource::Queue(&name))
                .map_err(core)?;
            let count = s.vhost.purge_queue(&name, s.owner).await.map_err(core)?;
            (
                queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                    message_count: count.min(u64::from(u32::MAX)) as u32,
                }),
                p.nowait,
            )
        }
        queue::AMQPMethod::Delete(d) => {
            let name = name_of(ch, d.queue.as_str())?;
            s.authorize(Access::Configure, Resource::Queue(&name))
                .map_err(core)?;
            let count = s
                .vhost
                .delete_queue(&name, d.if_unused, d.if_empty, s.owner)
                .await
                .map_err(core)?;
            (
                queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                    message_count: count.min(u64::from(u32::MAX)) as u32,
                }),
                d.nowait,
            )
        }
        _ => return Ok(()),
    };
    if !nowait {
        out.method(id, AMQPClass::Queue(reply));
    }
    Ok(())
}
