//! `apache.rocketmq.v2.MessagingService`: each RPC decoded by tonic, checked, turned into core
//! calls, and answered with RocketMQ's status codes (mapped once, in `error.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use porter_core::broker::TopicHandle;
use porter_core::pop::{PopConsumers, ReceiveOptions};
use porter_core::topic_publish::{publish, PartitionChoice};
use porter_core::{Broker, CoreError};
use tonic::{Request, Response};

use crate::authorize::{Caller, Operation, ResourceType};
use crate::config::RocketmqConfig;
use crate::convert::{self, group_name, to_ms, topic_name};
use crate::error::{ok, status, Refusal};
use crate::limits::{INVISIBLE_DEFAULT, LONG_POLL_MAX, RECEIVE_BATCH_MAX, SEND_BATCH_MAX};
use crate::proto::messaging_service_server::MessagingService;
use crate::proto::*;
use crate::telemetry::{self, Clients};
use crate::transactions::Transactions;

type RpcResult<T> = Result<Response<T>, tonic::Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// What every RPC shares.
pub struct Gateway {
    pub broker: Arc<Broker>,
    pub pop: Arc<PopConsumers>,
    pub config: RocketmqConfig,
    pub clients: Arc<Clients>,
    pub transactions: Transactions,
}

impl Gateway {
    /// Opens what the gateway keeps on disk (half messages; blocking, so from
    /// `spawn_blocking` or before serving) and starts sending transaction checks to producers.
    pub fn open(broker: Arc<Broker>, config: RocketmqConfig) -> Result<Arc<Self>, CoreError> {
        let pop = Arc::new(PopConsumers::new(broker.clone()));
        let clients = Arc::new(Clients::default());
        let (transactions, checks) = Transactions::open(&broker, &config)?;
        tokio::spawn(crate::transactions::run_checks(checks, clients.clone()));
        Ok(Arc::new(Gateway {
            transactions,
            broker,
            pop,
            config,
            clients,
        }))
    }

    /// A delay message: held in the broker's timer store until its delivery time, then
    /// published to its topic. Answered once durable.
    async fn schedule(
        &self,
        topic: &Arc<TopicHandle>,
        message: porter_core::topic_message::TopicMessage,
    ) -> Result<(), Refusal> {
        let delays = self.broker.delayed();
        let due = message.deliver_at_ms.unwrap_or_default();
        let latest = porter_core::partition::now_ms().saturating_add(delays.max_delay_ms());
        if due > latest {
            return Err(Refusal::new(
                Code::IllegalDeliveryTime,
                format!(
                    "the delivery time is more than {} days ahead",
                    delays.max_delay_ms() / 86_400_000
                ),
            ));
        }
        delays
            .schedule_topic(due, &topic.topic.name, &message)
            .await?;
        Ok(())
    }

    /// The topic, created with the gateway's queue count if auto-creation is on.
    pub async fn topic(&self, name: &str) -> Result<Arc<TopicHandle>, Refusal> {
        if let Some(handle) = self.broker.topic(name) {
            return Ok(handle);
        }
        if !self.config.auto_create_topics || name.starts_with("DLQ.") {
            return Err(Refusal::new(
                Code::TopicNotFound,
                format!(
                    "topic {} does not exist",
                    convert::rocketmq_topic_name(name)
                ),
            ));
        }
        Ok(self
            .broker
            .topic_or_create(name, self.config.auto_create_queues)
            .await?)
    }

    /// The consumer group a request names, checked against the configured groups when
    /// auto-creation is off.
    pub fn group(&self, resource: Option<&Resource>) -> Result<String, Refusal> {
        let group = group_name(resource)?;
        if !self.config.auto_create_groups && !self.config.groups.contains_key(&group) {
            return Err(Refusal::new(
                Code::ConsumerGroupNotFound,
                format!("consumer group {group} does not exist (auto-creation is off)"),
            ));
        }
        Ok(group)
    }

    fn queues(handle: &TopicHandle, endpoints: Option<Endpoints>) -> Vec<MessageQueue> {
        let topic = Resource {
            resource_namespace: String::new(),
            name: convert::rocketmq_topic_name(&handle.topic.name),
        };
        (0..handle.partitions.len() as i32)
            .map(|id| MessageQueue {
                topic: Some(topic.clone()),
                id,
                permission: Permission::ReadWrite as i32,
                broker: Some(crate::proto::Broker {
                    name: "porter".into(),
                    id: 0,
                    endpoints: endpoints.clone(),
                }),
                accept_message_types: accepted_types(handle.topic.config.message_type())
                    .iter()
                    .map(|t| *t as i32)
                    .collect(),
            })
            .collect()
    }

