//! The routing model's named limits. Each bounds memory or the work one publish can cause.

/// AMQP 0-9-1 names (exchange, queue, routing key) are shortstrs: a one-byte length prefix. Other
/// protocols are held to the same bound so every name can be reported over AMQP.
pub const NAME_BYTES_MAX: usize = 255;

/// Bindings whose source is one exchange. Routing a fanout or headers exchange scans all of them
/// (direct exchanges look the key up, topic exchanges walk a trie), so this bounds the work per
/// publish per exchange hop; memory is about 650 bytes plus arguments per binding with the
/// routing indexes (`tests/routing_copies.rs` measures it), so ~10 MiB per exchange at the
/// limit (RabbitMQ has no such limit, but a single exchange with more bindings than this is a
/// design problem, not a workload).
pub const BINDINGS_PER_EXCHANGE_MAX: usize = 16_384;

/// Exchange-to-exchange hops one publish follows (the published-to exchange is depth 0, an
/// alternate exchange counts as a hop). The visited set already makes cycles harmless; this bounds
/// a long acyclic chain, whose every hop multiplies the scan work of
/// [`BINDINGS_PER_EXCHANGE_MAX`]. Exchanges past the limit are not visited and the
/// [`RouteResult`](super::RouteResult) says so.
pub const EXCHANGE_TO_EXCHANGE_DEPTH_MAX: usize = 16;

const _: () = assert!(NAME_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(EXCHANGE_TO_EXCHANGE_DEPTH_MAX >= 1);
