//! The notify-push handler: DynamoDB stream records in, each outbox event (an `EVENT#` item
//! inserted with its change) published to an [`OutboxSink`] (SNS on AWS and in
//! registry-local) under its outbox key, failures reported per record so that the stream
//! retries them.
//!
//! May call: `ports` (the event type), aws_lambda_events, serde_json. Must not know HTTP,
//! nor any other item shape than the outbox's (`pk`, `sk` = `EVENT#…`, `event` = the
//! [`RegistryEvent`] as JSON).
//!
//! Delivery is at least once: the event source mapping (`ReportBatchItemFailures`) resumes
//! a shard at the first record reported as failed, so the handler stops at its first
//! failed publish and reports it: the records after it come again anyway, and publishing
//! them now would only send them twice. A record that can never be published (its JSON
//! does not parse) is logged and skipped, not retried forever.
//!
//! Because a record can come more than once (a retried batch, a restarted reader, two
//! registry-local processes on one table), every event is published with an id that all
//! its copies share: its outbox key, `<pk>/<sk>` ([`OutboxEvent::id`]). `pk` is the
//! repository and `sk` is `EVENT#<time>#<random>`, so the id names one change for as long
//! as the table exists; a subscriber drops an id it has seen.

use super::EVENT_PREFIX;
use crate::ports::{RegistryEvent, StoreResult};
use async_trait::async_trait;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;

/// An outbox event and its stable id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    /// `<pk>/<sk>` of the outbox item, e.g. `library/app/EVENT#2024-01-01T00:00:00.000000000Z#0123456789abcdef`:
    /// the same for every copy of the event, unique in the table.
    pub id: String,
    pub event: RegistryEvent,
}

/// Where the handler publishes: [`super::sns::SnsEvents`] in the function and in
/// registry-local. Not the [`crate::ports::EventSink`] port: the registry's own events have
/// no outbox key yet, these must carry one.
#[async_trait]
pub trait OutboxSink: Send + Sync {
    /// Publishes `event`, with `id` in the message for subscribers to drop copies by.
    async fn publish(&self, id: &str, event: &RegistryEvent) -> StoreResult<()>;
}

