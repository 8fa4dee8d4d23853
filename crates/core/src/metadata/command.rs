//! The metadata commands. Each is small, self-contained and deterministic to apply: replaying the
//! same sequence always yields the same state.

use serde::{Deserialize, Serialize};

use crate::topic::Topic;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataCommand {
    CreateTopic { topic: Topic },
    DeleteTopic { name: String, id: uuid::Uuid },
}
