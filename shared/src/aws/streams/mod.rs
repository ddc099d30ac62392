//! [`StreamReader`]: reads the table's stream through the DynamoDB Streams API and feeds the
//! notify-push handler, as Lambda's event source mapping does on AWS. registry-local runs it
//! in `--backend aws` mode, so that a push reaches the SNS topic on one machine too; the
//! tests use it to read what a push wrote.
//!
//! May call: `ports` (errors), [`super::notify`], the DynamoDB and DynamoDB Streams SDKs,
//! aws_lambda_events and serde_dynamo (to hand the handler the records Lambda would),
//! serde_json and the filesystem (its checkpoint file). Must not know HTTP or item shapes
//! (the handler does).
//!
//! # Where reading stands, across restarts
//!
//! As an event source mapping does, the reader keeps a **checkpoint per shard**: the
//! sequence number of the last record handed to the handler successfully (a batch whose
//! publish failed at a record checkpoints the record before it). Each poll takes a fresh
//! iterator `AFTER_SEQUENCE_NUMBER` the checkpoint, or `TRIM_HORIZON` for a shard without
//! one (a first start, the children of a closed shard: the template's mapping says
//! `StartingPosition: TRIM_HORIZON`, and a record written before the first start is an
//! event nobody published yet). So a `GetRecords` failure, an expired iterator or a restart
//! resumes where the handler stopped: what was handed over is never read again, and what
//! was written meanwhile, even while the process was down, is read. A checkpoint older than
//! the stream keeps (24 hours on AWS) falls back to `TRIM_HORIZON`, with an error in the
//! log naming what was lost.
//!
//! A fresh iterator per poll, rather than following `NextShardIterator`, costs one
//! `GetShardIterator` per poll and is what makes the reader right at moto: a cancelled
//! `TransactWriteItems` there swaps in a copy of the table and its stream, and an iterator
//! taken before reads the discarded stream forever (FIELD-NOTES.md).
//!
//! The checkpoints live in a file of registry-local's data folder
//! (`stream-checkpoints/<stream ARN>.json`, `:` and `/` as `_`), replaced atomically
//! (temporary file, fsync, rename, fsync of the folder) after every batch, and locked
//! (`.lock` beside it) for as long as a reader uses it. Not in the table: a checkpoint
//! written there is itself a stream record (one more read, and a write per poll forever,
//! each announcing the last), and several registry-local processes on one table would
//! share one position with nothing to stop two of them reading it at once. With a file,
//! each process is a consumer of its own, as two event source mappings are: each publishes
//! every event (at least once), and subscribers drop the copies by their `event_id`.
//!
//! Shards are read in order, a child only once its parent (if the stream still holds it)
//! has been read to its end, so that a repository's events keep their order.

use super::notify::{self, OutboxSink};
use super::sdk_error;
use crate::ports::{StoreError, StoreResult};
use async_trait::async_trait;
use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_dynamo::Item;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Records per `GetRecords`: the template's mapping hands notify-push batches of 100.
const BATCH: i32 = 100;

/// Reads one table's stream.
#[derive(Clone, Debug)]
pub struct StreamReader {
    api: Arc<dyn StreamApi>,
}

/// One shard as `DescribeStream` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ShardInfo {
    id: String,
    parent: Option<String>,
}

/// What `GetShardIterator` gave.
#[derive(Debug)]
enum Iterator {
    At(String),
    /// No iterator: the shard is closed and there is nothing after the position.
    Exhausted,
    /// The position is older than the stream keeps (`TrimmedDataAccessException`).
    Trimmed(String),
}

/// The calls the reader makes: the SDK's in production, a scripted stream in the unit tests
/// (which fail calls on purpose).
#[async_trait]
trait StreamApi: Send + Sync + std::fmt::Debug {
    /// The table's current stream ARN.
    async fn stream_arn(&self) -> StoreResult<String>;
    async fn shards(&self, arn: &str) -> StoreResult<Vec<ShardInfo>>;
    /// An iterator `AFTER_SEQUENCE_NUMBER` `after`, or at `TRIM_HORIZON` without one.
    async fn iterator(&self, arn: &str, shard: &str, after: Option<&str>) -> StoreResult<Iterator>;
    /// Up to `limit` records and the next iterator (none once a closed shard is read).
    async fn records(
        &self,
        iterator: String,
        limit: i32,
    ) -> StoreResult<(Vec<Record>, Option<String>)>;
}

