//! Transactional half messages and delayed messages, from the gateway's side.

use std::sync::Arc;

use porter_core::broker::TopicHandle;
use porter_core::topic_message::TopicMessage;
use porter_core::Broker;

use crate::error::Refusal;
use crate::proto::{Code, TransactionResolution};
use crate::telemetry::Clients;

pub struct Transactions {
    _broker: Arc<Broker>,
    _clients: Arc<Clients>,
}

impl Transactions {
    pub fn new(broker: Arc<Broker>, clients: Arc<Clients>) -> Self {
        Transactions {
            _broker: broker,
            _clients: clients,
        }
    }

    pub async fn prepare(
        &self,
        _topic: &Arc<TopicHandle>,
        _message: TopicMessage,
    ) -> Result<(), Refusal> {
        Err(Refusal::new(
            Code::Unsupported,
            "transactional messages are not supported yet",
        ))
    }

    pub async fn schedule(
        &self,
        _topic: &Arc<TopicHandle>,
        _message: TopicMessage,
    ) -> Result<(), Refusal> {
        Err(Refusal::new(
            Code::Unsupported,
            "delayed messages are not supported yet",
        ))
    }

    pub async fn end(
        &self,
        _topic: &Arc<TopicHandle>,
        _transaction_id: &str,
        _message_id: &str,
        _resolution: TransactionResolution,
    ) -> Result<(), Refusal> {
        Err(Refusal::new(
            Code::Unsupported,
            "transactional messages are not supported yet",
        ))
    }
}
