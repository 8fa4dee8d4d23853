//! RoutingTable tests, checked against RabbitMQ's behaviour: `lifecycle` (declare, delete, bind,
//! unbind, auto-delete), `route` (where messages go), `properties` (snapshots, and random
//! operation sequences that must keep the invariants and change nothing when refused), `scale`
//! (100k bindings over 10k queues).

mod lifecycle;
mod properties;
mod route;
mod scale;

use super::exchange::ALTERNATE_EXCHANGE;
use super::limits::BINDINGS_PER_EXCHANGE_MAX;
use super::*;

pub(super) fn queue(name: &str) -> Destination {
    Destination::Queue(name.to_string())
}

pub(super) fn exchange_dest(name: &str) -> Destination {
    Destination::Exchange(name.to_string())
}

pub(super) fn table_with(exchanges: &[(&str, ExchangeKind)], queues: &[&str]) -> RoutingTable {
    let mut table = RoutingTable::new();
    for &(name, kind) in exchanges {
        table.declare_exchange(Exchange::new(name, kind)).unwrap();
    }
    for name in queues {
        table.add_queue(name).unwrap();
    }
    table
}

pub(super) fn route(table: &RoutingTable, exchange: &str, key: &str) -> Vec<String> {
    let result = table.route(exchange, key, &Headers::new()).unwrap();
    assert!(!result.depth_limit_reached);
    result.queues
}

pub(super) fn with_alternate(mut exchange: Exchange, alternate: &str) -> Exchange {
    exchange
        .arguments
        .insert(ALTERNATE_EXCHANGE.into(), HeaderValue::from(alternate));
    exchange
}

pub(super) fn auto_delete(name: &str, kind: ExchangeKind) -> Exchange {
    Exchange {
        auto_delete: true,
        ..Exchange::new(name, kind)
    }
}

/// The invariants `RoutingTable`'s doc promises.
pub(super) fn assert_invariants(table: &RoutingTable) {
    for (source, set) in &table.bindings {
        assert!(!set.is_empty(), "empty binding set kept for {source:?}");
        assert!(set.len() <= BINDINGS_PER_EXCHANGE_MAX);
        set.assert_consistent();
        assert!(
            table.exchanges.contains_key(source),
            "binding from missing {source:?}"
        );
        for binding in set.iter() {
            assert_eq!(&binding.source, source);
            match &binding.destination {
                Destination::Queue(q) => {
                    assert!(table.queues.contains(q), "binding to missing queue {q:?}")
                }
                Destination::Exchange(e) => assert!(
                    table.exchanges.contains_key(e),
                    "binding to missing exchange {e:?}"
                ),
            }
        }
    }
    assert!(!table.exchanges.contains_key(DEFAULT_EXCHANGE));
    table.assert_incoming_consistent();
}
