//! The event port: where a change of the registry is told once it is stored.

use super::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A change of the registry that subscribers hear of (`repo_push` and the deletes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEvent {
    pub event: String,
    pub repository: String,
    pub namespace: String,
    pub updated_tags: Vec<String>,
    /// The manifest pushed or deleted; none for a tag deletion.
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// RFC 3339, UTC.
    pub time: String,
}

impl RegistryEvent {
    /// The event's line in the log (target `quayside::events`), as every sink writes it.
    pub fn log(&self, note: &str) {
        tracing::info!(
            target: "quayside::events",
            event = %self.event,
            repository = %self.repository,
            digest = ?self.digest,
            tags = ?self.updated_tags,
            "{note}"
        );
    }
}

/// Where events go once their change is stored. The embedded sink appends to a JSON-lines
/// file. On AWS the events travel in the table's outbox and its stream (see
/// [`Push::event`]), so the functions' sink only logs, and the notifier's publishes to SNS.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &RegistryEvent) -> StoreResult<()>;
}
