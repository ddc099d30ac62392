//! The unit tests of `aws::streams`, in a file of their own beside the module.

use super::*;
use crate::ports::RegistryEvent;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType};
use std::sync::Mutex;

const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000";

#[derive(Debug)]
struct FakeShard {
    id: String,
    parent: Option<String>,
    closed: bool,
    records: Vec<(u64, Record)>,
    /// The oldest sequence number the stream still keeps.
    horizon: u64,
}

#[derive(Debug, Default)]
struct State {
    shards: Vec<FakeShard>,
    next_seq: u64,
    /// How many `GetRecords` calls to fail from now on.
    fail_get_records: usize,
    /// Every `GetShardIterator`: the shard and where (`TRIM_HORIZON` or `AFTER <seq>`).
    iterators: Vec<String>,
}

/// A stream in memory, with the API's semantics: sequence numbers grow, an iterator is
/// `<shard>|<index>`, a closed shard read to its end gives no next iterator.
#[derive(Debug, Default)]
struct Fake(Mutex<State>);

impl Fake {
    fn with_shard(id: &str) -> Arc<Fake> {
        let fake = Arc::new(Fake::default());
        fake.add_shard(id, None);
        fake
    }

    fn add_shard(&self, id: &str, parent: Option<&str>) {
        self.0.lock().unwrap().shards.push(FakeShard {
            id: id.into(),
            parent: parent.map(str::to_string),
            closed: false,
            records: Vec::new(),
            horizon: 0,
        });
    }

    fn shard<R>(&self, id: &str, f: impl FnOnce(&mut FakeShard) -> R) -> R {
        let mut state = self.0.lock().unwrap();
        f(state.shards.iter_mut().find(|s| s.id == id).unwrap())
    }

    /// Appends an INSERT of `sk` to `shard`; an outbox item if `sk` is `EVENT#…`.
    /// Returns the event's id (`<pk>/<sk>`).
    fn write(&self, shard: &str, sk: &str) -> String {
        let pk = "library/app";
        let event = RegistryEvent {
            event: "repo_push".into(),
            repository: pk.into(),
            namespace: "library".into(),
            updated_tags: vec![sk.into()],
            digest: None,
            media_type: None,
            time: "2024-01-01T00:00:00Z".into(),
        };
        let mut state = self.0.lock().unwrap();
        state.next_seq += 1;
        let seq = state.next_seq * 100;
        let key = |k: &str, v: &str| (k.to_string(), AttributeValue::S(v.into()));
        let change = aws_sdk_dynamodbstreams::types::StreamRecord::builder()
            .set_keys(Some([key("pk", pk), key("sk", sk)].into()))
            .set_new_image(Some(
                [
                    key("pk", pk),
                    key("sk", sk),
                    key("event", &serde_json::to_string(&event).unwrap()),
                ]
                .into(),
            ))
            .sequence_number(seq.to_string())
            .build();
        let record = Record::builder()
            .event_id(format!("e{seq}"))
            .event_name(OperationType::Insert)
            .dynamodb(change)
            .build();
        let shard = state.shards.iter_mut().find(|s| s.id == shard).unwrap();
        shard.records.push((seq, record));
        format!("{pk}/{sk}")
    }

    fn fail_get_records(&self, times: usize) {
        self.0.lock().unwrap().fail_get_records = times;
    }

    fn take_iterators(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().iterators)
    }

    fn reader(self: &Arc<Self>) -> StreamReader {
        StreamReader {
            api: Arc::clone(self) as Arc<dyn StreamApi>,
        }
    }
}

#[async_trait]
impl StreamApi for Fake {
    async fn stream_arn(&self) -> StoreResult<String> {
        Ok(ARN.into())
    }

    async fn shards(&self, _: &str) -> StoreResult<Vec<ShardInfo>> {
        let state = self.0.lock().unwrap();
        Ok(state
            .shards
            .iter()
            .map(|s| ShardInfo {
                id: s.id.clone(),
                parent: s.parent.clone(),
            })
            .collect())
    }

    async fn iterator(&self, _: &str, id: &str, after: Option<&str>) -> StoreResult<Iterator> {
        let mut state = self.0.lock().unwrap();
        state.iterators.push(match after {
            Some(seq) => format!("{id} AFTER {seq}"),
            None => format!("{id} TRIM_HORIZON"),
        });
        let shard = state.shards.iter().find(|s| s.id == id).unwrap();
        let from = match after {
            Some(seq) => {
                let seq: u64 = seq.parse().unwrap();
                if seq < shard.horizon {
                    return Ok(Iterator::Trimmed(format!("{seq} is trimmed")));
                }
                seq + 1
            }
            None => shard.horizon,
        };
        let index = shard.records.iter().take_while(|(s, _)| *s < from).count();
        Ok(Iterator::At(format!("{id}|{index}")))
    }

    async fn records(
        &self,
        iterator: String,
        limit: i32,
    ) -> StoreResult<(Vec<Record>, Option<String>)> {
        let mut state = self.0.lock().unwrap();
        if state.fail_get_records > 0 {
            state.fail_get_records -= 1;
            return Err(StoreError::backend("GetRecords: ExpiredIteratorException"));
        }
        let (id, index) = iterator.split_once('|').unwrap();
        let index: usize = index.parse().unwrap();
        let shard = state.shards.iter().find(|s| s.id == id).unwrap();
        let batch: Vec<Record> = shard.records[index..]
            .iter()
            .take(limit as usize)
            .map(|(_, r)| r.clone())
            .collect();
        let end = index + batch.len();
        let next = (!(shard.closed && end == shard.records.len())).then(|| format!("{id}|{end}"));
        Ok((batch, next))
    }
}

