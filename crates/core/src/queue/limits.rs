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
