//! The manifest routes through their handlers: every status and error code of the seed's
//! behaviour (as corrected in docs/seed.md), with manifests made by real clients.

use http::Method;
use quayside::digest::Digest;
use quayside::manifest::schema1::SignedManifest;
use quayside::manifest::schema1_builder::Schema1Builder;
use quayside_tests::*;
use serde_json::{Value, json};

const ES256_DIGEST: &str =
    "sha256:fc8270262395733bcbece2cc6c202bf29922ab192196c157039fbb295ef60b1a";
const RS256_DIGEST: &str =
    "sha256:533e7bbd24f82a13d3c2fbc62762ce9c85848ace676188fc82b4c86dff1bda87";
const SCHEMA2_DIGEST: &str =
    "sha256:e44e781fea585a898b27801d15a7f93bde29d72afcf9a807e72a4c592d768a0e";
const OCI_DIGEST: &str = "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4";
const INDEX_DIGEST: &str =
    "sha256:bcbefb32c41df96c152d82a06d8fa9421bf644a5e1fae556cb8ec923e68d3a68";

/// The manifest fixtures (`tests/fixtures/manifests`) of the `tiny` image, by file name.
const ES256_FILE: &str = "docker-schema1-es256-skopeo.json";
const RS256_FILE: &str = "docker-schema1-rs256-distribution.json";
const SCHEMA2_FILE: &str = "docker-schema2-manifest.json";
const OCI_FILE: &str = "oci-image-manifest.json";

/// A manifest fixture as it is pushed: its media type and file name.
type Fixture = (&'static str, &'static str);
const ES256: Fixture = (SCHEMA1, ES256_FILE);
const RS256: Fixture = (SCHEMA1, RS256_FILE);
const V2S2: Fixture = (SCHEMA2, SCHEMA2_FILE);
const OCI: Fixture = (OCI_MANIFEST, OCI_FILE);

/// PUTs `fixture` at `path`, as its media type.
async fn put_fixture(t: &TestRegistry, path: &str, (media_type, file): Fixture) -> Answer {
    t.put_manifest(path, media_type, &manifest_fixture(file))
        .await
}

/// Seeds the tiny image's blobs into `repo`, then PUTs `fixture` as `repo:reference`.
async fn seed_and_put(t: &TestRegistry, repo: &str, reference: &str, fixture: Fixture) -> Answer {
    t.seed_tiny_blobs(repo).await;
    put_fixture(t, &format!("/v2/{repo}/manifests/{reference}"), fixture).await
}

/// Pushes the schema1 fixture skopeo signed (ES256), into its own repository.
async fn push_es256(t: &TestRegistry) -> Answer {
    seed_and_put(t, "fixtures/schema1", "tiny", ES256).await
}

/// A registry where the ES256 fixture, its blobs seeded in `repo`, was PUT as
/// `repo:reference` and refused with `400 <code>`, nothing of it (tag `tag`) stored.
async fn es256_refused(repo: &str, reference: &str, code: &str, tag: &str) -> TestRegistry {
    let t = TestRegistry::new().await;
    let put = seed_and_put(&t, repo, reference, ES256).await;
    put.assert_error(400, code);
    assert_not_stored(&t, repo, tag, ES256_DIGEST).await;
    t
}

/// The path of manifest `reference` (a tag or a digest, and any query) of `library/tiny`.
fn tiny_manifest(reference: impl std::fmt::Display) -> String {
    format!("/v2/library/tiny/manifests/{reference}")
}

/// A registry whose `library/tiny` holds the tiny image's blobs, and the OCI fixture's bytes
/// to push there.
async fn library_tiny() -> (TestRegistry, Vec<u8>) {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    (t, manifest_fixture(OCI_FILE))
}

/// A schema1 manifest of `payload` in a JWS made by hand, whose signature does not verify:
/// for the payloads the registry's builder refuses to sign (read before any signature).
fn unsigned_jws(payload: &str) -> Vec<u8> {
    let split = payload.len() - 1;
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let protected = b64(&format!(
        r#"{{"formatLength":{split},"formatTail":"{}"}}"#,
        b64("}")
    ));
    format!(
        r#"{},"signatures":[{{"header":{{"alg":"RS256","jwk":{{"kty":"RSA","n":"AQAB","e":"AQAB"}}}},"signature":"AAAA","protected":"{protected}"}}]}}"#,
        &payload[..split]
    )
    .into_bytes()
}

/// Asserts that nothing of a refused push is visible.
async fn assert_not_stored(t: &TestRegistry, repo: &str, tag: &str, digest: &str) {
    let by_tag = t.get(&format!("/v2/{repo}/manifests/{tag}"), &[]).await;
    assert_eq!(by_tag.status, 404, "tag {tag} must not exist");
    let by_digest = t.get(&format!("/v2/{repo}/manifests/{digest}"), &[]).await;
    assert_eq!(by_digest.status, 404, "manifest {digest} must not exist");
    assert!(t.published().is_empty(), "no event for a refused push");
}

