//! The rest of the distribution API, endpoint by endpoint (the spec's end-1 … end-14): every
//! status, header and error code the OCI distribution spec defines for these routes.

use http::Method;
use quayside::digest::Digest;
use quayside_tests::*;
use serde_json::{Value, json};

fn blob_path(repo: &str, digest: &Digest) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// Bytes that differ per test and per size.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn start(t: &TestRegistry, repo: &str) -> Answer {
    t.request(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )
    .await
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

    let unknown = blob_path("acme/app", &Digest::sha256(b"nope"));
    let got = t.get(&unknown, &[]).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (404, "BLOB_UNKNOWN")
    );
    assert_eq!(t.head(&unknown).await.status, 404);
    // Linked elsewhere only: unknown here.
    let got = t.head(&blob_path("other/app", &digest)).await;
    assert_eq!(got.status, 404);
    let got = t.get("/v2/acme/app/blobs/sha256:xyz", &[]).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "DIGEST_INVALID")
    );
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
    assert_eq!(location, format!("/v2/acme/app/blobs/uploads/{uuid}"));
    assert_eq!(got.header("range"), Some("0-0"));
    assert_eq!(
        got.header("oci-chunk-max-length"),
        Some((4 * 1024 * 1024).to_string().as_str())
    );

    let status = t.get(location, &[]).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-0"));
    assert_eq!(status.header("location"), Some(location));

    // A body without ?digest= is refused, not silently dropped.
    let got = t
        .request(
            Method::POST,
            "/v2/acme/app/blobs/uploads/",
            &[],
            b"stray bytes",
        )
        .await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "BLOB_UPLOAD_INVALID")
    );
}

#[tokio::test]
async fn end_4b_monolithic_post() {
    let t = TestRegistry::new().await;
    let data = bytes(3000, 3);
    let digest = Digest::sha256(&data);
    let got = t
        .request(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            &data,
        )
        .await;
    assert_eq!(got.status, 201, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        got.header("location"),
        Some(blob_path("acme/app", &digest).as_str())
    );
    assert_eq!(
        got.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert_eq!(
        t.download(&blob_path("acme/app", &digest), None).await.1,
        data
    );

    let wrong = Digest::sha256(b"else");
    let got = t
        .request(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?digest={wrong}"),
            &[],
            &data,
        )
        .await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "DIGEST_INVALID")
    );
    assert_eq!(t.head(&blob_path("acme/app", &wrong)).await.status, 404);
}

#[tokio::test]
async fn end_5_and_6_chunked_upload_across_a_part_boundary() {
    let t = TestRegistry::new().await;
    // 3 chunks of 3 MiB: the second completes the first 5 MiB part; the last goes on PUT.
    let chunk = 3 * 1024 * 1024;
    let data = bytes(3 * chunk + 17, 4);
    let digest = Digest::sha256(&data);
    let mut location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
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
        assert_eq!(got.status, 202, "{}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.header("range"), Some(format!("0-{}", to - 1).as_str()));
        assert!(got.header("docker-upload-uuid").is_some());
        location = got.header("location").unwrap().to_string();
    }
    let status = t.get(&location, &[]).await;
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some(format!("0-{}", 2 * chunk - 1).as_str()))
    );

    let got = t
        .request(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[(
                "content-range",
                &format!("{}-{}", 2 * chunk, data.len() - 1),
            )],
            &data[2 * chunk..],
        )
        .await;
    assert_eq!(got.status, 201, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        got.header("location"),
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
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );
}

