//! Transactional messages from the gateway's side: a half message is kept by the core's
//! [`TransactionService`] (durable, invisible) until the producer's EndTransaction commits it
//! (published to its topic) or rolls it back; one left unresolved is checked back through a
//! producer's telemetry stream (RecoverOrphanedTransactionCommand), whose checker answers with
//! EndTransaction(source = SERVER_CHECK).
//!
//! A commit reads the half message, publishes it, and only then resolves it, so a crash in
//! between leaves it pending and the next check publishes it again: at least once, never lost.

use std::sync::Arc;

use porter_core::broker::TopicHandle;
use porter_core::pop::Received;
use porter_core::topic_message::TopicMessage;
use porter_core::topic_publish::{publish, PartitionChoice};
use porter_core::transaction::{
    wall_clock_ms, CheckDue, HalfMessage, Resolution, TransactionConfig, TransactionService,
};
use porter_core::Broker;
use tokio::sync::mpsc;

use crate::config::RocketmqConfig;
use crate::convert;
use crate::error::Refusal;
use crate::proto::{
    telemetry_command, Code, RecoverOrphanedTransactionCommand, TelemetryCommand,
    TransactionResolution,
};
use crate::telemetry::Clients;

pub struct Transactions {
    service: Arc<TransactionService>,
    check_after_ms: i64,
}

impl Transactions {
    /// Opens the half-message store under the data directory (blocking: it replays its log)
    /// and returns the due checks, which [`run_checks`] sends to producers.
    pub fn open(
        broker: &Broker,
        config: &RocketmqConfig,
    ) -> Result<(Transactions, mpsc::Receiver<CheckDue>), porter_core::CoreError> {
        let dir = broker.config().data_dir.join("transactions");
        let service_config = TransactionConfig {
            checks_max: config.transaction_checks_max,
            check_interval_ms: config.transaction_check_interval_ms,
            check_interval_max_ms: config
                .transaction_check_interval_ms
                .max(porter_core::transaction::TRANSACTION_CHECK_INTERVAL_MAX_MS_DEFAULT),
            ..TransactionConfig::default()
        };
        let (service, checks) = TransactionService::start(&dir, service_config)?;
        Ok((
            Transactions {
                service: Arc::new(service),
                check_after_ms: config.transaction_check_after_ms,
            },
            checks,
        ))
    }

    /// Keeps `message` as a half message of `topic`; answered once durable.
    pub async fn prepare(
        &self,
        topic: &Arc<TopicHandle>,
        message: TopicMessage,
        check_after_ms: Option<i64>,
    ) -> Result<(), Refusal> {
        let payload = TopicMessage::encode_batch(&[&message], wall_clock_ms())?;
        self.service
            .prepare(HalfMessage {
                id: message.message_id.clone(),
                // RocketMQ 5 producers have no group: checks go to a producer of the topic.
                producer_group: "rocketmq".into(),
                topic: topic.topic.name.clone(),
                payload,
                prepared_ms: wall_clock_ms(),
                check_after_ms: check_after_ms.unwrap_or(self.check_after_ms),
            })
            .await?;
        Ok(())
    }

    /// The producer's verdict on `transaction_id` (the half message's id).
    pub async fn end(
        &self,
        topic: &Arc<TopicHandle>,
        transaction_id: &str,
        message_id: &str,
        resolution: TransactionResolution,
    ) -> Result<(), Refusal> {
        let id = if transaction_id.is_empty() {
            message_id
        } else {
            transaction_id
        };
        let resolution = match resolution {
            TransactionResolution::Commit => Resolution::Commit,
            TransactionResolution::Rollback => Resolution::Rollback,
            TransactionResolution::Unspecified => {
                return Err(Refusal::new(
                    Code::BadRequest,
                    "a transaction resolution is required",
                ))
            }
        };
        if resolution == Resolution::Commit {
            let Some(half) = self.service.half(id.to_string()).await? else {
                return Err(unknown(id));
            };
            if half.topic != topic.topic.name {
                return Err(Refusal::new(
                    Code::InvalidTransactionId,
                    format!("transaction {id} belongs to topic {}", half.topic),
                ));
            }
            let message = TopicMessage::decode_payload(&half.payload).ok_or_else(|| {
                Refusal::new(
                    Code::InternalServerError,
                    "a stored half message is unreadable",
                )
            })?;
            publish(topic, &[(PartitionChoice::Auto, message)]).await?;
            // The message is committed and visible: the producer is answered now, and the half
            // message resolved behind the answer. Should that record be lost to a crash, the
            // next check-back's commit publishes it again — the at-least-once this path has
            // anyway — while waiting for its fsync would add one to every commit.
            let service = self.service.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                if let Err(e) = service.resolve(id.clone(), Resolution::Commit).await {
                    tracing::warn!(transaction = %id, error = %e, "recording a commit failed; a check-back will ask again");
                }
            });
            return Ok(());
        }
        // A rollback unknown here (resolved before, or dropped after its checks) is a no-op.
        self.service.resolve(id.to_string(), resolution).await?;
        Ok(())
    }
}

fn unknown(id: &str) -> Refusal {
    Refusal::new(
        Code::InvalidTransactionId,
        format!("no pending transaction {id} (already resolved, or dropped after its checks)"),
    )
}

/// Sends each due check to a producer of its topic, until the service stops.
pub async fn run_checks(mut checks: mpsc::Receiver<CheckDue>, clients: Arc<Clients>) {
    while let Some(check) = checks.recv().await {
        let Some(message) = TopicMessage::decode_payload(&check.payload) else {
            tracing::warn!(transaction = %check.id, "a stored half message is unreadable; not checked");
            continue;
        };
        let stored = porter_core::topic_message::StoredTopicMessage {
            message,
            partition: 0,
            offset: 0,
            stored_ms: wall_clock_ms(),
        };
        let received = Received {
            message: stored,
            attempt: check.attempt,
            receipt: porter_core::pop::ReceiptHandle {
                epoch: 0,
                partition: 0,
                offset: 0,
                receipt: 0,
            },
            invisible_until_ms: 0,
        };
        let mut proto = convert::outgoing(&received, &check.topic, 0);
        if let Some(sys) = proto.system_properties.as_mut() {
            sys.receipt_handle = None;
            sys.message_type = crate::proto::MessageType::Transaction as i32;
        }
        let command = TelemetryCommand {
            status: None,
            command: Some(
                telemetry_command::Command::RecoverOrphanedTransactionCommand(
                    RecoverOrphanedTransactionCommand {
                        message: Some(proto),
                        transaction_id: check.id.clone(),
                    },
                ),
            ),
        };
        let sent = clients.send_to_producer_of(&check.topic, command);
        tracing::info!(transaction = %check.id, topic = %check.topic, attempt = check.attempt, sent, "transaction check-back");
    }
}
