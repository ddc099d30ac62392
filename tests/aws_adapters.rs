//! The AWS adapters against real AWS APIs (moto's server, started by `tests/run`): what the
//! backend-neutral handler tests cannot see. Calls per request, DynamoDB's transactions
//! under concurrency, the spill of large manifests, KMS signatures checked by an
//! independent verifier, the outbox through the stream and notify-push to SNS and SQS,
//! S3's presigned URLs and multipart calls.
//!
//! These tests need moto: without `AWS_ENDPOINT_URL` they fail, never skip.

use aws_sdk_dynamodb::types::AttributeValue;
use quayside::aws::dynamodb::INLINE_LIMIT;
use quayside::aws::kms::KmsSigner;
use quayside::aws::s3::S3Blobs;
use quayside::aws::sns::SnsEvents;
use quayside::aws::streams::StreamReader;
use quayside::digest::Digest;
use quayside::names::{RepositoryName, Tag};
use quayside::ports::{
    BlobStore, Push, RegistryEvent, Signer, StoreError, StoredManifest, TagTarget, V1Image,
};
use quayside_tests::aws_support::AwsEnv;
use quayside_tests::contract::metadata::generated_for;
use quayside_tests::*;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Value, json};
use std::sync::Arc;

async fn aws_registry() -> TestRegistry {
    TestRegistry::with_backend("aws").await
}

fn env(t: &TestRegistry) -> &AwsEnv {
    t.aws.as_ref().expect("an aws backend")
}

/// An OCI index naming nothing: a valid manifest that needs no blobs, made distinct by `n`.
fn index(n: &str) -> Vec<u8> {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": {"n": n}})
        .to_string()
        .into_bytes()
}

fn digest_of(bytes: &[u8]) -> String {
    Digest::sha256(bytes).to_string()
}

