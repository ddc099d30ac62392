//! The rest of the distribution API, endpoint by endpoint (the spec's end-1 … end-14): every
//! status, header and error code the OCI distribution spec defines for these routes.

use http::Method;
use quayside::digest::Digest;
use quayside_tests::*;
use serde_json::{Value, json};

/// A session's `Location` as a path: a deployment's upload service names its own host and
/// carries the session's capability in the query.
fn path_of(location: &str) -> &str {
    let path = location
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or(location);
    path.split('?').next().unwrap_or(path)
}

fn blob_path(repo: &str, digest: &Digest) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// `got` says blob `digest` is now in `repo`: `201`, the blob's URL and its digest.
#[track_caller]
fn assert_blob_created(got: &Answer, repo: &str, digest: &Digest) {
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(
        got.header("location"),
        Some(blob_path(repo, digest).as_str())
    );
    assert_eq!(
        got.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
}

/// Bytes that differ per test and per size.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// [`bytes`] and their sha256 digest: a blob to push.
fn blob(n: usize, seed: u8) -> (Vec<u8>, Digest) {
    let data = bytes(n, seed);
    let digest = Digest::sha256(&data);
    (data, digest)
}

/// Opens an upload session of `repo` (`POST /v2/<repo>/blobs/uploads/`).
async fn start(t: &TestRegistry, repo: &str) -> Answer {
    t.post(&format!("/v2/{repo}/blobs/uploads/"), b"").await
}

/// `POST /v2/<repo>/blobs/uploads/?<query>` with no body: a mount, or a session of options.
async fn start_with(t: &TestRegistry, repo: &str, query: &str) -> Answer {
    t.post(&format!("/v2/{repo}/blobs/uploads/?{query}"), b"")
        .await
}

/// The `Location` of a new upload session of `repo`.
async fn start_location(t: &TestRegistry, repo: &str) -> String {
    start(t, repo).await.header("location").unwrap().to_string()
}

#[tokio::test]
async fn end_1_api_version() {
    let t = TestRegistry::new().await;
    let got = t.get("/v2/", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(got.json(), json!({}));
}

#[tokio::test]
async fn end_2_blob_get_and_head() {
    let t = TestRegistry::new().await;
    let data = bytes(1000, 1);
    let digest = t.seed_blob("acme/app", &data).await;
    let path = blob_path("acme/app", &digest);

    let head = t.head(&path).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert_eq!(
        head.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert!(head.body.is_empty());

    let (status, body) = t.download(&path, None).await;
    assert_eq!((status, body), (200, data.clone()));
    let (status, body) = t.download(&path, Some("bytes=10-19")).await;
    assert_eq!((status, body), (206, data[10..20].to_vec()));
    // The last bytes (a suffix range), and a suffix longer than the blob: all of it.
    let (status, body) = t.download(&path, Some("bytes=-300")).await;
    assert_eq!((status, body), (206, data[700..].to_vec()));
    let (status, body) = t.download(&path, Some("bytes=-5000")).await;
    assert_eq!((status, body), (206, data.clone()));

    let unknown = blob_path("acme/app", &Digest::sha256(b"nope"));
    let got = t.get(&unknown, &[]).await;
    got.assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(t.head(&unknown).await.status, 404);
    // Linked elsewhere only: unknown here.
    let got = t.head(&blob_path("other/app", &digest)).await;
    assert_eq!(got.status, 404);
    let got = t.get("/v2/acme/app/blobs/sha256:xyz", &[]).await;
    got.assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn end_2_range_outside_the_blob_is_416() {
    let t = TestRegistry::new().await;
    let digest = t.seed_blob("acme/app", &bytes(10, 2)).await;
    let got = t
        .request(
            Method::GET,
            &blob_path("acme/app", &digest),
            &[("range", "bytes=10-20")],
            b"",
        )
        .await;
    assert_eq!(got.status, 416);
}

#[tokio::test]
async fn end_4a_post_opens_a_session() {
    let t = TestRegistry::new().await;
    let got = start(&t, "acme/app").await;
    assert_eq!(got.status, 202);
    let location = got.header("location").unwrap();
    let uuid = got.header("docker-upload-uuid").unwrap();
    assert_eq!(
        path_of(location),
        format!("/v2/acme/app/blobs/uploads/{uuid}")
    );
    if t.is_deployment() {
        // Handed to the upload service: its host, with the session's capability.
        assert!(
            location.starts_with("http://") && location.contains("?_upload="),
            "{location}"
        );
    } else {
        assert_eq!(location, path_of(location));
    }
    assert_eq!(got.header("range"), Some("0-0"));
    assert_eq!(
        got.header("oci-chunk-max-length"),
        Some((4 * 1024 * 1024).to_string().as_str())
    );

    let status = t.get(location, &[]).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-0"));
    assert_eq!(
        status.header("location").map(path_of),
        Some(path_of(location))
    );
    if t.is_deployment() {
        // The service's answers keep the capability, on its own host (a relative URL).
        assert!(
            status
                .header("location")
                .is_some_and(|l| l.contains("?_upload="))
        );
    }

    // A body without ?digest= is refused, not silently dropped.
    let got = t.post("/v2/acme/app/blobs/uploads/", b"stray bytes").await;
    got.assert_error(400, "BLOB_UPLOAD_INVALID");
}

#[tokio::test]
async fn end_4b_monolithic_post() {
    let t = TestRegistry::new().await;
    let (data, digest) = blob(3000, 3);
    let got = t
        .request(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            &data,
        )
        .await;
    assert_blob_created(&got, "acme/app", &digest);
    assert_eq!(
        t.download(&blob_path("acme/app", &digest), None).await.1,
        data
    );

    let wrong = Digest::sha256(b"else");
    let got = t
        .post(
            &format!("/v2/acme/app/blobs/uploads/?digest={wrong}"),
            &data,
        )
        .await;
    got.assert_error(400, "DIGEST_INVALID");
    assert_eq!(t.head(&blob_path("acme/app", &wrong)).await.status, 404);
}

#[tokio::test]
async fn end_5_and_6_chunked_upload_across_a_part_boundary() {
    let t = TestRegistry::new().await;
    // 3 chunks of 3 MiB: the second completes the first 5 MiB part; the last goes on PUT.
    let chunk = 3 * 1024 * 1024;
    let (data, digest) = blob(3 * chunk + 17, 4);
    let mut location = start_location(&t, "acme/app").await;
    for i in 0..2 {
        let (from, to) = (i * chunk, (i + 1) * chunk);
        let range = format!("{from}-{}", to - 1);
        let got = t
            .request(
                Method::PATCH,
                &location,
                &[
                    ("content-range", &range),
                    ("content-type", "application/octet-stream"),
                ],
                &data[from..to],
            )
            .await;
        assert_eq!(got.status, 202, "{}", got.text());
        assert_eq!(got.header("range"), Some(format!("0-{}", to - 1).as_str()));
        assert!(got.header("docker-upload-uuid").is_some());
        location = got.header("location").unwrap().to_string();
    }
    let status = t.get(&location, &[]).await;
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some(format!("0-{}", 2 * chunk - 1).as_str()))
    );

    let last = format!("{}-{}", 2 * chunk, data.len() - 1);
    let got = t
        .request(
            Method::PUT,
            &finishing(&location, &digest),
            &[("content-range", &last)],
            &data[2 * chunk..],
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.text());
    // On the deployment the upload service answers with the blob's URL on the API.
    assert_eq!(
        got.header("location").map(path_of),
        Some(blob_path("acme/app", &digest).as_str())
    );
    assert_eq!(
        got.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    let (status, body) = t.download(&blob_path("acme/app", &digest), None).await;
    assert_eq!(status, 200);
    assert!(body == data, "the assembled blob is the bytes sent");
    // The session is gone.
    let got = t.get(&location, &[]).await;
    got.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn end_5_patch_without_content_range_then_empty_put() {
    let t = TestRegistry::new().await;
    let (data, digest) = blob(5000, 5);
    let location = start_location(&t, "acme/app").await;
    // skopeo's way: the whole blob in one PATCH, no Content-Range, then PUT with no body.
    let got = t.request(Method::PATCH, &location, &[], &data).await;
    assert_eq!((got.status, got.header("range")), (202, Some("0-4999")));
    let location = got.header("location").unwrap().to_string();
    let got = t.put(&finishing(&location, &digest), b"").await;
    assert_eq!(got.status, 201);
    assert_eq!(
        t.download(&blob_path("acme/app", &digest), None).await.1,
        data
    );
}

#[tokio::test]
async fn end_5_out_of_order_chunk_is_416() {
    let t = TestRegistry::new().await;
    let location = start_location(&t, "acme/app").await;
    let patch = async |range: &str, chunk: &[u8]| {
        t.request(Method::PATCH, &location, &[("content-range", range)], chunk)
            .await
    };
    let got = patch("0-9", &bytes(10, 6)).await;
    assert_eq!(got.status, 202);
    for range in ["0-9", "20-29", "5-14"] {
        let got = patch(range, &bytes(10, 6)).await;
        assert_eq!(got.status, 416, "{range}");
    }
    // Nothing of the refused chunks was taken.
    assert_eq!(t.get(&location, &[]).await.header("range"), Some("0-9"));
    let got = patch("10-12", &bytes(10, 6)).await;
    got.assert_error(400, "SIZE_INVALID");
    let got = patch("ten-twelve", b"x").await;
    got.assert_error(400, "BLOB_UPLOAD_INVALID");
    // The widest range there is (it once overflowed the handler's arithmetic): a clear
    // error, and the upload unchanged.
    for range in [
        "0-18446744073709551615",
        "18446744073709551615-18446744073709551615",
    ] {
        let got = patch(range, b"x").await;
        assert!(matches!(got.status, 400 | 416), "{range}: {}", got.status);
    }
    assert_eq!(t.get(&location, &[]).await.header("range"), Some("0-9"));
}

#[tokio::test]
async fn end_6_wrong_digest_is_digest_invalid_and_drops_the_upload() {
    let t = TestRegistry::new().await;
    let data = bytes(100, 7);
    let location = start_location(&t, "acme/app").await;
    t.request(Method::PATCH, &location, &[], &data).await;
    let wrong = Digest::sha256(b"not these bytes");
    let got = t.put(&finishing(&location, &wrong), b"").await;
    got.assert_error(400, "DIGEST_INVALID");
    assert_eq!(t.head(&blob_path("acme/app", &wrong)).await.status, 404);
    assert_eq!(t.get(&location, &[]).await.status, 404);

    let location = start_location(&t, "acme/app").await;
    let got = t.put(&location, &data).await;
    got.assert_error_for(400, "DIGEST_INVALID", "no digest");
}

/// PATCHes `data` to the upload at `location` in chunks of `chunk` bytes; the last
/// location.
async fn patch_all(t: &TestRegistry, mut location: String, data: &[u8], chunk: usize) -> String {
    for (i, part) in data.chunks(chunk).enumerate() {
        let from = i * chunk;
        let range = format!("{from}-{}", from + part.len() - 1);
        let got = t
            .request(Method::PATCH, &location, &[("content-range", &range)], part)
            .await;
        assert_eq!(got.status, 202, "{}", got.text());
        location = got.header("location").unwrap().to_string();
    }
    location
}

/// sha512 blobs (the spec's `digest-algorithm`): in one POST; in chunks hashed with sha512
/// from the start (`?digest-algorithm=sha512`), across a part boundary; in chunks started
/// without it, as the conformance suite and some clients push them: checked over the bytes
/// at the finish, where the store can (the whole blob in the buffer, or a folder that
/// hashes the parts it joins; S3's parts cannot be read, so a large one there is refused
/// with a hint and the upload stays). A wrong sha512 digest stores nothing; an unknown
/// algorithm is refused.
#[tokio::test]
async fn sha512_blobs_with_or_without_digest_algorithm() {
    let t = TestRegistry::new().await;
    let sha512 = quayside::digest::Algorithm::Sha512;
    let get_back = |digest: Digest, data: Vec<u8>, context: &'static str| {
        let t = &t;
        async move {
            let (status, stored) = t.download(&blob_path("acme/app", &digest), None).await;
            assert_eq!(status, 200, "{context}");
            assert!(stored == data, "{context}: the blob is the bytes sent");
        }
    };

    let small = bytes(1000, 21);
    let digest = sha512.digest(&small);
    let got = t
        .post(
            &format!("/v2/acme/app/blobs/uploads/?digest={digest}"),
            &small,
        )
        .await;
    assert_eq!(got.status, 201, "{}", got.text());
    get_back(digest, small, "monolithic").await;

    let chunk = 3 * 1024 * 1024;
    let large = bytes(3 * chunk + 17, 22);
    let digest = sha512.digest(&large);
    let got = t
        .post("/v2/acme/app/blobs/uploads/?digest-algorithm=sha512", b"")
        .await;
    assert_eq!(got.status, 202);
    let location = patch_all(&t, got.header("location").unwrap().into(), &large, chunk).await;
    let got = t.put(&finishing(&location, &digest), b"").await;
    assert_eq!(got.status, 201, "{}", got.text());
    get_back(digest, large.clone(), "digest-algorithm=sha512").await;

    let small = bytes(100, 23);
    let location = start_location(&t, "acme/app").await;
    let location = patch_all(&t, location, &small, 60).await;
    let wrong = sha512.digest(b"not these bytes");
    let got = t.put(&finishing(&location, &wrong), b"").await;
    got.assert_error(400, "DIGEST_INVALID");
    assert_eq!(t.head(&blob_path("acme/app", &wrong)).await.status, 404);
    let location = start_location(&t, "acme/app").await;
    let location = patch_all(&t, location, &small, 60).await;
    let digest = sha512.digest(&small);
    let got = t.put(&finishing(&location, &digest), b"").await;
    assert_eq!(got.status, 201, "{}", got.text());
    get_back(digest, small, "sha512 without digest-algorithm").await;

    let large = bytes(3 * chunk + 17, 24);
    let location = start_location(&t, "acme/app").await;
    let location = patch_all(&t, location, &large, chunk).await;
    let digest = sha512.digest(&large);
    let got = t.put(&finishing(&location, &digest), b"").await;
    if t.aws.is_some() {
        got.assert_error(400, "DIGEST_INVALID");
        assert!(
            got.error_message().contains("digest-algorithm=sha512"),
            "{}",
            got.error_message()
        );
        assert_eq!(t.get(&location, &[]).await.status, 204, "the upload stays");
    } else {
        assert_eq!(got.status, 201, "{}", got.text());
        get_back(digest, large, "joined parts checked with sha512").await;
    }

    let got = t
        .post("/v2/acme/app/blobs/uploads/?digest-algorithm=md5", b"")
        .await;
    got.assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn a_request_over_the_chunk_limit_gets_a_clear_413() {
    let t = TestRegistry::new().await;
    let location = start_location(&t, "acme/app").await;
    let too_big = bytes(4 * 1024 * 1024 + 1, 8);
    // On the deployment the session is the upload service's: sent to the API (Lambda)
    // instead, the chunk meets Lambda's limit.
    let on_lambda = match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(0)..].to_string(),
        None => location.clone(),
    };
    let got = t.request(Method::PATCH, &on_lambda, &[], &too_big).await;
    got.assert_error(413, "SIZE_INVALID");
    let message = got.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("OCI-Chunk-Max-Length"), "{message}");
    assert!(message.contains("upload service"), "{message}");
    assert_eq!(t.get(&location, &[]).await.header("range"), Some("0-0"));
    if t.is_deployment() {
        // The upload service takes the whole chunk.
        let got = t.request(Method::PATCH, &location, &[], &too_big).await;
        assert_eq!(got.status, 202, "{}", got.text());
        assert_eq!(got.header("range"), Some("0-4194304"));
    }
}

#[tokio::test]
async fn end_13_and_14_status_and_cancel() {
    let t = TestRegistry::new().await;
    let location = start_location(&t, "acme/app").await;
    t.request(Method::PATCH, &location, &[], &bytes(6 * 1024 * 1024, 9))
        .await;
    let got = t.request(Method::DELETE, &location, &[], b"").await;
    assert_eq!(got.status, 204);
    for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let got = t.request(method.clone(), &location, &[], b"").await;
        got.assert_error_for(404, "BLOB_UPLOAD_UNKNOWN", &method);
    }
    let got = t.get("/v2/acme/app/blobs/uploads/not-a-uuid", &[]).await;
    got.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn end_10_blob_delete() {
    let t = TestRegistry::new().await;
    let digest = t.seed_blob("acme/app", b"to delete").await;
    t.seed_blob("other/app", b"to delete").await;
    let got = t.delete(&blob_path("acme/app", &digest)).await;
    assert_eq!(got.status, 202);
    assert_eq!(t.head(&blob_path("acme/app", &digest)).await.status, 404);
    assert_eq!(
        t.head(&blob_path("other/app", &digest)).await.status,
        200,
        "only the link went"
    );
    let got = t.delete(&blob_path("acme/app", &digest)).await;
    got.assert_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn end_11_cross_repository_mount_copies_nothing() {
    let t = TestRegistry::new().await;
    let data = bytes(2000, 10);
    let digest = t.seed_blob("acme/base", &data).await;
    let written = t.blob_bytes_written().await;
    let got = start_with(&t, "acme/app", &format!("mount={digest}&from=acme/base")).await;
    assert_blob_created(&got, "acme/app", &digest);
    assert_eq!(t.head(&blob_path("acme/app", &digest)).await.status, 200);
    assert_eq!(
        t.download(&blob_path("acme/app", &digest), None).await.1,
        data
    );
    assert_eq!(
        t.blob_bytes_written().await,
        written,
        "a mount writes no blob bytes"
    );

    // From a repository without it: a normal session instead.
    let missing = Digest::sha256(b"missing");
    let got = start_with(&t, "acme/app", &format!("mount={missing}&from=acme/base")).await;
    assert_eq!(got.status, 202);
    assert!(got.header("docker-upload-uuid").is_some());

    // No `from`: mounted from wherever the registry has it when there is no auth (every
    // repository is anyone's to read); with auth (the deployment), a session instead.
    let got = start_with(&t, "acme/third", &format!("mount={digest}")).await;
    if t.deployment.is_some() {
        assert_eq!(got.status, 202, "with auth, no mount without a source");
    } else {
        assert_eq!(got.status, 201, "{}", got.text());
        assert_eq!(t.head(&blob_path("acme/third", &digest)).await.status, 200);
    }
    let got = start_with(&t, "acme/third", &format!("mount={missing}")).await;
    assert_eq!(got.status, 202, "a blob the registry lacks: a session");
}

async fn push_tagged(t: &TestRegistry, repo: &str, tags: &[&str]) {
    let empty = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string();
    for tag in tags {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let got = t.put_manifest(&path, OCI_INDEX, empty.as_bytes()).await;
        assert_eq!(got.status, 201);
    }
}

#[tokio::test]
async fn end_8_tags_list_with_paging() {
    let t = TestRegistry::new().await;
    push_tagged(&t, "acme/app", &["v2", "latest", "v1", "V0", "a-b"]).await;
    push_tagged(&t, "acme/app-x", &["other"]).await;

    let got = t.get("/v2/acme/app/tags/list", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json(),
        json!({"name": "acme/app", "tags": ["V0", "a-b", "latest", "v1", "v2"]})
    );
    assert!(got.header("link").is_none());

    let got = t.get("/v2/acme/app/tags/list?n=2", &[]).await;
    assert_eq!(got.json()["tags"], json!(["V0", "a-b"]));
    assert_eq!(
        got.header("link"),
        Some("</v2/acme/app/tags/list?n=2&last=a-b>; rel=\"next\"")
    );
    let got = t.get("/v2/acme/app/tags/list?n=2&last=a-b", &[]).await;
    assert_eq!(got.json()["tags"], json!(["latest", "v1"]));
    let got = t.get("/v2/acme/app/tags/list?n=2&last=v1", &[]).await;
    assert_eq!(got.json()["tags"], json!(["v2"]));
    assert!(got.header("link").is_none());
    let got = t.get("/v2/acme/app/tags/list?last=latest", &[]).await;
    assert_eq!(got.json()["tags"], json!(["v1", "v2"]));
    let got = t.get("/v2/acme/app/tags/list?n=0", &[]).await;
    assert_eq!((got.status, got.json()["tags"].clone()), (200, json!([])));
    assert!(got.header("link").is_none());

    let got = t.get("/v2/acme/app/tags/list?n=lots", &[]).await;
    got.assert_error(400, "PAGINATION_NUMBER_INVALID");
    let got = t.get("/v2/nobody/here/tags/list", &[]).await;
    got.assert_error(404, "NAME_UNKNOWN");

    // A deleted tag leaves the list.
    t.delete("/v2/acme/app/manifests/v1").await;
    let got = t.get("/v2/acme/app/tags/list", &[]).await;
    assert_eq!(got.json()["tags"], json!(["V0", "a-b", "latest", "v2"]));
}

#[tokio::test]
async fn catalog_with_paging() {
    let t = TestRegistry::new().await;
    push_tagged(&t, "acme/b", &["x"]).await;
    push_tagged(&t, "acme/a", &["x"]).await;
    t.seed_blob("zeta/blobs-only", b"x").await;
    let got = t.get("/v2/_catalog", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json(),
        json!({"repositories": ["acme/a", "acme/b", "zeta/blobs-only"]})
    );
    let got = t.get("/v2/_catalog?n=1", &[]).await;
    assert_eq!(got.json()["repositories"], json!(["acme/a"]));
    assert_eq!(
        got.header("link"),
        Some("</v2/_catalog?n=1&last=acme%2Fa>; rel=\"next\"")
    );
    let got = t.get("/v2/_catalog?n=5&last=acme%2Fa", &[]).await;
    assert_eq!(
        got.json()["repositories"],
        json!(["acme/b", "zeta/blobs-only"])
    );
}

#[tokio::test]
async fn end_12_referrers() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let image = manifest_fixture("oci-image-manifest.json");
    let put = t
        .put_manifest("/v2/library/tiny/manifests/latest", OCI_MANIFEST, &image)
        .await;
    let subject = put.header("docker-content-digest").unwrap().to_string();
    let empty = t.seed_blob("library/tiny", b"{}").await;
    let mut pushed = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.sig", "sig"),
    ] {
        let body = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": image.len()},
            "annotations": {"org.example.note": note}
        })
        .to_string();
        let digest = Digest::sha256(body.as_bytes());
        let path = format!("/v2/library/tiny/manifests/{digest}");
        let put = t.put_manifest(&path, OCI_MANIFEST, body.as_bytes()).await;
        assert_eq!(put.header("oci-subject"), Some(subject.as_str()));
        pushed.push((digest, body.len(), artifact_type, note));
    }

    let got = t
        .get(&format!("/v2/library/tiny/referrers/{subject}"), &[])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some(OCI_INDEX));
    assert!(got.header("oci-filters-applied").is_none());
    let index = got.json();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut listed: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    listed.sort_by_key(|d| d["artifactType"].as_str().unwrap().to_string());
    let mut expected: Vec<Value> = pushed
        .iter()
        .map(|(digest, size, artifact_type, note)| {
            json!({"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": size,
                   "artifactType": artifact_type, "annotations": {"org.example.note": note}})
        })
        .collect();
    expected.sort_by_key(|d| d["artifactType"].as_str().unwrap().to_string());
    assert_eq!(listed, expected);

    let got = t
        .get(
            &format!(
                "/v2/library/tiny/referrers/{subject}?artifactType=application/vnd.example.sig"
            ),
            &[],
        )
        .await;
    assert_eq!(got.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(got.json()["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        got.json()["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );

    // Nothing refers to it: an empty index, never 404.
    let got = t
        .get(
            &format!("/v2/library/tiny/referrers/{}", Digest::sha256(b"x")),
            &[],
        )
        .await;
    assert_eq!(
        (got.status, got.json()["manifests"].clone()),
        (200, json!([]))
    );
    let got = t.get("/v2/library/tiny/referrers/sha256:nothex", &[]).await;
    assert_eq!(got.status, 400);

    // Deleting a referrer removes it from the index.
    t.delete(&format!("/v2/library/tiny/manifests/{}", pushed[0].0))
        .await;
    let got = t
        .get(&format!("/v2/library/tiny/referrers/{subject}"), &[])
        .await;
    assert_eq!(got.json()["manifests"].as_array().unwrap().len(), 1);
}

/// Requests that race on one upload session. One upload has one writer at a time: the
/// request that does not hold it gets `416` (another holds it, or the chunk no longer
/// starts where the upload stands) or `404 BLOB_UPLOAD_UNKNOWN` (it was finished or
/// cancelled) and changes nothing; a `202` means the chunk is durably part of the upload.
#[derive(Clone, Copy, Debug)]
enum Race {
    PatchPatch,
    PatchDelete,
    PutPut,
    PutPatch,
}

/// The rounds of a race, as (bytes the upload holds first, size of each racing chunk):
/// small chunks (on S3 they wait as pending bytes; a folder takes each request as a part),
/// then, after 5 MiB, chunks of 3.5 MiB that complete one of S3's 8 MiB parts (a request
/// carries at most 4 MiB, as on Lambda).
fn race_rounds() -> impl Iterator<Item = (usize, usize)> {
    std::iter::repeat_n((0, 3000), 16).chain(std::iter::repeat_n((5 << 20, 7 << 19), 2))
}

/// A session holding `prefix` (sent in chunks of at most 4 MiB): its `Location` and id.
async fn session_holding(t: &TestRegistry, repo: &str, prefix: &[u8]) -> (String, String) {
    let session = start(t, repo).await;
    assert_eq!(session.status, 202);
    let id = session.header("docker-upload-uuid").unwrap().to_string();
    let mut location = session.header("location").unwrap().to_string();
    let mut at = 0;
    for chunk in prefix.chunks(4 << 20) {
        let range = format!("{at}-{}", at + chunk.len() - 1);
        let got = t
            .request(
                Method::PATCH,
                &location,
                &[("content-range", &range)],
                chunk,
            )
            .await;
        assert_eq!(got.status, 202, "{}", got.text());
        location = got.header("location").unwrap().to_string();
        at += chunk.len();
    }
    (location, id)
}

fn finishing(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// Whether `answer` is what a request that lost its race may get: `416`, or `404
/// BLOB_UPLOAD_UNKNOWN` once the upload is finished or cancelled. Never a 5xx.
fn refused(answer: &Answer) -> bool {
    match answer.status {
        416 => answer.error_code() == "BLOB_UPLOAD_INVALID",
        404 => answer.error_code() == "BLOB_UPLOAD_UNKNOWN",
        _ => false,
    }
}

fn summary(answer: &Answer) -> String {
    format!("{} {}", answer.status, answer.text())
}

/// Every file and folder of upload `id` the blob store still holds: under its folder in
/// `uploads/` (embedded), or its S3 objects under `uploads/<id>/` and multipart uploads
/// there (aws, deployment). Empty once it is finished, cancelled or purged.
async fn upload_bytes(t: &TestRegistry, id: &str) -> Vec<String> {
    let Some(env) = &t.aws else {
        return files_under(&t.data_dir().join("uploads").join(id));
    };
    let prefix = format!("uploads/{id}/");
    let (mut found, multipart) = env.bucket_keys(Some(&prefix)).await;
    found.extend(
        multipart
            .iter()
            .map(|key| format!("multipart upload {key}")),
    );
    found
}

/// `path` and everything under it, if it exists.
fn files_under(path: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        found.push(path.display().to_string());
        for entry in entries {
            found.extend(files_under(&entry.unwrap().path()));
        }
    } else if path.exists() {
        found.push(path.display().to_string());
    }
    found
}

/// The upload is gone, and so is every byte it stored.
async fn assert_gone(t: &TestRegistry, location: &str, id: &str, context: &str) {
    let got = t.get(location, &[]).await;
    got.assert_error_for(404, "BLOB_UPLOAD_UNKNOWN", context);
    assert_eq!(upload_bytes(t, id).await, Vec::<String>::new(), "{context}");
}

/// The blob `expected` hashes to is stored in `repo` with exactly these bytes.
async fn assert_blob(t: &TestRegistry, repo: &str, expected: &[u8], context: &str) {
    let digest = Digest::sha256(expected);
    let (status, stored) = t.download(&blob_path(repo, &digest), None).await;
    assert_eq!(status, 200, "{context}");
    assert!(
        digest.matches(&stored),
        "{context}: {digest} holds other bytes"
    );
    assert!(
        stored == expected,
        "{context}: the blob is not the bytes sent"
    );
}

/// The upload holds exactly `acked` (every acknowledged chunk: `Range` covers them), and
/// finishing it stores exactly those bytes.
async fn assert_holds_then_finish(
    t: &TestRegistry,
    repo: &str,
    location: &str,
    id: &str,
    acked: &[u8],
    context: &str,
) {
    let status = t.get(location, &[]).await;
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some(format!("0-{}", acked.len() - 1).as_str())),
        "{context}: the acknowledged chunks"
    );
    let done = t
        .put(&finishing(location, &Digest::sha256(acked)), b"")
        .await;
    assert_eq!(done.status, 201, "{context}: {}", summary(&done));
    assert_blob(t, repo, acked, context).await;
    assert_gone(t, location, id, context).await;
}

