//! [`StreamReader`]: reads the table's stream through the DynamoDB Streams API and feeds the
//! notify-push handler, as Lambda's event source mapping does on AWS. registry-local runs it
//! in `--backend aws` mode, so that a push reaches the SNS topic on one machine too; the
//! tests use it to read what a push wrote.
//!
//! May call: `ports`, [`super::notify`], the DynamoDB and DynamoDB Streams SDKs,
//! aws_lambda_events and serde_dynamo (to hand the handler the records Lambda would).
//! Must not know HTTP or item shapes (the handler does).
//!
//! Each shard is read in order; a record the handler reports as failed is read again (from
//! its sequence number) on the next poll. Shards that close are followed by their children,
//! found by describing the stream again.

use super::notify;
use super::sdk_error;
use crate::ports::{EventSink, StoreError, StoreResult};
use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_dynamo::Item;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Where reading a shard that was open at start begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The oldest record the stream keeps (24 hours on AWS).
    TrimHorizon,
    /// Only records written after the reader started.
    Latest,
}

/// Reads one table's stream.
#[derive(Clone, Debug)]
pub struct StreamReader {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
}

/// Where a shard's reading stands.
#[derive(Debug)]
struct Shard {
    iterator: Option<String>,
    /// The last record handed over successfully: where to resume if the iterator is lost.
    last: Option<String>,
}

impl StreamReader {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: impl Into<String>,
    ) -> Self {
        StreamReader {
            dynamodb,
            streams,
            table: table.into(),
        }
    }

    /// The ARN of the table's current stream.
    pub async fn stream_arn(&self) -> StoreResult<String> {
        let out = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        out.table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| StoreError::backend(format!("table {} has no stream", self.table)))
    }

    /// The ids of the stream's shards, and whether each is still open.
    async fn shards(&self, arn: &str) -> StoreResult<Vec<(String, bool)>> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeStream", e))?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    let open = shard
                        .sequence_number_range()
                        .is_none_or(|r| r.ending_sequence_number().is_none());
                    shards.push((id.to_string(), open));
                }
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(shards)
    }

    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        kind: ShardIteratorType,
        sequence: Option<&str>,
    ) -> StoreResult<Option<String>> {
        let out = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error("GetShardIterator", e))?;
        Ok(out.shard_iterator)
    }

    /// Every record the stream holds now, from the oldest, as Lambda would deliver them.
    pub async fn read_all(&self) -> StoreResult<Vec<EventRecord>> {
        let arn = self.stream_arn().await?;
        let mut records = Vec::new();
        for (shard, _) in self.shards(&arn).await? {
            let mut iterator = self
                .iterator(&arn, &shard, ShardIteratorType::TrimHorizon, None)
                .await?;
            while let Some(it) = iterator {
                let out = self
                    .streams
                    .get_records()
                    .shard_iterator(it)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetRecords", e))?;
                if out.records().is_empty() {
                    break;
                }
                records.extend(out.records().iter().map(|r| lambda_record(r, &arn)));
                iterator = out.next_shard_iterator;
            }
        }
        Ok(records)
    }

    /// Positions the reader on every open shard (`start`), so that nothing written after
    /// this returns is missed; [`Positioned::run`] then feeds the records to the handler.
    pub async fn start(self, start: Start) -> StoreResult<Positioned> {
        let arn = self.stream_arn().await?;
        let mut shards = HashMap::new();
        let kind = match start {
            Start::Latest => ShardIteratorType::Latest,
            Start::TrimHorizon => ShardIteratorType::TrimHorizon,
        };
        for (id, open) in self.shards(&arn).await? {
            if open {
                let iterator = self.iterator(&arn, &id, kind.clone(), None).await?;
                shards.insert(
                    id,
                    Shard {
                        iterator,
                        last: None,
                    },
                );
            }
        }
        Ok(Positioned {
            reader: self,
            arn,
            shards,
        })
    }
}

/// A [`StreamReader`] positioned on its shards.
#[derive(Debug)]
pub struct Positioned {
    reader: StreamReader,
    arn: String,
    shards: HashMap<String, Shard>,
}