#[tokio::test]
async fn schema1_put_then_get_gives_the_same_bytes_and_digest() {
    let t = TestRegistry::new().await;
    let body = manifest_fixture(ES256_FILE);
    let put = push_es256(&t).await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(ES256_DIGEST));
    assert_eq!(
        put.header("location"),
        Some(format!("/v2/fixtures/schema1/manifests/{ES256_DIGEST}").as_str())
    );

    for reference in ["tiny", ES256_DIGEST] {
        let path = format!("/v2/fixtures/schema1/manifests/{reference}");
        let got = t.get(&path, &SKOPEO_ACCEPT).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, body, "stored bytes unchanged");
        assert_eq!(got.header("content-type"), Some(SCHEMA1));
        assert_eq!(got.header("docker-content-digest"), Some(ES256_DIGEST));
        assert_eq!(
            got.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(
            got.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }

    let head = t.head("/v2/fixtures/schema1/manifests/tiny").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(
        head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(head.header("docker-content-digest"), Some(ES256_DIGEST));

    let events = t.published();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "repo_push");
    assert_eq!(events[0].repository, "fixtures/schema1");
    assert_eq!(events[0].namespace, "fixtures");
    assert_eq!(events[0].updated_tags, ["tiny"]);
    assert_eq!(events[0].digest.as_deref(), Some(ES256_DIGEST));
}

#[tokio::test]
async fn schema1_from_distribution_rs256_is_accepted() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("fixtures/schema2").await;
    let by_digest = format!("/v2/fixtures/schema2/manifests/{RS256_DIGEST}");
    let put = put_fixture(&t, &by_digest, RS256).await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(RS256_DIGEST));
    // Pushed by digest: stored, but no tag moves (the OCI spec; the seed tagged it).
    let by_tag = t.get("/v2/fixtures/schema2/manifests/tiny", &[]).await;
    assert_eq!(by_tag.status, 404);
    assert_eq!(t.get(&by_digest, &[]).await.status, 200);
    assert!(t.published()[0].updated_tags.is_empty());
}

#[tokio::test]
async fn schema1_tag_must_match_the_reference() {
    es256_refused("fixtures/schema1", "other", "TAG_INVALID", "other").await;
}

#[tokio::test]
async fn schema1_name_must_match_the_repository() {
    es256_refused("elsewhere/repo", "tiny", "NAME_INVALID", "tiny").await;
}

#[tokio::test]
async fn put_by_digest_must_match_the_content() {
    let wrong = Digest::sha256(b"something else");
    let t = es256_refused(
        "fixtures/schema1",
        &wrong.to_string(),
        "DIGEST_INVALID",
        "tiny",
    )
    .await;

    let put = seed_and_put(&t, "library/tiny", &wrong.to_string(), OCI).await;
    put.assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn schema1_with_a_changed_payload_byte_is_unverified() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("fixtures/schema1").await;
    let body = String::from_utf8(manifest_fixture(ES256_FILE)).unwrap();
    // One byte of the signed payload: the architecture inside the leaf's v1Compatibility.
    let tampered = body.replacen(
        "\\\"architecture\\\":\\\"amd64\\\"",
        "\\\"architecture\\\":\\\"amd65\\\"",
        1,
    );
    assert_ne!(tampered, body);
    let path = "/v2/fixtures/schema1/manifests/tiny";
    let put = t.put_manifest(path, SCHEMA1, tampered.as_bytes()).await;
    put.assert_error(400, "MANIFEST_UNVERIFIED");
    assert_not_stored(&t, "fixtures/schema1", "tiny", ES256_DIGEST).await;
}

#[tokio::test]
async fn schema1_layers_must_be_linked_blobs() {
    let t = TestRegistry::new().await;
    // Only one of the two layers.
    t.seed_blob("fixtures/schema1", &layout_blob(TINY_LAYER0))
        .await;
    let put = put_fixture(&t, "/v2/fixtures/schema1/manifests/tiny", ES256).await;
    put.assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(
        put.json()["errors"][0]["detail"]["digest"],
        format!("sha256:{TINY_LAYER1}")
    );
    assert_not_stored(&t, "fixtures/schema1", "tiny", ES256_DIGEST).await;
}

/// A schema1 manifest signed by the registry's own key, for the cases no client makes.
async fn signed_schema1(
    t: &TestRegistry,
    name: &str,
    tag: &str,
    layers: &[(Digest, Value)],
) -> Vec<u8> {
    let mut builder = Schema1Builder::new(name, tag, "amd64");
    for (blob, v1) in layers {
        builder.add_layer(blob.clone(), v1.to_string());
    }
    builder
        .build(t.registry.signer.as_ref())
        .await
        .expect("signed")
        .bytes()
        .to_vec()
}

