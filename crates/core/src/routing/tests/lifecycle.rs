//! Declaring, deleting, binding and unbinding, and the auto-delete cascade.

use super::*;
use crate::routing::limits::BINDINGS_PER_EXCHANGE_MAX;

#[test]
fn new_table_has_the_predeclared_exchanges() {
    let table = RoutingTable::new();
    let names: Vec<_> = table
        .exchanges()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
            ("amq.topic", ExchangeKind::Topic),
        ]
    );
    assert!(table
        .exchanges()
        .all(|e| e.durable && !e.auto_delete && !e.internal));
    assert_eq!(table.bindings().count(), 0);
}

#[test]
fn declare_creates_then_accepts_equivalent_redeclare() {
    let mut table = RoutingTable::new();
    let exchange = Exchange::new("logs", ExchangeKind::Topic);
    assert_eq!(
        table.declare_exchange(exchange.clone()),
        Ok(DeclareOutcome::Created)
    );
    assert_eq!(
        table.declare_exchange(exchange.clone()),
        Ok(DeclareOutcome::Existed)
    );

    // Arguments other than alternate-exchange are not compared, and the first ones are kept.
    let mut other_args = exchange.clone();
    other_args
        .arguments
        .insert("x-foo".into(), HeaderValue::I32(1));
    assert_eq!(
        table.declare_exchange(other_args),
        Ok(DeclareOutcome::Existed)
    );
    assert_eq!(table.exchange("logs"), Some(&exchange));
}

#[test]
fn inequivalent_redeclare_is_precondition_failed_and_changes_nothing() {
    let mut table = table_with(&[("logs", ExchangeKind::Topic)], &[]);
    let before = table.clone();
    let mut durable_changed = Exchange::new("logs", ExchangeKind::Topic);
    durable_changed.durable = false;
    for requested in [
        Exchange::new("logs", ExchangeKind::Fanout),
        durable_changed,
        with_alternate(Exchange::new("logs", ExchangeKind::Topic), "ae"),
    ] {
        assert!(matches!(
            table.declare_exchange(requested),
            Err(RoutingError::Inequivalent(_))
        ));
    }
    assert_eq!(table, before);
}

#[test]
fn reserved_names_default_exchange_and_long_names() {
    let mut table = RoutingTable::new();
    // Re-declaring a predeclared exchange as it is: fine. Differently: 406. A new amq.*: 403.
    let direct = Exchange::new("amq.direct", ExchangeKind::Direct);
    assert_eq!(table.declare_exchange(direct), Ok(DeclareOutcome::Existed));
    assert!(matches!(
        table.declare_exchange(Exchange::new("amq.direct", ExchangeKind::Fanout)),
        Err(RoutingError::Inequivalent(_))
    ));
    assert!(matches!(
        table.declare_exchange(Exchange::new("amq.custom", ExchangeKind::Fanout)),
        Err(RoutingError::AccessRefused { .. })
    ));
    assert!(matches!(
        table.declare_exchange(Exchange::new("", ExchangeKind::Direct)),
        Err(RoutingError::AccessRefused { .. })
    ));
    assert!(matches!(
        table.declare_exchange(Exchange::new("x".repeat(256), ExchangeKind::Direct)),
        Err(RoutingError::InvalidName { len_bytes: 256, .. })
    ));
    assert!(table.add_queue(&"q".repeat(256)).is_err());
    assert!(matches!(
        table.add_queue(""),
        Err(RoutingError::InvalidName { len_bytes: 0, .. })
    ));
    assert_eq!(table.add_queue("q"), Ok(true));
    assert_eq!(table.add_queue("q"), Ok(false));
    assert!(table.remove_queue("q"));
    assert_eq!(table, RoutingTable::new());
    assert!(table
        .declare_exchange(Exchange::new("x".repeat(255), ExchangeKind::Direct))
        .is_ok());
}

#[test]
fn passive_declare() {
    let table = table_with(&[("e", ExchangeKind::Direct)], &[]);
    assert_eq!(table.check_exchange("e").unwrap().name, "e");
    assert!(table.check_exchange("amq.topic").is_ok());
    assert_eq!(
        table.check_exchange("nope"),
        Err(RoutingError::ExchangeNotFound("nope".into()))
    );
    assert!(matches!(
        table.check_exchange(""),
        Err(RoutingError::AccessRefused { .. })
    ));
}