/// One round of `race` on a fresh session of `repo` that holds `received` bytes.
async fn race_round(
    t: &TestRegistry,
    repo: &str,
    race: Race,
    round: usize,
    (received, size): (usize, usize),
) {
    let context = format!("{race:?} round {round} ({received} + {size} bytes)");
    let prefix = bytes(received, 1);
    let (location, id) = session_holding(t, repo, &prefix).await;
    // Bytes of their own per round: no round finds its blob stored by another.
    let (mine, other) = (
        bytes(size, 2 * round as u8),
        bytes(size, 2 * round as u8 + 1),
    );
    let with = |chunk: &[u8]| [prefix.as_slice(), chunk].concat();
    let range = format!("{received}-{}", received + size - 1);
    let ranged = [("content-range", range.as_str())];
    let patch = |chunk: &[u8]| {
        let body = chunk.to_vec();
        let location = location.clone();
        let headers = ranged;
        async move { t.request(Method::PATCH, &location, &headers, &body).await }
    };
    let put = |chunk: &[u8]| {
        let body = chunk.to_vec();
        let target = finishing(&location, &Digest::sha256(&with(chunk)));
        let headers = ranged;
        async move { t.request(Method::PUT, &target, &headers, &body).await }
    };
    match race {
        Race::PatchPatch => {
            let (first, second) = tokio::join!(patch(&mine), patch(&other));
            // Neither finishes nor cancels: the loser can only be told 416.
            let acked = match (first.status, second.status) {
                (202, 416) if refused(&second) => with(&mine),
                (416, 202) if refused(&first) => with(&other),
                _ => panic!("{context}: {} / {}", summary(&first), summary(&second)),
            };
            assert_holds_then_finish(t, repo, &location, &id, &acked, &context).await;
        }
        Race::PatchDelete => {
            let cancel = t.request(Method::DELETE, &location, &[], b"");
            let (patched, cancelled) = tokio::join!(patch(&mine), cancel);
            // A cancel wins over a writer: the chunk was taken before it, or the PATCH
            // finds the upload gone.
            assert_eq!(cancelled.status, 204, "{context}: {}", summary(&cancelled));
            assert!(
                patched.status == 202 || refused(&patched),
                "{context}: {}",
                summary(&patched)
            );
            assert_gone(t, &location, &id, &context).await;
        }
        Race::PutPut if round.is_multiple_of(2) => {
            // Two clients finish one session with last chunks of their own.
            let (first, second) = tokio::join!(put(&mine), put(&other));
            let (stored, not_stored) = match (first.status, second.status) {
                (201, _) if refused(&second) => (with(&mine), with(&other)),
                (_, 201) if refused(&first) => (with(&other), with(&mine)),
                _ => panic!("{context}: {} / {}", summary(&first), summary(&second)),
            };
            assert_blob(t, repo, &stored, &context).await;
            let loser = blob_path(repo, &Digest::sha256(&not_stored));
            assert_eq!(t.head(&loser).await.status, 404, "{context}");
            assert_gone(t, &location, &id, &context).await;
        }
        Race::PutPut => {
            // One client's finishing PUT sent twice (a retry while the first is under
            // way): one stores the blob; the other answers the same or is refused.
            let got = patch(&mine).await;
            assert_eq!(got.status, 202, "{context}: {}", summary(&got));
            let whole = with(&mine);
            let target = finishing(&location, &Digest::sha256(&whole));
            let (first, second) = tokio::join!(t.put(&target, b""), t.put(&target, b""),);
            let fine = |a: &Answer| a.status == 201 || refused(a);
            assert!(
                (first.status == 201 || second.status == 201) && fine(&first) && fine(&second),
                "{context}: {} / {}",
                summary(&first),
                summary(&second)
            );
            assert_blob(t, repo, &whole, &context).await;
            assert_gone(t, &location, &id, &context).await;
        }
        Race::PutPatch => {
            let (put, patched) = tokio::join!(put(&other), patch(&mine));
            match (put.status, patched.status) {
                (201, _) if refused(&patched) => {
                    assert_blob(t, repo, &with(&other), &context).await;
                    assert_gone(t, &location, &id, &context).await;
                }
                (_, 202) if refused(&put) => {
                    let stored = blob_path(repo, &Digest::sha256(&with(&other)));
                    assert_eq!(t.head(&stored).await.status, 404, "{context}");
                    let acked = with(&mine);
                    assert_holds_then_finish(t, repo, &location, &id, &acked, &context).await;
                }
                _ => panic!("{context}: {} / {}", summary(&put), summary(&patched)),
            }
        }
    }
}

