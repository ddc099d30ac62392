//! End to end with a real client: skopeo (the Debian package) copies the fixture OCI layout
//! into the registry, served over HTTP by registry-local's router on this test's backend,
//! and back out: as OCI, Docker schema2, schema1, and the multi-platform index; with a blob
//! larger than one S3 part; and a second repository that mounts instead of copying.

use quayside::digest::Digest;
use quayside::manifest::schema1::SignedManifest;
use quayside_tests::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The credentials file of each address served by a deployment (tokens always on there),
/// for skopeo's `REGISTRY_AUTH_FILE`.
static AUTH_FILES: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Serves the test's registry on a free port; returns `host:port`. On the `deployment`
/// backend, the deployment's address, where skopeo logs in as its client user, who may
/// create repositories in namespace `e2e`.
async fn serve(t: &TestRegistry) -> String {
    if let Some(deployment) = &t.deployment {
        let addr = deployment.addr().await;
        deployment.allow_create(&t.access, "e2e").await;
        let file = deployment.client_auth_file().await;
        AUTH_FILES.lock().unwrap().push((addr.clone(), file));
        return addr;
    }
    let mut registry = t.registry.clone();
    // skopeo sends a whole layer in one PATCH: registry-local takes that, Lambda cannot.
    registry.limits.max_chunk_bytes = registry_local::DEFAULT_MAX_CHUNK_BYTES;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(registry_local::serve(listener, registry));
    addr
}

/// Runs skopeo, failing the test with its output if it fails.
async fn skopeo(args: Vec<String>) -> String {
    let output = skopeo_output(args.clone()).await;
    assert!(
        output.status.success(),
        "skopeo {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs skopeo (logged in to a deployment it names); returns its output, whatever it is.
async fn skopeo_output(args: Vec<String>) -> std::process::Output {
    let auth_file = AUTH_FILES
        .lock()
        .unwrap()
        .iter()
        .find(|(addr, _)| args.iter().any(|a| a.contains(&format!("//{addr}/"))))
        .map(|(_, file)| file.clone());
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new("skopeo");
        if let Some(file) = auth_file {
            command.env("REGISTRY_AUTH_FILE", file);
        }
        command
            .arg("--insecure-policy")
            .args(&args)
            .output()
            .expect("skopeo is installed (tests/run installs it)")
    })
    .await
    .expect("skopeo ran")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Copies `from` (any of skopeo's transports) to the registry's image `to`, `flags` first.
async fn push(flags: &[&str], from: &str, to: &str) {
    skopeo(args(
        &[&["copy", "--dest-tls-verify=false"], flags, &[from, to]].concat(),
    ))
    .await;
}

/// Pulls `reference` into a `dir:` folder and returns it: the manifest exactly as served,
/// and each blob under its hex digest.
async fn pull_dir(addr: &str, reference: &str, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    skopeo(args(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{addr}/{reference}"),
        &format!("dir:{}", out.display()),
    ]))
    .await;
    out
}

fn sha256_file(path: &Path) -> String {
    Digest::sha256(&std::fs::read(path).unwrap()).to_string()
}

/// Every blob file of a `dir:` copy hashes to its name.
fn assert_blobs_intact(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            assert_eq!(sha256_file(&path), format!("sha256:{name}"), "blob {name}");
        }
    }
}

#[tokio::test]
async fn skopeo_round_trips_oci_schema2_schema1_and_the_index() {
    let t = TestRegistry::new().await;
    let addr = serve(&t).await;
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout_copy(tmp.path());
    let dest = |repo: &str, tag: &str| format!("docker://{addr}/{repo}:{tag}");
    let tiny = format!("oci:{layout}:tiny");

    // As OCI: the same manifest bytes come back. As Docker schema2: the digest skopeo made
    // against distribution for the fixtures.
    for (flags, name, digest) in [
        (
            &[][..],
            "oci",
            "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4",
        ),
        (
            &["--format", "v2s2"],
            "v2s2",
            "sha256:e44e781fea585a898b27801d15a7f93bde29d72afcf9a807e72a4c592d768a0e",
        ),
    ] {
        push(flags, &tiny, &dest(&format!("e2e/{name}"), "tiny")).await;
        let out = pull_dir(&addr, &format!("e2e/{name}:tiny"), tmp.path(), name).await;
        assert_eq!(sha256_file(&out.join("manifest.json")), digest, "{name}");
        assert_blobs_intact(&out);
    }

    // As schema1, signed by skopeo (ES256), verified by the registry on push.
    push(&["--format", "v2s1"], &tiny, &dest("e2e/v2s1", "tiny")).await;
    let out = pull_dir(&addr, "e2e/v2s1:tiny", tmp.path(), "v2s1").await;
    let pulled = std::fs::read(out.join("manifest.json")).unwrap();
    let manifest = SignedManifest::parse(&pulled).expect("schema1 comes back");
    manifest.verify().expect("its signature still verifies");
    let served = t.head("/v2/e2e/v2s1/manifests/tiny").await;
    assert_eq!(
        served.header("docker-content-digest"),
        Some(manifest.digest().to_string().as_str())
    );
    let layers: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| l.blob_sum.to_string())
        .collect();
    assert_eq!(
        layers,
        [
            format!("sha256:{TINY_LAYER1}"),
            format!("sha256:{TINY_LAYER0}")
        ]
    );
    assert_blobs_intact(&out);

    // The multi-platform index with --all, back out as an OCI layout: the same index.
    let multi = format!("oci:{layout}:multi");
    push(&["--all"], &multi, &dest("e2e/multi", "latest")).await;
    let back = tmp.path().join("multi-out");
    skopeo(args(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &dest("e2e/multi", "latest"),
        &format!("oci:{}:multi", back.display()),
    ]))
    .await;
    let index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        "sha256:bcbefb32c41df96c152d82a06d8fa9421bf644a5e1fae556cb8ec923e68d3a68"
    );
    let tags = t.get("/v2/e2e/multi/tags/list", &[]).await.json();
    assert_eq!(tags["tags"], json!(["latest"]));
}

