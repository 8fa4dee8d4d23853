//! Exchanges: where publishers send messages, and what decides which queues get them. This file
//! holds the exchange's properties and the rules for declaring one; the [`RoutingTable`]
//! (`mod.rs`) stores them and applies the rules.
//!
//! [`RoutingTable`]: super::RoutingTable

use serde::{Deserialize, Serialize};

use super::equivalence::{check_arguments, check_property, DeclaredKind, Inequivalent};
use super::error::RoutingError;
use super::limits::NAME_BYTES_MAX;
use super::value::FieldTable;

/// The default exchange: every queue is implicitly bound to it by its own name. It cannot be
/// declared, deleted or bound explicitly.
pub const DEFAULT_EXCHANGE: &str = "";

/// Names with this prefix belong to the broker: clients may re-declare the existing ones but not
/// create new ones, nor delete them.
pub const RESERVED_PREFIX: &str = "amq.";

/// The exchange argument naming where messages go when this exchange routes them nowhere.
pub const ALTERNATE_EXCHANGE: &str = "alternate-exchange";

/// The type RabbitMQ's delayed-message plugin adds: an exchange that holds a message with an
/// `x-delay` header for that many milliseconds, then routes it as its `x-delayed-type` does.
pub const DELAYED_MESSAGE_TYPE: &str = "x-delayed-message";
/// The argument naming how a delayed-message exchange routes (`direct`, `topic`, ...).
pub const DELAYED_TYPE_ARGUMENT: &str = "x-delayed-type";
/// The message header holding a delay in milliseconds.
pub const DELAY_HEADER: &str = "x-delay";

/// The exchanges every virtual host starts with, as in RabbitMQ (without its trace exchange).
pub const PREDECLARED: [(&str, ExchangeKind); 5] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// How an exchange picks destinations among its bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    /// Bindings whose key equals the routing key.
    Direct,
    /// Every binding; the routing key is ignored.
    Fanout,
    /// Bindings whose key, a `*`/`#` pattern, matches the routing key (see `topic.rs`).
    Topic,
    /// Bindings whose arguments match the message headers (see `headers.rs`).
    Headers,
}

impl ExchangeKind {
    /// The AMQP type name a gateway receives in `exchange.declare`.
    pub fn parse(name: &str) -> Result<Self, RoutingError> {
        match name {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(RoutingError::UnknownExchangeKind(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// An exchange as declared. Serialisable so an `exchange.declare` can become a metadata command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// At most [`NAME_BYTES_MAX`] bytes; not empty (that is the default exchange).
    pub name: String,
    pub kind: ExchangeKind,
    /// Survives a broker restart. Porter keeps all metadata in the journal; the flag is kept so
    /// that transient exchanges can be dropped at start-up and declares compare as RabbitMQ's do.
    pub durable: bool,
    /// Deleted when its last binding (as source) is removed. Never deleted merely for having no
    /// bindings at declare time.
    pub auto_delete: bool,
    /// Cannot be published to directly, only reached through exchange-to-exchange bindings.
    pub internal: bool,
    /// Free-form arguments; [`ALTERNATE_EXCHANGE`] is the one the routing model reads.
    pub arguments: FieldTable,
    /// Declared as [`DELAYED_MESSAGE_TYPE`]: `kind` is its `x-delayed-type`, and a message with
    /// a positive [`DELAY_HEADER`] waits in the broker's timer store before it is routed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delayed: bool,
}

impl Exchange {
    /// A durable, non-auto-delete, non-internal exchange without arguments.
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Exchange {
            name: name.into(),
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
            delayed: false,
        }
    }

    /// The routing kind and delayed flag of an `exchange.declare` of type `type_name`:
    /// `x-delayed-message` takes its kind from the `x-delayed-type` argument, as RabbitMQ's
    /// plugin does (without one it refuses the declare).
    pub fn declared_kind(
        name: &str,
        type_name: &str,
        arguments: &FieldTable,
    ) -> Result<(ExchangeKind, bool), RoutingError> {
        if type_name != DELAYED_MESSAGE_TYPE {
            return Ok((ExchangeKind::parse(type_name)?, false));
        }
        let inner = arguments
            .get(DELAYED_TYPE_ARGUMENT)
            .and_then(|v| v.as_str())
            .and_then(|t| ExchangeKind::parse(t).ok())
            .ok_or_else(|| {
                RoutingError::precondition(
                    name,
                    format!(
                        "Invalid argument, '{DELAYED_TYPE_ARGUMENT}' must be an existing exchange type"
                    ),
                )
            })?;
        Ok((inner, true))
    }

    /// The type a client declared: [`DELAYED_MESSAGE_TYPE`] for a delayed exchange.
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            DELAYED_MESSAGE_TYPE
        } else {
            self.kind.as_str()
        }
    }

    /// The exchange's alternate exchange, if its arguments name one.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.arguments.get(ALTERNATE_EXCHANGE)?.as_str()
    }