#[tokio::test]
async fn schema1_parent_must_exist_and_layers_must_not_be_empty() {
    let t = TestRegistry::new().await;
    let blob = t.seed_blob("acme/app", b"layer").await;
    let orphan = signed_schema1(
        &t,
        "acme/app",
        "v1",
        &[(
            blob.clone(),
            json!({"id": "a".repeat(64), "parent": "b".repeat(64)}),
        )],
    )
    .await;
    let put = t
        .put_manifest("/v2/acme/app/manifests/v1", SCHEMA1, &orphan)
        .await;
    put.assert_error(400, "MANIFEST_INVALID");
    assert!(put.error_message().contains("Parent not found"));

    // No layers: our builder refuses to sign that, so wrap the payload in a JWS by hand.
    let payload = r#"{"schemaVersion":1,"name":"acme/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let empty = unsigned_jws(payload);
    let put = t
        .put_manifest("/v2/acme/app/manifests/v1", SCHEMA1, &empty)
        .await;
    put.assert_error(400, "MANIFEST_INVALID");
    assert!(put.error_message().contains("no layers"));
    assert_eq!(t.get("/v2/acme/app/manifests/v1", &[]).await.status, 404);
    assert!(t.published().is_empty());
}

#[tokio::test]
async fn schema1_push_synthesizes_images_and_the_tag_names_the_leaf() {
    let t = TestRegistry::new().await;
    let base_blob = t.seed_blob("acme/app", b"base").await;
    let leaf_blob = t.seed_blob("acme/app", b"leaf").await;
    let (base, leaf) = ("b".repeat(64), "c".repeat(64));
    let body = signed_schema1(
        &t,
        "acme/app",
        "v1",
        &[
            (leaf_blob.clone(), json!({"id": leaf, "parent": base, "container_config": {"Cmd": ["/bin/sh", "-c", "echo"]}})),
            (base_blob.clone(), json!({"id": base, "created": "2026-01-01T00:00:00Z"})),
        ],
    )
    .await;
    assert_eq!(
        t.put_manifest("/v2/acme/app/manifests/v1", SCHEMA1, &body)
            .await
            .status,
        201
    );

    let repo = quayside::names::RepositoryName::parse("acme/app").unwrap();
    let chain = quayside::registry::image_chain(t.registry.metadata.as_ref(), &repo, &leaf)
        .await
        .unwrap();
    let ids: Vec<&str> = chain.iter().map(|i| i.docker_id.as_str()).collect();
    assert_eq!(
        ids,
        [leaf.as_str(), base.as_str()],
        "leaf first, then its parent"
    );
    assert_eq!(chain[0].blob, leaf_blob);
    assert_eq!(
        chain[0].command.as_deref(),
        Some(r#"["/bin/sh","-c","echo"]"#)
    );
    assert_eq!(chain[1].created.as_deref(), Some("2026-01-01T00:00:00Z"));

    // A second manifest on top reuses the existing images: only its new leaf is new.
    let top_blob = t.seed_blob("acme/app", b"top").await;
    let top = "d".repeat(64);
    let body = signed_schema1(
        &t,
        "acme/app",
        "v2",
        &[
            (top_blob, json!({"id": top, "parent": leaf})),
            (leaf_blob, json!({"id": leaf, "parent": base})),
            (base_blob, json!({"id": base})),
        ],
    )
    .await;
    assert_eq!(
        t.put_manifest("/v2/acme/app/manifests/v2", SCHEMA1, &body)
            .await
            .status,
        201
    );
    assert_eq!(
        quayside::registry::image_chain(t.registry.metadata.as_ref(), &repo, &top)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn deleting_a_schema1_manifest_keeps_its_tag_which_gets_a_newly_signed_one() {
    let t = TestRegistry::new().await;
    assert_eq!(push_es256(&t).await.status, 201);
    let original = SignedManifest::parse(&manifest_fixture(ES256_FILE)).unwrap();

    let deleted = t
        .delete(&format!("/v2/fixtures/schema1/manifests/{ES256_DIGEST}"))
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(
        t.get(
            &format!("/v2/fixtures/schema1/manifests/{ES256_DIGEST}"),
            &[]
        )
        .await
        .status,
        404
    );

    let regenerated = t
        .get("/v2/fixtures/schema1/manifests/tiny", &SKOPEO_ACCEPT)
        .await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.text());
    assert_eq!(regenerated.header("content-type"), Some(SCHEMA1));
    let manifest = SignedManifest::parse(&regenerated.body).expect("parses");
    manifest.verify().expect("signed by the registry's key");
    assert_eq!(manifest.name(), "fixtures/schema1");
    assert_eq!(manifest.tag(), "tiny");
    let layers = |m: &SignedManifest| -> Vec<(String, String)> {
        m.layers()
            .iter()
            .map(|l| (l.blob_sum.to_string(), l.v1.id.clone()))
            .collect()
    };
    assert_eq!(
        layers(&manifest),
        layers(&original),
        "same layers, leaf first"
    );
    let digest = manifest.digest().to_string();
    assert_ne!(digest, ES256_DIGEST, "a new manifest");
    assert_eq!(
        regenerated.header("docker-content-digest"),
        Some(digest.as_str())
    );

    // It was stored with the tag: by digest, and the same bytes again by tag.
    let by_digest = t
        .get(&format!("/v2/fixtures/schema1/manifests/{digest}"), &[])
        .await;
    assert_eq!(by_digest.status, 200);
    assert_eq!(by_digest.body, regenerated.body);
    let again = t.get("/v2/fixtures/schema1/manifests/tiny", &[]).await;
    assert_eq!(again.body, regenerated.body);

    let kinds: Vec<String> = t.published().iter().map(|e| e.event.clone()).collect();
    assert_eq!(kinds, ["repo_push", "manifest_delete"]);
    assert!(t.published()[1].updated_tags.is_empty(), "the tag was kept");
}

#[tokio::test]
async fn every_descriptor_format_round_trips() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    for (file, media_type, digest, tag) in [
        (SCHEMA2_FILE, SCHEMA2, SCHEMA2_DIGEST, "v2s2"),
        (OCI_FILE, OCI_MANIFEST, OCI_DIGEST, "oci"),
    ] {
        let body = manifest_fixture(file);
        let put = t.put_manifest(&tiny_manifest(tag), media_type, &body).await;
        assert_eq!(put.status, 201, "{file}: {}", put.text());
        assert_eq!(put.header("docker-content-digest"), Some(digest));
        for reference in [tag, digest] {
            let got = t.get(&tiny_manifest(reference), &SKOPEO_ACCEPT).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.body, body);
            assert_eq!(got.header("content-type"), Some(media_type));
            assert_eq!(got.header("docker-content-digest"), Some(digest));
        }
    }
}

