//! registry-local over the AWS backend, as a user runs it against moto's server (which
//! `tests/run` starts and points `AWS_ENDPOINT_URL` at): `registry-local provision`, then
//! `registry-local --backend aws`, a push and a pull over real HTTP, and the push's event
//! arriving in an SQS queue subscribed to the topic, through the table's stream and the
//! notify-push handler that registry-local runs; then restarts (one a SIGKILL right after a
//! push, with another push made while registry-local is down): every event arrives, each
//! with the stable id subscribers drop copies by. Fails (never skips) without moto.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Server, aws_command, aws_names, free_port, provision};

const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"from":"registry-local"}}"#;
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Resource names of this test only, as registry-local reads them.
fn names() -> Vec<(&'static str, String)> {
    aws_names("qs-local")
}

/// `registry-local --backend aws` on a free port, its log in `data_dir`. Dropping it kills
/// it with SIGKILL: no chance to finish anything.
fn serve(env: &[(&'static str, String)], data_dir: &Path, run: &str) -> Server {
    let port = free_port();
    let log = data_dir.join(format!("registry-local-{run}.log"));
    let mut command = aws_command(env!("CARGO_BIN_EXE_registry-local"), env);
    command
        .args(["--backend", "aws", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir);
    // Log lines go to standard output, a panic to standard error: both in the log.
    Server::spawn(command, port, log, true, Duration::from_secs(30))
}

/// PUTs the index under `tag` of `local/aws` at `base`; the digest.
async fn push(base: &str, tag: &str) -> String {
    let url = format!("{base}/v2/local/aws/manifests/{tag}");
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let put = agent
            .put(&url)
            .header("content-type", INDEX_TYPE)
            .send(INDEX)
            .unwrap();
        assert_eq!(put.status(), 201, "PUT {url}");
        put.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    })
    .await
    .unwrap()
}

/// An SQS queue subscribed to the registry's topic, and what it received.
struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    /// Every message so far (deleted from the queue once read, so none comes twice
    /// because of a visibility timeout): its `event_id` attribute and its body's event.
    received: Vec<(String, Value)>,
}

