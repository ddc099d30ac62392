//! [`SnsEvents`]: the [`EventSink`] port as an SNS topic, used by notify-push (the manifest
//! functions write events to the table's outbox instead; see [`super::LogEvents`]).
//!
//! May call: `ports`, serde_json, the SNS SDK. Must not know HTTP or the table.
//!
//! Each event is one message: the body is the [`RegistryEvent`] as JSON, and the message
//! attributes `event` (e.g. `repo_push`) and `repository` (`namespace/repo`) let a
//! subscription filter what it receives without reading the body.

use super::sdk_error;
use crate::ports::{EventSink, RegistryEvent, StoreError, StoreResult};
use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

/// Publishes events to one topic.
#[derive(Clone, Debug)]
pub struct SnsEvents {
    client: Client,
    topic_arn: String,
}

impl SnsEvents {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsEvents {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

/// The ARN of the topic called `name`, if the account has one in this region (read-only:
/// `ListTopics`).
pub async fn find_topic(client: &Client, name: &str) -> StoreResult<Option<String>> {
    let suffix = format!(":{name}");
    let mut pages = client.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListTopics", e))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(Some(arn.to_string()));
        }
    }
    Ok(None)
}

fn attribute(value: &str) -> StoreResult<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| StoreError::backend(format!("building a message attribute: {e}")))
}

#[async_trait]
impl EventSink for SnsEvents {
    async fn publish(&self, event: &RegistryEvent) -> StoreResult<()> {
        let message = serde_json::to_string(event).map_err(StoreError::backend)?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message)
            .message_attributes("event", attribute(&event.event)?)
            .message_attributes("repository", attribute(&event.repository)?)
            .send()
            .await
            .map_err(|e| sdk_error("Publish", e))?;
        tracing::info!(
            target: "quayside::events",
            event = %event.event,
            repository = %event.repository,
            message_id = ?out.message_id,
            "published to SNS"
        );
        Ok(())
    }
}