#[tokio::test]
async fn an_index_needs_its_children_in_the_repository() {
    let t = TestRegistry::new().await;
    let index = manifest_fixture("oci-image-index.json");
    let put = t
        .put_manifest("/v2/library/multi/manifests/latest", OCI_INDEX, &index)
        .await;
    put.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert_not_stored(&t, "library/multi", "latest", INDEX_DIGEST).await;

    // Push the two platform manifests (their blobs are in the layout), then the index.
    let parsed: Value = serde_json::from_slice(&index).unwrap();
    for child in parsed["manifests"].as_array().unwrap() {
        let hex = child["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let body = layout_blob(hex);
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        let blobs =
            std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
        for blob in blobs {
            let hex = blob["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            t.seed_blob("library/multi", &layout_blob(hex)).await;
        }
        let path = format!("/v2/library/multi/manifests/sha256:{hex}");
        let put = t.put_manifest(&path, OCI_MANIFEST, &body).await;
        assert_eq!(put.status, 201);
    }
    let put = t
        .put_manifest("/v2/library/multi/manifests/latest", OCI_INDEX, &index)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(INDEX_DIGEST));
    let got = t
        .get("/v2/library/multi/manifests/latest", &SKOPEO_ACCEPT)
        .await;
    assert_eq!((got.status, got.body), (200, index));

    // A Docker manifest list over children the repository lacks.
    let list = manifest_fixture("docker-manifest-list.json");
    let put = t
        .put_manifest("/v2/library/multi/manifests/list", MANIFEST_LIST, &list)
        .await;
    put.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn image_manifests_need_their_blobs() {
    let t = TestRegistry::new().await;
    t.seed_blob("library/tiny", &layout_blob(TINY_CONFIG)).await;
    for (file, media_type, digest) in [
        (SCHEMA2_FILE, SCHEMA2, SCHEMA2_DIGEST),
        (OCI_FILE, OCI_MANIFEST, OCI_DIGEST),
    ] {
        let put = put_fixture(&t, "/v2/library/tiny/manifests/latest", (media_type, file)).await;
        put.assert_error_for(400, "MANIFEST_BLOB_UNKNOWN", file);
        assert_eq!(
            put.json()["errors"][0]["detail"]["digest"],
            format!("sha256:{TINY_LAYER0}")
        );
        assert_not_stored(&t, "library/tiny", "latest", digest).await;
    }
    // Linked to another repository is not enough.
    t.seed_tiny_blobs("other/repo").await;
    let put = put_fixture(&t, "/v2/library/tiny/manifests/latest", OCI).await;
    assert_eq!(put.error_code(), "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn bad_bodies_are_manifest_invalid_and_store_nothing() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let cases: [(&str, &[u8]); 8] = [
        (OCI_MANIFEST, b"not json"),
        (OCI_MANIFEST, b"{\"schemaVersion\":2,\"config\":{\"digest\":5}}"),
        (OCI_MANIFEST, b"{\"schemaVersion\":99999999999999999999999}"),
        (SCHEMA2, b"[]"),
        (SCHEMA1, b"{\"schemaVersion\":1}"),
        (SCHEMA1, b"{\"schemaVersion\":1,\"name\":\"library/tiny\",\"tag\":\"x\",\"fsLayers\":[],\"history\":[],\"signatures\":[{\"protected\":\"e30\",\"signature\":\"\",\"header\":{}}]}"),
        ("application/json", b"{}"),
        (OCI_INDEX, b"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"md5:abc\",\"size\":1}]}"),
    ];
    for (content_type, body) in cases {
        let put = t
            .put_manifest("/v2/library/tiny/manifests/x", content_type, body)
            .await;
        assert_eq!(
            put.status,
            400,
            "{content_type} {}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            put.error_code(),
            "MANIFEST_INVALID",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(t.get("/v2/library/tiny/manifests/x", &[]).await.status, 404);
    assert!(t.published().is_empty());
}

#[tokio::test]
async fn a_manifest_over_4_mib_is_refused_with_413() {
    let t = TestRegistry::new().await;
    let mut body = b"{\"schemaVersion\":2,\"annotations\":{\"x\":\"".to_vec();
    body.resize(4 * 1024 * 1024 + 1, b'a');
    t.put_manifest("/v2/library/big/manifests/x", OCI_MANIFEST, &body)
        .await
        .assert_error(413, "MANIFEST_INVALID");
}

#[tokio::test]
async fn unknown_names_tags_and_digests() {
    let t = TestRegistry::new().await;
    let unknown_repo = t.get("/v2/nobody/here/manifests/latest", &[]).await;
    unknown_repo.assert_error(404, "NAME_UNKNOWN");

    seed_and_put(&t, "library/tiny", "latest", OCI).await;
    for path in [
        "/v2/library/tiny/manifests/missing".to_string(),
        tiny_manifest(Digest::sha256(b"none")),
    ] {
        let got = t.get(&path, &[]).await;
        got.assert_error_for(404, "MANIFEST_UNKNOWN", &path);
        let head = t.head(&path).await;
        assert_eq!(head.status, 404);
        assert!(head.body.is_empty());
        let deleted = t.delete(&path).await;
        deleted.assert_error(404, "MANIFEST_UNKNOWN");
    }
}

#[tokio::test]
async fn malformed_names_and_references_are_refused() {
    let t = TestRegistry::new().await;
    for (path, code) in [
        ("/v2/Library/tiny/manifests/latest", "NAME_INVALID"),
        ("/v2/library/ti..ny/manifests/latest", "NAME_INVALID"),
        ("/v2/library/tiny/manifests/.hidden", "TAG_INVALID"),
        ("/v2/library/tiny/manifests/sha256:abc", "DIGEST_INVALID"),
        (
            "/v2/library/tiny/manifests/md5:d41d8cd98f00b204e9800998ecf8427e",
            "DIGEST_INVALID",
        ),
    ] {
        // No manifest can be found by a reference that is not a tag: a GET or HEAD of one
        // is `404 MANIFEST_UNKNOWN`, as distribution and the conformance suite have it.
        let (status, code_got) = match code {
            "TAG_INVALID" => (404, "MANIFEST_UNKNOWN"),
            other => (400, other),
        };
        let got = t.get(path, &[]).await;
        got.assert_error_for(status, code_got, path);
        assert_eq!(t.head(path).await.status, status, "{path}");
        let put = t.put_manifest(path, OCI_MANIFEST, b"{}").await;
        assert_eq!(put.error_code(), code, "{path}");
    }
}

#[tokio::test]
async fn accept_negotiation() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let oci = manifest_fixture(OCI_FILE);
    t.put_manifest("/v2/library/tiny/manifests/oci", OCI_MANIFEST, &oci)
        .await;

    // Comma lists with parameters, several headers, wildcards, none at all.
    for accept in [
        vec![
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json;q=0.9",
        ],
        vec![SCHEMA2, OCI_MANIFEST],
        vec!["*/*"],
        vec![],
    ] {
        let got = t.get("/v2/library/tiny/manifests/oci", &accept).await;
        assert_eq!(got.status, 200, "{accept:?}");
        assert_eq!(got.body, oci);
    }
    // distribution's answer to a client that cannot read OCI.
    let got = t.get("/v2/library/tiny/manifests/oci", &[SCHEMA2]).await;
    got.assert_error(404, "MANIFEST_UNKNOWN");
    assert!(
        got.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(OCI_MANIFEST)
    );
    // By digest, even a schema1 client gets no conversion: a digest names exact bytes.
    let got = t.get(&tiny_manifest(OCI_DIGEST), &[SCHEMA1]).await;
    assert_eq!(got.status, 404);
}

#[tokio::test]
async fn a_schema1_client_gets_schema2_converted_as_distribution_does() {
    let t = TestRegistry::new().await;
    let put = seed_and_put(&t, "fixtures/schema2", "tiny", V2S2).await;
    let tiny = "/v2/fixtures/schema2/manifests/tiny";
    assert_eq!(put.status, 201);

    let got = t.get(tiny, &[SCHEMA1]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type"), Some(SCHEMA1));
    let converted = SignedManifest::parse(&got.body).unwrap();
    converted.verify().expect("signed by the registry");
    // distribution converted the same image: the payloads (what the digest covers) agree.
    let theirs = SignedManifest::parse(&manifest_fixture(RS256_FILE)).unwrap();
    assert_eq!(converted.payload(), theirs.payload());
    assert_eq!(converted.digest().to_string(), RS256_DIGEST);
    assert_eq!(got.header("docker-content-digest"), Some(RS256_DIGEST));

    // The same for an index whose linux/amd64 child is that image.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_LIST,
        "manifests": [{"mediaType": SCHEMA2, "digest": SCHEMA2_DIGEST, "size": 1, "platform": {"architecture": "amd64", "os": "linux"}}]
    })
    .to_string();
    let put = t.put_manifest(tiny, MANIFEST_LIST, index.as_bytes()).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let got = t.get(tiny, &[SCHEMA1]).await;
    assert_eq!(got.header("docker-content-digest"), Some(RS256_DIGEST));
    // And a schema2-only client is given the platform manifest itself.
    let got = t.get(tiny, &[SCHEMA2]).await;
    assert_eq!(got.header("docker-content-digest"), Some(SCHEMA2_DIGEST));
}

#[tokio::test]
async fn delete_by_digest_removes_its_tags_and_delete_by_tag_only_the_tag() {
    let (t, body) = library_tiny().await;
    for tag in ["a", "b"] {
        t.put_manifest(&tiny_manifest(tag), OCI_MANIFEST, &body)
            .await;
    }
    assert_eq!(t.delete("/v2/library/tiny/manifests/a").await.status, 202);
    assert_eq!(t.get("/v2/library/tiny/manifests/a", &[]).await.status, 404);
    assert_eq!(t.get("/v2/library/tiny/manifests/b", &[]).await.status, 200);
    assert_eq!(t.get(&tiny_manifest(OCI_DIGEST), &[]).await.status, 200);

    assert_eq!(t.delete(&tiny_manifest(OCI_DIGEST)).await.status, 202);
    assert_eq!(t.get(&tiny_manifest(OCI_DIGEST), &[]).await.status, 404);
    assert_eq!(t.get("/v2/library/tiny/manifests/b", &[]).await.status, 404);
    let events = t.published();
    let last = events.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.updated_tags.clone()),
        ("manifest_delete", vec!["b".to_string()])
    );
}

