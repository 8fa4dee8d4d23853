//! Where messages go: each exchange kind, exchange-to-exchange bindings, alternate and internal
//! exchanges, the default exchange and the depth limit.

use super::*;
use crate::routing::limits::EXCHANGE_TO_EXCHANGE_DEPTH_MAX;

#[test]
fn default_exchange_routes_by_queue_name() {
    let mut table = table_with(&[], &["orders"]);
    assert_eq!(route(&table, "", "orders"), ["orders"]);
    assert!(route(&table, "", "missing").is_empty());
    table.remove_queue("orders");
    assert!(route(&table, "", "orders").is_empty());
}

#[test]
fn direct_fanout_and_topic_routing() {
    let mut table = table_with(&[], &["a", "b", "c"]);
    table
        .bind(Binding::new("amq.direct", queue("a"), "k"))
        .unwrap();
    table
        .bind(Binding::new("amq.direct", queue("b"), "j"))
        .unwrap();
    assert_eq!(route(&table, "amq.direct", "k"), ["a"]);
    assert!(route(&table, "amq.direct", "x").is_empty());

    table
        .bind(Binding::new("amq.fanout", queue("c"), "ignored"))
        .unwrap();
    table
        .bind(Binding::new("amq.fanout", queue("a"), ""))
        .unwrap();
    assert_eq!(route(&table, "amq.fanout", "whatever"), ["a", "c"]);

    table
        .bind(Binding::new("amq.topic", queue("a"), "stock.*.nyse"))
        .unwrap();
    table
        .bind(Binding::new("amq.topic", queue("b"), "stock.#"))
        .unwrap();
    table
        .bind(Binding::new("amq.topic", queue("c"), "#.nyse"))
        .unwrap();
    assert_eq!(
        route(&table, "amq.topic", "stock.usd.nyse"),
        ["a", "b", "c"]
    );
    assert_eq!(route(&table, "amq.topic", "stock.usd"), ["b"]);
    assert_eq!(route(&table, "amq.topic", "bond.nyse"), ["c"]);
    assert!(route(&table, "amq.topic", "").is_empty());
}

#[test]
fn headers_routing() {
    let mut table = table_with(&[], &["all", "any"]);
    let args = |mode: &str| -> FieldTable {
        [
            ("x-match", HeaderValue::from(mode)),
            ("format", HeaderValue::from("pdf")),
            ("type", HeaderValue::from("report")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    table
        .bind(Binding::new("amq.match", queue("all"), "").with_arguments(args("all")))
        .unwrap();
    table
        .bind(Binding::new("amq.headers", queue("any"), "").with_arguments(args("any")))
        .unwrap();
    let headers = |entries: &[(&str, &str)]| -> Headers {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), HeaderValue::from(*v)))
            .collect()
    };
    let both = headers(&[("format", "pdf"), ("type", "report")]);
    let one = headers(&[("format", "pdf"), ("type", "log")]);
    assert_eq!(table.route("amq.match", "", &both).unwrap().queues, ["all"]);
    assert!(table
        .route("amq.match", "", &one)
        .unwrap()
        .queues
        .is_empty());
    assert_eq!(
        table.route("amq.headers", "any key", &one).unwrap().queues,
        ["any"]
    );
    assert!(table
        .route("amq.headers", "", &Headers::new())
        .unwrap()
        .queues
        .is_empty());
}

#[test]
fn results_are_deduplicated_and_sorted() {
    let mut table = table_with(
        &[("e", ExchangeKind::Topic), ("f", ExchangeKind::Fanout)],
        &["z", "a", "m"],
    );
    table.bind(Binding::new("e", queue("z"), "a.*")).unwrap();
    table.bind(Binding::new("e", queue("z"), "#")).unwrap();
    table.bind(Binding::new("e", queue("m"), "#")).unwrap();
    table
        .bind(Binding::new("e", exchange_dest("f"), "#"))
        .unwrap();
    table.bind(Binding::new("f", queue("z"), "")).unwrap();
    table.bind(Binding::new("f", queue("a"), "")).unwrap();
    assert_eq!(route(&table, "e", "a.b"), ["a", "m", "z"]);
}

#[test]
fn exchange_to_exchange_and_cycles() {
    let mut table = table_with(
        &[
            ("a", ExchangeKind::Fanout),
            ("b", ExchangeKind::Fanout),
            ("c", ExchangeKind::Direct),
        ],
        &["qa", "qb", "qc"],
    );
    table
        .bind(Binding::new("a", exchange_dest("b"), ""))
        .unwrap();
    table
        .bind(Binding::new("b", exchange_dest("a"), ""))
        .unwrap();
    table
        .bind(Binding::new("b", exchange_dest("b"), ""))
        .unwrap();
    table
        .bind(Binding::new("b", exchange_dest("c"), ""))
        .unwrap();
    table.bind(Binding::new("a", queue("qa"), "")).unwrap();
    table.bind(Binding::new("b", queue("qb"), "")).unwrap();
    // The routing key travels unchanged: c is direct and routes only "k".
    table.bind(Binding::new("c", queue("qc"), "k")).unwrap();
    assert_eq!(route(&table, "a", "k"), ["qa", "qb", "qc"]);
    assert_eq!(route(&table, "b", "other"), ["qa", "qb"]);
}