#[derive(Debug)]
struct Sdk {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
}

#[async_trait]
impl StreamApi for Sdk {
    async fn stream_arn(&self) -> StoreResult<String> {
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

    async fn shards(&self, arn: &str) -> StoreResult<Vec<ShardInfo>> {
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
                    shards.push(ShardInfo {
                        id: id.to_string(),
                        parent: shard.parent_shard_id().map(str::to_string),
                    });
                }
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(shards)
    }

    async fn iterator(&self, arn: &str, shard: &str, after: Option<&str>) -> StoreResult<Iterator> {
        let kind = match after {
            Some(_) => ShardIteratorType::AfterSequenceNumber,
            None => ShardIteratorType::TrimHorizon,
        };
        let result = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(out) => Ok(match out.shard_iterator {
                Some(iterator) => Iterator::At(iterator),
                None => Iterator::Exhausted,
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_trimmed_data_access_exception()) =>
            {
                Ok(Iterator::Trimmed(
                    sdk_error("GetShardIterator", e).to_string(),
                ))
            }
            Err(e) => Err(sdk_error("GetShardIterator", e)),
        }
    }

    async fn records(
        &self,
        iterator: String,
        limit: i32,
    ) -> StoreResult<(Vec<Record>, Option<String>)> {
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| sdk_error("GetRecords", e))?;
        Ok((out.records.unwrap_or_default(), out.next_shard_iterator))
    }
}

impl StreamReader {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: impl Into<String>,
    ) -> Self {
        StreamReader {
            api: Arc::new(Sdk {
                dynamodb,
                streams,
                table: table.into(),
            }),
        }
    }

    /// The ARN of the table's current stream.
    pub async fn stream_arn(&self) -> StoreResult<String> {
        self.api.stream_arn().await
    }

    /// Every record the stream holds now, from the oldest, as Lambda would deliver them.
    pub async fn read_all(&self) -> StoreResult<Vec<EventRecord>> {
        let arn = self.stream_arn().await?;
        let mut records = Vec::new();
        for shard in self.api.shards(&arn).await? {
            let mut iterator = match self.api.iterator(&arn, &shard.id, None).await? {
                Iterator::At(it) => Some(it),
                Iterator::Exhausted => None,
                Iterator::Trimmed(why) => return Err(StoreError::backend(why)),
            };
            while let Some(it) = iterator {
                let (batch, next) = self.api.records(it, 1000).await?;
                // An open shard always has a next iterator: its end is an empty batch.
                if batch.is_empty() {
                    break;
                }
                records.extend(batch.iter().map(|r| lambda_record(r, &arn)));
                iterator = next;
            }
        }
        Ok(records)
    }

    /// Positions the reader where the checkpoints kept in `dir` (created if missing) say
    /// it stopped: after each shard's checkpoint, at `TRIM_HORIZON` for the others (see the
    /// module doc). [`Positioned::run`] then feeds the records to the handler. Fails if
    /// another reader holds this stream's checkpoints in `dir`, or if they are unreadable.
    pub async fn start(self, dir: &Path) -> StoreResult<Positioned> {
        let arn = self.stream_arn().await?;
        let checkpoints = Checkpoints::open(dir, &arn)?;
        let positions = checkpoints.load()?;
        let mut positioned = Positioned {
            api: self.api,
            arn,
            checkpoints,
            positions,
            active: BTreeSet::new(),
            done: HashSet::new(),
            rescan: true,
        };
        positioned.scan().await?;
        tracing::info!(
            stream = %positioned.arn,
            checkpoints = %positioned.checkpoints.path.display(),
            shards = ?positioned.active,
            resumed = ?positioned.positions,
            "stream reader positioned"
        );
        Ok(positioned)
    }
}

/// A [`StreamReader`] positioned on its shards, holding its checkpoint file.
#[derive(Debug)]
pub struct Positioned {
    api: Arc<dyn StreamApi>,
    arn: String,
    checkpoints: Checkpoints,
    /// The checkpoint of every shard that has one (read now, or read to its end).
    positions: BTreeMap<String, String>,
    /// The shards being read.
    active: BTreeSet<String>,
    /// Shards read to their end: never read again.
    done: HashSet<String>,
    /// Whether to list the shards again (a shard ended: its children may be due).
    rescan: bool,
}

