//! registry-local over the AWS backend, as a user runs it against moto's server (which
//! `tests/run` starts and points `AWS_ENDPOINT_URL` at): `registry-local provision`, then
//! `registry-local --backend aws`, a push and a pull over real HTTP, and the push's event
//! arriving in an SQS queue subscribed to the topic, through the table's stream and the
//! notify-push handler that registry-local runs. Fails (never skips) without moto.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"from":"registry-local"}}"#;
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Resource names of this test only, as registry-local reads them.
fn names() -> Vec<(&'static str, String)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("qs-local-{}-{nanos}", std::process::id());
    vec![
        ("QUAYSIDE_TABLE", name.clone()),
        ("QUAYSIDE_BUCKET", name.clone()),
        ("QUAYSIDE_KMS_KEY", format!("alias/{name}")),
        ("QUAYSIDE_TOPIC", name),
    ]
}

fn registry_local(env: &[(&'static str, String)]) -> Command {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: this test needs moto's server; run tests/run"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-local"));
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_then_serve_over_aws_and_publish_to_sns() {
    let env = names();
    let topic_name = env[3].1.clone();

    let provisioned = registry_local(&env)
        .arg("provision")
        .output()
        .expect("registry-local provision runs");
    assert!(
        provisioned.status.success(),
        "provision failed: {}",
        String::from_utf8_lossy(&provisioned.stderr)
    );
    // Twice is harmless.
    assert!(
        registry_local(&env)
            .arg("provision")
            .output()
            .unwrap()
            .status
            .success()
    );

    // A queue subscribed to the topic, to see what registry-local publishes.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic_arn = sns
        .create_topic()
        .name(&topic_name)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(&topic_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
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

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        registry_local(&env)
            .args(["--backend", "aws", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("registry-local starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "registry-local did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let base = format!("http://127.0.0.1:{port}/v2/local/aws/manifests");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let (put, mut got) = tokio::task::spawn_blocking({
        let (agent, base) = (agent.clone(), base.clone());
        move || {
            let put = agent
                .put(&format!("{base}/latest"))
                .header("content-type", INDEX_TYPE)
                .send(INDEX)
                .unwrap();
            let got = agent.get(&format!("{base}/latest")).call().unwrap();
            (put, got)
        }
    })
    .await
    .unwrap();
    assert_eq!(put.status(), 201);
    let digest = put.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(got.status(), 200);
    assert_eq!(got.body_mut().read_to_string().unwrap(), INDEX);

    // The push's event, through the stream reader, notify-push's handler and SNS.
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = out.messages().first() {
            break m.body().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no event reached the queue");
    };
    let envelope: serde_json::Value = serde_json::from_str(&message).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(event["event"], "repo_push");
    assert_eq!(event["repository"], "local/aws");
    assert_eq!(event["updated_tags"], serde_json::json!(["latest"]));
    assert_eq!(event["digest"], digest.as_str());
    assert_eq!(envelope["MessageAttributes"]["event"]["Value"], "repo_push");
}