    async fn send(
        &self,
        caller: &Caller,
        request: SendMessageRequest,
    ) -> Result<Vec<SendResultEntry>, Refusal> {
        if request.messages.is_empty() || request.messages.len() > SEND_BATCH_MAX {
            return Err(Refusal::new(
                Code::BadRequest,
                format!("send 1 to {SEND_BATCH_MAX} messages per request"),
            ));
        }
        let name = topic_name(request.messages[0].topic.as_ref())?;
        caller.may(self, Operation::Write, ResourceType::Topic, &name)?;
        let mut incoming = Vec::with_capacity(request.messages.len());
        for message in &request.messages {
            if topic_name(message.topic.as_ref())? != name {
                return Err(Refusal::new(
                    Code::BadRequest,
                    "the messages of one request must share a topic",
                ));
            }
            let mut one = convert::incoming(message, self.config.body_bytes_max)?;
            one.queue_id = message.system_properties.as_ref().and_then(|s| {
                // Java clients name the queue they picked; 0 is also proto3's "unset".
                (s.queue_id > 0).then_some(s.queue_id)
            });
            incoming.push(one);
        }
        let handle = self.topic(&name).await?;
        let accepted = accepted_types(handle.topic.config.message_type());
        if let Some(one) = incoming.iter().find(|one| !accepted.contains(&one.kind)) {
            return Err(Refusal::new(
                Code::MessagePropertyConflictWithType,
                format!(
                    "topic {} takes {} messages, not {}",
                    convert::rocketmq_topic_name(&name),
                    handle.topic.config.message_type(),
                    one.kind.as_str_name()
                ),
            ));
        }
        let mut entries = vec![None; incoming.len()];
        let mut now_batch = Vec::new();
        let mut now_index = Vec::new();
        for (i, one) in incoming.into_iter().enumerate() {
            let choice = match one.queue_id {
                Some(q) if (q as usize) < handle.partitions.len() => PartitionChoice::Exact(q),
                _ => PartitionChoice::Auto,
            };
            if one.kind == MessageType::Transaction {
                let id = one.message.message_id.clone();
                self.transactions
                    .prepare(&handle, one.message, one.check_after_ms)
                    .await?;
                entries[i] = Some(SendResultEntry {
                    status: Some(ok()),
                    message_id: id.clone(),
                    transaction_id: id,
                    offset: 0,
                    recall_handle: String::new(),
                });
            } else if one
                .message
                .deliver_at_ms
                .is_some_and(|at| at > porter_core::partition::now_ms())
            {
                let id = one.message.message_id.clone();
                self.schedule(&handle, one.message).await?;
                entries[i] = Some(SendResultEntry {
                    status: Some(ok()),
                    message_id: id,
                    ..Default::default()
                });
            } else {
                now_index.push(i);
                now_batch.push((choice, one.message));
            }
        }
        if !now_batch.is_empty() {
            let placed = publish(&handle, &now_batch).await?;
            for ((i, (_, message)), (_, offset)) in now_index.into_iter().zip(now_batch).zip(placed)
            {
                entries[i] = Some(SendResultEntry {
                    status: Some(ok()),
                    message_id: message.message_id,
                    transaction_id: String::new(),
                    offset,
                    recall_handle: String::new(),
                });
            }
        }
        Ok(entries
            .into_iter()
            .map(|e| e.expect("every message answered"))
            .collect())
    }