#[test]
fn internal_exchange_refuses_publish_but_is_reachable() {
    let mut table = table_with(&[("front", ExchangeKind::Fanout)], &["q"]);
    let internal = Exchange {
        internal: true,
        ..Exchange::new("inner", ExchangeKind::Fanout)
    };
    table.declare_exchange(internal).unwrap();
    table
        .bind(Binding::new("front", exchange_dest("inner"), ""))
        .unwrap();
    table.bind(Binding::new("inner", queue("q"), "")).unwrap();
    assert_eq!(
        table.route("inner", "", &Headers::new()),
        Err(RoutingError::InternalExchange("inner".into()))
    );
    assert_eq!(route(&table, "front", ""), ["q"]);
    assert_eq!(
        table.route("missing", "", &Headers::new()),
        Err(RoutingError::ExchangeNotFound("missing".into()))
    );
}

#[test]
fn alternate_exchange_takes_what_routes_nowhere() {
    let mut table = table_with(&[("ae", ExchangeKind::Fanout)], &["matched", "unrouted"]);
    table
        .declare_exchange(with_alternate(
            Exchange::new("main", ExchangeKind::Direct),
            "ae",
        ))
        .unwrap();
    table
        .bind(Binding::new("main", queue("matched"), "k"))
        .unwrap();
    table
        .bind(Binding::new("ae", queue("unrouted"), ""))
        .unwrap();
    assert_eq!(route(&table, "main", "k"), ["matched"]);
    assert_eq!(route(&table, "main", "other"), ["unrouted"]);
}

#[test]
fn alternate_exchange_edge_cases() {
    // Named before it exists: skipped, then used once declared.
    let mut table = table_with(&[], &["q"]);
    table
        .declare_exchange(with_alternate(
            Exchange::new("main", ExchangeKind::Direct),
            "later",
        ))
        .unwrap();
    assert!(route(&table, "main", "k").is_empty());
    table
        .declare_exchange(Exchange::new("later", ExchangeKind::Fanout))
        .unwrap();
    table.bind(Binding::new("later", queue("q"), "")).unwrap();
    assert_eq!(route(&table, "main", "k"), ["q"]);

    // An internal alternate exchange is fine: it is reached, not published to.
    let mut table = table_with(&[], &["q"]);
    let internal_ae = Exchange {
        internal: true,
        ..Exchange::new("iae", ExchangeKind::Fanout)
    };
    table.declare_exchange(internal_ae).unwrap();
    table.bind(Binding::new("iae", queue("q"), "")).unwrap();
    table
        .declare_exchange(with_alternate(
            Exchange::new("main", ExchangeKind::Topic),
            "iae",
        ))
        .unwrap();
    assert_eq!(route(&table, "main", "x"), ["q"]);

    // Alternates chain, and a cycle of alternates ends.
    let mut table = table_with(&[], &["last"]);
    table
        .declare_exchange(with_alternate(
            Exchange::new("x1", ExchangeKind::Direct),
            "x2",
        ))
        .unwrap();
    table
        .declare_exchange(with_alternate(
            Exchange::new("x2", ExchangeKind::Direct),
            "x1",
        ))
        .unwrap();
    assert!(route(&table, "x1", "k").is_empty());
    table
        .declare_exchange(with_alternate(
            Exchange::new("x3", ExchangeKind::Direct),
            "x1",
        ))
        .unwrap();
    table.bind(Binding::new("x2", queue("last"), "k")).unwrap();
    assert_eq!(route(&table, "x3", "k"), ["last"]);

    // A match to an exchange that itself routes nowhere still counts as routed: the first
    // exchange's alternate is not used (RabbitMQ), but the empty exchange's own alternate is.
    let mut table = table_with(
        &[
            ("ae", ExchangeKind::Fanout),
            ("empty", ExchangeKind::Direct),
        ],
        &["aq"],
    );
    table.bind(Binding::new("ae", queue("aq"), "")).unwrap();
    table
        .declare_exchange(with_alternate(
            Exchange::new("main", ExchangeKind::Fanout),
            "ae",
        ))
        .unwrap();
    table
        .bind(Binding::new("main", exchange_dest("empty"), ""))
        .unwrap();
    assert!(route(&table, "main", "k").is_empty());
}

#[test]
fn exchange_chains_stop_at_the_depth_limit() {
    let mut table = RoutingTable::new();
    let chain = EXCHANGE_TO_EXCHANGE_DEPTH_MAX + 2;
    for i in 0..=chain {
        table
            .declare_exchange(Exchange::new(format!("x{i}"), ExchangeKind::Fanout))
            .unwrap();
        table.add_queue(&format!("q{i}")).unwrap();
        table
            .bind(Binding::new(format!("x{i}"), queue(&format!("q{i}")), ""))
            .unwrap();
        if i > 0 {
            table
                .bind(Binding::new(
                    format!("x{}", i - 1),
                    exchange_dest(&format!("x{i}")),
                    "",
                ))
                .unwrap();
        }
    }
    let result = table.route("x0", "", &Headers::new()).unwrap();
    assert!(result.depth_limit_reached);
    let mut expected: Vec<String> = (0..=EXCHANGE_TO_EXCHANGE_DEPTH_MAX)
        .map(|i| format!("q{i}"))
        .collect();
    expected.sort();
    assert_eq!(
        result.queues, expected,
        "depth 0 ..= max are visited, no further"
    );

    // Starting nearer the end, the whole rest of the chain is within reach.
    let result = table.route("x2", "", &Headers::new()).unwrap();
    assert!(!result.depth_limit_reached);
    assert_eq!(result.queues.len(), chain - 1);
}
