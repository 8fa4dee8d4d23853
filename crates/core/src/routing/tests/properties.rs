//! Snapshots round-trip, and random operation sequences keep the table's invariants.

use proptest::prelude::*;

use super::*;

#[test]
fn serde_round_trip_rebuilds_the_same_table() {
    let mut table = table_with(&[("e", ExchangeKind::Topic)], &["q1", "q2"]);
    table
        .declare_exchange(auto_delete("ad", ExchangeKind::Headers))
        .unwrap();
    table.delete_exchange("amq.fanout", false).unwrap_err();
    table.bind(Binding::new("e", queue("q1"), "a.#")).unwrap();
    table
        .bind(Binding::new("e", exchange_dest("ad"), "b.*"))
        .unwrap();
    let mut args = FieldTable::new();
    args.insert("x-match".into(), HeaderValue::from("any"));
    args.insert("h".into(), HeaderValue::Void);
    table
        .bind(Binding::new("ad", queue("q2"), "").with_arguments(args))
        .unwrap();

    let json = serde_json::to_string(&table).unwrap();
    let restored: RoutingTable = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, table);
    assert_invariants(&restored);
    let mut headers = Headers::new();
    headers.insert("h".into(), HeaderValue::I8(0));
    assert_eq!(restored.route("e", "b.x", &headers).unwrap().queues, ["q2"]);

    // A snapshot that no sequence of operations could have produced is refused.
    let mut snapshot = RoutingSnapshot::from(table);
    snapshot.queues.retain(|q| q != "q1");
    assert_eq!(
        RoutingTable::try_from(snapshot),
        Err(RoutingError::QueueNotFound("q1".into()))
    );
}

/// One random operation over a small universe of names, so operations collide often.
#[derive(Clone, Debug)]
enum Op {
    Declare {
        name: usize,
        kind: ExchangeKind,
        auto_delete: bool,
        alternate: Option<usize>,
    },
    Delete {
        name: usize,
        if_unused: bool,
    },
    AddQueue(usize),
    RemoveQueue(usize),
    Bind {
        source: usize,
        to_exchange: bool,
        destination: usize,
        key: usize,
    },
    Unbind {
        source: usize,
        to_exchange: bool,
        destination: usize,
        key: usize,
    },
}

const NAMES: [&str; 5] = ["", "amq.direct", "a", "b", "c"];
const KEYS: [&str; 6] = ["k", "#", "*.k", "k.#.k", "", "#.*"];

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let kind = prop::sample::select(vec![
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ]);
    prop_oneof![
        (
            name.clone(),
            kind,
            any::<bool>(),
            prop::option::of(name.clone())
        )
            .prop_map(|(name, kind, auto_delete, alternate)| Op::Declare {
                name,
                kind,
                auto_delete,
                alternate
            }),
        (name.clone(), any::<bool>()).prop_map(|(name, if_unused)| Op::Delete { name, if_unused }),
        name.clone().prop_map(Op::AddQueue),
        name.clone().prop_map(Op::RemoveQueue),
        (name.clone(), any::<bool>(), name.clone(), 0..KEYS.len()).prop_map(
            |(source, to_exchange, destination, key)| Op::Bind {
                source,
                to_exchange,
                destination,
                key
            }
        ),
        (name.clone(), any::<bool>(), name, 0..KEYS.len()).prop_map(
            |(source, to_exchange, destination, key)| Op::Unbind {
                source,
                to_exchange,
                destination,
                key
            }
        ),
    ]
}

fn binding_of(source: usize, to_exchange: bool, destination: usize, key: usize) -> Binding {
    let destination = if to_exchange {
        exchange_dest(NAMES[destination])
    } else {
        queue(NAMES[destination])
    };
    Binding::new(NAMES[source], destination, KEYS[key])
}

/// Applies `op`; `Err` must leave the table as it was.
fn apply(table: &mut RoutingTable, op: &Op) -> Result<(), RoutingError> {
    match *op {
        Op::Declare {
            name,
            kind,
            auto_delete,
            alternate,
        } => {
            let mut exchange = Exchange {
                auto_delete,
                ..Exchange::new(NAMES[name], kind)
            };
            if let Some(alternate) = alternate {
                exchange = with_alternate(exchange, NAMES[alternate]);
            }
            table.declare_exchange(exchange).map(drop)
        }
        Op::Delete { name, if_unused } => table.delete_exchange(NAMES[name], if_unused).map(drop),
        Op::AddQueue(name) => table.add_queue(NAMES[name]).map(drop),
        Op::RemoveQueue(name) => {
            table.remove_queue(NAMES[name]);
            Ok(())
        }
        Op::Bind {
            source,
            to_exchange,
            destination,
            key,
        } => table
            .bind(binding_of(source, to_exchange, destination, key))
            .map(drop),
        Op::Unbind {
            source,
            to_exchange,
            destination,
            key,
        } => table
            .unbind(&binding_of(source, to_exchange, destination, key))
            .map(drop),
    }
}

proptest! {
    #[test]
    fn random_operations_keep_invariants(ops in prop::collection::vec(op(), 0..60)) {
        let mut table = RoutingTable::new();
        for op in &ops {
            let before = table.clone();
            let before_json = serde_json::to_string(&before).unwrap();
            if apply(&mut table, op).is_err() {
                prop_assert_eq!(&table, &before, "a refused {:?} changed the table", op);
            }
            // Structural sharing: the copy (a publish's snapshot) never sees the change.
            prop_assert_eq!(serde_json::to_string(&before).unwrap(), before_json);
            assert_invariants(&table);
            assert_indexes_agree_with_scan(&table);
            for exchange in NAMES {
                for key in ["k", "x.k", ""] {
                    match table.route(exchange, key, &Headers::new()) {
                        Ok(result) => {
                            prop_assert!(result.queues.windows(2).all(|w| w[0] < w[1]));
                            prop_assert!(result.queues.iter().all(|q| table.has_queue(q)));
                        }
                        Err(RoutingError::ExchangeNotFound(_) | RoutingError::InternalExchange(_)) => {}
                        Err(other) => prop_assert!(false, "route failed with {:?}", other),
                    }
                }
            }
        }
        let json = serde_json::to_string(&table).unwrap();
        prop_assert_eq!(serde_json::from_str::<RoutingTable>(&json).unwrap(), table);
    }
}

/// The indexed router (direct keys, topic trie) finds exactly the bindings that trying every
/// binding's matcher finds, for keys that hit the literal, `*` and `#` branches.
fn assert_indexes_agree_with_scan(table: &RoutingTable) {
    let mut headers = Headers::new();
    headers.insert("h".into(), HeaderValue::I8(0));
    for set in table.bindings.values() {
        for key in ["k", "x.k", "", "k.k", "k.x.k", "k.", "#", "*.k"] {
            for headers in [&Headers::new(), &headers] {
                let mut indexed = Vec::new();
                set.for_each_match(key, headers, &mut |d| indexed.push(d.clone()));
                let mut linear: Vec<Destination> =
                    set.matching_linear(key, headers).cloned().collect();
                indexed.sort();
                linear.sort();
                assert_eq!(indexed, linear, "key {key:?}");
            }
        }
    }
}