/// Records the ids it publishes; fails each id of `fail_once` the first time.
#[derive(Default)]
struct Sink {
    got: Mutex<Vec<String>>,
    fail_once: Mutex<Vec<String>>,
}

#[async_trait]
impl OutboxSink for Sink {
    async fn publish(&self, id: &str, _: &RegistryEvent) -> StoreResult<()> {
        let mut fail = self.fail_once.lock().unwrap();
        if let Some(i) = fail.iter().position(|f| f == id) {
            fail.remove(i);
            return Err(StoreError::backend("topic unreachable"));
        }
        self.got.lock().unwrap().push(id.to_string());
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.got.lock().unwrap())
    }
}

/// Polls enough times for everything pending, failures and retries included.
async fn polls(reader: &mut Positioned, sink: &Sink) {
    for _ in 0..6 {
        reader.step(sink).await;
    }
}

#[tokio::test]
async fn a_get_records_failure_before_the_first_record_resumes_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    let e1 = fake.write("s1", "EVENT#1");
    fake.write("s1", "TAG#latest");
    let e2 = fake.write("s1", "EVENT#2");
    let sink = Sink::default();

    let mut first = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut first, &sink).await;
    assert_eq!(sink.take(), [e1, e2]);
    drop(first);

    // Restarted: one event written meanwhile, and the first GetRecords fails.
    let e3 = fake.write("s1", "EVENT#3");
    fake.fail_get_records(1);
    fake.take_iterators();
    let mut second = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut second, &sink).await;
    assert_eq!(sink.take(), [e3], "only what came after the checkpoint");
    let iterators = fake.take_iterators();
    assert!(
        iterators.iter().all(|i| i.contains("AFTER")),
        "never from the stream's start again: {iterators:?}"
    );
}

#[tokio::test]
async fn a_first_start_reads_the_stream_from_its_oldest_record_once_despite_failures() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    let (e1, e2) = (fake.write("s1", "EVENT#1"), fake.write("s1", "EVENT#2"));
    fake.fail_get_records(2);
    let sink = Sink::default();
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e1, e2]);

    let e3 = fake.write("s1", "EVENT#3");
    fake.fail_get_records(1);
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e3]);
}

#[tokio::test]
async fn a_failed_publish_is_retried_and_what_preceded_it_is_not_published_again() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    let (e1, e2, e3) = (
        fake.write("s1", "EVENT#1"),
        fake.write("s1", "EVENT#2"),
        fake.write("s1", "EVENT#3"),
    );
    let sink = Sink::default();
    sink.fail_once.lock().unwrap().push(e2.clone());
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    reader.step(&sink).await;
    assert_eq!(sink.take(), [e1], "stopped at the failed publish");

    // Restarted before the retry: from the failed record on.
    drop(reader);
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e2, e3]);
}

#[tokio::test]
async fn a_trimmed_checkpoint_falls_back_to_the_oldest_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    fake.write("s1", "EVENT#1");
    let sink = Sink::default();
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take().len(), 1);
    drop(reader);

    // While stopped, longer than the stream keeps records: EVENT#2 is lost.
    fake.write("s1", "EVENT#2");
    let e3 = fake.write("s1", "EVENT#3");
    fake.shard("s1", |s| s.horizon = s.records[2].0);
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e3]);
}

#[tokio::test]
async fn a_child_shard_is_read_from_its_start_after_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("parent");
    let e1 = fake.write("parent", "EVENT#1");
    fake.add_shard("child", Some("parent"));
    let e2 = fake.write("child", "EVENT#2");
    let e3 = fake.write("parent", "EVENT#3");
    fake.shard("parent", |s| s.closed = true);
    let sink = Sink::default();
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e1, e3, e2], "the parent's records first");
    drop(reader);

    // The parent is trimmed away; a restart keeps the child's place.
    fake.0.lock().unwrap().shards.retain(|s| s.id == "child");
    let e4 = fake.write("child", "EVENT#4");
    let mut reader = fake.reader().start(dir.path()).await.unwrap();
    polls(&mut reader, &sink).await;
    assert_eq!(sink.take(), [e4]);
    let saved = std::fs::read_to_string(reader.checkpoint_path()).unwrap();
    assert!(!saved.contains("parent"), "{saved}");
}

#[tokio::test]
async fn one_reader_per_folder_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    let _first = fake.reader().start(dir.path()).await.unwrap();
    let second = fake.reader().start(dir.path()).await.unwrap_err();
    assert!(second.to_string().contains("another process"), "{second}");
}

#[tokio::test]
async fn an_unreadable_checkpoint_file_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::with_shard("s1");
    let path = fake
        .reader()
        .start(dir.path())
        .await
        .unwrap()
        .checkpoint_path()
        .to_path_buf();
    std::fs::write(&path, "{not json").unwrap();
    let error = fake
        .reader()
        .start(dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
}
