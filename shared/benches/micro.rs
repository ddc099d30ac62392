//! Micro-benchmarks of the CPU work behind a push and a pull (`cargo bench -p quayside`):
//! schema1 parse + signature check, schema2/OCI parse and validation, SHA-256 of a 4 MiB
//! manifest body, a schema1 JWS built and signed with the local key, and the whole
//! fetch-manifest route over the embedded backend (no network: the gate, the handler, the
//! registry, redb and the response). Fixtures are the ones real clients made, in
//! `tests/fixtures/manifests`. Not part of the test command: numbers, no assertions.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lambda_http::{Body, Request, RequestExt};
use quayside::digest::{Algorithm, Digest};
use quayside::manifest::Manifest;
use quayside::manifest::schema1::SignedManifest;
use quayside::manifest::schema1_builder::Schema1Builder;
use quayside::names::{Reference, RepositoryName};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn fixture(name: &str) -> Bytes {
    let path = fixtures().join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
        .into()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn schema1_parse_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("schema1 parse + verify");
    for (name, file) in [
        (
            "ES256 (skopeo)",
            "manifests/docker-schema1-es256-skopeo.json",
        ),
        (
            "RS256 (distribution)",
            "manifests/docker-schema1-rs256-distribution.json",
        ),
    ] {
        let body = fixture(file);
        group.bench_function(name, |b| {
            b.iter(|| {
                let signed = SignedManifest::parse(black_box(&body)).expect("parses");
                signed.verify().expect("verifies");
                signed
            })
        });
    }
    group.finish();
}

fn parse_and_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("manifest parse + validate");
    for (name, file, content_type) in [
        (
            "docker schema2",
            "manifests/docker-schema2-manifest.json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        (
            "OCI image manifest",
            "manifests/oci-image-manifest.json",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "docker manifest list",
            "manifests/docker-manifest-list.json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
        (
            "OCI image index",
            "manifests/oci-image-index.json",
            "application/vnd.oci.image.index.v1+json",
        ),
    ] {
        let body = fixture(file);
        group.bench_function(name, |b| {
            b.iter(|| {
                let manifest = Manifest::parse(
                    Some(content_type),
                    black_box(body.clone()),
                    Algorithm::Sha256,
                )
                .expect("parses");
                // What a push checks next: the blobs and children it references.
                black_box((
                    manifest.blobs(),
                    manifest.child_manifests(),
                    manifest.subject(),
                ))
            })
        });
    }
    group.finish();
}

fn sha256_4mib(c: &mut Criterion) {
    let body: Vec<u8> = (0..quayside::manifest::MAX_MANIFEST_BYTES)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("sha256 of a 4 MiB manifest body", |b| {
        b.iter(|| Digest::sha256(black_box(&body)))
    });
    group.finish();
}

fn jws_build_and_sign(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // The key is made once, as registry-local makes it at first start.
    let signer = quayside::embedded::KeyFileSigner::open(&dir.path().join("signing-key.pem"))
        .expect("signing key");
    let rt = runtime();
    let v1 = r#"{"id":"4c3ed4a8b6fb9d2e7e1fa8bc3c3d1f7f8d7e36f7c0e1a4a4d3c9a8bd7b0bd9d1","created":"2024-01-01T00:00:00Z","container_config":{"Cmd":[""]}}"#;
    let mut builder = Schema1Builder::new("acme/tiny", "latest", "amd64");
    builder.add_layer(Digest::sha256(b"layer"), v1.to_string());
    c.bench_function("schema1 JWS build + sign (RS256, local key)", |b| {
        b.iter(|| rt.block_on(builder.build(&signer)).expect("signs"))
    });
}

/// The `tiny` image of the OCI layout fixture, pushed by tag into an embedded registry.
struct Seeded {
    registry: quayside::registry::Registry,
    digest: Digest,
    _dir: tempfile::TempDir,
}

fn seeded(rt: &tokio::runtime::Runtime) -> Seeded {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = quayside::backend::open_embedded(dir.path()).expect("embedded backend");
    let repo = RepositoryName::parse("acme/tiny").expect("name");
    let layout = fixtures().join("oci-layout/blobs/sha256");
    let manifest_hex = "2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4";
    rt.block_on(async {
        for hex in [
            "fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d",
            "24a863956fae3a40fb5b94126d87434c1f5fba66a4569ba3db6b9a37f26416c4",
            "f2e9a1681beca57f3d4744cc55ce690d3eb4ae9d90c58a607827a0f47fd50f0e",
        ] {
            let bytes = Bytes::from(std::fs::read(layout.join(hex)).expect("layout blob"));
            let digest = Digest::sha256(&bytes);
            registry
                .blobs
                .put(&digest, bytes.clone())
                .await
                .expect("put");
            registry
                .metadata
                .link_blob(&repo, &digest, bytes.len() as u64)
                .await
                .expect("link");
        }
        let body = Bytes::from(std::fs::read(layout.join(manifest_hex)).expect("manifest"));
        let pushed = registry
            .put_manifest(
                &repo,
                &Reference::parse("latest").expect("tag"),
                &[],
                Some("application/vnd.oci.image.manifest.v1+json"),
                body,
            )
            .await
            .expect("push");
        Seeded {
            registry,
            digest: pushed.digest,
            _dir: dir,
        }
    })
}

fn manifest_request(method: http::Method, reference: &str) -> Request {
    let params: HashMap<String, String> = [
        ("namespace", "acme"),
        ("repo", "tiny"),
        ("reference", reference),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    http::Request::builder()
        .method(method)
        .uri(format!("/v2/acme/tiny/manifests/{reference}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(Body::Empty)
        .expect("request")
        .with_path_parameters(params)
}

fn fetch_manifest_handler(c: &mut Criterion) {
    let rt = runtime();
    let seeded = seeded(&rt);
    let digest = seeded.digest.to_string();
    // Through the route, as registry-local and the Lambda function serve it: the gate (open
    // here, as registry-local without --auth), then the handler.
    let route = quayside::http::route("fetch-manifest").expect("fetch-manifest route");
    let mut group = c.benchmark_group("fetch-manifest route (embedded)");
    for (name, method, reference) in [
        ("GET by tag", http::Method::GET, "latest"),
        ("GET by digest", http::Method::GET, digest.as_str()),
        ("HEAD by tag", http::Method::HEAD, "latest"),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || manifest_request(method.clone(), reference),
                |req| {
                    let response = rt.block_on(route.serve(&seeded.registry, req));
                    assert_eq!(response.status(), 200);
                    response
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    schema1_parse_verify,
    parse_and_validate,
    sha256_4mib,
    jws_build_and_sign,
    fetch_manifest_handler
);
criterion_main!(benches);
