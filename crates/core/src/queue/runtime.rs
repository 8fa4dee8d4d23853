//! [`Queue`]: a running queue: its log (porter-storage), its [`QueueState`], its durable ack file,
//! its consumers' sinks, and the delivery task that moves ready messages to consumers.

use std::sync::Arc;

use porter_storage::Offset;

use super::api::{ConsumeRequest, QueueDelivery};
use crate::error::Result;

pub struct Queue {
    name: Arc<str>,
}

impl Queue {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `basic.consume`. 530 NOT_ALLOWED if the tag is in use on this queue, 403 ACCESS_REFUSED if
    /// an exclusive consumer holds the queue (or this one asks for exclusivity and others exist).
    pub fn consume(&self, request: ConsumeRequest) -> Result<()> {
        let _ = request;
        todo!()
    }

    /// `basic.cancel` or channel close: the consumer goes; its unacked messages are requeued.
    /// Unknown tags are ignored.
    pub fn cancel(&self, consumer_tag: &str) {
        let _ = consumer_tag;
        todo!()
    }

    /// `basic.get`: the next ready message, or `None` (`get-empty`). With `no_ack` it is settled
    /// at once.
    pub async fn get(&self, no_ack: bool) -> Result<Option<QueueDelivery>> {
        let _ = no_ack;
        todo!()
    }

    /// `basic.ack` of these queue tags (the gateway expands `multiple`). 406 for an unknown tag.
    pub fn ack(&self, queue_tags: &[u64]) -> Result<()> {
        let _ = queue_tags;
        todo!()
    }

    /// `basic.nack` / `basic.reject`: requeue, or dead-letter (or drop) them.
    pub fn nack(&self, queue_tags: &[u64], requeue: bool) -> Result<()> {
        let _ = (queue_tags, requeue);
        todo!()
    }

    /// Ready messages (`message_count`).
    pub fn ready(&self) -> u64 {
        todo!()
    }

    pub fn consumer_count(&self) -> u32 {
        todo!()
    }

    pub(crate) async fn wait_durable(&self, end: Offset) -> Result<()> {
        let _ = end;
        todo!()
    }
}
