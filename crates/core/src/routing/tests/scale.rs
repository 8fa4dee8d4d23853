//! 100,000 bindings over 10,000 queues and eight exchanges (each under
//! `BINDINGS_PER_EXCHANGE_MAX`) route exactly as bound, and deleting the queues takes every
//! binding with it. Sizes, not timings: the operation counts are asserted elsewhere
//! (`tests/routing_copies.rs`).

use super::*;

const QUEUES: usize = 10_000;
const PER_QUEUE: usize = 10;

/// Queue `q`'s `j`-th binding: even `j` to a direct exchange under a key of its own, odd `j` to
/// a topic exchange with a per-queue `user.<q>.<j>.*` or a shared `room.<r>.<j>.#` pattern.
fn binding(q: usize, j: usize) -> Binding {
    let destination = queue(&format!("q{q}"));
    match j % 4 {
        0 | 2 => Binding::new(
            format!("d{}", (q + j) % 4),
            destination,
            format!("k.{q}.{j}"),
        ),
        1 => Binding::new(
            format!("t{}", (q + j) % 4),
            destination,
            format!("user.{q}.{j}.*"),
        ),
        _ => Binding::new(
            format!("t{}", (q + j) % 4),
            destination,
            format!("room.{}.{j}.#", q % 500),
        ),
    }
}

#[test]
fn hundred_thousand_bindings_route_and_go_with_their_queues() {
    let mut exchanges = Vec::new();
    for i in 0..4 {
        exchanges.push((format!("d{i}"), ExchangeKind::Direct));
        exchanges.push((format!("t{i}"), ExchangeKind::Topic));
    }
    let exchanges: Vec<(&str, ExchangeKind)> =
        exchanges.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    let names: Vec<String> = (0..QUEUES).map(|q| format!("q{q}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = table_with(&exchanges, &names);
    for j in 0..PER_QUEUE {
        for q in 0..QUEUES {
            assert!(table.bind(binding(q, j)).unwrap());
        }
    }
    assert_eq!(table.bindings().count(), QUEUES * PER_QUEUE);
    assert!(
        !table.bind(binding(17, 3)).unwrap(),
        "a duplicate is a no-op"
    );
    let snapshot = table.clone();

    for q in (0..QUEUES).step_by(97) {
        // Direct: exactly the queue bound under that key.
        assert_eq!(
            route(&table, &format!("d{}", q % 4), &format!("k.{q}.0")),
            [format!("q{q}")]
        );
        assert!(route(&table, &format!("d{}", (q + 1) % 4), &format!("k.{q}.0")).is_empty());
        // Topic, `*`: the one queue with that user pattern.
        let t = format!("t{}", (q + 1) % 4);
        assert_eq!(
            route(&table, &t, &format!("user.{q}.1.x")),
            [format!("q{q}")]
        );
        assert!(route(&table, &t, &format!("user.{q}.1")).is_empty());
        assert!(route(&table, &t, &format!("user.{q}.1.x.y")).is_empty());
    }
    // Topic, `#`: every queue of room 7 bound with `j` on exchange t{(q + j) % 4}, whatever
    // follows.
    for j in [3, 7] {
        let mut reached = 0;
        for t in 0..4 {
            let mut expected: Vec<String> = (0..QUEUES)
                .filter(|q| q % 500 == 7 && (q + j) % 4 == t)
                .map(|q| format!("q{q}"))
                .collect();
            expected.sort();
            reached += expected.len();
            assert_eq!(
                route(&table, &format!("t{t}"), &format!("room.7.{j}")),
                expected
            );
            assert_eq!(
                route(&table, &format!("t{t}"), &format!("room.7.{j}.a.b")),
                expected
            );
        }
        assert_eq!(reached, QUEUES / 500, "each of room 7's queues, once");
    }

    for name in &names {
        assert!(table.remove_queue(name));
    }
    assert_eq!(table.bindings().count(), 0);
    assert_invariants(&table);
    assert!(route(&table, "t2", "room.7.3").is_empty());
    // The copy taken before still routes as it did.
    assert_eq!(route(&snapshot, "d1", "k.1.0"), ["q1"]);
    assert_eq!(snapshot.bindings().count(), QUEUES * PER_QUEUE);
}
