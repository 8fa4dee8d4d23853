//! A routing change costs O(log n) in the size of the virtual host, not O(n): the metadata
//! check (on a copy of the table), the apply, and the new routing snapshot a publish reads,
//! while an older snapshot is still held, allocate about the same for the 10,001st binding as
//! for the 100,001st. Counted with a counting global allocator (bytes and allocations), so
//! nothing here is timed. Before the routing table was structurally shared, each bind cloned
//! the table twice: tens of megabytes at 100k bindings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use porter_core::metadata::command::RoutingChange;
use porter_core::metadata::{MetadataCommand, MetadataState};
use porter_core::queue::QueueDefinition;
use porter_core::routing::{Binding, Destination, Exchange, ExchangeKind};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

const PER_QUEUE: usize = 10;

fn routing(change: RoutingChange) -> MetadataCommand {
    MetadataCommand::Routing {
        vhost: "/".into(),
        change,
    }
}

fn queue(name: String) -> QueueDefinition {
    QueueDefinition {
        name,
        id: Default::default(),
        durable: false,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Default::default(),
    }
}

/// Queue `q`'s `j`-th binding: to a direct (even `j`) or topic exchange, 8 exchanges in all.
fn binding(q: usize, j: usize) -> Binding {
    let destination = Destination::Queue(format!("q{q}"));
    if j.is_multiple_of(2) {
        Binding::new(
            format!("d{}", (q + j) % 4),
            destination,
            format!("k.{q}.{j}"),
        )
    } else {
        Binding::new(
            format!("t{}", (q + j) % 4),
            destination,
            format!("user.{q}.{j}.*"),
        )
    }
}

fn submit(state: &mut MetadataState, command: MetadataCommand) {
    state.check(&command).unwrap();
    state.apply(command);
}

/// A vhost with `queues` queues, each bound `PER_QUEUE` times. Built by applying (the check
/// is what [`cost`] measures), which halves the set-up of this debug-build test.
fn vhost(queues: usize) -> MetadataState {
    let mut state = MetadataState::default();
    for i in 0..4 {
        for (name, kind) in [("d", ExchangeKind::Direct), ("t", ExchangeKind::Topic)] {
            let exchange = Exchange::new(format!("{name}{i}"), kind);
            submit(
                &mut state,
                routing(RoutingChange::DeclareExchange { exchange }),
            );
        }
    }
    for q in 0..queues {
        let queue = queue(format!("q{q}"));
        submit(&mut state, routing(RoutingChange::DeclareQueue { queue }));
    }
    for j in 0..PER_QUEUE {
        for q in 0..queues {
            let binding = binding(q, j);
            state.apply(routing(RoutingChange::Bind { binding }));
        }
    }
    assert_eq!(state.vhosts["/"].bindings().count(), queues * PER_QUEUE);
    state
}

/// Bytes and allocations of one command as the broker runs it: check (on a copy), apply, and
/// the new snapshot for publishes, while a publish still holds the previous snapshot.
fn cost(state: &mut MetadataState, command: MetadataCommand) -> (usize, usize) {
    let held = state.vhosts["/"].clone();
    let (bytes, allocations) = (
        BYTES.load(Ordering::Relaxed),
        ALLOCATIONS.load(Ordering::Relaxed),
    );
    state.check(&command).unwrap();
    state.apply(command);
    let snapshot = state.vhosts["/"].clone();
    let cost = (
        BYTES.load(Ordering::Relaxed) - bytes,
        ALLOCATIONS.load(Ordering::Relaxed) - allocations,
    );
    drop((held, snapshot));
    cost
}

/// The cost of each kind of change on a vhost of `queues` queues (10 bindings each).
fn costs(queues: usize) -> Vec<(&'static str, (usize, usize))> {
    let mut state = vhost(queues);
    let new = queues;
    vec![
        (
            "declare queue",
            cost(
                &mut state,
                routing(RoutingChange::DeclareQueue {
                    queue: queue(format!("q{new}")),
                }),
            ),
        ),
        (
            "direct bind",
            cost(
                &mut state,
                routing(RoutingChange::Bind {
                    binding: binding(new, 0),
                }),
            ),
        ),
        (
            "topic bind",
            cost(
                &mut state,
                routing(RoutingChange::Bind {
                    binding: binding(new, 1),
                }),
            ),
        ),
        (
            "unbind",
            cost(
                &mut state,
                routing(RoutingChange::Unbind {
                    binding: binding(7, 1),
                }),
            ),
        ),
        (
            "remove queue with 10 bindings",
            cost(
                &mut state,
                routing(RoutingChange::RemoveQueue { name: "q8".into() }),
            ),
        ),
    ]
}

#[test]
fn a_change_costs_the_same_at_10k_and_100k_bindings() {
    let small = costs(1_000);
    let large = costs(10_000);
    for ((what, (small_bytes, small_allocs)), (_, (bytes, allocs))) in small.iter().zip(&large) {
        println!(
            "{what}: {small_bytes} B in {small_allocs} allocations at 10k bindings, \
             {bytes} B in {allocs} at 100k"
        );
        // A copy of the table at 100k bindings is megabytes and 100k+ allocations; a path copy
        // is some persistent-tree nodes (20-50 KiB per change with two copies held).
        assert!(*bytes < 128 << 10, "{what}: {bytes} bytes at 100k bindings");
        assert!(
            *allocs < 600,
            "{what}: {allocs} allocations at 100k bindings"
        );
        // Logarithmic: ten times the bindings is a level or two more of the trees, not ten
        // times the work.
        assert!(
            *bytes <= 2 * small_bytes + (4 << 10),
            "{what}: {small_bytes} -> {bytes} bytes from 10k to 100k bindings"
        );
    }
}

/// What a vhost of 10k queues and 100k bindings holds in memory, the metadata state's queue
/// definitions included: the figure `BINDINGS_PER_EXCHANGE_MAX`'s memory bound is based on.
#[test]
fn memory_per_binding() {
    let before = LIVE.load(Ordering::Relaxed);
    let state = vhost(10_000);
    let live = LIVE.load(Ordering::Relaxed) - before;
    let per_binding = live / (10_000 * PER_QUEUE);
    println!("{live} bytes live for 10k queues and 100k bindings: {per_binding} per binding");
    assert!(per_binding < 768, "{per_binding} bytes per binding");
    drop(state);
}