    async fn receive(
        &self,
        caller: &Caller,
        request: ReceiveMessageRequest,
    ) -> Result<Vec<ReceiveMessageResponse>, Refusal> {
        let group = self.group(request.group.as_ref())?;
        let queue = request
            .message_queue
            .as_ref()
            .ok_or_else(|| Refusal::new(Code::BadRequest, "a receive names a message queue"))?;
        let name = topic_name(queue.topic.as_ref())?;
        caller.may_consume(self, &group, &name)?;
        let filter = crate::filter::compile(request.filter_expression.as_ref())?;
        let invisible = match &request.invisible_duration {
            Some(d) => to_ms(d).ok_or_else(|| {
                Refusal::new(
                    Code::IllegalInvisibleTime,
                    "the invisible duration is negative",
                )
            })?,
            None => INVISIBLE_DEFAULT.as_millis() as u64,
        };
        if invisible > porter_core::pop::INVISIBLE_MS_MAX {
            return Err(Refusal::new(
                Code::IllegalInvisibleTime,
                "the invisible duration is longer than a day",
            ));
        }
        let long_poll = match &request.long_polling_timeout {
            Some(d) => Duration::from_millis(to_ms(d).ok_or_else(|| {
                Refusal::new(
                    Code::IllegalPollingTime,
                    "the long polling timeout is negative",
                )
            })?),
            None => Duration::ZERO,
        };
        if long_poll > LONG_POLL_MAX {
            return Err(Refusal::new(
                Code::IllegalPollingTime,
                format!(
                    "the long polling timeout is longer than {} s",
                    LONG_POLL_MAX.as_secs()
                ),
            ));
        }
        if request.batch_size <= 0 {
            return Err(Refusal::new(
                Code::BadRequest,
                "the batch size must be positive",
            ));
        }
        let handle = self.topic(&name).await?;
        let options = ReceiveOptions {
            max_messages: (request.batch_size as usize).min(RECEIVE_BATCH_MAX),
            invisible_ms: invisible,
            long_poll,
            max_attempts: self.config.max_attempts(&group),
        };
        let received = self
            .pop
            .receive(&group, &handle, &|m| filter.matches(m), options)
            .await?;
        if received.is_empty() {
            return Ok(vec![ReceiveMessageResponse {
                content: Some(receive_message_response::Content::Status(status(
                    Code::MessageNotFound,
                    "no new message",
                ))),
            }]);
        }
        let mut out = Vec::with_capacity(received.len() + 2);
        out.push(ReceiveMessageResponse {
            content: Some(receive_message_response::Content::Status(ok())),
        });
        out.push(ReceiveMessageResponse {
            content: Some(receive_message_response::Content::DeliveryTimestamp(
                convert::timestamp(porter_core::partition::now_ms()),
            )),
        });
        for r in &received {
            out.push(ReceiveMessageResponse {
                content: Some(receive_message_response::Content::Message(
                    convert::outgoing(r, &handle.topic.name, invisible),
                )),
            });
        }
        Ok(out)
    }
}

/// The tonic service: a handle on the shared [`Gateway`].
#[derive(Clone)]
pub struct Service(pub Arc<Gateway>);

