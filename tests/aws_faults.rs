//! The AWS backend under faults: the registry's clients go through a proxy in front of moto
//! ([`quayside_tests::faults`]) that fails, delays, or passes on a call and drops its answer.
//! What must hold: a write that took effect answers as it earned, though the SDK retried it;
//! nothing in S3 is left that no upload names; tidying after a blob is stored never fails
//! the push; throttling is `429 TOOMANYREQUESTS` and a stalled backend `503`, each with
//! `Retry-After`, within the configured timeouts; and after any of it the same request
//! works. Needs moto (`tests/run`): without `AWS_ENDPOINT_URL` these fail, never skip.

use http::Method;
use quayside::digest::Digest;
use quayside_tests::aws_support::endpoint;
use quayside_tests::faults::{Fault, FaultProxy};
use quayside_tests::*;
use std::time::Duration;

/// A registry over its own resources at moto, whose SDK calls pass through a proxy.
async fn behind_proxy(timeouts: Option<(Duration, Duration)>) -> (TestRegistry, FaultProxy) {
    let mut t = TestRegistry::with_backend("aws").await;
    let proxy = FaultProxy::start(&endpoint()).await;
    let env = t.aws.as_ref().expect("an aws backend");
    let mut aws = env.aws.clone().with_endpoint(&proxy.url);
    if let Some((attempt, call)) = timeouts {
        aws = aws.with_timeouts(attempt, call);
    }
    t.registry = quayside::backend::open_aws(&aws, &env.settings);
    (t, proxy)
}

/// Bytes that differ per seed.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

async fn start(t: &TestRegistry, repo: &str) -> String {
    let got = t.post(&format!("/v2/{repo}/blobs/uploads/"), b"").await;
    assert_eq!(got.status, 202, "{}", got.text());
    got.header("location").expect("a location").to_string()
}

async fn patch(t: &TestRegistry, location: &str, from: usize, chunk: &[u8]) -> String {
    let range = format!("{from}-{}", from + chunk.len() - 1);
    let got = t
        .request(Method::PATCH, location, &[("content-range", &range)], chunk)
        .await;
    assert_eq!(got.status, 202, "{}", got.text());
    assert_eq!(
        got.header("range"),
        Some(format!("0-{}", from + chunk.len() - 1).as_str())
    );
    got.header("location").expect("a location").to_string()
}