#[tokio::test]
async fn a_later_push_moves_the_tag() {
    let t = TestRegistry::new().await;
    seed_and_put(&t, "library/tiny", "latest", OCI).await;
    put_fixture(&t, "/v2/library/tiny/manifests/latest", V2S2).await;
    let got = t
        .get("/v2/library/tiny/manifests/latest", &SKOPEO_ACCEPT)
        .await;
    assert_eq!(got.header("docker-content-digest"), Some(SCHEMA2_DIGEST));
    // The first manifest is still there by digest.
    assert_eq!(t.get(&tiny_manifest(OCI_DIGEST), &[]).await.status, 200);
}

#[tokio::test]
async fn a_manifest_with_a_subject_answers_oci_subject() {
    let t = TestRegistry::new().await;
    seed_and_put(&t, "library/tiny", "latest", OCI).await;
    let empty = t.seed_blob("library/tiny", b"{}").await;
    let sbom = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": OCI_DIGEST, "size": 557}
    })
    .to_string();
    let digest = Digest::sha256(sbom.as_bytes());
    let put = t
        .put_manifest(&tiny_manifest(digest), OCI_MANIFEST, sbom.as_bytes())
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("oci-subject"), Some(OCI_DIGEST));
}

#[tokio::test]
async fn sha512_references_are_honoured() {
    let (t, body) = library_tiny().await;
    let digest = quayside::digest::Algorithm::Sha512.digest(&body);
    let path = tiny_manifest(&digest);
    let put = t.put_manifest(&path, OCI_MANIFEST, &body).await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(
        put.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert_eq!(t.get(&path, &[]).await.body, body);
}

#[tokio::test]
async fn mangled_manifests_never_get_a_5xx() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("fixtures/schema1").await;
    for (file, media_type) in [
        (ES256_FILE, SCHEMA1),
        (SCHEMA2_FILE, SCHEMA2),
        ("oci-image-index.json", OCI_INDEX),
    ] {
        let body = manifest_fixture(file);
        // Truncations and single-byte changes all through the body.
        let step = (body.len() / 60).max(1);
        for at in (0..body.len()).step_by(step) {
            let mut flipped = body.clone();
            flipped[at] ^= 0x20;
            for mangled in [&body[..at], &flipped[..]] {
                for content_type in [media_type, "application/octet-stream"] {
                    let put = t
                        .put_manifest("/v2/fixtures/schema1/manifests/tiny", content_type, mangled)
                        .await;
                    assert!(put.status < 500, "{file} at {at}: {}", put.text());
                }
            }
        }
    }
}