impl Positioned {
    /// Feeds every new record to the notify handler over `sink`, polling every `poll`,
    /// until the task is dropped. Backend faults are logged and retried, never fatal: a
    /// registry that serves should not stop because its notifier stumbled.
    pub async fn run(self, sink: std::sync::Arc<dyn EventSink>, poll: Duration) {
        let Positioned {
            reader,
            arn,
            mut shards,
        } = self;
        // Shards read to their end: never read again.
        let mut done: HashSet<String> = HashSet::new();
        let mut rescan = false;
        loop {
            if rescan {
                match reader.shards(&arn).await {
                    Ok(found) => {
                        for (id, _) in found {
                            if shards.contains_key(&id) || done.contains(&id) {
                                continue;
                            }
                            // A new shard is the child of a closed one: read it whole.
                            match reader
                                .iterator(&arn, &id, ShardIteratorType::TrimHorizon, None)
                                .await
                            {
                                Ok(iterator) => {
                                    shards.insert(
                                        id,
                                        Shard {
                                            iterator,
                                            last: None,
                                        },
                                    );
                                }
                                Err(e) => tracing::error!(error = %e, shard = %id, "stream reader"),
                            }
                        }
                        rescan = false;
                    }
                    Err(e) => tracing::error!(error = %e, "stream reader: describing the stream"),
                }
            }
            for (id, shard) in shards.iter_mut() {
                if let Err(e) = reader.poll_shard(&arn, id, shard, sink.as_ref()).await {
                    tracing::error!(error = %e, shard = %id, "stream reader");
                    // Resume after the last record handed over, with a fresh iterator.
                    let resumed = match &shard.last {
                        Some(seq) => {
                            reader
                                .iterator(
                                    &arn,
                                    id,
                                    ShardIteratorType::AfterSequenceNumber,
                                    Some(seq),
                                )
                                .await
                        }
                        None => {
                            reader
                                .iterator(&arn, id, ShardIteratorType::TrimHorizon, None)
                                .await
                        }
                    };
                    if let Ok(iterator) = resumed {
                        shard.iterator = iterator;
                    }
                }
            }
            // A shard without an iterator has closed: look for its children.
            shards.retain(|id, s| {
                if s.iterator.is_none() {
                    done.insert(id.clone());
                    rescan = true;
                }
                s.iterator.is_some()
            });
            tokio::time::sleep(poll).await;
        }
    }
}

impl StreamReader {
    /// Reads one batch of a shard and hands it to the handler.
    async fn poll_shard(
        &self,
        arn: &str,
        id: &str,
        shard: &mut Shard,
        sink: &dyn EventSink,
    ) -> StoreResult<()> {
        let Some(iterator) = shard.iterator.clone() else {
            return Ok(());
        };
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(|e| sdk_error("GetRecords", e))?;
        if out.records().is_empty() {
            shard.iterator = out.next_shard_iterator;
            return Ok(());
        }
        let records: Vec<EventRecord> = out
            .records()
            .iter()
            .map(|r| lambda_record(r, arn))
            .collect();
        let last = records
            .last()
            .and_then(|r| r.change.sequence_number.clone());
        let mut event = Event::default();
        event.records = records;
        let response = notify::handle(sink, event).await;
        match response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone())
        {
            // As Lambda does: read again from the failed record on the next poll.
            Some(failed) => {
                shard.iterator = self
                    .iterator(arn, id, ShardIteratorType::AtSequenceNumber, Some(&failed))
                    .await?;
            }
            None => {
                shard.last = last;
                shard.iterator = out.next_shard_iterator;
            }
        }
        Ok(())
    }
}

/// A DynamoDB Streams API record in the shape Lambda delivers it.
pub fn lambda_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_string();
    out.event_name = record
        .event_name()
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    out.event_source = record.event_source().map(str::to_string);
    out.event_version = record.event_version().map(str::to_string);
    out.aws_region = record.aws_region().unwrap_or_default().to_string();
    out.event_source_arn = Some(stream_arn.to_string());
    if let Some(change) = record.dynamodb() {
        let item = |m: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
            m.cloned().map(Item::from).unwrap_or_default()
        };
        let mut stream = StreamRecord::default();
        stream.keys = item(change.keys());
        stream.new_image = item(change.new_image());
        stream.old_image = item(change.old_image());
        stream.sequence_number = change.sequence_number().map(str::to_string);
        stream.size_bytes = change.size_bytes().unwrap_or_default();
        stream.stream_view_type = change
            .stream_view_type()
            .and_then(|v| serde_json::from_value(serde_json::json!(v.as_str())).ok());
        out.change = stream;
    }
    out
}