#[test]
fn delete_exchange_rules() {
    let mut table = table_with(&[("e", ExchangeKind::Direct)], &["q"]);
    assert_eq!(table.delete_exchange("missing", false), Ok(false));
    assert_eq!(table.delete_exchange("amq.custom", false), Ok(false));
    assert!(matches!(
        table.delete_exchange("amq.direct", false),
        Err(RoutingError::AccessRefused { .. })
    ));
    assert!(matches!(
        table.delete_exchange("", false),
        Err(RoutingError::AccessRefused { .. })
    ));

    table.bind(Binding::new("e", queue("q"), "k")).unwrap();
    let before = table.clone();
    assert!(matches!(
        table.delete_exchange("e", true),
        Err(RoutingError::Precondition { .. })
    ));
    assert_eq!(table, before);
    assert_eq!(table.delete_exchange("e", false), Ok(true));
    assert!(table.exchange("e").is_none());
    assert_eq!(table.bindings().count(), 0);
    assert_invariants(&table);

    // Only outgoing bindings make an exchange "used".
    let mut table = table_with(
        &[("src", ExchangeKind::Fanout), ("dst", ExchangeKind::Fanout)],
        &[],
    );
    table
        .bind(Binding::new("src", exchange_dest("dst"), ""))
        .unwrap();
    assert_eq!(table.delete_exchange("dst", true), Ok(true));
    assert_eq!(
        table.bindings().count(),
        0,
        "bindings to a deleted exchange go too"
    );
    assert_invariants(&table);
}

#[test]
fn bind_requires_both_ends_and_refuses_the_default_exchange() {
    let mut table = table_with(&[("e", ExchangeKind::Direct)], &["q"]);
    let before = table.clone();
    assert_eq!(
        table.bind(Binding::new("nope", queue("q"), "k")),
        Err(RoutingError::ExchangeNotFound("nope".into()))
    );
    assert_eq!(
        table.bind(Binding::new("e", queue("nope"), "k")),
        Err(RoutingError::QueueNotFound("nope".into()))
    );
    assert_eq!(
        table.bind(Binding::new("e", exchange_dest("nope"), "k")),
        Err(RoutingError::ExchangeNotFound("nope".into()))
    );
    for binding in [
        Binding::new("", queue("q"), "q"),
        Binding::new("e", exchange_dest(""), "k"),
    ] {
        assert!(matches!(
            table.bind(binding),
            Err(RoutingError::AccessRefused { .. })
        ));
    }
    assert!(matches!(
        table.bind(Binding::new("e", queue("q"), "k".repeat(256))),
        Err(RoutingError::InvalidName { .. })
    ));
    assert_eq!(table, before);
}

#[test]
fn bind_is_idempotent_and_identity_includes_key_and_arguments() {
    let mut table = table_with(&[("e", ExchangeKind::Direct)], &["q"]);
    assert_eq!(table.bind(Binding::new("e", queue("q"), "k")), Ok(true));
    assert_eq!(table.bind(Binding::new("e", queue("q"), "k")), Ok(false));
    assert_eq!(table.bind(Binding::new("e", queue("q"), "j")), Ok(true));
    let mut args = FieldTable::new();
    args.insert("a".into(), HeaderValue::I32(1));
    assert_eq!(
        table.bind(Binding::new("e", queue("q"), "k").with_arguments(args)),
        Ok(true)
    );
    // Unlike declare arguments, binding arguments identify the binding with their types, as
    // RabbitMQ's binding records do (`{<<"a">>, long, 1}` is not `{<<"a">>, signedint, 1}`).
    let mut wider = FieldTable::new();
    wider.insert("a".into(), HeaderValue::I64(1));
    assert_eq!(
        table.bind(Binding::new("e", queue("q"), "k").with_arguments(wider)),
        Ok(true)
    );
    assert_eq!(table.bindings_from("e").count(), 4);
    assert_eq!(table.bindings_to(&queue("q")).count(), 4);
    assert_invariants(&table);
}

#[test]
fn headers_binding_with_bad_x_match_is_refused() {
    let mut table = table_with(&[], &["q"]);
    let mut args = FieldTable::new();
    args.insert("x-match".into(), HeaderValue::from("most"));
    let binding = Binding::new("amq.match", queue("q"), "").with_arguments(args);
    assert!(matches!(
        table.bind(binding.clone()),
        Err(RoutingError::Precondition { .. })
    ));
    assert_eq!(table.bindings().count(), 0);
    // The same arguments on a non-headers exchange are just part of the binding's identity.
    let mut to_direct = binding;
    to_direct.source = "amq.direct".into();
    assert_eq!(table.bind(to_direct), Ok(true));
}