async fn race(race: Race) -> TestRegistry {
    let t = TestRegistry::new().await;
    for (round, sizes) in race_rounds().enumerate() {
        race_round(&t, "racer/app", race, round, sizes).await;
    }
    t
}

/// Two PATCHes racing on one upload session (each sending a whole chunk from where the
/// upload stands): one is acknowledged, the other refused, and the upload keeps exactly
/// the acknowledged bytes. Whichever wins, nothing is ever stored under a digest its bytes
/// do not hash to, and a blob another repository holds is never replaced: once, a loser's
/// bytes were stored under the winner's digest, over another repository's blob of that
/// digest.
#[tokio::test]
async fn racing_patches_never_store_a_wrong_byte() {
    let t = TestRegistry::new().await;
    // Another repository's blob, under the digest a racer claims in round 0.
    let victim = bytes(3000, 0);
    let victim_digest = t.seed_blob("victim/app", &victim).await;
    for (round, sizes) in race_rounds().enumerate() {
        race_round(&t, "racer/app", Race::PatchPatch, round, sizes).await;
    }
    let (status, stored) = t
        .download(&blob_path("victim/app", &victim_digest), None)
        .await;
    assert_eq!(status, 200);
    assert!(stored == victim, "the victim's blob was replaced");
}

/// A PATCH racing a DELETE of its session: the cancel answers `204`, the PATCH `202` (its
/// chunk taken before the cancel) or `404`, never a 5xx, and no byte of the upload stays
/// (once, the cancel's removal of the folder met the PATCH's new file: 500).
#[tokio::test]
async fn a_patch_racing_a_cancel_leaves_no_byte() {
    race(Race::PatchDelete).await;
}