impl Queue {
    async fn subscribe(topic_name: &str) -> Queue {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let topic_arn = sns
            .create_topic()
            .name(topic_name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let url = sqs
            .create_queue()
            .queue_name(topic_name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .unwrap();
        Queue {
            sqs,
            url,
            received: Vec::new(),
        }
    }

    /// One receive (waiting up to a second); how many messages came.
    async fn receive(&mut self) -> usize {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let event: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
            let event_id = envelope["MessageAttributes"]["event_id"]["Value"]
                .as_str()
                .unwrap_or_else(|| panic!("no event_id attribute: {envelope}"))
                .to_string();
            assert_eq!(
                event["id"],
                event_id.as_str(),
                "the body's id is the attribute"
            );
            self.received.push((event_id, event));
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        out.messages().len()
    }

    /// Receives until an event for `tag` came.
    async fn wait_for(&mut self, tag: &str, server: Option<&Server>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self
            .received
            .iter()
            .any(|(_, e)| e["updated_tags"][0] == tag)
        {
            assert!(
                Instant::now() < deadline,
                "no event for tag {tag} reached the queue; received {:?}; registry-local's log:\n{}",
                self.received,
                server.map(Server::log_text).unwrap_or_default()
            );
            self.receive().await;
        }
    }

    /// The event ids received for each tag, one entry per message.
    fn ids_by_tag(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_tag: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, event) in &self.received {
            let tag = event["updated_tags"][0].as_str().unwrap().to_string();
            by_tag.entry(tag).or_default().push(id.clone());
        }
        by_tag
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_then_serve_over_aws_and_publish_to_sns() {
    let env = names();
    let topic_name = env[3].1.clone();
    provision(&env);
    // Twice is harmless.
    provision(&env);

    // A queue subscribed to the topic, to see what registry-local publishes.
    let mut queue = Queue::subscribe(&topic_name).await;
    let data = tempfile::tempdir().unwrap();
    let server = serve(&env, data.path(), "first");

    let base = format!("{}/v2/local/aws/manifests", server.base);
    let digest = push(&server.base, "latest").await;
    let mut got =
        tokio::task::spawn_blocking(move || ureq::get(&format!("{base}/latest")).call().unwrap())
            .await
            .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.body_mut().read_to_string().unwrap(), INDEX);

    // The push's event, through the stream reader, notify-push's handler and SNS.
    queue.wait_for("latest", Some(&server)).await;
    let (event_id, event) = &queue.received[0];
    assert_eq!(event["event"], "repo_push");
    assert_eq!(event["repository"], "local/aws");
    assert_eq!(event["updated_tags"], serde_json::json!(["latest"]));
    assert_eq!(event["digest"], digest.as_str());
    // The id is the outbox item's key: the repository, then the EVENT# sort key.
    assert!(event_id.starts_with("local/aws/EVENT#"), "{event_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_publish_what_was_written_meanwhile_and_nothing_twice() {
    let env = names();
    let topic_name = env[3].1.clone();
    provision(&env);
    let mut queue = Queue::subscribe(&topic_name).await;
    let data = tempfile::tempdir().unwrap();

    let first = serve(&env, data.path(), "first");
    push(&first.base, "one").await;
    queue.wait_for("one", Some(&first)).await;
    push(&first.base, "two").await;
    queue.wait_for("two", Some(&first)).await;
    // `two` is published; wait until its place is saved too, so that which events may
    // come again below is known (a SIGKILL between a publish and its checkpoint sends that
    // one again, as Lambda would).
    wait_for_checkpoint_at_stream_end(&env, data.path(), &first).await;
    push(&first.base, "three").await;
    drop(first); // SIGKILL, right after the push

    // Written while registry-local is down, with the library itself.
    write_without_registry_local(&env, "four").await;

    let second = serve(&env, data.path(), "second");
    queue.wait_for("four", Some(&second)).await;
    queue.wait_for("three", Some(&second)).await;
    push(&second.base, "five").await;
    queue.wait_for("five", Some(&second)).await;
    // The stream is read in order: by now everything before `five` has been published.
    while queue.receive().await > 0 {}

    let by_tag = queue.ids_by_tag();
    for tag in ["one", "two", "four", "five"] {
        assert_eq!(by_tag[tag].len(), 1, "{tag} once: {by_tag:?}");
    }
    // Published by the first run, the second, or (killed between its publish and its
    // checkpoint) both: at least once, and every copy with one id to drop it by.
    let three = &by_tag["three"];
    assert!(
        three.len() <= 2 && three.iter().all(|id| *id == three[0]),
        "{by_tag:?}"
    );
    let ids: BTreeSet<&String> = by_tag.values().map(|ids| &ids[0]).collect();
    assert_eq!(ids.len(), 5, "one id per event: {by_tag:?}");
}

/// Waits until registry-local's checkpoint file names the sequence number of the stream's
/// last record.
async fn wait_for_checkpoint_at_stream_end(
    env: &[(&'static str, String)],
    data_dir: &Path,
    server: &Server,
) {
    let aws = quayside::aws::Aws::from_env().await;
    let reader = quayside::aws::streams::StreamReader::new(
        aws.dynamodb(),
        aws.dynamodb_streams(),
        &env[0].1,
    );
    let records = reader.read_all().await.unwrap();
    let last = records
        .last()
        .and_then(|r| r.change.sequence_number.clone())
        .expect("the stream holds the pushes");
    let dir = data_dir.join("stream-checkpoints");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let saved: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        if saved
            .iter()
            .any(|text| text.contains(&format!("\"{last}\"")))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at {last} in {}: {saved:?}; registry-local's log:\n{}",
            dir.display(),
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pushes `tag` through the registry's own handlers over the AWS backend, served here for
/// the one request: as another registry-local or the Lambda functions would write it.
async fn write_without_registry_local(env: &[(&'static str, String)], tag: &str) {
    let settings = quayside::aws::Settings::from_lookup(|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    let aws = quayside::aws::Aws::from_env().await;
    let registry = quayside::backend::open_aws(&aws, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serving =
        tokio::spawn(async move { axum::serve(listener, registry_local::router(registry)).await });
    push(&base, tag).await;
    serving.abort();
}

/// Pointed at a deployed stack's table (one `provision` did not make: no
/// quayside:events=registry-local tag), registry-local publishes nothing: the stack's
/// notify-push does, and subscribers would get every event twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stacks_table_gets_no_second_publisher() {
    let env = names();
    let topic_name = env[3].1.clone();
    provision(&env);
    // The stack's table, as CloudFormation makes it: without the tag.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let arn = dynamodb
        .describe_table()
        .table_name(&env[0].1)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.table_arn)
        .unwrap();
    dynamodb
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("quayside:events")
        .send()
        .await
        .unwrap();
    let mut queue = Queue::subscribe(&topic_name).await;
    let data = tempfile::tempdir().unwrap();
    let server = serve(&env, data.path(), "stack");
    push(&server.base, "stacked").await;
    for _ in 0..5 {
        queue.receive().await;
    }
    assert!(queue.received.is_empty(), "published: {:?}", queue.received);
    assert!(
        server
            .log_text()
            .contains("not publishing the table's events"),
        "{}",
        server.log_text()
    );
}