impl Positioned {
    /// Feeds every new record to the notify handler over `sink`, polling every `poll`
    /// while there is nothing new, until the task is dropped. Backend faults are logged
    /// and retried from the checkpoints, never fatal: a registry that serves should not
    /// stop because its notifier stumbled.
    pub async fn run(mut self, sink: Arc<dyn OutboxSink>, poll: Duration) {
        loop {
            // A backlog is read batch after batch; only an idle stream waits.
            if self.step(sink.as_ref()).await == 0 {
                tokio::time::sleep(poll).await;
            }
        }
    }

    /// The checkpoints' file.
    pub fn checkpoint_path(&self) -> &Path {
        &self.checkpoints.path
    }

    /// Lists the shards: forgets those the stream no longer holds (trimmed 24 hours after
    /// they closed), and starts reading those due (no parent, or a parent read to its end
    /// or gone).
    async fn scan(&mut self) -> StoreResult<()> {
        let shards = self.api.shards(&self.arn).await?;
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        self.positions.retain(|id, seq| {
            let kept = listed.contains(id.as_str());
            if !kept {
                tracing::info!(
                    shard = %id,
                    sequence = %seq,
                    "the stream no longer holds this shard: its checkpoint is dropped"
                );
            }
            kept
        });
        self.active.retain(|id| {
            let kept = listed.contains(id.as_str());
            if !kept {
                tracing::error!(
                    shard = %id,
                    "the stream no longer holds this shard: its unread records are lost"
                );
            }
            kept
        });
        for shard in &shards {
            if self.active.contains(&shard.id) || self.done.contains(&shard.id) {
                continue;
            }
            let due = match &shard.parent {
                None => true,
                Some(parent) => !listed.contains(parent.as_str()) || self.done.contains(parent),
            };
            if due {
                self.active.insert(shard.id.clone());
            }
        }
        self.rescan = false;
        Ok(())
    }

    /// One poll of every shard being read; the number of records handed over.
    async fn step(&mut self, sink: &dyn OutboxSink) -> usize {
        if self.rescan
            && let Err(e) = self.scan().await
        {
            tracing::error!(error = %e, "stream reader: listing the stream's shards");
        }
        let mut handed = 0;
        let mut advanced = false;
        for id in self.active.clone() {
            match self.poll_shard(&id, sink).await {
                Ok(Polled::Records {
                    handed: n,
                    advanced: a,
                }) => {
                    handed += n;
                    advanced |= a;
                }
                Ok(Polled::Ended) => {
                    tracing::info!(shard = %id, "shard read to its end");
                    self.active.remove(&id);
                    self.done.insert(id);
                    self.rescan = true;
                }
                // The next poll takes a fresh iterator from the checkpoint, after listing
                // the shards again in case this one is gone.
                Err(e) => {
                    tracing::error!(error = %e, shard = %id, "stream reader");
                    self.rescan = true;
                }
            }
        }
        if advanced && let Err(e) = self.checkpoints.save(&self.positions).await {
            // The records were published: at worst a restart publishes them again.
            tracing::error!(error = %e, "stream reader: saving the checkpoints");
        }
        handed
    }

    /// Reads one batch of a shard from its checkpoint and hands it to the handler.
    async fn poll_shard(&mut self, id: &str, sink: &dyn OutboxSink) -> StoreResult<Polled> {
        let after = self.positions.get(id).cloned();
        let iterator = match self.api.iterator(&self.arn, id, after.as_deref()).await? {
            Iterator::At(iterator) => iterator,
            Iterator::Exhausted => return Ok(Polled::Ended),
            Iterator::Trimmed(why) => {
                tracing::error!(
                    shard = %id,
                    checkpoint = ?after,
                    %why,
                    "the checkpoint is older than the stream keeps: reading from the shard's \
                     oldest record; events written between the two were never published"
                );
                // Once: from now on the shard is read as one without a checkpoint.
                self.positions.remove(id);
                match self.api.iterator(&self.arn, id, None).await? {
                    Iterator::At(iterator) => iterator,
                    Iterator::Exhausted => return Ok(Polled::Ended),
                    Iterator::Trimmed(why) => return Err(StoreError::backend(why)),
                }
            }
        };
        let (batch, next) = self.api.records(iterator, BATCH).await?;
        if batch.is_empty() {
            return Ok(match next {
                None => Polled::Ended,
                Some(_) => Polled::Records {
                    handed: 0,
                    advanced: false,
                },
            });
        }
        let records: Vec<EventRecord> = batch.iter().map(|r| lambda_record(r, &self.arn)).collect();
        let sequences: Vec<Option<String>> = records
            .iter()
            .map(|r| r.change.sequence_number.clone())
            .collect();
        let mut event = Event::default();
        event.records = records;
        let response = notify::handle(sink, event).await;
        // As the event source mapping does: everything before the first failed record is
        // done; the failed one is read again at the next poll (a failure naming no record
        // of the batch fails the whole batch).
        let handed = match response.batch_item_failures.first() {
            Some(failure) => sequences
                .iter()
                .position(|s| s.is_some() && *s == failure.item_identifier)
                .unwrap_or(0),
            None => sequences.len(),
        };
        let checkpoint = handed
            .checked_sub(1)
            .and_then(|last| sequences[last].clone());
        let advanced = match checkpoint {
            Some(seq) => {
                self.positions.insert(id.to_string(), seq);
                true
            }
            None => false,
        };
        Ok(Polled::Records { handed, advanced })
    }
}