/// Two finishing PUTs on one session: with last chunks of their own, one stores its blob
/// and the other is refused (its digest names nothing); the same PUT twice, one stores it
/// and the other answers `201` too or is refused. Never a 5xx, and no byte of the upload
/// stays.
#[tokio::test]
async fn racing_finishes_store_one_blob() {
    race(Race::PutPut).await;
}

/// A finishing PUT racing a PATCH: either the PUT stores its blob and the PATCH is refused,
/// or the PATCH's chunk is acknowledged, the PUT refused, and the chunk is in the upload
/// (its `Range`, then the finished blob).
#[tokio::test]
async fn a_finish_racing_a_patch_never_drops_an_acknowledged_chunk() {
    race(Race::PutPatch).await;
}

/// Whether the metadata store still holds upload `id`'s record, expired or not (DynamoDB
/// reads an item past its TTL as gone, but keeps it until it deletes it, within days).
async fn upload_row_exists(t: &TestRegistry, repo: &str, id: &str) -> bool {
    let Some(env) = &t.aws else {
        let repo = quayside::names::RepositoryName::parse(repo).unwrap();
        return t
            .registry
            .metadata
            .upload(&repo, id)
            .await
            .unwrap()
            .is_some();
    };
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&env.settings.table)
        .key("pk", AttributeValue::S(repo.into()))
        .key("sk", AttributeValue::S(format!("UPLOAD#{id}")))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    item.item.is_some()
}