#[tokio::test]
async fn a_schema1_client_gets_404_for_an_image_with_no_schema1_form() {
    // An OCI image whose config has no history cannot be converted to schema1: a client
    // that accepts schema1 only is told the manifest is not there in a form it takes (404),
    // as distribution answers it, not that its GET was bad.
    let t = TestRegistry::new().await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = t.seed_blob("acme/nohistory", config).await;
    let layer = t.seed_blob("acme/nohistory", b"a layer").await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 7}]
    })
    .to_string();
    let path = "/v2/acme/nohistory/manifests/v1";
    let put = t
        .put_manifest(path, OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    for accept in [
        &[SCHEMA1][..],
        &["application/vnd.docker.distribution.manifest.v1+json"],
    ] {
        let got = t.get(path, accept).await;
        assert_eq!(
            (got.status, got.error_code().as_str()),
            (404, "MANIFEST_UNKNOWN"),
            "{}",
            got.text()
        );
        let head = t
            .request(Method::HEAD, path, &[("accept", accept[0])], b"")
            .await;
        assert_eq!(head.status, 404);
    }
    // The image itself is served to a client that takes it.
    let got = t.get(path, &[OCI_MANIFEST]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, manifest.as_bytes());
}

#[tokio::test]
async fn descriptor_sizes_over_int64_are_manifest_invalid() {
    // OCI sizes are int64: 2^63 or more is refused in every descriptor format, and nothing
    // is stored; 2^63-1 itself is a size (the blob's link is checked, not its length).
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let fixture: Value = serde_json::from_slice(&manifest_fixture(OCI_FILE)).unwrap();
    for (what, pointer) in [("config", "/config/size"), ("layer", "/layers/0/size")] {
        for media_type in [OCI_MANIFEST, SCHEMA2] {
            let mut manifest = fixture.clone();
            manifest["mediaType"] = json!(media_type);
            if media_type == SCHEMA2 {
                manifest["config"]["mediaType"] =
                    json!("application/vnd.docker.container.image.v1+json");
            }
            let text = manifest.to_string();
            let too_big = text.replacen(
                &format!("\"size\":{}", manifest.pointer(pointer).unwrap()),
                "\"size\":9223372036854775808",
                1,
            );
            assert_ne!(text, too_big, "{what}");
            let put = t
                .put_manifest(
                    "/v2/library/tiny/manifests/big",
                    media_type,
                    too_big.as_bytes(),
                )
                .await;
            put.assert_error_for(400, "MANIFEST_INVALID", format_args!("{what} {media_type}"));
        }
    }
    let index = |size: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{OCI_DIGEST}","size":{size}}}]}}"#
        )
    };
    for size in ["9223372036854775808", "18446744073709551615"] {
        let put = t
            .put_manifest(
                "/v2/library/tiny/manifests/big",
                OCI_INDEX,
                index(size).as_bytes(),
            )
            .await;
        put.assert_error_for(400, "MANIFEST_INVALID", size);
    }
    assert_eq!(
        t.get("/v2/library/tiny/manifests/big", &[]).await.status,
        404
    );
    assert!(t.published().is_empty());
    // The largest int64 is a size.
    let mut manifest = fixture.clone();
    manifest["layers"][0]["size"] = json!(i64::MAX);
    let put = t
        .put_manifest(
            "/v2/library/tiny/manifests/big",
            OCI_MANIFEST,
            manifest.to_string().as_bytes(),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
}

