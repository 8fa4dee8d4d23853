//! The state the metadata commands build: today the topics; queues, exchanges, bindings and
//! consumer groups join it as commands of their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::MetadataCommand;
use crate::error::{CoreError, Result};
use crate::topic::Topic;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub topics: BTreeMap<String, Topic>,
    /// The first producer id not yet reserved.
    #[serde(default)]
    pub next_producer_id: i64,
}

impl MetadataState {
    /// Whether `command` can be applied to this state. Checked before the command is journaled.
    pub fn check(&self, command: &MetadataCommand) -> Result<()> {
        match command {
            MetadataCommand::CreateTopic { topic } => {
                crate::topic::validate_topic_name(&topic.name)?;
                if self.topics.contains_key(&topic.name) {
                    return Err(CoreError::TopicExists(topic.name.clone()));
                }
                Ok(())
            }
            MetadataCommand::DeleteTopic { name, id } => match self.topics.get(name) {
                Some(topic) if topic.id == *id => Ok(()),
                _ => Err(CoreError::UnknownTopic(name.clone())),
            },
            MetadataCommand::AllocateProducerIds { start, count } => {
                if *start != self.next_producer_id || *count <= 0 {
                    return Err(CoreError::Metadata(format!(
                        "producer id block {start}+{count} does not follow {}",
                        self.next_producer_id
                    )));
                }
                Ok(())
            }
        }
    }

    /// Applies a checked command. Must not fail: replay depends on it.
    pub fn apply(&mut self, command: MetadataCommand) {
        match command {
            MetadataCommand::CreateTopic { topic } => {
                self.topics.insert(topic.name.clone(), topic);
            }
            MetadataCommand::DeleteTopic { name, .. } => {
                self.topics.remove(&name);
            }
            MetadataCommand::AllocateProducerIds { start, count } => {
                self.next_producer_id = start + count;
            }
        }
    }
}