/// An upload left for longer than the greatest age (its start written in the past through
/// the store) is unknown to clients at once, and a purge removes it with its parts and
/// pending bytes; one started since stays, and
/// finishes. In a blob folder, temporary files and upload folders a crash left go once they
/// are as old; younger ones stay.
#[tokio::test]
async fn stale_uploads_are_purged_with_their_bytes_and_fresh_ones_kept() {
    let t = TestRegistry::new().await;
    let repo = "acme/app";
    let name = quayside::names::RepositoryName::parse(repo).unwrap();
    // 9 MiB: on S3 an 8 MiB part and 1 MiB of pending bytes; in a folder, parts.
    let (big, big_id) = session_holding(&t, repo, &bytes(9 << 20, 3)).await;
    let (small, small_id) = session_holding(&t, repo, &bytes(3000, 4)).await;
    let kept = bytes(9 << 20, 5);
    let (fresh, fresh_id) = session_holding(&t, repo, &kept).await;
    for id in [&big_id, &small_id] {
        assert!(!upload_bytes(&t, id).await.is_empty(), "{id} holds bytes");
        let mut upload = t
            .registry
            .metadata
            .upload(&name, id)
            .await
            .unwrap()
            .unwrap();
        let version = upload.version;
        upload.started = "2026-01-01T00:00:00Z".into();
        upload.version += 1;
        t.registry
            .metadata
            .update_upload(&name, &upload, version)
            .await
            .unwrap();
    }
    // What a crash leaves in a blob folder: temporary files, an upload's folder whose
    // record went without it. Aged by their modification time.
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 3600);
    let blobs = t.data_dir().join("blobs/sha256");
    let orphan = t
        .data_dir()
        .join("uploads/0b8c2a3e-9d5f-4c1e-8a7b-123456789abc");
    let (old_temp, new_temp) = (blobs.join(".0a1b.7.1.tmp"), blobs.join(".0a1b.7.2.tmp"));
    if t.aws.is_none() {
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&orphan).unwrap();
        for file in [&old_temp, &new_temp, &orphan.join("pending-0a")] {
            std::fs::write(file, b"left by a crash").unwrap();
        }
        for aged in [&old_temp, &orphan.join("pending-0a"), &orphan] {
            let opened = std::fs::File::open(aged).unwrap();
            opened.set_modified(day_ago).unwrap();
        }
    }

    // Past the age, an upload is gone to clients before any purge removes it.
    for location in [&big, &small] {
        let got = t.get(location, &[]).await;
        got.assert_error_for(
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "a stale upload before the purge",
        );
    }
    let purge = async || {
        t.registry
            .purge_uploads(std::time::Duration::from_secs(24 * 3600))
            .await
            .unwrap()
    };
    let purged = purge().await;
    assert_eq!(purged.uploads, 2, "{purged:?}");
    for (location, id) in [(&big, &big_id), (&small, &small_id)] {
        assert_gone(&t, location, id, "a stale upload").await;
        assert!(!upload_row_exists(&t, repo, id).await, "{id}'s record");
    }
    if t.aws.is_none() {
        assert_eq!(purged.stray, 2, "{purged:?}");
        assert!(!old_temp.exists() && !orphan.exists());
        assert!(
            new_temp.exists(),
            "a temporary file younger than the age stays"
        );
    }
    // Purging again finds nothing; the fresh upload is untouched, and finishes.
    let again = purge().await;
    assert_eq!(again.uploads, 0, "{again:?}");
    assert!(!upload_bytes(&t, &fresh_id).await.is_empty());
    assert_holds_then_finish(&t, repo, &fresh, &fresh_id, &kept, "the fresh upload").await;
}