#[tokio::test]
async fn end_5_patch_without_content_range_then_empty_put() {
    let t = TestRegistry::new().await;
    let data = bytes(5000, 5);
    let digest = Digest::sha256(&data);
    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    // skopeo's way: the whole blob in one PATCH, no Content-Range, then PUT with no body.
    let got = t.request(Method::PATCH, &location, &[], &data).await;
    assert_eq!((got.status, got.header("range")), (202, Some("0-4999")));
    let location = got.header("location").unwrap().to_string();
    let got = t
        .request(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(got.status, 201);
    assert_eq!(
        t.download(&blob_path("acme/app", &digest), None).await.1,
        data
    );
}

#[tokio::test]
async fn end_5_out_of_order_chunk_is_416() {
    let t = TestRegistry::new().await;
    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    let got = t
        .request(
            Method::PATCH,
            &location,
            &[("content-range", "0-9")],
            &bytes(10, 6),
        )
        .await;
    assert_eq!(got.status, 202);
    for range in ["0-9", "20-29", "5-14"] {
        let got = t
            .request(
                Method::PATCH,
                &location,
                &[("content-range", range)],
                &bytes(10, 6),
            )
            .await;
        assert_eq!(got.status, 416, "{range}");
    }
    // Nothing of the refused chunks was taken.
    assert_eq!(t.get(&location, &[]).await.header("range"), Some("0-9"));
    let got = t
        .request(
            Method::PATCH,
            &location,
            &[("content-range", "10-12")],
            &bytes(10, 6),
        )
        .await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "SIZE_INVALID")
    );
    let got = t
        .request(
            Method::PATCH,
            &location,
            &[("content-range", "ten-twelve")],
            b"x",
        )
        .await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "BLOB_UPLOAD_INVALID")
    );
}

#[tokio::test]
async fn end_6_wrong_digest_is_digest_invalid_and_drops_the_upload() {
    let t = TestRegistry::new().await;
    let data = bytes(100, 7);
    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    t.request(Method::PATCH, &location, &[], &data).await;
    let wrong = Digest::sha256(b"not these bytes");
    let got = t
        .request(Method::PUT, &format!("{location}?digest={wrong}"), &[], b"")
        .await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "DIGEST_INVALID")
    );
    assert_eq!(t.head(&blob_path("acme/app", &wrong)).await.status, 404);
    assert_eq!(t.get(&location, &[]).await.status, 404);

    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    let got = t.request(Method::PUT, &location, &[], &data).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "DIGEST_INVALID"),
        "no digest"
    );
}

#[tokio::test]
async fn a_request_over_the_chunk_limit_gets_a_clear_413() {
    let t = TestRegistry::new().await;
    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    let too_big = bytes(4 * 1024 * 1024 + 1, 8);
    let got = t.request(Method::PATCH, &location, &[], &too_big).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (413, "SIZE_INVALID")
    );
    assert!(
        got.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("OCI-Chunk-Max-Length")
    );
    assert_eq!(t.get(&location, &[]).await.header("range"), Some("0-0"));
}

#[tokio::test]
async fn end_13_and_14_status_and_cancel() {
    let t = TestRegistry::new().await;
    let location = start(&t, "acme/app")
        .await
        .header("location")
        .unwrap()
        .to_string();
    t.request(Method::PATCH, &location, &[], &bytes(6 * 1024 * 1024, 9))
        .await;
    let got = t.request(Method::DELETE, &location, &[], b"").await;
    assert_eq!(got.status, 204);
    for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        let got = t.request(method.clone(), &location, &[], b"").await;
        assert_eq!(
            (got.status, got.error_code().as_str()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
            "{method}"
        );
    }
    let got = t.get("/v2/acme/app/blobs/uploads/not-a-uuid", &[]).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );
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
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (404, "BLOB_UNKNOWN")
    );
}