/// Publishes the outbox events among `event`'s records to `sink`.
pub async fn handle(sink: &dyn OutboxSink, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some(parsed) = outbox_event(record) else {
            continue;
        };
        let outbox = match parsed {
            Ok(outbox) => outbox,
            Err(why) => {
                tracing::error!(event_id = %record.event_id, %why, "unreadable outbox item skipped");
                continue;
            }
        };
        if let Err(e) = sink.publish(&outbox.id, &outbox.event).await {
            tracing::error!(
                error = %e,
                id = %outbox.id,
                event = %outbox.event.event,
                repository = %outbox.event.repository,
                sequence = ?record.change.sequence_number,
                "publish failed; the stream will retry from this record"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

/// The event of an outbox INSERT record, with its id; `None` for any other record (tag,
/// manifest and other items, TTL removals).
pub fn outbox_event(record: &EventRecord) -> Option<Result<OutboxEvent, String>> {
    if record.event_name != "INSERT" {
        return None;
    }
    let sk = match record.change.keys.get("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => return None,
    };
    if !sk.starts_with(EVENT_PREFIX) {
        return None;
    }
    let pk = match record.change.keys.get("pk") {
        Some(AttributeValue::S(pk)) => pk,
        _ => {
            return Some(Err(format!(
                "outbox item {sk} has no string pk in its keys"
            )));
        }
    };
    let event = match record.change.new_image.get("event") {
        Some(AttributeValue::S(json)) => {
            serde_json::from_str(json).map_err(|e| format!("outbox item {pk}/{sk}: {e}"))
        }
        _ => Err(format!("outbox item {pk}/{sk} has no event attribute")),
    };
    Some(event.map(|event| OutboxEvent {
        id: format!("{pk}/{sk}"),
        event,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StoreError;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records what it is given, with the ids; fails for one repository.
    struct Sink {
        fail_for: &'static str,
        got: Mutex<Vec<(String, RegistryEvent)>>,
    }

    #[async_trait]
    impl OutboxSink for Sink {
        async fn publish(&self, id: &str, event: &RegistryEvent) -> StoreResult<()> {
            if event.repository == self.fail_for {
                return Err(StoreError::backend("topic unreachable"));
            }
            self.got
                .lock()
                .unwrap()
                .push((id.to_string(), event.clone()));
            Ok(())
        }
    }

    fn registry_event(repo: &str) -> RegistryEvent {
        RegistryEvent {
            event: "repo_push".into(),
            repository: repo.into(),
            namespace: repo.split('/').next().unwrap().into(),
            updated_tags: vec!["latest".into()],
            digest: Some(format!("sha256:{}", "a".repeat(64))),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            time: "2024-01-01T00:00:00Z".into(),
        }
    }

    /// A record as Lambda delivers it (the stream's JSON shape).
    fn record(name: &str, sk: &str, seq: &str, event: Option<&RegistryEvent>) -> serde_json::Value {
        let mut image = json!({"pk": {"S": "library/app"}, "sk": {"S": sk}});
        if let Some(e) = event {
            image["event"] = json!({"S": serde_json::to_string(e).unwrap()});
        }
        json!({
            "eventID": seq, "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1700000000.0,
                "Keys": {"pk": {"S": "library/app"}, "sk": {"S": sk}},
                "NewImage": image,
                "SequenceNumber": seq, "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"
        })
    }

    #[tokio::test]
    async fn publishes_outbox_inserts_only_and_stops_at_the_first_failure() {
        let (a, bad, c) = (
            registry_event("library/a"),
            registry_event("library/bad"),
            registry_event("library/c"),
        );
        let event: Event = serde_json::from_value(json!({"Records": [
            record("INSERT", "TAG#latest", "1", None),
            record("INSERT", "EVENT#2024#1", "2", Some(&a)),
            record("REMOVE", "EVENT#2024#0", "3", Some(&c)),
            record("INSERT", "EVENT#2024#2", "4", None),
            record("INSERT", "EVENT#2024#3", "5", Some(&bad)),
            record("INSERT", "EVENT#2024#4", "6", Some(&c)),
        ]}))
        .unwrap();
        let sink = Sink {
            fail_for: "library/bad",
            got: Mutex::new(Vec::new()),
        };
        let response = handle(&sink, event).await;
        assert_eq!(
            *sink.got.lock().unwrap(),
            vec![("library/app/EVENT#2024#1".to_string(), a)]
        );
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec![Some("5".to_string())]);
        // The response is what Lambda expects back.
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "5"}]})
        );
    }

    #[tokio::test]
    async fn every_copy_of_an_event_is_published_with_its_outbox_key() {
        let a = registry_event("library/app");
        // The same outbox record delivered twice (a retried batch), and another event.
        let event: Event = serde_json::from_value(json!({"Records": [
            record("INSERT", "EVENT#2024-01-01T00:00:00.000000001Z#00aa", "1", Some(&a)),
            record("INSERT", "EVENT#2024-01-01T00:00:00.000000001Z#00aa", "1", Some(&a)),
            record("INSERT", "EVENT#2024-01-01T00:00:00.000000002Z#00bb", "2", Some(&a)),
        ]}))
        .unwrap();
        let sink = Sink {
            fail_for: "none/none",
            got: Mutex::new(Vec::new()),
        };
        let response = handle(&sink, event).await;
        assert!(response.batch_item_failures.is_empty());
        let ids: Vec<String> = sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            ids,
            [
                "library/app/EVENT#2024-01-01T00:00:00.000000001Z#00aa",
                "library/app/EVENT#2024-01-01T00:00:00.000000001Z#00aa",
                "library/app/EVENT#2024-01-01T00:00:00.000000002Z#00bb",
            ]
        );
    }

    #[test]
    fn an_outbox_record_without_a_pk_is_unreadable_not_published() {
        let a = registry_event("library/app");
        let mut value = record("INSERT", "EVENT#2024#1", "1", Some(&a));
        value["dynamodb"]["Keys"] = json!({"sk": {"S": "EVENT#2024#1"}});
        let record: EventRecord = serde_json::from_value(value).unwrap();
        let why = outbox_event(&record).unwrap().unwrap_err();
        assert!(why.contains("EVENT#2024#1") && why.contains("pk"), "{why}");
    }
}