fn answer<T>(build: impl FnOnce(Option<Status>) -> T, result: Result<(), Refusal>) -> RpcResult<T> {
    Ok(Response::new(build(Some(match result {
        Ok(()) => ok(),
        Err(refusal) => {
            tracing::debug!(code = ?refusal.code, message = %refusal.message, "rocketmq: refused");
            refusal.status()
        }
    }))))
}

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(
        &self,
        request: Request<QueryRouteRequest>,
    ) -> RpcResult<QueryRouteResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let result = async {
            let name = topic_name(request.topic.as_ref())?;
            caller.may(&self.0, Operation::Describe, ResourceType::Topic, &name)?;
            let handle = self.0.topic(&name).await?;
            Ok::<_, Refusal>(Gateway::queues(&handle, request.endpoints.clone()))
        }
        .await;
        Ok(Response::new(match result {
            Ok(message_queues) => QueryRouteResponse {
                status: Some(ok()),
                message_queues,
            },
            Err(refusal) => QueryRouteResponse {
                status: Some(refusal.status()),
                message_queues: Vec::new(),
            },
        }))
    }

    async fn heartbeat(&self, _: Request<HeartbeatRequest>) -> RpcResult<HeartbeatResponse> {
        answer(|status| HeartbeatResponse { status }, Ok(()))
    }

    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> RpcResult<SendMessageResponse> {
        let caller = Caller::of(&request);
        Ok(Response::new(
            match self.0.send(&caller, request.into_inner()).await {
                Ok(entries) => SendMessageResponse {
                    status: Some(ok()),
                    entries,
                },
                Err(refusal) => {
                    tracing::debug!(code = ?refusal.code, message = %refusal.message, "rocketmq: send refused");
                    SendMessageResponse {
                        status: Some(refusal.status()),
                        entries: vec![SendResultEntry {
                            status: Some(refusal.status()),
                            ..Default::default()
                        }],
                    }
                }
            },
        ))
    }

    async fn query_assignment(
        &self,
        request: Request<QueryAssignmentRequest>,
    ) -> RpcResult<QueryAssignmentResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let result = async {
            let group = self.0.group(request.group.as_ref())?;
            let name = topic_name(request.topic.as_ref())?;
            caller.may(&self.0, Operation::Read, ResourceType::Group, &group)?;
            caller.may(&self.0, Operation::Describe, ResourceType::Topic, &name)?;
            let handle = self.0.topic(&name).await?;
            Ok::<_, Refusal>(Gateway::queues(&handle, request.endpoints.clone()))
        }
        .await;
        Ok(Response::new(match result {
            Ok(queues) => QueryAssignmentResponse {
                status: Some(ok()),
                assignments: queues
                    .into_iter()
                    .map(|q| Assignment {
                        message_queue: Some(q),
                    })
                    .collect(),
            },
            Err(refusal) => QueryAssignmentResponse {
                status: Some(refusal.status()),
                assignments: Vec::new(),
            },
        }))
    }

    type ReceiveMessageStream = BoxStream<ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> RpcResult<Self::ReceiveMessageStream> {
        let deadline = grpc_timeout(request.metadata());
        let caller = Caller::of(&request);
        let mut request = request.into_inner();
        // A long poll that outlives the client's own deadline answers nobody: end it a little
        // before, so an empty poll reaches the client as MESSAGE_NOT_FOUND, not a timeout.
        if let (Some(deadline), Some(poll)) = (deadline, request.long_polling_timeout.as_mut()) {
            let margin = (deadline / 10).max(Duration::from_millis(100));
            let cap = deadline.saturating_sub(margin);
            if to_ms(poll).is_some_and(|ms| Duration::from_millis(ms) > cap) {
                *poll = convert::duration_ms(cap.as_millis() as u64);
            }
        }
        let responses = match self.0.receive(&caller, request).await {
            Ok(responses) => responses,
            Err(refusal) => vec![ReceiveMessageResponse {
                content: Some(receive_message_response::Content::Status(refusal.status())),
            }],
        };
        Ok(Response::new(Box::pin(futures::stream::iter(
            responses.into_iter().map(Ok),
        ))))
    }

    async fn ack_message(
        &self,
        request: Request<AckMessageRequest>,
    ) -> RpcResult<AckMessageResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let gateway = &self.0;
        let prepared = async {
            let group = self.0.group(request.group.as_ref())?;
            let name = topic_name(request.topic.as_ref())?;
            caller.may_consume(gateway, &group, &name)?;
            let handle = gateway.topic(&name).await?;
            Ok::<_, Refusal>((group, handle))
        }
        .await;
        let (group, handle) = match prepared {
            Ok(p) => p,
            Err(refusal) => {
                return Ok(Response::new(AckMessageResponse {
                    status: Some(refusal.status()),
                    entries: Vec::new(),
                }))
            }
        };
        let mut entries = Vec::with_capacity(request.entries.len());
        let mut overall = ok();
        for entry in &request.entries {
            let status = match gateway
                .pop
                .ack(&group, &handle, &entry.receipt_handle)
                .await
            {
                Ok(()) => ok(),
                Err(e) => Refusal::from(e).status(),
            };
            if status.code != Code::Ok as i32 {
                overall = status.clone();
            }
            entries.push(AckMessageResultEntry {
                message_id: entry.message_id.clone(),
                receipt_handle: entry.receipt_handle.clone(),
                status: Some(status),
            });
        }
        if request.entries.len() > 1 && overall.code != Code::Ok as i32 {
            overall = status(Code::MultipleResults, "some acks failed: see each entry");
        }
        Ok(Response::new(AckMessageResponse {
            status: Some(overall),
            entries,
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> RpcResult<ForwardMessageToDeadLetterQueueResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let result = async {
            let group = self.0.group(request.group.as_ref())?;
            let name = topic_name(request.topic.as_ref())?;
            caller.may_consume(&self.0, &group, &name)?;
            let handle = self.0.topic(&name).await?;
            self.0
                .pop
                .dead_letter(&group, &handle, &request.receipt_handle)
                .await?;
            Ok(())
        }
        .await;
        answer(
            |status| ForwardMessageToDeadLetterQueueResponse { status },
            result,
        )
    }

    type PullMessageStream = BoxStream<PullMessageResponse>;

    async fn pull_message(
        &self,
        _: Request<PullMessageRequest>,
    ) -> RpcResult<Self::PullMessageStream> {
        let response = PullMessageResponse {
            content: Some(pull_message_response::Content::Status(unsupported(
                "PullMessage",
            ))),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            response,
        )]))))
    }

    async fn update_offset(
        &self,
        _: Request<UpdateOffsetRequest>,
    ) -> RpcResult<UpdateOffsetResponse> {
        Ok(Response::new(UpdateOffsetResponse {
            status: Some(unsupported("UpdateOffset")),
        }))
    }

    async fn get_offset(&self, _: Request<GetOffsetRequest>) -> RpcResult<GetOffsetResponse> {
        Ok(Response::new(GetOffsetResponse {
            status: Some(unsupported("GetOffset")),
            offset: 0,
        }))
    }

    async fn query_offset(&self, _: Request<QueryOffsetRequest>) -> RpcResult<QueryOffsetResponse> {
        Ok(Response::new(QueryOffsetResponse {
            status: Some(unsupported("QueryOffset")),
            offset: 0,
        }))
    }

    async fn end_transaction(
        &self,
        request: Request<EndTransactionRequest>,
    ) -> RpcResult<EndTransactionResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let result = async {
            let name = topic_name(request.topic.as_ref())?;
            caller.may(&self.0, Operation::Write, ResourceType::Topic, &name)?;
            let handle = self.0.topic(&name).await?;
            let resolution = TransactionResolution::try_from(request.resolution)
                .unwrap_or(TransactionResolution::Unspecified);
            self.0
                .transactions
                .end(
                    &handle,
                    &request.transaction_id,
                    &request.message_id,
                    resolution,
                )
                .await
        }
        .await;
        answer(|status| EndTransactionResponse { status }, result)
    }

    type TelemetryStream = BoxStream<TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<tonic::Streaming<TelemetryCommand>>,
    ) -> RpcResult<Self::TelemetryStream> {
        let client_id = request
            .metadata()
            .get("x-mq-client-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| tonic::Status::invalid_argument("x-mq-client-id is required"))?;
        let mut incoming = request.into_inner();
        let (sender, receiver) = telemetry::channel();
        let gateway = self.0.clone();
        let stream = gateway.clients.new_stream();
        tokio::spawn(async move {
            loop {
                let command = match incoming.message().await {
                    Ok(Some(command)) => command,
                    Ok(None) | Err(_) => break,
                };
                if let Some(telemetry_command::Command::Settings(settings)) = &command.command {
                    if !gateway
                        .clients
                        .register(&client_id, stream, settings, sender.clone())
                    {
                        let _ = sender
                            .send(Err(tonic::Status::resource_exhausted("too many clients")))
                            .await;
                        break;
                    }
                    if sender
                        .send(Ok(telemetry::answer(settings, &gateway.config)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            gateway.clients.remove(&client_id, stream);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn notify_client_termination(
        &self,
        _: Request<NotifyClientTerminationRequest>,
    ) -> RpcResult<NotifyClientTerminationResponse> {
        answer(|status| NotifyClientTerminationResponse { status }, Ok(()))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<ChangeInvisibleDurationRequest>,
    ) -> RpcResult<ChangeInvisibleDurationResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let result = async {
            let group = self.0.group(request.group.as_ref())?;
            let name = topic_name(request.topic.as_ref())?;
            caller.may_consume(&self.0, &group, &name)?;
            let invisible = request
                .invisible_duration
                .as_ref()
                .and_then(to_ms)
                .ok_or_else(|| {
                    Refusal::new(
                        Code::IllegalInvisibleTime,
                        "an invisible duration is required",
                    )
                })?;
            let handle = self.0.topic(&name).await?;
            let new =
                self.0
                    .pop
                    .change_invisible(&group, &handle, &request.receipt_handle, invisible)?;
            Ok::<_, Refusal>(new.to_string())
        }
        .await;
        Ok(Response::new(match result {
            Ok(receipt_handle) => ChangeInvisibleDurationResponse {
                status: Some(ok()),
                receipt_handle,
            },
            Err(refusal) => ChangeInvisibleDurationResponse {
                status: Some(refusal.status()),
                receipt_handle: String::new(),
            },
        }))
    }

    async fn recall_message(
        &self,
        _: Request<RecallMessageRequest>,
    ) -> RpcResult<RecallMessageResponse> {
        Ok(Response::new(RecallMessageResponse {
            status: Some(unsupported("RecallMessage")),
            message_id: String::new(),
        }))
    }

    async fn sync_lite_subscription(
        &self,
        _: Request<SyncLiteSubscriptionRequest>,
    ) -> RpcResult<SyncLiteSubscriptionResponse> {
        Ok(Response::new(SyncLiteSubscriptionResponse {
            status: Some(unsupported("SyncLiteSubscription (lite topics)")),
        }))
    }
}

/// The deadline a gRPC client set (`grpc-timeout: 30S`, `500m`, ...), if any.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The message types a topic's `message.type` takes.
fn accepted_types(message_type: &str) -> &'static [MessageType] {
    match message_type {
        "NORMAL" => &[MessageType::Normal],
        "FIFO" => &[MessageType::Fifo],
        "DELAY" => &[MessageType::Delay],
        "TRANSACTION" => &[MessageType::Transaction],
        _ => &[
            MessageType::Normal,
            MessageType::Fifo,
            MessageType::Delay,
            MessageType::Transaction,
        ],
    }
}

fn unsupported(what: &str) -> Status {
    status(
        Code::Unsupported,
        format!("{what} is not supported by Porter"),
    )
}