/// The empty blob (some clients push it as a layer or a config): by a session finished with
/// no byte, and monolithically.
#[tokio::test]
async fn the_empty_blob_is_pushed_and_served() {
    let t = TestRegistry::new().await;
    let empty = Digest::sha256(b"");
    let session = start(&t, "acme/app").await;
    let location = session.header("location").unwrap().to_string();
    let separator = if location.contains('?') { '&' } else { '?' };
    let done = t
        .put(&format!("{location}{separator}digest={empty}"), b"")
        .await;
    assert_eq!(done.status, 201, "{}", done.text());
    let (status, body) = t.download(&blob_path("acme/app", &empty), None).await;
    assert_eq!((status, body.len()), (200, 0));
    let head = t.head(&blob_path("acme/app", &empty)).await;
    assert_eq!(head.header("content-length"), Some("0"));

    let monolithic = start_with(&t, "acme/other", &format!("digest={empty}")).await;
    assert_eq!(monolithic.status, 201);
    assert_eq!(t.head(&blob_path("acme/other", &empty)).await.status, 200);
}

/// Pushes a config and a layer (monolithic POSTs), then an image manifest tagged `tag`
/// naming them, all through `repo`'s own paths; answers the manifest's bytes and digest.
async fn push_image(t: &TestRegistry, repo: &str, tag: &str) -> (Vec<u8>, Digest) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"repo\":\"{repo}\"}}");
    let layer = bytes(3000, repo.len() as u8);
    let mut descriptors = Vec::new();
    for (media_type, body) in [
        (
            "application/vnd.oci.image.config.v1+json",
            config.as_bytes(),
        ),
        ("application/vnd.oci.image.layer.v1.tar", &layer[..]),
    ] {
        let digest = Digest::sha256(body);
        let got = t
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[("content-type", "application/octet-stream")],
                body,
            )
            .await;
        assert_eq!(got.status, 201, "{repo}: {}", got.text());
        assert_eq!(
            got.header("location"),
            Some(blob_path(repo, &digest).as_str())
        );
        descriptors.push(
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": body.len()}),
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptors[0],
        "layers": [descriptors[1]],
    })
    .to_string()
    .into_bytes();
    let got = t
        .put_manifest(
            &format!("/v2/{repo}/manifests/{tag}"),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    assert_eq!(got.status, 201, "{repo}: {}", got.text());
    let digest = Digest::sha256(&manifest);
    assert_eq!(
        got.header("location"),
        Some(format!("/v2/{repo}/manifests/{digest}").as_str())
    );
    (manifest, digest)
}