#[tokio::test]
async fn end_11_cross_repository_mount_copies_nothing() {
    let t = TestRegistry::new().await;
    let data = bytes(2000, 10);
    let digest = t.seed_blob("acme/base", &data).await;
    let written = t.blob_bytes_written().await;
    let got = t
        .request(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/base"),
            &[],
            b"",
        )
        .await;
    assert_eq!(got.status, 201, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(
        got.header("location"),
        Some(blob_path("acme/app", &digest).as_str())
    );
    assert_eq!(
        got.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
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
    let got = t
        .request(
            Method::POST,
            &format!("/v2/acme/app/blobs/uploads/?mount={missing}&from=acme/base"),
            &[],
            b"",
        )
        .await;
    assert_eq!(got.status, 202);
    assert!(got.header("docker-upload-uuid").is_some());
}

async fn push_tagged(t: &TestRegistry, repo: &str, tags: &[&str]) {
    let empty = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string();
    for tag in tags {
        let got = t
            .put_manifest(
                &format!("/v2/{repo}/manifests/{tag}"),
                OCI_INDEX,
                empty.as_bytes(),
            )
            .await;
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
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (400, "PAGINATION_NUMBER_INVALID")
    );
    let got = t.get("/v2/nobody/here/tags/list", &[]).await;
    assert_eq!(
        (got.status, got.error_code().as_str()),
        (404, "NAME_UNKNOWN")
    );

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
        let put = t
            .put_manifest(
                &format!("/v2/library/tiny/manifests/{digest}"),
                OCI_MANIFEST,
                body.as_bytes(),
            )
            .await;
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

/// Two PATCHes racing on one upload session (each sending a whole chunk from byte 0): one
/// is acknowledged, the other refused, and the upload keeps exactly the acknowledged bytes.
/// Whichever wins, nothing is ever stored under a digest its bytes do not hash to, and a
/// blob another repository holds is never replaced: once, a loser's bytes were stored
/// under the winner's digest, over another repository's blob of that digest.
#[tokio::test]
async fn racing_patches_never_store_a_wrong_byte() {
    let t = TestRegistry::new().await;
    // Another repository's blob, under the digest a racer claims.
    let victim = bytes(3000, 7);
    let victim_digest = t.seed_blob("victim/app", &victim).await;
    // Small chunks wait as pending bytes; after 3 MiB already received, 3 MiB more make a
    // part (a chunk may carry at most 4 MiB, as on Lambda).
    let rounds = [(0, 3000); 12].into_iter().chain([(3 << 20, 3 << 20); 2]);
    for (round, (received, size)) in rounds.enumerate() {
        let prefix = bytes(received, 1);
        let mine = bytes(size, 7);
        let other = bytes(size, 100 + round as u8);
        let session = start(&t, "racer/app").await;
        assert_eq!(session.status, 202);
        let mut location = session.header("location").unwrap().to_string();
        if received > 0 {
            let first = t
                .request(
                    Method::PATCH,
                    &location,
                    &[("content-range", &format!("0-{}", received - 1))],
                    &prefix,
                )
                .await;
            assert_eq!(first.status, 202);
            location = first.header("location").unwrap().to_string();
        }
        let range = format!("{received}-{}", received + size - 1);
        let headers = [("content-range", range.as_str())];
        let (first, second) = tokio::join!(
            t.request(Method::PATCH, &location, &headers, &mine),
            t.request(Method::PATCH, &location, &headers, &other),
        );
        let acked = match (first.status, second.status) {
            (202, 416) => [prefix, mine].concat(),
            (416, 202) => [prefix, other].concat(),
            answered => panic!("round {round}: racing PATCHes answered {answered:?}"),
        };
        let digest = Digest::sha256(&acked);
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = t
            .request(
                Method::PUT,
                &format!("{location}{separator}digest={digest}"),
                &[],
                b"",
            )
            .await;
        assert_eq!(
            done.status,
            201,
            "round {round}: {}",
            String::from_utf8_lossy(&done.body)
        );
        let (status, stored) = t.download(&blob_path("racer/app", &digest), None).await;
        assert_eq!(status, 200);
        assert!(
            digest.matches(&stored),
            "round {round}: the bytes under {digest} do not hash to it"
        );
    }
    let (status, stored) = t
        .download(&blob_path("victim/app", &victim_digest), None)
        .await;
    assert_eq!(status, 200);
    assert!(stored == victim, "the victim's blob was replaced");
}
