//! The RabbitMQ model's exchanges, queues and bindings go through the metadata journal like
//! topics: a refused change is never written, and replay after a crash rebuilds the same routes.

use porter_core::metadata::command::RoutingChange;
use porter_core::metadata::{MetadataCommand, MetadataStore};
use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind, Headers};

fn queue(name: &str) -> QueueDefinition {
    QueueDefinition {
        name: name.into(),
        id: Default::default(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Default::default(),
    }
}

fn change(change: RoutingChange) -> MetadataCommand {
    MetadataCommand::Routing {
        vhost: "/".into(),
        change,
    }
}

#[test]
fn routing_changes_replay_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = MetadataStore::open(dir.path()).unwrap();
        for command in [
            change(RoutingChange::DeclareExchange {
                exchange: Exchange::new("orders", ExchangeKind::Topic),
            }),
            change(RoutingChange::DeclareQueue {
                queue: queue("inventory"),
            }),
            change(RoutingChange::Bind {
                binding: Binding::new(
                    "orders",
                    Destination::Queue("inventory".into()),
                    "order.*.created",
                ),
            }),
        ] {
            store.submit(command).unwrap();
        }
        // Refused (no such queue): checked first, so nothing reaches the journal.
        let refused = store.submit(change(RoutingChange::Bind {
            binding: Binding::new("orders", Destination::Queue("nowhere".into()), "#"),
        }));
        assert!(refused.is_err());
        // A vhost that was never declared.
        let unknown = store.submit(MetadataCommand::Routing {
            vhost: "elsewhere".into(),
            change: RoutingChange::DeclareQueue { queue: queue("q") },
        });
        assert!(unknown.is_err());
        // Dropped without a clean close, like a kill -9.
    }
    let store = MetadataStore::open(dir.path()).unwrap();
    let table = &store.state().vhosts["/"];
    let routed = table
        .route("orders", "order.eu.created", &Headers::new())
        .unwrap();
    assert_eq!(routed.queues, vec!["inventory".to_string()]);
    assert!(table
        .route("orders", "order.eu.shipped", &Headers::new())
        .unwrap()
        .queues
        .is_empty());
    assert_eq!(table.bindings_from("orders").count(), 1);
}

/// What a restart removes anyway (exclusive or non-durable queues, their bindings) is journaled
/// without its own fsync; what survives a restart is not. A later synced command persists both,
/// in order, so replay sees the same state.
#[test]
fn only_what_a_restart_removes_skips_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = MetadataStore::open(dir.path()).unwrap();
    let exclusive = QueueDefinition {
        exclusive_owner: Some(7),
        ..queue("amq.gen-inbox")
    };
    let transient = QueueDefinition {
        durable: false,
        ..queue("scratch")
    };
    let declare_exclusive = change(RoutingChange::DeclareQueue { queue: exclusive });
    let declare_durable = change(RoutingChange::DeclareQueue {
        queue: queue("orders"),
    });
    let state = store.state().clone();
    assert!(state.is_transient(&declare_exclusive));
    assert!(state.is_transient(&change(RoutingChange::DeclareQueue { queue: transient })));
    assert!(!state.is_transient(&declare_durable));
    store.submit(declare_exclusive).unwrap();
    store.submit(declare_durable).unwrap();
    let bind = |queue: &str| {
        change(RoutingChange::Bind {
            binding: Binding::new("amq.topic", Destination::Queue(queue.into()), "room.1"),
        })
    };
    assert!(store.state().is_transient(&bind("amq.gen-inbox")));
    assert!(!store.state().is_transient(&bind("orders")));
    assert!(store
        .state()
        .is_transient(&change(RoutingChange::RemoveQueue {
            name: "amq.gen-inbox".into()
        })));
    assert!(!store
        .state()
        .is_transient(&change(RoutingChange::RemoveQueue {
            name: "orders".into()
        })));
    store.submit(bind("amq.gen-inbox")).unwrap();
    store.submit(bind("orders")).unwrap();
    let expected = store.state().clone();
    drop(store);
    let reopened = MetadataStore::open(dir.path()).unwrap();
    assert_eq!(*reopened.state(), expected);
}