#[test]
fn bindings_per_exchange_are_limited() {
    let mut table = table_with(&[("e", ExchangeKind::Direct)], &["q"]);
    for i in 0..BINDINGS_PER_EXCHANGE_MAX {
        table
            .bind(Binding::new("e", queue("q"), i.to_string()))
            .unwrap();
    }
    let before = table.clone();
    assert!(matches!(
        table.bind(Binding::new("e", queue("q"), "one more")),
        Err(RoutingError::LimitExceeded { .. })
    ));
    // A duplicate at the limit is still the idempotent no-op.
    assert_eq!(table.bind(Binding::new("e", queue("q"), "0")), Ok(false));
    assert_eq!(table, before);
    assert_invariants(&table);
}

#[test]
fn unbind_rules() {
    let mut table = table_with(&[("e", ExchangeKind::Direct)], &["q"]);
    let binding = Binding::new("e", queue("q"), "k");
    assert_eq!(
        table.unbind(&binding),
        Ok(false),
        "a missing binding is fine"
    );
    table.bind(binding.clone()).unwrap();
    assert_eq!(table.unbind(&binding), Ok(true));
    assert_eq!(table.unbind(&binding), Ok(false));
    assert_eq!(
        table.unbind(&Binding::new("e", queue("nope"), "k")),
        Err(RoutingError::QueueNotFound("nope".into()))
    );
    assert_eq!(
        table.unbind(&Binding::new("nope", queue("q"), "k")),
        Err(RoutingError::ExchangeNotFound("nope".into()))
    );
    assert!(matches!(
        table.unbind(&Binding::new("", queue("q"), "q")),
        Err(RoutingError::AccessRefused { .. })
    ));
    assert_invariants(&table);
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let mut table = table_with(&[], &["q1", "q2"]);
    table
        .declare_exchange(auto_delete("ad", ExchangeKind::Fanout))
        .unwrap();
    assert!(table.exchange("ad").is_some(), "never bound: kept");
    let b1 = Binding::new("ad", queue("q1"), "");
    let b2 = Binding::new("ad", queue("q2"), "");
    table.bind(b1.clone()).unwrap();
    table.bind(b2.clone()).unwrap();
    table.unbind(&b1).unwrap();
    assert!(table.exchange("ad").is_some(), "one binding left");
    table.unbind(&b2).unwrap();
    assert!(table.exchange("ad").is_none());
    assert_invariants(&table);
}

#[test]
fn auto_delete_follows_queue_and_exchange_deletion_in_cascade() {
    // ad_top -> ad_mid -> q ; deleting q empties ad_mid, whose deletion empties ad_top.
    let mut table = table_with(&[("plain", ExchangeKind::Fanout)], &["q", "other"]);
    table
        .declare_exchange(auto_delete("ad_top", ExchangeKind::Fanout))
        .unwrap();
    table
        .declare_exchange(auto_delete("ad_mid", ExchangeKind::Fanout))
        .unwrap();
    table
        .bind(Binding::new("ad_top", exchange_dest("ad_mid"), ""))
        .unwrap();
    table.bind(Binding::new("ad_mid", queue("q"), "")).unwrap();
    table.bind(Binding::new("plain", queue("q"), "")).unwrap();
    table
        .bind(Binding::new("plain", exchange_dest("ad_mid"), ""))
        .unwrap();
    assert!(table.remove_queue("q"));
    assert!(!table.remove_queue("q"));
    assert!(table.exchange("ad_mid").is_none());
    assert!(table.exchange("ad_top").is_none());
    assert!(
        table.exchange("plain").is_some(),
        "not auto-delete: stays, unbound"
    );
    assert_eq!(table.bindings().count(), 0);
    assert_invariants(&table);

    // Deleting a destination exchange empties an auto-delete source.
    table
        .declare_exchange(auto_delete("ad", ExchangeKind::Fanout))
        .unwrap();
    table
        .declare_exchange(Exchange::new("dst", ExchangeKind::Fanout))
        .unwrap();
    table
        .bind(Binding::new("ad", exchange_dest("dst"), ""))
        .unwrap();
    table.delete_exchange("dst", false).unwrap();
    assert!(table.exchange("ad").is_none());
    assert_invariants(&table);
}
