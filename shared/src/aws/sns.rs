//! [`SnsEvents`]: an SNS topic, where notify-push (the function, and registry-local's stream
//! reader) publishes the table's outbox events (the manifest functions write events to the
//! outbox instead; see [`super::LogEvents`]).
//!
//! May call: `ports` (the event type), [`super::notify`]'s sink trait, serde_json, the SNS
//! SDK. Must not know HTTP or the table.
//!
//! Each event is one message: the body is the [`RegistryEvent`] as JSON with one more
//! field, `id` (the event's outbox key, the same in every copy that at-least-once delivery
//! makes), and the message attributes `event` (e.g. `repo_push`) and `repository`
//! (`namespace/repo`) let a subscription filter what it receives without reading the body;
//! `event_id` repeats the id, so that a subscriber can drop a copy without parsing it.

use super::sdk_error;
use crate::ports::{RegistryEvent, StoreError, StoreResult};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::Serialize;

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

/// A message's body: the event's fields and its id.
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    #[serde(flatten)]
    event: &'a RegistryEvent,
}

/// The JSON body of the message that announces `event` under `id`.
pub fn message_body(id: &str, event: &RegistryEvent) -> StoreResult<String> {
    serde_json::to_string(&Body { id, event })
        .map_err(|e| StoreError::backend(format!("encoding event {id} as JSON: {e}")))
}

impl SnsEvents {
    /// Publishes `event` with its stable `id` (see the module doc).
    pub async fn publish(&self, id: &str, event: &RegistryEvent) -> StoreResult<()> {
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message_body(id, event)?)
            .message_attributes("event", attribute(&event.event)?)
            .message_attributes("repository", attribute(&event.repository)?)
            .message_attributes("event_id", attribute(id)?)
            .send()
            .await
            .map_err(|e| sdk_error("Publish", e))?;
        tracing::info!(
            target: "quayside::events",
            %id,
            event = %event.event,
            repository = %event.repository,
            message_id = ?out.message_id,
            "published to SNS"
        );
        Ok(())
    }
}

#[cfg(feature = "notify")]
#[async_trait::async_trait]
impl super::notify::OutboxSink for SnsEvents {
    async fn publish(&self, id: &str, event: &RegistryEvent) -> StoreResult<()> {
        SnsEvents::publish(self, id, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_event_with_its_id() {
        let event = RegistryEvent {
            event: "tag_delete".into(),
            repository: "library/app".into(),
            namespace: "library".into(),
            updated_tags: vec!["old".into()],
            digest: None,
            media_type: None,
            time: "2024-01-01T00:00:00Z".into(),
        };
        let id = "library/app/EVENT#2024-01-01T00:00:00.000000000Z#0123456789abcdef";
        let body: serde_json::Value =
            serde_json::from_str(&message_body(id, &event).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": id, "event": "tag_delete", "repository": "library/app",
                "namespace": "library", "updated_tags": ["old"], "digest": null,
                "media_type": null, "time": "2024-01-01T00:00:00Z"
            })
        );
        // Subscribers that read the body as the event still can: the id is one more field.
        let parsed: RegistryEvent = serde_json::from_value(body).unwrap();
        assert_eq!(parsed, event);
    }
}