/// Every item of one repository's partition, by sort key.
async fn partition(
    env: &AwsEnv,
    repo: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let out = env
        .aws
        .dynamodb()
        .query()
        .table_name(&env.settings.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(repo.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    out.items().to_vec()
}

fn sort_keys(items: &[std::collections::HashMap<String, AttributeValue>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

#[tokio::test]
async fn calls_per_request_get_head_one_put_two() {
    let t = aws_registry().await;
    t.seed_tiny_blobs("library/tiny").await;
    let calls = &env(&t).calls;
    let schema2 = manifest_fixture("docker-schema2-manifest.json");
    let oci = manifest_fixture("oci-image-manifest.json");

    for (tag, media_type, body) in [("s2", SCHEMA2, &schema2), ("oci", OCI_MANIFEST, &oci)] {
        calls.take();
        let put = t
            .put_manifest(
                &format!("/v2/library/tiny/manifests/{tag}"),
                media_type,
                body,
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.text());
        assert_eq!(
            calls.take_operations(),
            ["DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems"],
            "PUT of a {media_type} manifest"
        );

        let digest = digest_of(body);
        for reference in [tag, digest.as_str()] {
            let path = format!("/v2/library/tiny/manifests/{reference}");
            let got = t.get(&path, &SKOPEO_ACCEPT).await;
            assert_eq!(got.status, 200);
            assert_eq!(&got.body, body);
            assert_eq!(
                calls.take_operations(),
                ["DynamoDB.GetItem"],
                "GET {reference}"
            );
            let head = t.head(&path).await;
            assert_eq!(head.status, 200);
            assert_eq!(
                calls.take_operations(),
                ["DynamoDB.GetItem"],
                "HEAD {reference}"
            );
        }
    }
    // A miss pays for a second read only to tell NAME_UNKNOWN from MANIFEST_UNKNOWN.
    let miss = t.get("/v2/library/tiny/manifests/nope", &[]).await;
    assert_eq!(miss.status, 404);
    assert_eq!(
        calls.take_operations(),
        ["DynamoDB.GetItem", "DynamoDB.GetItem"]
    );
}

/// The functions take their SDK configuration from Lambda's environment alone
/// (`Aws::from_lambda_env`: credentials, region and `AWS_ENDPOINT_URL`), not the default
/// chain registry-local uses: it reaches the same table and reads what a push wrote.
#[tokio::test]
async fn the_functions_sdk_configuration_reads_what_a_push_wrote() {
    let t = aws_registry().await;
    let body = index("lambda-env");
    let put = t
        .put_manifest("/v2/library/lambda/manifests/latest", OCI_INDEX, &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    let lambda =
        quayside::backend::open_aws(&quayside::aws::Aws::from_lambda_env(), &env(&t).settings);
    let found = lambda
        .metadata
        .tag(
            &RepositoryName::parse("library/lambda").unwrap(),
            &Tag::parse("latest").unwrap(),
        )
        .await
        .expect("a read through the functions' configuration");
    assert_eq!(
        found
            .and_then(|target| target.manifest)
            .map(|m| m.body.to_vec()),
        Some(body)
    );
}

#[tokio::test]
async fn a_manifest_over_an_item_spills_to_s3_and_round_trips() {
    let t = aws_registry().await;
    let env = env(&t);
    // Over DynamoDB's 400 KB item limit, under the spec's 4 MiB.
    let big = index(&"x".repeat(600 * 1024));
    assert!(big.len() > 400 * 1024 && big.len() > INLINE_LIMIT);
    let digest = Digest::sha256(&big);
    let put = t
        .put_manifest("/v2/library/big/manifests/large", OCI_INDEX, &big)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());

    // The bytes are in the bucket under the digest, and in no item.
    let object = env
        .aws
        .s3()
        .get_object()
        .bucket(&env.settings.bucket)
        .key(S3Blobs::key(&digest))
        .send()
        .await
        .expect("spilled object");
    let stored = object.body.collect().await.expect("body").into_bytes();
    assert_eq!(stored.as_ref(), big.as_slice());
    for item in partition(env, "library/big").await {
        assert!(!item.contains_key("body"), "no item holds the bytes");
    }

    env.calls.take();
    for reference in ["large", digest.to_string().as_str()] {
        let got = t
            .get(&format!("/v2/library/big/manifests/{reference}"), &[])
            .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, big);
        assert_eq!(
            got.header("docker-content-digest"),
            Some(digest.to_string().as_str())
        );
        assert_eq!(
            env.calls.take_operations(),
            ["DynamoDB.GetItem", "S3.GetObject"],
            "a spilled manifest costs a second call"
        );
    }

    // Deleting it removes the items; the bytes stay (another repository may share them).
    let deleted = t
        .delete(&format!("/v2/library/big/manifests/{digest}"))
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(
        t.get("/v2/library/big/manifests/large", &[]).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_one_tag_leave_one_winner_and_no_dangling_tag() {
    let t = Arc::new(aws_registry().await);
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| index(&format!("push-{i}"))).collect();
    let mut tasks = Vec::new();
    for body in bodies.clone() {
        let t = Arc::clone(&t);
        tasks.push(tokio::spawn(async move {
            t.put_manifest("/v2/race/app/manifests/latest", OCI_INDEX, &body)
                .await
                .status
        }));
    }
    // A reader meanwhile: the tag is absent or names a manifest it serves in full.
    let reader = {
        let t = Arc::clone(&t);
        let bodies = bodies.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let got = t.get("/v2/race/app/manifests/latest", &[]).await;
                match got.status {
                    404 => {}
                    200 => {
                        assert!(bodies.contains(&got.body), "a pushed body");
                        assert_eq!(
                            got.header("docker-content-digest"),
                            Some(digest_of(&got.body).as_str())
                        );
                    }
                    other => panic!("GET by tag answered {other} during the pushes"),
                }
            }
        })
    };
    for task in tasks {
        assert_eq!(task.await.expect("push task"), 201);
    }
    reader.await.expect("reader");

    let winner = t.get("/v2/race/app/manifests/latest", &[]).await;
    assert_eq!(winner.status, 200);
    assert!(
        bodies.contains(&winner.body),
        "the tag names one of the pushes"
    );
    for body in &bodies {
        let by_digest = t
            .get(&format!("/v2/race/app/manifests/{}", digest_of(body)), &[])
            .await;
        assert_eq!(by_digest.status, 200, "every pushed manifest is stored");
    }
    assert_eq!(
        t.published().len(),
        bodies.len(),
        "one repo_push per successful push"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_racing_a_delete_never_leaves_a_tag_on_a_missing_manifest() {
    let t = Arc::new(aws_registry().await);
    let repo = RepositoryName::parse("race/del").unwrap();
    // Without the delete's condition on `tag_writes`, a few rounds in twenty leave a dangling
    // tag (checked by breaking it on purpose).
    for round in 0..20 {
        let body = index(&format!("round-{round}"));
        let digest = digest_of(&body);
        let first = t
            .put_manifest("/v2/race/del/manifests/v1", OCI_INDEX, &body)
            .await;
        assert_eq!(first.status, 201);
        let pusher = {
            let (t, body) = (Arc::clone(&t), body.clone());
            tokio::spawn(async move {
                t.put_manifest("/v2/race/del/manifests/v2", OCI_INDEX, &body)
                    .await
                    .status
            })
        };
        let deleter = {
            let (t, digest) = (Arc::clone(&t), digest.clone());
            tokio::spawn(async move {
                t.delete(&format!("/v2/race/del/manifests/{digest}"))
                    .await
                    .status
            })
        };
        assert_eq!(pusher.await.unwrap(), 201);
        assert_eq!(deleter.await.unwrap(), 202);
        // Whichever won, every tag names a stored manifest.
        for tag in ["v1", "v2"] {
            let target = t
                .registry
                .metadata
                .tag(&repo, &Tag::parse(tag).unwrap())
                .await
                .unwrap_or_else(|e| panic!("round {round}, tag {tag}: {e}"));
            if let Some(TagTarget {
                manifest: Some(m), ..
            }) = target
            {
                assert!(
                    t.registry
                        .metadata
                        .manifest(&repo, &m.digest)
                        .await
                        .unwrap()
                        .is_some(),
                    "round {round}: tag {tag} names a deleted manifest"
                );
            }
        }
    }
}

fn v1_image(id: &str, comment: &str) -> V1Image {
    V1Image {
        docker_id: id.into(),
        parent: None,
        blob: Digest::sha256(id.as_bytes()),
        created: None,
        comment: Some(comment.into()),
        command: None,
        v1_json: format!(r#"{{"id":"{id}"}}"#),
    }
}

fn event(kind: &str) -> RegistryEvent {
    RegistryEvent {
        event: kind.into(),
        repository: "library/cond".into(),
        namespace: "library".into(),
        updated_tags: vec![],
        digest: None,
        media_type: None,
        time: "2024-01-01T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn a_failed_condition_writes_nothing() {
    let t = aws_registry().await;
    let env = env(&t);
    let store = &t.registry.metadata;
    let repo = RepositoryName::parse("library/cond").unwrap();
    let tag = Tag::parse("v1").unwrap();
    let manifest = |n: &str| StoredManifest {
        digest: Digest::sha256(n.as_bytes()),
        media_type: OCI_INDEX.into(),
        body: n.as_bytes().to_vec().into(),
    };

    // Pushes `manifest` as v1, its v1 image `leaf` with `comment`.
    let push_leaf = async |manifest: &StoredManifest, comment: &str| {
        let push = Push {
            manifest: manifest.clone(),
            tags: vec![tag.clone()],
            tag_v1_image: Some("leaf".into()),
            images: vec![v1_image("leaf", comment)],
            referrer: None,
            event: event("repo_push"),
        };
        store.commit_push(&repo, &push).await.unwrap();
    };

    // A tag that names a manifest refuses a generated one: Conflict, nothing written.
    let pushed = manifest("pushed");
    push_leaf(&pushed, "first").await;
    let before = partition(env, "library/cond").await;
    let generated = manifest("generated");
    let refused = store
        .attach_generated_manifest(&repo, generated_for(&tag, "leaf", &generated))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    // Deleting a tag that does not exist writes no outbox item either.
    let missing = Tag::parse("missing").unwrap();
    assert!(
        !store
            .delete_tag(&repo, &missing, &event("tag_delete"))
            .await
            .unwrap()
    );
    assert_eq!(
        partition(env, "library/cond").await,
        before,
        "nothing changed"
    );
    let stored = store.manifest(&repo, &generated.digest).await.unwrap();
    assert!(stored.is_none());

    // An image stored since the caller's lookup fails its condition; the push goes
    // through without it, and the stored image is kept as first written.
    let second = manifest("second");
    push_leaf(&second, "rewritten").await;
    let chain = quayside::registry::image_chain(store.as_ref(), &repo, "leaf")
        .await
        .unwrap();
    assert_eq!(chain, vec![v1_image("leaf", "first")]);
    let target = store.tag(&repo, &tag).await.unwrap().unwrap();
    assert_eq!(target.manifest, Some(second));
    let events = sort_keys(&partition(env, "library/cond").await)
        .into_iter()
        .filter(|sk| sk.starts_with("EVENT#"))
        .count();
    assert_eq!(
        events, 2,
        "one outbox item per committed push, none for refusals"
    );
}

#[tokio::test]
async fn a_push_of_more_than_100_items_writes_its_images_first() {
    let t = aws_registry().await;
    let store = &t.registry.metadata;
    let repo = RepositoryName::parse("library/many").unwrap();
    let images: Vec<V1Image> = (0..120)
        .map(|i| V1Image {
            parent: (i > 0).then(|| format!("img{}", i - 1)),
            ..v1_image(&format!("img{i}"), "c")
        })
        .collect();
    let m = StoredManifest {
        digest: Digest::sha256(b"many"),
        media_type: SCHEMA1.into(),
        body: b"many".to_vec().into(),
    };
    store
        .commit_push(
            &repo,
            &Push {
                manifest: m.clone(),
                tags: vec![Tag::parse("deep").unwrap()],
                tag_v1_image: Some("img119".into()),
                images,
                referrer: None,
                event: event("repo_push"),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        quayside::registry::image_chain(store.as_ref(), &repo, "img119")
            .await
            .unwrap()
            .len(),
        120
    );
    let target = store
        .tag(&repo, &Tag::parse("deep").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.manifest, Some(m));
}

#[tokio::test]
async fn kms_signatures_verify_independently_and_long_messages_go_as_digests() {
    let env = AwsEnv::provision().await;
    let signer = KmsSigner::new(env.aws.kms(), &env.settings.key_id);

    // The public key, fetched once and reused.
    let jwk = signer.public_jwk().await.unwrap();
    assert_eq!(signer.public_jwk().await.unwrap(), jwk);
    assert_eq!(env.calls.take_operations(), ["KMS.GetPublicKey"]);
    let der = env
        .aws
        .kms()
        .get_public_key()
        .key_id(&env.settings.key_id)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap()
        .into_inner();
    assert_eq!(
        *jwk,
        quayside::signing::rsa_public_jwk_from_spki_der(&der).unwrap()
    );
    env.calls.take();

    // RAW: verified by the rsa crate, not by KMS.
    let public = rsa::PublicKey::from_public_key_der(&der).unwrap();
    let message = b"eyJhbGciOiJSUzI1NiJ9.eyJwYXlsb2FkIjp0cnVlfQ";
    let signature = signer.sign_rs256(message).await.unwrap();
    assert_eq!(signature.len(), 256);
    public
        .pkcs1v15_verify::<rsa::sha2::Sha256>(message, &signature)
        .expect("a RAW signature verifies");
    assert!(
        public
            .pkcs1v15_verify::<rsa::sha2::Sha256>(b"tampered", &signature)
            .is_err()
    );
    let calls = env.calls.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].sign, Some(("RAW".to_string(), message.len())));

    // At 4096 bytes still RAW; past it, the SHA-256 goes as a DIGEST. (moto hashes a
    // DIGEST again, so its signature cannot be checked here: the request is.)
    let limit = vec![b'a'; 4096];
    let signature = signer.sign_rs256(&limit).await.unwrap();
    public
        .pkcs1v15_verify::<rsa::sha2::Sha256>(&limit, &signature)
        .expect("a 4096-byte RAW signature verifies");
    signer.sign_rs256(&vec![b'a'; 4097]).await.unwrap();
    let signs: Vec<_> = env.calls.take().into_iter().map(|c| c.sign).collect();
    assert_eq!(
        signs,
        [
            Some(("RAW".to_string(), 4096)),
            Some(("DIGEST".to_string(), 32))
        ]
    );
}

#[tokio::test]
async fn a_push_reaches_an_sqs_queue_through_the_stream_notify_push_and_sns() {
    let t = aws_registry().await;
    let env = env(&t);
    let sqs = aws_sdk_sqs::Client::new(&env.aws.sdk);
    let queue = sqs.create_queue().queue_name(&env.settings.topic_name);
    let created = queue.send().await.unwrap();
    let queue_url = created.queue_url().expect("a queue URL");
    let arn = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(arn.clone())
        .send()
        .await
        .unwrap();
    let queue_arn = &attributes.attributes().expect("the queue's attributes")[&arn];
    let sns = env.aws.sns();
    sns.subscribe()
        .topic_arn(&env.provisioned.topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let body = index("notify");
    let put = t
        .put_manifest("/v2/library/notify/manifests/latest", OCI_INDEX, &body)
        .await;
    assert_eq!(put.status, 201);
    assert_eq!(
        t.delete("/v2/library/notify/manifests/latest").await.status,
        202
    );

    // The stream as Lambda would deliver it, through the notify-push handler.
    let reader = StreamReader::new(
        env.aws.dynamodb(),
        env.aws.dynamodb_streams(),
        &env.settings.table,
    );
    let records = reader.read_all().await.unwrap();
    assert!(
        records.len() > 2,
        "the stream holds tag, manifest and outbox records"
    );
    let sink = SnsEvents::new(sns.clone(), &env.provisioned.topic_arn);
    let mut event = aws_lambda_events::dynamodb::Event::default();
    event.records = records;
    let response = quayside::aws::notify::handle(&sink, event).await;
    assert!(response.batch_item_failures.is_empty());

    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["MessageAttributes"]["event"]["Value"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["repo_push", "tag_delete"]);
    let push: RegistryEvent =
        serde_json::from_str(messages[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(push, t.published()[0], "the event the registry announced");
    assert_eq!(push.updated_tags, ["latest"]);
    assert_eq!(push.digest.as_deref(), Some(digest_of(&body).as_str()));
    assert_eq!(
        messages[0]["MessageAttributes"]["repository"]["Value"],
        "library/notify"
    );
}

#[tokio::test]
async fn deleting_a_manifest_writes_its_removed_tags_into_the_outbox() {
    let t = aws_registry().await;
    let env = env(&t);
    let body = index("tags");
    for tag in ["a", "b"] {
        let put = t
            .put_manifest(
                &format!("/v2/library/out/manifests/{tag}"),
                OCI_INDEX,
                &body,
            )
            .await;
        assert_eq!(put.status, 201);
    }
    let deleted = t
        .delete(&format!("/v2/library/out/manifests/{}", digest_of(&body)))
        .await;
    assert_eq!(deleted.status, 202);
    let mut outbox: Vec<RegistryEvent> = partition(env, "library/out")
        .await
        .iter()
        .filter_map(|i| i.get("event").and_then(|v| v.as_s().ok()))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    outbox.sort_by(|a, b| a.event.cmp(&b.event));
    let kinds: Vec<(&str, Vec<String>)> = outbox
        .iter()
        .map(|e| (e.event.as_str(), e.updated_tags.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("manifest_delete", vec!["a".to_string(), "b".to_string()]),
            ("repo_push", vec!["a".to_string()]),
            ("repo_push", vec!["b".to_string()]),
        ]
    );
    // Only the outbox (and the repository) remain.
    let left = sort_keys(&partition(env, "library/out").await);
    assert!(
        left.iter()
            .all(|sk| sk == "REPOSITORY" || sk.starts_with("EVENT#")),
        "{left:?}"
    );
}

#[tokio::test]
async fn s3_presigned_urls_and_multipart_uploads() {
    let env = AwsEnv::provision().await;
    let blobs = env.s3_blobs();
    let bytes = bytes::Bytes::from_static(b"a layer");
    let digest = Digest::sha256(&bytes);
    assert_eq!(blobs.size(&digest).await.unwrap(), None);
    assert_eq!(blobs.get(&digest).await.unwrap(), None);
    blobs.put(&digest, bytes.clone()).await.unwrap();
    assert_eq!(blobs.size(&digest).await.unwrap(), Some(7));
    assert_eq!(blobs.get(&digest).await.unwrap(), Some(bytes.clone()));

    // moto does not check presigned URLs (expiry, signature): test their shape, and that
    // the URL names the object.
    let url = blobs.presigned_get(&digest).await.unwrap();
    let key = S3Blobs::key(&digest);
    assert!(
        url.starts_with(&format!(
            "{}/{}/{key}?",
            aws_support::endpoint(),
            env.settings.bucket
        )),
        "{url}"
    );
    let signed = [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Expires=300",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
    ];
    for part in signed {
        assert!(url.contains(part), "{part} in {url}");
    }
    let short = blobs
        .presigned_get_for(&digest, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(short.contains("X-Amz-Expires=60"), "{short}");
    assert!(
        blobs
            .presigned_get_for(&digest, std::time::Duration::from_secs(8 * 24 * 3600))
            .await
            .is_err(),
        "S3 allows seven days at most"
    );
    assert_eq!(http_get(&url), bytes.as_ref(), "the URL fetches the blob");

    // Multipart: a 5 MiB part and a short last one, assembled; copy; abort.
    let upload_key = "uploads/test";
    let id = blobs.create_multipart(upload_key).await.unwrap();
    let first = vec![b'1'; 5 * 1024 * 1024];
    let parts = vec![
        blobs
            .upload_part(upload_key, &id, 1, first.clone().into())
            .await
            .unwrap(),
        blobs
            .upload_part(upload_key, &id, 2, b"tail".to_vec().into())
            .await
            .unwrap(),
    ];
    blobs
        .complete_multipart(upload_key, &id, &parts)
        .await
        .unwrap();
    let mut whole = first;
    whole.extend_from_slice(b"tail");
    let whole_digest = Digest::sha256(&whole);
    blobs
        .copy(upload_key, &S3Blobs::key(&whole_digest))
        .await
        .unwrap();
    blobs.delete(upload_key).await.unwrap();
    assert_eq!(
        blobs.get(&whole_digest).await.unwrap().as_deref(),
        Some(whole.as_slice())
    );
    let abandoned = blobs.create_multipart("uploads/abandoned").await.unwrap();
    blobs
        .abort_multipart("uploads/abandoned", &abandoned)
        .await
        .unwrap();
}

/// A plain HTTP GET of a loopback URL (moto's), without a client library.
fn http_get(url: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&response[..split]);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    response[split + 4..].to_vec()
}

/// An upload's item: `expires_at` (TTL) is its start plus the greatest age, however often it
/// is written (DynamoDB deletes it within days of that), a delete answers the state it
/// removed, and a `Scan` lists every upload, in every repository, for the purge to choose
/// the stale ones from.
#[tokio::test]
async fn upload_items_expire_at_their_start_plus_the_age_and_stale_ones_are_listed() {
    use quayside::aws::dynamodb::DynamoMetadata;
    use quayside::ports::{MetadataStore, Upload};
    let env = AwsEnv::provision().await;
    let blobs: Arc<dyn BlobStore> = Arc::new(env.s3_blobs());
    let age = std::time::Duration::from_secs(3600);
    let store = DynamoMetadata::new(env.aws.dynamodb(), &env.settings.table, blobs)
        .with_upload_max_age(age);
    let (a, b) = (
        RepositoryName::parse("acme/a").unwrap(),
        RepositoryName::parse("acme/b").unwrap(),
    );
    let now = std::time::SystemTime::now();
    let at = |id: &str, started: std::time::SystemTime| Upload {
        hash_state: vec![],
        started: rfc3339(started),
        ..contract::metadata::upload(id, 0)
    };
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    let (two_hours_ago, long_ago) = (now - hours(2), now - hours(30));
    let fresh = at("00000000-0000-4000-8000-000000000001", now);
    let old = at("00000000-0000-4000-8000-000000000002", two_hours_ago);
    let older = at("00000000-0000-4000-8000-000000000003", long_ago);
    store.create_upload(&a, &fresh).await.unwrap();
    store.create_upload(&a, &old).await.unwrap();
    store.create_upload(&b, &older).await.unwrap();

    // The TTL counts from the start, and a later write does not push it back.
    let expires = |items: &[std::collections::HashMap<String, AttributeValue>], id: &str| {
        let item = items
            .iter()
            .find(|i| i["sk"].as_s().unwrap() == &format!("UPLOAD#{id}"))
            .unwrap();
        item["expires_at"].as_n().unwrap().parse::<u64>().unwrap()
    };
    // The start to the second, as written.
    let start =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let updated = Upload {
        offset: 10,
        version: 1,
        ..fresh.clone()
    };
    store.update_upload(&a, &updated, 0).await.unwrap();
    let items = partition(&env, "acme/a").await;
    assert_eq!(expires(&items, &fresh.id), start(now) + 3600);
    assert_eq!(expires(&items, &old.id), start(two_hours_ago) + 3600);
    // Expired, and still read as stored: the registry treats it as gone
    // (`Limits::upload_max_age`; distribution_api's purge test), DynamoDB deletes it later.
    assert_eq!(store.upload(&a, &fresh.id).await.unwrap(), Some(updated));
    assert_eq!(store.upload(&a, &old.id).await.unwrap(), Some(old.clone()));

    let mut stale: Vec<_> = store
        .uploads()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, u)| quayside::registry::started_before(u, now - age))
        .collect();
    stale.sort_by(|x, y| x.1.id.cmp(&y.1.id));
    assert_eq!(stale, vec![(a.clone(), old.clone()), (b.clone(), older)]);

    // A delete answers the state it removed, expired or not; then nothing.
    assert_eq!(
        store.delete_upload(&a, &old.id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(store.delete_upload(&a, &old.id).await.unwrap(), None);
    assert_eq!(
        sort_keys(&partition(&env, "acme/a").await),
        [format!("UPLOAD#{}", fresh.id)]
    );
}

/// `uploads/` objects written before a cutoff go (what the lifecycle rule expires on AWS);
/// later ones, and blobs, stay. moto cannot age an object, so the cutoff is moved instead.
#[tokio::test]
async fn s3_stray_upload_objects_older_than_a_cutoff_are_removed() {
    let env = AwsEnv::provision().await;
    let blobs = env.s3_blobs();
    let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
    let stray = [
        blobs
            .put_pending(id, bytes::Bytes::from_static(b"waiting"))
            .await
            .unwrap(),
        blobs
            .put_pending(id, bytes::Bytes::from_static(b"more"))
            .await
            .unwrap(),
    ];
    let layer = bytes::Bytes::from_static(b"a layer");
    let digest = Digest::sha256(&layer);
    blobs.put(&digest, layer.clone()).await.unwrap();

    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    assert_eq!(blobs.purge_stray(an_hour_ago).await.unwrap(), 0);
    for key in &stray {
        assert!(
            blobs.pending(id, key).await.is_ok(),
            "younger than the cutoff"
        );
    }
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    assert_eq!(blobs.purge_stray(soon).await.unwrap(), 2);
    for key in &stray {
        let gone = blobs.pending(id, key).await.unwrap_err();
        assert!(matches!(gone, StoreError::Conflict(_)), "{gone}");
    }
    assert_eq!(blobs.get(&digest).await.unwrap(), Some(layer), "blobs stay");
}

/// `t` as RFC 3339 in UTC, to the second (as the registry writes an upload's `started`).
fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The civil date of a day number (Howard Hinnant's days_from_civil, inverted).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[test]
fn rfc3339_of_known_times() {
    let at = |secs: u64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_767_225_599), "2025-12-31T23:59:59Z");
}

#[tokio::test]
async fn many_tags_of_a_large_manifest_fit_one_transaction() {
    // Each tag item carries its manifest's bytes; twelve tags of a manifest just under the
    // inline limit would not fit one transaction, so the tag items point at its S3 copy.
    let t = aws_registry().await;
    let store = &t.registry.metadata;
    let repo = RepositoryName::parse("library/wide").unwrap();
    let mut body = b"{\"schemaVersion\":2,\"annotations\":{\"x\":\"".to_vec();
    body.resize(INLINE_LIMIT - 100, b'a');
    body.extend_from_slice(b"\"}}");
    let manifest = StoredManifest {
        digest: Digest::sha256(&body),
        media_type: OCI_INDEX.into(),
        body: body.clone().into(),
    };
    let tags: Vec<Tag> = (0..12)
        .map(|i| Tag::parse(&format!("t{i}")).unwrap())
        .collect();
    store
        .commit_push(
            &repo,
            &Push {
                manifest: manifest.clone(),
                tags: tags.clone(),
                tag_v1_image: None,
                images: vec![],
                referrer: None,
                event: event("repo_push"),
            },
        )
        .await
        .unwrap();
    for tag in &tags {
        let target = store.tag(&repo, tag).await.unwrap().expect("tagged");
        assert_eq!(target.manifest.expect("a manifest").body, body, "{tag}");
    }
    assert_eq!(
        store
            .manifest(&repo, &manifest.digest)
            .await
            .unwrap()
            .unwrap()
            .body,
        body
    );
}

#[tokio::test]
async fn a_small_chunked_blob_goes_to_s3_once_and_is_copied_into_place() {
    // docker's way: POST, PATCH of every byte, PUT with none. The bytes are written once
    // (the pending object); the finish copies that object within the bucket and reads
    // no byte back.
    let t = aws_registry().await;
    let calls = &env(&t).calls;
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&data);
    let started = t
        .request(
            http::Method::POST,
            "/v2/acme/small/blobs/uploads/",
            &[],
            b"",
        )
        .await;
    let location = started.header("location").unwrap().to_string();
    let patched = t.request(http::Method::PATCH, &location, &[], &data).await;
    assert_eq!(patched.status, 202);
    let location = patched.header("location").unwrap().to_string();
    calls.take();
    let finished = t
        .request(
            http::Method::PUT,
            &format!("{location}?digest={digest}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(finished.status, 201, "{}", finished.text());
    let s3: Vec<String> = calls
        .take_operations()
        .into_iter()
        .filter(|op| op.starts_with("S3."))
        .collect();
    assert_eq!(s3, ["S3.HeadObject", "S3.CopyObject", "S3.DeleteObject"]);
    let (status, stored) = t
        .download(&format!("/v2/acme/small/blobs/{digest}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(stored == data, "the blob is the bytes sent");
}

#[tokio::test]
async fn small_blobs_are_answered_with_their_bytes_and_large_ones_redirected_to_s3() {
    // The answer a client reads carries Docker-Content-Digest for a small blob (S3's answer
    // to a redirect could not); a large one goes to S3 by a presigned URL.
    let t = aws_registry().await;
    let small = vec![7u8; 1000];
    let large = vec![9u8; 1024 * 1024 + 1];
    for (bytes, inline) in [(&small, true), (&large, false)] {
        let digest = t.seed_blob("acme/sizes", bytes).await;
        let got = t.get(&format!("/v2/acme/sizes/blobs/{digest}"), &[]).await;
        assert_eq!(
            got.header("docker-content-digest"),
            Some(digest.to_string().as_str())
        );
        if inline {
            assert_eq!(got.status, 200);
            assert!(got.body == *bytes);
        } else {
            assert_eq!(got.status, 307);
            assert!(
                got.header("location")
                    .is_some_and(|l| l.contains("X-Amz-Signature"))
            );
        }
    }
    let digest = Digest::sha256(&small);
    let (status, part) = t
        .download(
            &format!("/v2/acme/sizes/blobs/{digest}"),
            Some("bytes=10-19"),
        )
        .await;
    assert_eq!((status, part), (206, small[10..20].to_vec()));
}