/// An OCI layout with one image whose layer is `size` bytes.
fn big_layout(dir: &Path, size: usize) -> (String, Digest, u64, u64) {
    let root = dir.join("big");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write = |bytes: &[u8]| {
        let digest = Digest::sha256(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        digest
    };
    // Not compressible, not a pattern, as a real layer is; gzipped, so that skopeo sends it
    // as it is (it compresses what it finds uncompressed).
    let mut state = 0x9e3779b97f4a7c15u64;
    let raw: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let diff_id = Digest::sha256(&raw);
    let raw_path = dir.join("layer");
    std::fs::write(&raw_path, &raw).unwrap();
    let gzip = Command::new("gzip")
        .args(["-n", "-1", "-f"])
        .arg(&raw_path)
        .status()
        .unwrap();
    assert!(gzip.success(), "gzip");
    let layer = std::fs::read(dir.join("layer.gz")).unwrap();
    let layer_digest = write(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
    })
    .to_string();
    let config_digest = write(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest.to_string(), "size": layer.len()}]
    })
    .to_string();
    let manifest_digest = write(manifest.as_bytes());
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "big"}
    }]});
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    (
        root.display().to_string(),
        layer_digest,
        layer.len() as u64,
        config.len() as u64,
    )
}

#[tokio::test]
async fn a_blob_over_one_part_and_a_second_repository_that_mounts() {
    let t = TestRegistry::new().await;
    let addr = serve(&t).await;
    let tmp = tempfile::tempdir().unwrap();
    // skopeo sends the whole layer in one PATCH: on the deployment, through the upload
    // service (Lambda takes 4 MiB; README, "Request size on Lambda, and large layers").
    let size = 6 * 1024 * 1024 + 123;
    let (layout, layer, layer_size, config_size) = big_layout(tmp.path(), size);
    assert!(layer_size > 5 * 1024 * 1024, "more than one S3 part");

    let big = format!("docker://{addr}/e2e/big:latest");
    push(&[], &format!("oci:{layout}:big"), &big).await;
    let out = pull_dir(&addr, "e2e/big:latest", tmp.path(), "big-out").await;
    assert_eq!(sha256_file(&out.join(layer.hex())), layer.to_string());
    assert_blobs_intact(&out);

    // Registry to registry, another repository: skopeo mounts the layer, so its bytes do not
    // move (skopeo uploads the small image config again rather than mounting it).
    let written = t.blob_bytes_written().await;
    let mounted = format!("docker://{addr}/e2e/mounted:latest");
    push(&["--src-tls-verify=false"], &big, &mounted).await;
    assert_eq!(
        t.blob_bytes_written().await - written,
        config_size,
        "the layer was mounted, not copied"
    );
    let head = t.head(&format!("/v2/e2e/mounted/blobs/{layer}")).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(layer_size.to_string().as_str())
    );
}

/// A real layer's size: 300 MiB in one PATCH, as skopeo sends it. On the deployment it goes
/// through the upload service (Lambda takes 4 MiB); it comes back byte for byte.
#[tokio::test]
async fn a_300_mib_layer_goes_in_and_comes_back_byte_identical() {
    let t = TestRegistry::new().await;
    let addr = serve(&t).await;
    let tmp = tempfile::tempdir().unwrap();
    let (layout, layer, layer_size, _) = big_layout(tmp.path(), 300 * 1024 * 1024);
    let written = t.blob_bytes_written().await;
    let huge = format!("docker://{addr}/e2e/huge:v1");
    push(&[], &format!("oci:{layout}:big"), &huge).await;
    assert!(
        t.blob_bytes_written().await - written >= layer_size,
        "the layer's bytes were taken in (on the deployment, by the upload service)"
    );
    let out = pull_dir(&addr, "e2e/huge:v1", tmp.path(), "huge-out").await;
    assert_eq!(sha256_file(&out.join(layer.hex())), layer.to_string());
    assert_blobs_intact(&out);
}