async fn assert_stored(t: &TestRegistry, repo: &str, data: &[u8]) {
    let digest = Digest::sha256(data);
    let (status, stored) = t
        .download(&format!("/v2/{repo}/blobs/{digest}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(stored == data, "the blob is the bytes sent");
}

/// Multipart uploads and objects under `uploads/` the bucket holds (straight at moto).
async fn upload_leftovers(t: &TestRegistry) -> (usize, usize) {
    let env = t.aws.as_ref().expect("an aws backend");
    let (objects, multipart) = env.bucket_keys(None).await;
    let uploads = objects.iter().filter(|key| key.starts_with("uploads/"));
    (multipart.len(), uploads.count())
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_answers_what_it_earned() {
    let (t, proxy) = behind_proxy(None).await;
    let data = bytes(5000, 1);
    // Starting an upload is one conditional PutItem; its answer is lost, the SDK tries
    // again, and the retry finds the item it wrote itself.
    proxy.inject("DynamoDB.PutItem", Fault::DropAnswer, 1);
    let location = start(&t, "acme/app").await;
    assert_eq!(
        proxy.seen("DynamoDB.PutItem"),
        2,
        "the start was tried twice"
    );
    // A chunk: the claim (a conditional PutItem) loses its answer.
    proxy.inject("DynamoDB.PutItem", Fault::DropAnswer, 1);
    let location = patch(&t, &location, 0, &data[..3000]).await;
    // The next chunk: its release loses its answer (the claim is the first PutItem).
    let before = proxy.seen("DynamoDB.PutItem");
    proxy.inject("DynamoDB.PutItem", Fault::Delay(Duration::ZERO), 1);
    proxy.inject("DynamoDB.PutItem", Fault::DropAnswer, 1);
    let location = patch(&t, &location, 3000, &data[3000..]).await;
    assert!(
        proxy.seen("DynamoDB.PutItem") > before + 2,
        "a put was retried"
    );
    let digest = Digest::sha256(&data);
    proxy.inject("DynamoDB.PutItem", Fault::DropAnswer, 1);
    let got = t.put(&format!("{location}?digest={digest}"), b"").await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_stored(&t, "acme/app", &data).await;
}

#[tokio::test]
async fn a_multipart_upload_whose_answer_was_lost_is_not_left_behind() {
    let (t, proxy) = behind_proxy(None).await;
    let chunk = 3 * 1024 * 1024;
    for finish in [true, false] {
        let data = bytes(3 * chunk + 5, u8::from(finish));
        let mut location = start(&t, "acme/app").await;
        // The third chunk fills the first 8 MiB part: the multipart upload begins, and
        // S3's answer to its creation is lost, so the SDK creates a second one.
        proxy.inject("S3.CreateMultipartUpload", Fault::DropAnswer, 1);
        for i in 0..3 {
            location = patch(&t, &location, i * chunk, &data[i * chunk..(i + 1) * chunk]).await;
        }
        if finish {
            let digest = Digest::sha256(&data);
            let last = format!("{}-{}", 3 * chunk, data.len() - 1);
            let got = t
                .request(
                    Method::PUT,
                    &format!("{location}?digest={digest}"),
                    &[("content-range", &last)],
                    &data[3 * chunk..],
                )
                .await;
            assert_eq!(got.status, 201, "{}", got.text());
            assert_stored(&t, "acme/app", &data).await;
        } else {
            let got = t.delete(&location).await;
            assert_eq!(got.status, 204, "{}", got.text());
        }
        assert_eq!(
            upload_leftovers(&t).await,
            (0, 0),
            "no multipart upload or object is left (finished: {finish})"
        );
    }
    assert_eq!(
        proxy.seen("S3.CreateMultipartUpload"),
        4,
        "each creation was tried twice"
    );
}

#[tokio::test]
async fn tidying_that_fails_after_the_blob_is_stored_does_not_fail_the_push() {
    let (t, proxy) = behind_proxy(None).await;
    let data = bytes(3000, 3);
    let location = start(&t, "acme/app").await;
    let location = patch(&t, &location, 0, &data).await;
    let denied = |service: &str| Fault::Answer {
        status: if service == "s3" { 403 } else { 400 },
        content_type: if service == "s3" {
            "application/xml"
        } else {
            "application/x-amz-json-1.0"
        },
        body: if service == "s3" {
            "<Error><Code>AccessDenied</Code><Message>injected</Message></Error>".into()
        } else {
            r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"injected"}"#
                .into()
        },
    };
    // The pending bytes' DeleteObject and the upload's DeleteItem both fail.
    proxy.inject("S3.DeleteObject", denied("s3"), 10);
    proxy.inject("DynamoDB.DeleteItem", denied("dynamodb"), 10);
    let digest = Digest::sha256(&data);
    let got = t.put(&format!("{location}?digest={digest}"), b"").await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert!(proxy.seen("S3.DeleteObject") >= 1 && proxy.seen("DynamoDB.DeleteItem") >= 1);
    proxy.clear();
    assert_stored(&t, "acme/app", &data).await;
}

#[tokio::test]
async fn throttling_is_429_and_a_stalled_backend_503_both_with_retry_after() {
    // The SDK backs off up to 1 s, then up to 2 s, between its three tries: the call's limit
    // leaves room for both, so a throttled call ends throttled (not timed out) and a stalled
    // one ends by its tries' timeouts, whatever the random backoffs.
    let (t, proxy) = behind_proxy(Some((Duration::from_millis(300), Duration::from_secs(6)))).await;
    let data = bytes(2000, 4);
    let digest = Digest::sha256(&data);
    let blob = format!("/v2/acme/app/blobs/{digest}");
    let push = format!("/v2/acme/app/blobs/uploads/?digest={digest}");

    // DynamoDB throttles every try of the SDK: the client is told to back off.
    proxy.inject("DynamoDB.GetItem", Fault::dynamodb_throttled(), 1000);
    let got = t.get(&blob, &[]).await;
    got.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(got.header("retry-after"), Some("1"));
    proxy.clear();

    // S3 asks to slow down on the blob's PutObject: 429, and nothing is linked.
    proxy.inject("S3.PutObject", Fault::s3_slow_down(), 1000);
    let got = t.post(&push, &data).await;
    got.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(got.header("retry-after"), Some("1"));
    proxy.clear();
    assert_eq!(
        t.head(&blob).await.status,
        404,
        "a failed push links nothing"
    );

    // A backend that does not answer: each try times out, then the call: 503.
    proxy.inject(
        "DynamoDB.GetItem",
        Fault::Delay(Duration::from_secs(5)),
        1000,
    );
    let got = t.get(&blob, &[]).await;
    got.assert_error(503, "UNAVAILABLE");
    assert_eq!(got.header("retry-after"), Some("1"));
    proxy.clear();

    // Then the same push works.
    let got = t.post(&push, &data).await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_stored(&t, "acme/app", &data).await;
}

#[tokio::test]
async fn a_write_dynamodb_keeps_cancelling_is_429_and_changes_nothing() {
    let (t, proxy) = behind_proxy(None).await;
    t.seed_tiny_blobs("acme/app").await;
    let image = manifest_fixture("oci-image-manifest.json");
    let put = t
        .put_manifest("/v2/acme/app/manifests/v1", OCI_MANIFEST, &image)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());

    // Every attempt of the tag's deletion is cancelled for another transaction in flight:
    // the table is busy (429, retry), not the tag unknown (404), and the tag stays.
    proxy.inject(
        "DynamoDB.TransactWriteItems",
        Fault::dynamodb_transaction_conflict(),
        1000,
    );
    let got = t.delete("/v2/acme/app/manifests/v1").await;
    got.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(got.header("retry-after"), Some("1"));
    assert!(
        proxy.seen("DynamoDB.TransactWriteItems") > 1,
        "the store tried again before giving up"
    );
    proxy.clear();
    assert_eq!(t.head("/v2/acme/app/manifests/v1").await.status, 200);

    // Then the same request works.
    assert_eq!(t.delete("/v2/acme/app/manifests/v1").await.status, 202);
    assert_eq!(t.head("/v2/acme/app/manifests/v1").await.status, 404);
}
