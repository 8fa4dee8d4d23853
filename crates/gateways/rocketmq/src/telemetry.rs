//! Telemetry: the one long-lived bidirectional stream each RocketMQ client keeps open. The
//! client sends its settings; Porter answers with the settings it should use (retry policy,
//! body size limit, receive batch and long poll), and later pushes commands down the same
//! stream — a transaction check-back (RecoverOrphanedTransactionCommand) goes to a producer of
//! the message's topic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::{Backoff, RocketmqConfig};
use crate::convert::duration_ms;
use crate::error::ok;
use crate::limits::{TELEMETRY_CLIENTS_MAX, TELEMETRY_QUEUE_MAX};
use crate::proto::{
    retry_policy, telemetry_command, ClientType, CustomizedBackoff, ExponentialBackoff,
    RetryPolicy, Settings, TelemetryCommand,
};

pub type Outbound = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

struct Client {
    stream: u64,
    kind: ClientType,
    /// Topics a producer said it publishes to.
    topics: Vec<String>,
    sender: Outbound,
}

/// Clients with an open telemetry stream, by client id (`x-mq-client-id`).
#[derive(Default)]
pub struct Clients {
    clients: Mutex<HashMap<String, Client>>,
    next_stream: AtomicU64,
}

impl Clients {
    pub fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Records (or updates) a client's settings; false when the registry is full.
    pub fn register(&self, id: &str, stream: u64, settings: &Settings, sender: Outbound) -> bool {
        let mut clients = self.clients.lock();
        if !clients.contains_key(id) && clients.len() >= TELEMETRY_CLIENTS_MAX {
            return false;
        }
        let kind = settings
            .client_type
            .and_then(|k| ClientType::try_from(k).ok())
            .unwrap_or(ClientType::Unspecified);
        let topics = match &settings.pub_sub {
            Some(crate::proto::settings::PubSub::Publishing(p)) => {
                p.topics.iter().map(|t| t.name.clone()).collect()
            }
            _ => Vec::new(),
        };
        clients.insert(
            id.to_string(),
            Client {
                stream,
                kind,
                topics,
                sender,
            },
        );
        true
    }

    /// Forgets a client whose stream `stream` ended (unless a newer stream replaced it).
    pub fn remove(&self, id: &str, stream: u64) {
        let mut clients = self.clients.lock();
        if clients.get(id).is_some_and(|c| c.stream == stream) {
            clients.remove(id);
        }
    }

    /// Sends `command` to one producer that publishes to `topic` (any producer when none
    /// named it). False when no producer is connected or its queue is full.
    pub fn send_to_producer_of(&self, topic: &str, command: TelemetryCommand) -> bool {
        let clients = self.clients.lock();
        let producers = || clients.values().filter(|c| c.kind == ClientType::Producer);
        let chosen = producers()
            .find(|c| c.topics.iter().any(|t| t == topic))
            .or_else(|| producers().next());
        chosen.is_some_and(|c| c.sender.try_send(Ok(command)).is_ok())
    }
}

/// The settings Porter answers a client's settings with.
pub fn answer(settings: &Settings, config: &RocketmqConfig) -> TelemetryCommand {
    let mut answer = settings.clone();
    let kind = settings
        .client_type
        .and_then(|k| ClientType::try_from(k).ok())
        .unwrap_or(ClientType::Unspecified);
    match kind {
        ClientType::Producer => {
            answer.backoff_policy = Some(RetryPolicy {
                max_attempts: 3,
                strategy: Some(retry_policy::Strategy::ExponentialBackoff(
                    ExponentialBackoff {
                        initial: Some(duration_ms(10)),
                        max: Some(duration_ms(1_000)),
                        multiplier: 2.0,
                    },
                )),
            });
            if let Some(crate::proto::settings::PubSub::Publishing(p)) = &mut answer.pub_sub {
                p.max_body_size = config.body_bytes_max as i32;
                p.validate_message_type = false;
            }
        }
        _ => {
            let group = match &settings.pub_sub {
                Some(crate::proto::settings::PubSub::Subscription(s)) => {
                    s.group.as_ref().map(|g| g.name.clone()).unwrap_or_default()
                }
                _ => String::new(),
            };
            let backoff = config
                .groups
                .get(&group)
                .map(|p| p.backoff.clone())
                .unwrap_or_default();
            let strategy = match backoff {
                Backoff::Ladder => retry_policy::Strategy::CustomizedBackoff(CustomizedBackoff {
                    next: RETRY_LADDER_MS.iter().map(|&ms| duration_ms(ms)).collect(),
                }),
                Backoff::Exponential {
                    initial_ms,
                    max_ms,
                    multiplier,
                } => retry_policy::Strategy::ExponentialBackoff(ExponentialBackoff {
                    initial: Some(duration_ms(initial_ms)),
                    max: Some(duration_ms(max_ms)),
                    multiplier,
                }),
            };
            answer.backoff_policy = Some(RetryPolicy {
                max_attempts: config.max_attempts(&group) as i32,
                strategy: Some(strategy),
            });
            if let Some(crate::proto::settings::PubSub::Subscription(s)) = &mut answer.pub_sub {
                s.fifo = Some(false);
                s.receive_batch_size = Some(32);
                s.long_polling_timeout = Some(duration_ms(20_000));
            }
        }
    }
    TelemetryCommand {
        status: Some(ok()),
        command: Some(telemetry_command::Command::Settings(answer)),
    }
}

/// RocketMQ's default redelivery ladder for a failed message: 1 s, 5 s, 10 s, 30 s, 1 m, 2 m …
/// 2 h (RocketMQ's `messageDelayLevel`).
pub const RETRY_LADDER_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// Commands queued towards one client.
pub fn channel() -> (
    Outbound,
    mpsc::Receiver<Result<TelemetryCommand, tonic::Status>>,
) {
    mpsc::channel(TELEMETRY_QUEUE_MAX)
}