    /// Whether the broker owns this name (`amq.*`).
    pub fn is_reserved_name(name: &str) -> bool {
        name.starts_with(RESERVED_PREFIX)
    }

    /// Checks what a declare can check without the table: name length, argument types.
    pub(crate) fn validate(&self) -> Result<(), RoutingError> {
        validate_name(&self.name)?;
        if self.name == DEFAULT_EXCHANGE {
            return Err(RoutingError::AccessRefused {
                name: self.name.clone(),
                reason: "the default exchange cannot be declared",
            });
        }
        if let Some(value) = self.arguments.get(ALTERNATE_EXCHANGE) {
            match value.as_str() {
                Some(alternate) => validate_name(alternate)?,
                None => {
                    return Err(RoutingError::precondition(
                        &self.name,
                        format!(
                            "invalid type '{}' for arg '{ALTERNATE_EXCHANGE}'",
                            super::equivalence::type_name(value)
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// RabbitMQ's declare equivalence (`rabbit_exchange:assert_equivalence/6`): type, durable,
    /// auto-delete and internal must be equal, in that order, and among the arguments only
    /// `alternate-exchange` is compared, by [`equivalence`](super::equivalence)'s rule (others
    /// may differ and the existing ones are kept). A mismatch is 406 PRECONDITION_FAILED.
    pub fn check_equivalent(&self, requested: &Exchange) -> Result<(), Inequivalent> {
        debug_assert_eq!(self.name, requested.name);
        let (kind, name) = (DeclaredKind::Exchange, self.name.as_str());
        check_property(kind, name, "type", self.type_name(), requested.type_name())?;
        check_property(kind, name, "durable", self.durable, requested.durable)?;
        check_property(
            kind,
            name,
            "auto_delete",
            self.auto_delete,
            requested.auto_delete,
        )?;
        check_property(kind, name, "internal", self.internal, requested.internal)?;
        check_arguments(
            kind,
            name,
            &self.arguments,
            &requested.arguments,
            &[ALTERNATE_EXCHANGE, DELAYED_TYPE_ARGUMENT],
        )
    }
}

/// Exchange, queue and routing-key names: at most an AMQP shortstr.
pub fn validate_name(name: &str) -> Result<(), RoutingError> {
    if name.len() > NAME_BYTES_MAX {
        return Err(RoutingError::InvalidName {
            len_bytes: name.len(),
            reason: "longer than 255 bytes (AMQP shortstr)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::value::HeaderValue;

    #[test]
    fn kind_names_round_trip() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            assert_eq!(ExchangeKind::parse(kind.as_str()), Ok(kind));
        }
        assert_eq!(
            ExchangeKind::parse("x-consistent-hash"),
            Err(RoutingError::UnknownExchangeKind(
                "x-consistent-hash".into()
            ))
        );
    }

    #[test]
    fn equivalence_compares_flags_and_alternate_exchange_only() {
        let existing = Exchange::new("e", ExchangeKind::Topic);
        assert!(existing.check_equivalent(&existing.clone()).is_ok());

        let mut other_args = existing.clone();
        other_args
            .arguments
            .insert("x-foo".into(), HeaderValue::I32(1));
        assert!(existing.check_equivalent(&other_args).is_ok());

        let changes: [fn(&mut Exchange); 5] = [
            |e| e.kind = ExchangeKind::Direct,
            |e| e.durable = false,
            |e| e.auto_delete = true,
            |e| e.internal = true,
            |e| {
                e.arguments
                    .insert(ALTERNATE_EXCHANGE.into(), HeaderValue::from("ae"));
            },
        ];
        for change in changes {
            let mut requested = existing.clone();
            change(&mut requested);
            assert!(existing.check_equivalent(&requested).is_err());
        }
    }

    #[test]
    fn validate_checks_name_length_default_and_alternate_type() {
        assert!(Exchange::new("a".repeat(255), ExchangeKind::Direct)
            .validate()
            .is_ok());
        assert!(matches!(
            Exchange::new("a".repeat(256), ExchangeKind::Direct).validate(),
            Err(RoutingError::InvalidName { len_bytes: 256, .. })
        ));
        assert!(matches!(
            Exchange::new("", ExchangeKind::Direct).validate(),
            Err(RoutingError::AccessRefused { .. })
        ));
        let mut bad_ae = Exchange::new("e", ExchangeKind::Direct);
        bad_ae
            .arguments
            .insert(ALTERNATE_EXCHANGE.into(), HeaderValue::I64(3));
        assert!(matches!(
            bad_ae.validate(),
            Err(RoutingError::Precondition { .. })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let mut exchange = Exchange::new("e", ExchangeKind::Headers);
        exchange
            .arguments
            .insert(ALTERNATE_EXCHANGE.into(), HeaderValue::from("ae"));
        let json = serde_json::to_string(&exchange).unwrap();
        assert_eq!(serde_json::from_str::<Exchange>(&json).unwrap(), exchange);
    }
}
