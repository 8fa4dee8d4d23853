//! Message rates, as RabbitMQ's API reports them (`message_stats` with `publish_details.rate`
//! and the like): every [`SAMPLE_INTERVAL`] the sampler reads each queue's cumulative counts
//! (published, delivered, redelivered, acknowledged) and each topic's summed high watermarks
//! and bytes read, and keeps the per-second difference from the previous reading. Listings read the stored
//! rates; nothing on the data path changes (the queues count under the lock they already take).
//!
//! Memory: one entry per queue and per topic, dropped when they go, so bounded by the broker's
//! own queue and topic limits (~100 bytes each: 10 MB at 100k queues).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use porter_core::queue::state::MessageCounts;
use serde_json::{json, Value};

use crate::Management;

/// How often counts are read (RabbitMQ's default `collect_statistics_interval`).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Per-second rates of a queue's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueRates {
    pub publish: f64,
    pub deliver: f64,
    pub redeliver: f64,
    pub ack: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct QueueEntry {
    counts: MessageCounts,
    rates: QueueRates,
}

/// A topic's counts at one reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TopicCounts {
    /// Records appended so far: the partitions' high watermarks summed.
    appended: u64,
    /// Bytes of batches read by consumers so far.
    bytes_read: u64,
}

/// Per-second rates of a topic's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopicRates {
    /// Records appended per second.
    pub messages_in: f64,
    /// Bytes read by consumers per second (Kafka's per-topic `BytesOutPerSec`: fetches send
    /// stored batches without decoding them, so they are counted in bytes, not records).
    pub bytes_out: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct TopicEntry {
    counts: TopicCounts,
    rates: TopicRates,
}

/// The last reading and the rates it gave.
#[derive(Debug, Default)]
pub struct Rates {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    at: Option<Instant>,
    queues: HashMap<(String, String), QueueEntry>,
    topics: HashMap<String, TopicEntry>,
}

fn per_second(now: u64, before: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    // A queue deleted and declared again between readings restarts its counts: no negative rate.
    now.saturating_sub(before) as f64 / seconds
}

impl Rates {
    /// Reads every queue's and topic's counts now and updates the rates.
    pub fn sample(&self, management: &Management) {
        let broker = &management.broker;
        // Only the counts: no definition copies, no ready/unacked sums.
        let queues: Vec<((String, String), MessageCounts)> = broker
            .queue_handles()
            .into_iter()
            .map(|(vhost, q)| ((vhost, q.name().to_string()), q.message_counts()))
            .collect();
        let topics: Vec<(String, TopicCounts)> = broker
            .topics()
            .iter()
            .map(|t| {
                let counts =
                    t.partitions
                        .iter()
                        .fold(TopicCounts::default(), |sum, p| TopicCounts {
                            appended: sum.appended + p.high_watermark().max(0) as u64,
                            bytes_read: sum.bytes_read + p.bytes_read(),
                        });
                (t.topic.name.clone(), counts)
            })
            .collect();
        let now = Instant::now();
        let mut table = self.table.lock();
        let seconds = table
            .at
            .map_or(0.0, |at| now.duration_since(at).as_secs_f64());
        let mut next_queues = HashMap::with_capacity(queues.len());
        for (key, counts) in queues {
            let rates = match table.queues.get(&key) {
                Some(before) => QueueRates {
                    publish: per_second(counts.published, before.counts.published, seconds),
                    deliver: per_second(counts.delivered, before.counts.delivered, seconds),
                    redeliver: per_second(counts.redelivered, before.counts.redelivered, seconds),
                    ack: per_second(counts.acked, before.counts.acked, seconds),
                },
                None => QueueRates::default(),
            };
            next_queues.insert(key, QueueEntry { counts, rates });
        }
        let mut next_topics = HashMap::with_capacity(topics.len());
        for (name, counts) in topics {
            let rates = match table.topics.get(&name) {
                Some(before) => TopicRates {
                    messages_in: per_second(counts.appended, before.counts.appended, seconds),
                    bytes_out: per_second(counts.bytes_read, before.counts.bytes_read, seconds),
                },
                None => TopicRates::default(),
            };
            next_topics.insert(name, TopicEntry { counts, rates });
        }
        *table = Table {
            at: Some(now),
            queues: next_queues,
            topics: next_topics,
        };
    }

    /// A queue's rates at the last reading (zero before its second).
    pub fn queue(&self, vhost: &str, name: &str) -> QueueRates {
        self.table
            .lock()
            .queues
            .get(&(vhost.to_string(), name.to_string()))
            .map(|e| e.rates)
            .unwrap_or_default()
    }

    /// A topic's rates at the last reading (zero before its second).
    pub fn topic(&self, name: &str) -> TopicRates {
        self.table
            .lock()
            .topics
            .get(name)
            .map(|e| e.rates)
            .unwrap_or_default()
    }

    /// Every queue's rates summed, and every topic's rates summed.
    pub fn totals(&self) -> (QueueRates, TopicRates) {
        let table = self.table.lock();
        let queues = table
            .queues
            .values()
            .fold(QueueRates::default(), |sum, e| QueueRates {
                publish: sum.publish + e.rates.publish,
                deliver: sum.deliver + e.rates.deliver,
                redeliver: sum.redeliver + e.rates.redeliver,
                ack: sum.ack + e.rates.ack,
            });
        let topics = table
            .topics
            .values()
            .fold(TopicRates::default(), |sum, e| TopicRates {
                messages_in: sum.messages_in + e.rates.messages_in,
                bytes_out: sum.bytes_out + e.rates.bytes_out,
            });
        (queues, topics)
    }

    /// Reads counts every [`SAMPLE_INTERVAL`] on the blocking pool until `management` is gone.
    pub fn spawn_sampler(management: &Arc<Management>) {
        let weak: Weak<Management> = Arc::downgrade(management);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(management) = weak.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || {
                    management.rates.sample(&management);
                })
                .await;
            }
        });
    }
}

/// RabbitMQ's `message_stats` for a queue: counts and their `*_details.rate`.
pub fn message_stats(counts: &MessageCounts, rates: &QueueRates) -> Value {
    json!({
        "publish": counts.published,
        "publish_details": {"rate": rates.publish},
        "deliver_get": counts.delivered,
        "deliver_get_details": {"rate": rates.deliver},
        "redeliver": counts.redelivered,
        "redeliver_details": {"rate": rates.redeliver},
        "ack": counts.acked,
        "ack_details": {"rate": rates.ack},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_differences_per_second_and_never_negative() {
        assert_eq!(per_second(150, 100, 5.0), 10.0);
        assert_eq!(per_second(10, 100, 5.0), 0.0, "counts restarted");
        assert_eq!(per_second(10, 0, 0.0), 0.0, "first reading");
    }
}
