//! The metadata commands. Each is small, self-contained and deterministic to apply: replaying the
//! same sequence always yields the same state.

use serde::{Deserialize, Serialize};

use crate::topic::Topic;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataCommand {
    CreateTopic {
        topic: Topic,
    },
    DeleteTopic {
        name: String,
        id: uuid::Uuid,
    },
    /// Reserves producer ids `[start, start + count)` for idempotent producers, so ids are
    /// never handed out twice, across restarts too.
    AllocateProducerIds {
        start: i64,
        count: i64,
    },
}
