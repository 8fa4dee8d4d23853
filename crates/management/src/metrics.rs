//! `/metrics`: the broker's state in Prometheus's text format (version 0.0.4), read when
//! scraped: queue depths and consumers, partition offsets and sizes, consumer-group lag,
//! memory and disk against their alarms.
//!
//! Label cardinality is bounded: per-queue, per-partition and per-group-partition series stop
//! at [`SERIES_PER_FAMILY_MAX`] each (the totals are always complete), and
//! `porter_metrics_series_omitted` says how many were left out, so a broker with 100k queues
//! does not produce a scrape Prometheus cannot take.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use porter_core::queue::state::MessageCounts;
use porter_core::QueueSnapshot;

use crate::Management;

/// Most labelled series one family (per queue, per partition, per group partition) emits.
pub const SERIES_PER_FAMILY_MAX: usize = 10_000;

pub(crate) fn routes() -> Router<Arc<Management>> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(management): State<Arc<Management>>) -> impl IntoResponse {
    // Reads every queue and partition: off the reactor, as the API's listings are.
    let text = tokio::task::spawn_blocking(move || render(&management))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Writes metric families: HELP and TYPE once, then the samples.
struct Exposition {
    text: String,
    omitted: usize,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// One histogram's samples (the family written before): cumulative `_bucket`s with `le`,
    /// then `_sum` and `_count`.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        snapshot: &porter_telemetry::Snapshot,
    ) {
        for (bound, count) in &snapshot.buckets {
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", le.as_str()));
            self.sample(&format!("{name}_bucket"), &with_le, *count as f64);
        }
        let mut with_inf = labels.to_vec();
        with_inf.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_inf, snapshot.count as f64);
        self.sample(&format!("{name}_sum"), labels, snapshot.sum_seconds);
        self.sample(&format!("{name}_count"), labels, snapshot.count as f64);
    }

    /// One family of `kind` with one sample per item, up to the series bound.
    fn per_item<T>(
        &mut self,
        (name, kind): (&str, &str),
        help: &str,
        items: &[T],
        sample: impl Fn(&T) -> (Vec<(&'static str, String)>, f64),
    ) {
        self.family(name, kind, help);
        for item in items.iter().take(SERIES_PER_FAMILY_MAX) {
            let (labels, value) = sample(item);
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.sample(name, &labels, value);
        }
        self.omitted += items.len().saturating_sub(SERIES_PER_FAMILY_MAX);
    }
}

fn queue_labels(q: &QueueSnapshot) -> Vec<(&'static str, String)> {
    vec![
        ("vhost", q.vhost.clone()),
        ("queue", q.definition.name.clone()),
    ]
}

/// Label values escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole scrape.
pub fn render(management: &Management) -> String {
    let broker = &management.broker;
    let mut out = Exposition {
        text: String::new(),
        omitted: 0,
    };
    out.family("porter_build_info", "gauge", "Porter's version; always 1.");
    out.sample(
        "porter_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out.family(
        "porter_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
    );
    out.sample(
        "porter_uptime_seconds",
        &[],
        management.started.elapsed().as_secs_f64(),
    );

    out.family(
        "porter_connections",
        "gauge",
        "Open client connections, per listener protocol (mqtt-ws and stomp-ws are WebSocket).",
    );
    for registry in management.registries() {
        let labels = [("protocol", registry.protocol())];
        out.sample("porter_connections", &labels, registry.len() as f64);
    }
    for (name, help, index) in [
        (
            "porter_connection_received_bytes_total",
            "Bytes read from clients, per listener protocol (closed connections included).",
            0,
        ),
        (
            "porter_connection_sent_bytes_total",
            "Bytes written to clients, per listener protocol (closed connections included).",
            1,
        ),
    ] {
        out.family(name, "counter", help);
        for registry in management.registries() {
            let (received, sent) = registry.bytes_total();
            let value = if index == 0 { received } else { sent };
            out.sample(name, &[("protocol", registry.protocol())], value as f64);
        }
    }
    out.family(
        "porter_connections_closed_total",
        "counter",
        "Connections closed, per listener protocol and why: deadline, limit and protocol_error \
         are the gateway's errors (a log line each says which connection and why).",
    );
    for registry in management.registries() {
        for (reason, count) in registry.closes() {
            let labels = [("protocol", registry.protocol()), ("reason", reason)];
            out.sample("porter_connections_closed_total", &labels, count as f64);
        }
    }
    out.family(
        "porter_connections_max",
        "gauge",
        "The listener's connections_max: more wait in the accept backlog.",
    );
    for registry in management.registries() {
        let labels = [("protocol", registry.protocol())];
        out.sample(
            "porter_connections_max",
            &labels,
            registry.capacity() as f64,
        );
    }

    out.family(
        "porter_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its answer being ready: Kafka per API (a produce \
         includes its commit), AMQP per method (a publish's method frame, not its confirm).",
    );
    for registry in management.registries() {
        for (operation, snapshot) in registry.operations().snapshot() {
            let labels = [("protocol", registry.protocol()), ("operation", operation)];
            out.histogram("porter_request_duration_seconds", &labels, &snapshot);
        }
    }
    out.family(
        "porter_fsync_duration_seconds",
        "histogram",
        "Each commit step's fdatasync (or grouped syncfs): what a durable write waits for.",
    );
    out.histogram(
        "porter_fsync_duration_seconds",
        &[],
        &broker.fsync_latency(),
    );

    let alarms = *broker.alarms().borrow();
    out.family(
        "porter_resource_alarm",
        "gauge",
        "1 while the resource's alarm blocks publishers (memory, disk).",
    );
    out.sample(
        "porter_resource_alarm",
        &[("resource", "memory")],
        f64::from(u8::from(alarms.memory)),
    );
    out.sample(
        "porter_resource_alarm",
        &[("resource", "disk")],
        f64::from(u8::from(alarms.disk)),
    );
    if let Some(rss) = porter_core::alarm::resident_bytes() {
        out.family(
            "porter_resident_memory_bytes",
            "gauge",
            "The broker process's resident memory.",
        );
        out.sample("porter_resident_memory_bytes", &[], rss as f64);
    }
    if let Some(free) = porter_core::alarm::free_disk_bytes(&broker.config().data_dir) {
        out.family(
            "porter_disk_free_bytes",
            "gauge",
            "Free bytes on the data directory's file system.",
        );
        out.sample("porter_disk_free_bytes", &[], free as f64);
    }

    let groups = broker.groups();
    let described: Vec<(String, usize)> = groups
        .group_ids()
        .into_iter()
        .filter_map(|(id, _, _)| groups.describe(&id).map(|d| (id, d.members.len())))
        .collect();
    out.per_item(
        ("porter_group_members", "gauge"),
        "Members of the consumer group.",
        &described,
        |(id, members)| (vec![("group", id.clone())], *members as f64),
    );
    out.family(
        "porter_delayed_messages",
        "gauge",
        "Delayed messages waiting for their time (RocketMQ delays, x-delayed-message).",
    );
    out.sample(
        "porter_delayed_messages",
        &[],
        broker.delayed().pending() as f64,
    );
    let queues = broker.queue_snapshots(None);
    out.family("porter_queues", "gauge", "Queues, all virtual hosts.");
    out.sample("porter_queues", &[], queues.len() as f64);
    out.per_item(
        ("porter_queue_messages_ready", "gauge"),
        "Messages ready for delivery.",
        &queues,
        |q| (queue_labels(q), q.ready as f64),
    );
    out.per_item(
        ("porter_queue_messages_unacked", "gauge"),
        "Messages delivered and not yet acknowledged.",
        &queues,
        |q| (queue_labels(q), q.unacked as f64),
    );
    out.per_item(
        ("porter_queue_consumers", "gauge"),
        "Consumers of the queue.",
        &queues,
        |q| (queue_labels(q), f64::from(q.consumers)),
    );
    let now_ms = porter_core::partition::now_ms();
    let ages: Vec<(Vec<(&'static str, String)>, f64)> = broker
        .queue_handles()
        .into_iter()
        .take(SERIES_PER_FAMILY_MAX)
        .filter_map(|(vhost, queue)| {
            let oldest = queue.oldest_message_ms()?;
            let labels = vec![("vhost", vhost), ("queue", queue.name().to_string())];
            Some((labels, (now_ms - oldest).max(0) as f64 / 1000.0))
        })
        .collect();
    out.per_item(
        ("porter_queue_oldest_message_age_seconds", "gauge"),
        "Age of the oldest message still in the queue (ready or unacknowledged); absent when empty.",
        &ages,
        |(labels, age)| (labels.clone(), *age),
    );
    for (name, help, count) in [
        (
            "porter_queue_messages_published_total",
            "Messages the queue took in since it was created.",
            (|c: &MessageCounts| c.published) as fn(&MessageCounts) -> u64,
        ),
        (
            "porter_queue_messages_delivered_total",
            "Deliveries and gets since the broker started, redeliveries included.",
            |c| c.delivered,
        ),
        (
            "porter_queue_messages_redelivered_total",
            "Redeliveries since the broker started.",
            |c| c.redelivered,
        ),
        (
            "porter_queue_messages_acked_total",
            "Acknowledgements since the broker started.",
            |c| c.acked,
        ),
    ] {
        out.per_item((name, "counter"), help, &queues, |q| {
            (queue_labels(q), count(&q.counts) as f64)
        });
    }

    let partitions: Vec<_> = broker
        .topics()
        .iter()
        .flat_map(|t| t.partitions.iter().cloned())
        .collect();
    out.family("porter_topics", "gauge", "Topics.");
    out.sample("porter_topics", &[], broker.topics().len() as f64);
    // Broker-wide message totals, complete however many series the per-queue families omit.
    let queue_totals = queues
        .iter()
        .fold(MessageCounts::default(), |sum, q| sum + q.counts);
    let appended: i64 = partitions.iter().map(|p| p.high_watermark().max(0)).sum();
    out.family(
        "porter_messages_received_total",
        "counter",
        "Messages taken in: by every queue (since each was created) and appended to every topic \
         (records, since each was created), whatever the protocol.",
    );
    out.sample(
        "porter_messages_received_total",
        &[("kind", "queue")],
        queue_totals.published as f64,
    );
    out.sample(
        "porter_messages_received_total",
        &[("kind", "topic")],
        appended as f64,
    );
    out.family(
        "porter_messages_delivered_total",
        "counter",
        "Messages delivered from queues since the broker started (gets and redeliveries included); \
         Kafka fetches are counted in bytes only.",
    );
    out.sample(
        "porter_messages_delivered_total",
        &[("kind", "queue")],
        queue_totals.delivered as f64,
    );
    let partition_labels = |p: &Arc<porter_core::Partition>| {
        vec![
            ("topic", p.topic().to_string()),
            ("partition", p.index().to_string()),
        ]
    };
    out.per_item(
        ("porter_partition_high_watermark", "gauge"),
        "Offset past the last committed record.",
        &partitions,
        |p| (partition_labels(p), p.high_watermark() as f64),
    );
    out.per_item(
        ("porter_partition_log_start_offset", "gauge"),
        "First offset the partition still holds.",
        &partitions,
        |p| (partition_labels(p), p.log_start_offset() as f64),
    );
    out.per_item(
        ("porter_partition_size_bytes", "gauge"),
        "Bytes of the partition's segments.",
        &partitions,
        |p| (partition_labels(p), p.size_bytes() as f64),
    );
    out.per_item(
        ("porter_partition_read_bytes_total", "counter"),
        "Bytes of record batches sent to readers (Kafka fetches, and every other read of the \
         log: STOMP, RocketMQ, browsing) since the broker started: Kafka's per-topic \
         BytesOutPerSec as a counter.",
        &partitions,
        |p| (partition_labels(p), p.bytes_read() as f64),
    );

    let groups = broker.groups();
    let mut lags = Vec::new();
    for (group, _, _) in groups.group_ids() {
        for ((topic, partition), committed) in groups.fetch_offsets(&group, None) {
            let (Some(committed), Ok(p)) = (committed, broker.partition(&topic, partition)) else {
                continue;
            };
            let lag = (p.high_watermark() - committed.offset).max(0);
            lags.push((group.clone(), topic, partition, lag));
        }
    }
    out.per_item(
        ("porter_group_lag", "gauge"),
        "Records between a group's committed offset and the partition's high watermark.",
        &lags,
        |(group, topic, partition, lag)| {
            (
                vec![
                    ("group", group.clone()),
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ],
                *lag as f64,
            )
        },
    );

    out.family(
        "porter_metrics_series_omitted",
        "gauge",
        "Labelled series left out of this scrape by the per-family bound.",
    );
    let omitted = out.omitted as f64;
    out.sample("porter_metrics_series_omitted", &[], omitted);
    out.text
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