/// What one poll of a shard did.
#[derive(Debug)]
enum Polled {
    /// `handed` records handed over; `advanced`: the checkpoint moved.
    Records { handed: usize, advanced: bool },
    /// A closed shard, read to its end.
    Ended,
}

/// The checkpoint file of one stream in a folder, locked while open.
#[derive(Debug)]
struct Checkpoints {
    path: PathBuf,
    stream_arn: String,
    /// Held for the reader's life: a second reader of the same file would publish
    /// everything twice and overwrite this one's checkpoints. The OS releases it when the
    /// process ends, however it ends.
    _lock: File,
}

/// What the file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointFile {
    stream_arn: String,
    /// Shard id → the sequence number of the last record handed over.
    shards: BTreeMap<String, String>,
}

impl Checkpoints {
    fn open(dir: &Path, stream_arn: &str) -> StoreResult<Checkpoints> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::backend(format!("creating {}: {e}", dir.display())))?;
        let name: String = stream_arn
            .chars()
            .map(|c| if c == ':' || c == '/' { '_' } else { c })
            .collect();
        let path = dir.join(format!("{name}.json"));
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::backend(format!("opening {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::backend(format!(
                    "another process reads this stream with the checkpoints in {} (it holds \
                     {}); give this one another data folder",
                    dir.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::backend(format!(
                    "locking {}: {e}",
                    lock_path.display()
                )));
            }
        }
        Ok(Checkpoints {
            path,
            stream_arn: stream_arn.to_string(),
            _lock: lock,
        })
    }

    /// The saved checkpoints; none if the file does not exist yet.
    fn load(&self) -> StoreResult<BTreeMap<String, String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(StoreError::backend(format!(
                    "reading {}: {e}",
                    self.path.display()
                )));
            }
        };
        // The file is only ever replaced whole, so a bad one was edited by hand: say so
        // rather than guess a position (deleting it reads the stream from its oldest record).
        let file: CheckpointFile = serde_json::from_str(&text).map_err(|e| {
            StoreError::backend(format!(
                "the stream checkpoints in {} are unreadable ({e}); delete the file to read \
                 the stream again from its oldest record",
                self.path.display()
            ))
        })?;
        if file.stream_arn != self.stream_arn {
            return Err(StoreError::backend(format!(
                "{} holds the checkpoints of stream {}, not {}",
                self.path.display(),
                file.stream_arn,
                self.stream_arn
            )));
        }
        Ok(file.shards)
    }

    /// Replaces the file: a temporary file, written and synced, renamed over it, and the
    /// folder synced, so that a crash leaves the old checkpoints or the new, never a mix.
    async fn save(&self, shards: &BTreeMap<String, String>) -> StoreResult<()> {
        let json = serde_json::to_vec_pretty(&CheckpointFile {
            stream_arn: self.stream_arn.clone(),
            shards: shards.clone(),
        })
        .map_err(|e| StoreError::backend(format!("encoding the stream checkpoints: {e}")))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &json))
            .await
            .map_err(|e| StoreError::backend(format!("saving the stream checkpoints: {e}")))?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let fail = |what: &str, e: std::io::Error| {
        StoreError::backend(format!("{what} {}: {e}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp).map_err(|e| fail("creating a temporary file for", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("writing a temporary file for", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| fail("renaming a temporary file over", e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("syncing the folder of", e))
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

#[cfg(test)]
mod tests;