/// The spec's names: one component or many (`docker push host/myapp`, `org/team/app`), and
/// components that spell a route's own words. Every route works at every depth; through
/// API Gateway (the deployment) up to six components, a seventh gets its `404`.
#[tokio::test]
async fn names_of_any_depth() {
    let t = TestRegistry::new().await;
    let names = [
        "myapp",
        "org/team/app",
        "a/b/c/d/e/f",
        "acme/manifests",
        "acme/blobs/uploads",
        "acme/tags/list",
        "acme/referrers",
    ];
    let mut pushed = Vec::new();
    for repo in names {
        let (manifest, digest) = push_image(&t, repo, "v1").await;
        for reference in ["v1".to_string(), digest.to_string()] {
            let got = t
                .get(
                    &format!("/v2/{repo}/manifests/{reference}"),
                    &[OCI_MANIFEST],
                )
                .await;
            assert_eq!((got.status, &got.body), (200, &manifest), "{repo}");
        }
        let got = t.get(&format!("/v2/{repo}/tags/list"), &[]).await;
        assert_eq!(got.json(), json!({"name": repo, "tags": ["v1"]}), "{repo}");
        let got = t.get(&format!("/v2/{repo}/referrers/{digest}"), &[]).await;
        assert_eq!(
            (got.status, got.json()["manifests"].clone()),
            (200, json!([])),
            "{repo}"
        );

        // A chunked upload: its session lives under the name.
        let (data, blob) = blob(100, 7);
        let session = start(&t, repo).await;
        assert_eq!(session.status, 202, "{repo}");
        let location = session.header("location").expect("location").to_string();
        assert!(
            path_of(&location).starts_with(&format!("/v2/{repo}/blobs/uploads/")),
            "{location}"
        );
        let got = t.request(Method::PATCH, &location, &[], &data).await;
        assert_eq!(got.status, 202, "{repo}");
        let got = t.get(&location, &[]).await;
        assert_eq!(
            (got.status, got.header("range")),
            (204, Some("0-99")),
            "{repo}"
        );
        let next = got.header("location").unwrap_or(&location).to_string();
        let got = t.put(&finishing(&next, &blob), b"").await;
        assert_eq!(got.status, 201, "{repo}: {}", got.text());
        let (status, body) = t.download(&blob_path(repo, &blob), None).await;
        assert_eq!((status, body), (200, data), "{repo}");
        pushed.push((repo, digest, blob));
    }

    // The catalog lists them all by their full names, in order (the deployment's client
    // sees what it was granted, from this test and others).
    let got = t.get("/v2/_catalog", &[]).await;
    let listed: Vec<String> =
        serde_json::from_value(got.json()["repositories"].clone()).expect("repositories");
    let ours: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|name| names.contains(name))
        .collect();
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    assert_eq!(ours, sorted);
    if !t.is_deployment() {
        assert_eq!(listed.len(), names.len(), "{listed:?}");
    }
    for (repo, manifest, blob) in pushed {
        let got = t.delete(&blob_path(repo, &blob)).await;
        assert_eq!(got.status, 202, "{repo}");
        let got = t.delete(&format!("/v2/{repo}/manifests/{manifest}")).await;
        assert_eq!(got.status, 202, "{repo}");
        let got = t.get(&format!("/v2/{repo}/manifests/v1"), &[]).await;
        assert_eq!(got.status, 404, "{repo}");
    }

    let seven = "a/b/c/d/e/f/g";
    if t.is_deployment() {
        let got = t.get(&format!("/v2/{seven}/tags/list"), &[]).await;
        assert_eq!(
            got.status, 404,
            "API Gateway has no route for a seventh component"
        );
    } else {
        push_image(&t, seven, "v1").await;
        let got = t.get(&format!("/v2/{seven}/tags/list"), &[]).await;
        assert_eq!(got.json(), json!({"name": seven, "tags": ["v1"]}));
    }
}

/// A name outside the grammar is `NAME_INVALID` at any depth, and stores nothing.
#[tokio::test]
async fn invalid_names_at_any_depth() {
    let t = TestRegistry::new().await;
    for path in [
        "/v2/Upper/manifests/latest",
        "/v2/org/Team/app/manifests/latest",
        "/v2/org/-team/app/manifests/latest",
        "/v2/org/team__/app/manifests/latest",
    ] {
        let got = t.get(path, &[]).await;
        got.assert_error_for(400, "NAME_INVALID", path);
    }
    let long = format!("a/{}", "b".repeat(254));
    let got = t.get(&format!("/v2/{long}/tags/list"), &[]).await;
    got.assert_error(400, "NAME_INVALID");
    let got = start(&t, "org/Team/app").await;
    got.assert_error(400, "NAME_INVALID");
    if !t.is_deployment() {
        assert_eq!(
            t.get("/v2/_catalog", &[]).await.json(),
            json!({"repositories": []})
        );
    }
}