#[tokio::test]
async fn schema1_v1_ids_must_be_64_lowercase_hex() {
    let t = TestRegistry::new().await;
    let blob = t.seed_blob("acme/app", b"layer").await;
    let good = "c".repeat(64);
    // The registry's builder makes none of these: a payload in a JWS by hand (the id is
    // checked as the manifest is read, before any signature).
    let jws = |v1: &Value| {
        let payload = json!({
            "schemaVersion": 1, "name": "acme/app", "tag": "v1", "architecture": "amd64",
            "fsLayers": [{"blobSum": blob.to_string()}],
            "history": [{"v1Compatibility": v1.to_string()}],
        });
        unsigned_jws(&payload.to_string())
    };
    for (what, v1) in [
        ("short", json!({"id": "abc"})),
        ("upper", json!({"id": "C".repeat(64)})),
        ("digest form", json!({"id": format!("sha256:{good}")})),
        ("path", json!({"id": format!("../{}", "c".repeat(61))})),
        ("parent", json!({"id": good, "parent": "base"})),
    ] {
        let put = t
            .put_manifest("/v2/acme/app/manifests/v1", SCHEMA1, &jws(&v1))
            .await;
        put.assert_error_for(400, "MANIFEST_INVALID", what);
    }
    assert_eq!(t.get("/v2/acme/app/manifests/v1", &[]).await.status, 404);
    let body = signed_schema1(&t, "acme/app", "v1", &[(blob.clone(), json!({"id": good}))]).await;
    let put = t
        .put_manifest("/v2/acme/app/manifests/v1", SCHEMA1, &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
}

#[tokio::test]
async fn tag_parameters_tag_a_push_by_digest_in_the_same_write() {
    // The OCI dev spec: PUT by digest with ?tag=…, each tag applied and answered in OCI-Tag.
    let (t, body) = library_tiny().await;
    let put = t
        .put_manifest(
            &format!(
                "/v2/library/tiny/manifests/{OCI_DIGEST}?tag=1.2.3&tag=1.2&tag=latest&tag=1.2"
            ),
            OCI_MANIFEST,
            &body,
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(OCI_DIGEST));
    let answered: Vec<&str> = put
        .headers
        .get_all("oci-tag")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(str::trim)
        .collect();
    assert_eq!(answered, ["1.2.3", "1.2", "latest"]);
    for tag in ["1.2.3", "1.2", "latest"] {
        let got = t.get(&tiny_manifest(tag), &[OCI_MANIFEST]).await;
        assert_eq!(got.status, 200, "{tag}");
        assert_eq!(got.body, body);
    }
    let list = t.get("/v2/library/tiny/tags/list", &[]).await;
    assert_eq!(list.json()["tags"], json!(["1.2", "1.2.3", "latest"]));
    // One push, one event, naming every tag.
    let events = t.published();
    assert_eq!(events.len(), 1);
    let mut updated = events[0].updated_tags.clone();
    updated.sort();
    assert_eq!(updated, ["1.2", "1.2.3", "latest"]);
    // Without parameters a push by digest still tags nothing and answers no OCI-Tag.
    let again = t
        .put_manifest(&tiny_manifest(OCI_DIGEST), OCI_MANIFEST, &body)
        .await;
    assert_eq!(again.status, 201);
    assert!(again.header("oci-tag").is_none());
}

#[tokio::test]
async fn a_refused_push_with_tag_parameters_tags_nothing() {
    let (t, body) = library_tiny().await;
    let path = |query: &str| format!("/v2/library/tiny/manifests/{OCI_DIGEST}?{query}");
    // An invalid tag among valid ones: TAG_INVALID, nothing stored.
    let put = t
        .put_manifest(&path("tag=good&tag=b%2Fad"), OCI_MANIFEST, &body)
        .await;
    put.assert_error(400, "TAG_INVALID");
    // Too many tags: 414, as the spec allows.
    let many: Vec<String> = (0..33).map(|i| format!("tag=t{i}")).collect();
    let put = t
        .put_manifest(&path(&many.join("&")), OCI_MANIFEST, &body)
        .await;
    put.assert_error(414, "TAG_INVALID");
    // A digest that does not match: nothing tagged either.
    let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let wrong_digest = tiny_manifest(format!("{wrong}?tag=good"));
    let put = t.put_manifest(&wrong_digest, OCI_MANIFEST, &body).await;
    assert_eq!(put.error_code(), "DIGEST_INVALID");
    // Blobs missing in another repository: nothing tagged.
    let elsewhere = format!("/v2/library/other/manifests/{OCI_DIGEST}?tag=good");
    let put = t.put_manifest(&elsewhere, OCI_MANIFEST, &body).await;
    assert_eq!(put.error_code(), "MANIFEST_BLOB_UNKNOWN");
    for repo in ["library/tiny", "library/other"] {
        assert_eq!(
            t.get(&format!("/v2/{repo}/manifests/good"), &[])
                .await
                .status,
            404
        );
    }
    assert!(t.published().is_empty());
    // Thirty-two is within the limit.
    let many: Vec<String> = (0..32).map(|i| format!("tag=t{i}")).collect();
    let put = t
        .put_manifest(&path(&many.join("&")), OCI_MANIFEST, &body)
        .await;
    assert_eq!(put.status, 201);
    assert_eq!(put.headers.get_all("oci-tag").iter().count(), 32);
}

#[tokio::test]
async fn a_sha512_push_by_digest_with_tag_parameters_keeps_its_digest_by_tag() {
    // What the dev conformance suite does for sha512 content: push by digest, tags as
    // parameters. The tags answer the sha512 digest; a push by tag is named in sha256.
    let (t, body) = library_tiny().await;
    let digest = quayside::digest::Algorithm::Sha512
        .digest(&body)
        .to_string();
    let by_digest = tiny_manifest(format!("{digest}?tag=wide"));
    let put = t.put_manifest(&by_digest, OCI_MANIFEST, &body).await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(put.header("oci-tag"), Some("wide"));
    let got = t.get("/v2/library/tiny/manifests/wide", &[]).await;
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
    let by_tag = t
        .put_manifest("/v2/library/tiny/manifests/plain", OCI_MANIFEST, &body)
        .await;
    assert_eq!(by_tag.header("docker-content-digest"), Some(OCI_DIGEST));
}

#[tokio::test]
async fn schema1_tag_parameters_must_match_the_signed_tag() {
    let t = TestRegistry::new().await;
    let put = push_es256(&t).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let digest = put.header("docker-content-digest").unwrap().to_string();
    let body = fixture("manifests/docker-schema1-es256-skopeo.json");
    let repo_path = put
        .header("location")
        .unwrap()
        .split("/manifests/")
        .next()
        .unwrap()
        .to_string();
    let tagged = |tag: &str| format!("{repo_path}/manifests/{digest}?tag={tag}");
    let other = t.put_manifest(&tagged("other"), SCHEMA1, &body).await;
    other.assert_error(400, "TAG_INVALID");
    let same = t.put_manifest(&tagged("tiny"), SCHEMA1, &body).await;
    assert_eq!(same.status, 201, "{}", same.text());
    assert_eq!(same.header("oci-tag"), Some("tiny"));
}
