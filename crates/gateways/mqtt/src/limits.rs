//! The MQTT gateway's named limits and their worst case.
//!
//! Per connection the gateway holds: its read buffer (at most one packet, `packet_bytes_max`,
//! charged to the kit's memory budget, freed while idle), the kit's outbound queue
//! (`outbound_frames_max` frames of at most one packet each), the core consumer buffer
//! (`porter_core::queue::api::CONSUMER_BUFFER_MAX` deliveries sharing the queue's cached
//! messages), inflight bookkeeping (`inflight_max` entries of ~64 B) and its topic aliases
//! (`topic_alias_max` × topic length). Queued messages live in the session's queue on disk, at
//! most `session_queue_max` of them; none of this grows with what a client does.
//!
//! A client that stops reading holds at most `OUTBOUND_WRITES_MAX` writes (64 KiB each, or one
//! packet) plus `inflight_max` deliveries waiting in its consumer buffer; QoS 0 deliveries are
//! settled only once queued for writing, so they wait in the session's queue on disk too.
//! Worst case per connection: `packet_bytes_max + OUTBOUND_WRITES_MAX × (64 KiB +
//! packet_bytes_max) + inflight_max × message size` ≈ 1 + 17 + 256 MiB with 1 MiB messages;
//! with 1 KiB messages about 1.3 MiB. The kit's memory budget (512 MiB per listener) stops
//! reading past it. Lower `packet_bytes_max` and `inflight_max` where clients are untrusted.

/// Writes queued towards one client (each about 64 KiB, or one larger packet): with the
/// client's unacknowledged QoS 1/2 messages (at most `inflight_max`, the queue consumer's
/// prefetch) this bounds what a client that stops reading costs.
pub const OUTBOUND_WRITES_MAX: usize = 16;
/// Largest packet accepted (advertised as Maximum Packet Size in MQTT 5's CONNACK).
pub const PACKET_BYTES_MAX: usize = 1 << 20;
/// Concurrent MQTT connections (TCP and WebSocket counted per listener).
pub const CONNECTIONS_MAX: usize = 100_000;
/// QoS 1/2 messages sent to a client and not yet acknowledged (bounds what the client's own
/// Receive Maximum asks for).
pub const INFLIGHT_MAX: u16 = 256;
/// QoS 2 messages from a client awaiting its PUBREL, and the Receive Maximum advertised to it.
pub const RECEIVE_MAX: u16 = 256;
/// Messages a session's queue holds while its client is away or slow; beyond, QoS 1/2
/// publishes to it are refused (PUBACK 0x97 Quota exceeded) and QoS 0 ones dropped and counted.
pub const SESSION_QUEUE_MAX: u32 = 100_000;
/// Levels of a topic name or filter.
pub const TOPIC_LEVELS_MAX: usize = 32;
/// Topic aliases a client may set (Topic Alias Maximum in CONNACK).
pub const TOPIC_ALIAS_MAX: u16 = 64;
/// Subscriptions (filters) one session may hold.
pub const SUBSCRIPTIONS_MAX: usize = 1_000;
/// Bytes of a client identifier (they name the session's queue).
pub const CLIENT_ID_BYTES_MAX: usize = 200;
/// Longest session expiry honoured, seconds (RabbitMQ's `max_session_expiry_interval_seconds`
/// default); a 3.1.1 persistent session gets this.
pub const SESSION_EXPIRY_MAX_SECS: u32 = 86_400;
/// Longest keep-alive accepted; a client asking more (or 0) is told this as Server Keep Alive.
pub const KEEP_ALIVE_MAX_SECS: u16 = 3_600;
/// Retained messages sent for one SUBSCRIBE filter at most.
pub const RETAINED_PER_SUBSCRIBE_MAX: usize = 10_000;
/// Deliveries pulled from the session's queues per event-loop turn.
pub const DELIVERIES_PER_TURN: usize = 64;
/// Persistent sessions remembered (their records: expiry, released QoS 2 messages).
pub const SESSIONS_MAX: usize = 1_000_000;
/// Bytes of session records together (about 160 B each without released messages).
pub const SESSION_RECORDS_BYTES_MAX: u64 = 256 << 20;
/// Pending will messages (clients gone with a will delay not yet over).
pub const PENDING_WILLS_MAX: usize = 100_000;

const _: () = assert!(INFLIGHT_MAX as usize <= porter_core::queue::api::CONSUMER_BUFFER_MAX);
const _: () = assert!(
    CLIENT_ID_BYTES_MAX + 20 <= 255,
    "session queue names fit AMQP's 255 bytes"
);
