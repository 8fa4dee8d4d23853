//! Destinations as RabbitMQ's STOMP plugin names them, plus Porter's `/kafka/<topic>`.
//!
//! | destination | SEND | SUBSCRIBE |
//! |---|---|---|
//! | `/queue/<name>` | declares durable queue `<name>`, publishes through the default exchange | declares it, consumes |
//! | `/topic/<key>` | publishes to `amq.topic` with routing key `<key>` | a queue bound to `amq.topic` with pattern `<key>`: exclusive and auto-delete, or durable and named after `id` with `persistent:true` |
//! | `/exchange/<x>/<key>` | publishes to exchange `<x>` (must exist) | an exclusive auto-delete queue bound to `<x>` with `<key>` |
//! | `/amq/queue/<name>` | publishes to existing queue `<name>` (default exchange) | consumes existing queue `<name>` |
//! | `/temp-queue/<name>` | to this connection's temp queue `<name>` | consumes it (it is also subscribed to when first named in `reply-to`) |
//! | `/reply-queue/<queue>` | to another connection's temp queue (what `reply-to` was rewritten to) | — |
//! | `/kafka/<topic>` | produces a record | reads every partition from `x-stream-offset` |

use crate::error::{Result, StompError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Queue(String),
    Topic(String),
    Exchange { exchange: String, key: String },
    AmqQueue(String),
    TempQueue(String),
    ReplyQueue(String),
    Kafka(String),
}

impl Destination {
    pub fn parse(text: &str) -> Result<Destination> {
        let bad = || {
            StompError::protocol(
                "unknown destination",
                format!(
                    "'{text}' is not a valid destination: use /queue/, /topic/, /exchange/, \
                     /amq/queue/, /temp-queue/, /reply-queue/ or /kafka/ followed by a name"
                ),
            )
        };
        let nonempty = |rest: &str| {
            if rest.is_empty() {
                Err(bad())
            } else {
                Ok(rest.to_string())
            }
        };
        if let Some(rest) = text.strip_prefix("/queue/") {
            Ok(Destination::Queue(nonempty(rest)?))
        } else if let Some(rest) = text.strip_prefix("/topic/") {
            Ok(Destination::Topic(nonempty(rest)?))
        } else if let Some(rest) = text.strip_prefix("/exchange/") {
            let (exchange, key) = rest.split_once('/').unwrap_or((rest, ""));
            Ok(Destination::Exchange {
                exchange: nonempty(exchange)?,
                key: key.to_string(),
            })
        } else if let Some(rest) = text.strip_prefix("/amq/queue/") {
            Ok(Destination::AmqQueue(nonempty(rest)?))
        } else if let Some(rest) = text.strip_prefix("/temp-queue/") {
            Ok(Destination::TempQueue(nonempty(rest)?))
        } else if let Some(rest) = text.strip_prefix("/reply-queue/") {
            Ok(Destination::ReplyQueue(nonempty(rest)?))
        } else if let Some(rest) = text.strip_prefix("/kafka/") {
            Ok(Destination::Kafka(nonempty(rest)?))
        } else {
            Err(bad())
        }
    }

    /// The destination a MESSAGE names for a message routed through `exchange` with `key`.
    pub fn of_message(exchange: &str, key: &str) -> String {
        match exchange {
            "" => format!("/queue/{key}"),
            "amq.topic" => format!("/topic/{key}"),
            _ => format!("/exchange/{exchange}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_names() {
        assert_eq!(
            Destination::parse("/queue/a").unwrap(),
            Destination::Queue("a".into())
        );
        assert_eq!(
            Destination::parse("/exchange/x/a.b").unwrap(),
            Destination::Exchange {
                exchange: "x".into(),
                key: "a.b".into()
            }
        );
        assert_eq!(
            Destination::parse("/exchange/x").unwrap(),
            Destination::Exchange {
                exchange: "x".into(),
                key: "".into()
            }
        );
        assert_eq!(
            Destination::parse("/amq/queue/q").unwrap(),
            Destination::AmqQueue("q".into())
        );
        assert!(Destination::parse("/queue/").is_err());
        assert!(Destination::parse("queue").is_err());
        assert_eq!(Destination::of_message("amq.topic", "a.b"), "/topic/a.b");
    }
}
