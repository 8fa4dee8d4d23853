//! The queue's named bounds. Each bounds the memory one queue's delivery state can hold.

/// Messages delivered and not yet acknowledged, across all consumers of one queue (and
/// `basic.get`). At the limit deliveries pause (as if every consumer's prefetch were full) until
/// something is acked, nacked or requeued. Each unacked entry is a `BTreeMap` node of about 64
/// bytes (tag, offset, owner, time), so ~4 MiB per queue at the limit. RabbitMQ has no such
/// limit, only per-channel prefetch; a client holding more than this is not keeping up.
pub const UNACKED_PER_QUEUE_MAX: usize = 65_536;

/// Consumers of one queue. Picking the next consumer scans them round-robin, so this bounds the
/// work per delivery; ~100 bytes each.
pub const CONSUMERS_PER_QUEUE_MAX: usize = 4_096;

/// How far the persisted delivered watermark runs ahead of the next fresh delivery. One
/// `AckChange::DeliveredWatermark` is written per this many fresh deliveries instead of one per
/// delivery; after a crash up to this many never-delivered messages come back flagged
/// `redelivered` (a false positive the AMQP flag allows: it means "may have been delivered").
pub const DELIVERED_WATERMARK_STEP: i64 = 1_024;

/// Bound on the settled range set, derived, not configured: every gap between settled runs below
/// the delivered watermark holds at least one requeued, unacked or reserved-but-undelivered
/// offset, and those together never exceed `UNACKED_PER_QUEUE_MAX + DELIVERED_WATERMARK_STEP`.
/// At ~32 bytes a range that is ~2 MiB per queue. `restore` refuses persisted state with more
/// ranges than this: no run of this state machine could have written it.
pub const SETTLED_RANGES_MAX: usize = UNACKED_PER_QUEUE_MAX + DELIVERED_WATERMARK_STEP as usize + 1;

const _: () = assert!(DELIVERED_WATERMARK_STEP >= 1);
const _: () = assert!(UNACKED_PER_QUEUE_MAX >= u16::MAX as usize);

/// Scheduler worker tasks shared by all queues of a broker (see `queue::scheduler`). They are
/// tasks, not threads: a worker waiting on a log read or an ack-file fsync (the blocking pool)
/// holds up only the queue it runs, and this many of those may wait at once before a ready
/// queue waits for a worker. Work per turn is bounded by the three limits below.
pub const QUEUE_WORKERS: usize = 32;

/// Deliveries taken from the state per turn, before their messages are loaded and sent.
pub const DELIVERY_BATCH_MAX: usize = 256;

/// Expired head messages dropped (or dead-lettered) per turn.
pub const EXPIRED_PER_TURN_MAX: usize = 256;

/// Dead letters republished per turn.
pub const DEAD_LETTERS_PER_TURN_MAX: usize = 64;

/// Least time between two maintenance passes (ack-file fsync, log reclaim) of one queue. A
/// queue with nothing to sync or reclaim has no maintenance timer at all.
pub const MAINTENANCE_INTERVAL_MS: i64 = 1_000;

const _: () = assert!(QUEUE_WORKERS >= 1);
const _: () = assert!(DELIVERY_BATCH_MAX >= 1 && EXPIRED_PER_TURN_MAX >= 1);
const _: () = assert!(DEAD_LETTERS_PER_TURN_MAX >= 1);
