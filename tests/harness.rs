//! Test harness: a registry over a chosen backend, requests built as API Gateway would
//! deliver them, routed through `quayside::http::routes()` to the very handlers the Lambda
//! functions run, and the fixtures made by real clients.
//!
//! The backend is `QUAYSIDE_TEST_BACKEND`: `embedded` (the default), `aws` (DynamoDB, S3,
//! KMS and SNS at moto's server: see [`aws_support`]), or `deployment` (the same at moto,
//! but every request goes over HTTP to `tests/deployment/serve`, the Lambda deployment on
//! one machine, with tokens always on: see [`deployment_support`]). Every test runs
//! unchanged against each backend.
//!
//! A test registry is open (no authentication) unless the test turns token authentication
//! on with [`TestRegistry::enable_auth`]; the access store (users, robots, grants) is there
//! either way, as [`TestRegistry::access`].

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request};
use lambda_http::{Body, RequestExt, Response};
use quayside::digest::Digest;
use quayside::names::RepositoryName;
use quayside::ports::{
    AccessStore, BlobBody, BlobStore, EventSink, Part, Permission, PrincipalRecord, RegistryEvent,
    StoreResult,
};
use quayside::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[path = "aws_support.rs"]
pub mod aws_support;
pub mod contract;
#[path = "deployment_support.rs"]
pub mod deployment_support;
#[path = "faults.rs"]
pub mod faults;

/// The project's copy of the fixtures made by skopeo and distribution.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub fn manifest_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("manifests/{name}"))
}

/// A copy of the OCI layout fixture in `dir` (skopeo may write lock files next to it): its
/// path, for skopeo's `oci:` transport.
pub fn layout_copy(dir: &Path) -> String {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dest = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &dest);
            } else {
                std::fs::copy(entry.path(), dest).unwrap();
            }
        }
    }
    let target = dir.join("layout");
    copy_dir(&fixtures().join("oci-layout"), &target);
    target.display().to_string()
}

/// A blob of the OCI layout fixture by its hex digest.
pub fn layout_blob(hex: &str) -> Vec<u8> {
    fixture(&format!("oci-layout/blobs/sha256/{hex}"))
}

/// Records every event the registry publishes, then passes it on.
pub struct RecordingEvents {
    inner: Arc<dyn EventSink>,
    pub events: Mutex<Vec<RegistryEvent>>,
}

#[async_trait]
impl EventSink for RecordingEvents {
    async fn publish(&self, event: &RegistryEvent) -> StoreResult<()> {
        self.events.lock().expect("events lock").push(event.clone());
        self.inner.publish(event).await
    }
}

/// Counts the blob bytes stored (whole blobs, parts, pending bytes), then passes every call
/// on: how a test sees that a mount copies nothing.
pub struct CountingBlobs {
    inner: Arc<dyn BlobStore>,
    pub bytes_written: AtomicU64,
}

impl CountingBlobs {
    fn wrote(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// `impl BlobStore for CountingBlobs`: each method declared in `passed_on` (its parameters
/// after `&self`) passes its call on to the inner store unchanged; the methods written out
/// after it count what they store, or are not async.
macro_rules! counting_blob_store {
    (
        passed_on { $(async fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)* }
        $($written_out:tt)*
    ) => {
        #[async_trait]
        impl BlobStore for CountingBlobs {
            $(
                async fn $name(&self, $($arg: $ty),*) -> $out {
                    self.inner.$name($($arg),*).await
                }
            )*
            $($written_out)*
        }
    };
}

// `upload` is the id of an upload session (the trait's `id`).
counting_blob_store! {
    passed_on {
        async fn size(digest: &Digest) -> StoreResult<Option<u64>>;
        async fn get(digest: &Digest) -> StoreResult<Option<Bytes>>;
        async fn fetch(digest: &Digest, range: Option<(u64, u64)>) -> StoreResult<Option<BlobBody>>;
        async fn begin_parts(upload: &str) -> StoreResult<String>;
        async fn adopt_pending(upload: &str, key: &str, digest: &Digest) -> StoreResult<()>;
        async fn pending(upload: &str, key: &str) -> StoreResult<Bytes>;
        async fn remove_pending(upload: &str, key: &str) -> StoreResult<()>;
        async fn complete_parts(upload: &str, handle: &str, parts: &[Part], digest: &Digest)
            -> StoreResult<()>;
        async fn abort_parts(upload: &str, handle: Option<&str>, pending: Option<&str>)
            -> StoreResult<()>;
        async fn purge_stray(cutoff: std::time::SystemTime) -> StoreResult<u64>;
    }

    fn checks_joined_parts(&self) -> bool {
        self.inner.checks_joined_parts()
    }

    fn part_buffer(&self) -> Option<usize> {
        self.inner.part_buffer()
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> StoreResult<()> {
        self.wrote(bytes.len());
        self.inner.put(digest, bytes).await
    }

    async fn put_part(
        &self,
        upload: &str,
        handle: &str,
        number: u32,
        bytes: Bytes,
    ) -> StoreResult<String> {
        self.wrote(bytes.len());
        self.inner.put_part(upload, handle, number, bytes).await
    }

    async fn put_part_from(
        &self,
        upload: &str,
        handle: &str,
        number: u32,
        source: &mut dyn quayside::ports::PartSource,
    ) -> StoreResult<(String, u64)> {
        let stored = self.inner.put_part_from(upload, handle, number, source).await?;
        self.wrote(stored.1 as usize);
        Ok(stored)
    }

    async fn put_pending(&self, upload: &str, bytes: Bytes) -> StoreResult<String> {
        self.wrote(bytes.len());
        self.inner.put_pending(upload, bytes).await
    }
}

/// A registry for one test, with its own storage.
pub struct TestRegistry {
    pub registry: Registry,
    pub events: Arc<RecordingEvents>,
    pub blobs: Arc<CountingBlobs>,
    /// The AWS resources and call log of an `aws` backend.
    pub aws: Option<aws_support::AwsEnv>,
    /// Users, robots and grants of this backend (used once auth is on).
    pub access: Arc<dyn AccessStore>,
    /// The deployment the requests go to, on the `deployment` backend.
    pub deployment: Option<deployment_support::Deployment>,
    _dir: tempfile::TempDir,
}

/// A response as a test reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The body as text (bytes that are not UTF-8 replaced), for a failure message.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a registry error: `status` with `code` in the error body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.error_code().as_str()), (status, code));
    }

    /// As [`Answer::assert_error`], with `context` and the body in the failure message.
    #[track_caller]
    pub fn assert_error_for(&self, status: u16, code: &str, context: impl std::fmt::Display) {
        assert_eq!(
            (self.status, self.error_code().as_str()),
            (status, code),
            "{context}: {}",
            self.text()
        );
    }

    /// The code of a registry error body.
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The message of a registry error body.
    pub fn error_message(&self) -> String {
        self.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl From<Response<Body>> for Answer {
    /// The answer as a client receives it: a body registry-local streams from a file
    /// ([`quayside::http::FileBody`]) read from that file.
    fn from(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let body = match parts.extensions.get::<quayside::http::FileBody>() {
            Some(file) => {
                use std::io::{Read, Seek};
                let mut opened = std::fs::File::open(&file.path).expect("the blob's file");
                opened
                    .seek(std::io::SeekFrom::Start(file.offset))
                    .expect("seek");
                let mut bytes = Vec::new();
                opened
                    .take(file.len)
                    .read_to_end(&mut bytes)
                    .expect("the blob's bytes");
                bytes
            }
            None => body.as_ref().to_vec(),
        };
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl TestRegistry {
    pub async fn new() -> TestRegistry {
        let backend = std::env::var("QUAYSIDE_TEST_BACKEND").unwrap_or_else(|_| "embedded".into());
        Self::with_backend(&backend).await
    }

    /// A registry over `backend` (`embedded`, or `aws`: resources of its own at moto).
    pub async fn with_backend(backend: &str) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut aws = None;
        let mut deployment = None;
        let (mut registry, access): (Registry, Arc<dyn AccessStore>) = match backend {
            "embedded" => {
                let backend = quayside::embedded::EmbeddedBackend::open(dir.path())
                    .expect("embedded backend");
                let registry = Registry::new(
                    backend.metadata,
                    backend.blobs,
                    backend.signer,
                    backend.events,
                );
                (registry, backend.access)
            }
            "aws" | "deployment" => {
                let env = aws_support::AwsEnv::provision().await;
                let registry = env.registry();
                let access = quayside::backend::aws_access(&env.aws, &env.settings);
                if backend == "deployment" {
                    deployment = Some(deployment_support::Deployment::new(&env.settings));
                }
                aws = Some(env);
                (registry, access)
            }
            other => panic!("unknown QUAYSIDE_TEST_BACKEND {other:?}"),
        };
        let events = Arc::new(RecordingEvents {
            inner: registry.events.clone(),
            events: Mutex::new(Vec::new()),
        });
        registry.events = events.clone();
        let blobs = Arc::new(CountingBlobs {
            inner: registry.blobs.clone(),
            bytes_written: AtomicU64::new(0),
        });
        registry.blobs = blobs.clone();
        TestRegistry {
            registry,
            events,
            blobs,
            aws,
            access,
            deployment,
            _dir: dir,
        }
    }

    /// The test's own folder: the embedded backend's data folder (`metadata.redb`,
    /// `blobs/`, `uploads/`), where a test looks at what is stored.
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// Whether requests go to the Lambda deployment (`tests/deployment/serve`), where
    /// tokens are always on.
    pub fn is_deployment(&self) -> bool {
        self.deployment.is_some()
    }

    /// Turns token authentication on, with the token service at `realm` (the URL clients
    /// are told in challenges; a served registry's `http://<addr>/v2/auth`).
    pub fn enable_auth(&mut self, realm: &str) {
        if let Some(deployment) = &self.deployment {
            deployment.set_explicit_auth(Some(realm));
        }
        let settings = quayside::auth::AuthSettings {
            issuer: TEST_ISSUER.into(),
            service: TEST_SERVICE.into(),
            ..quayside::auth::AuthSettings::with_realm(realm)
        };
        self.registry = self
            .registry
            .clone()
            .with_auth(quayside::auth::Auth::new(self.access.clone(), settings));
    }

    /// A registry of this test's backend with auth on (its realm is not served).
    pub async fn with_auth() -> TestRegistry {
        let mut t = TestRegistry::new().await;
        t.enable_auth("http://registry.test/v2/auth");
        t
    }

    /// Adds a user with `password`, as `registry-admin user add` does.
    pub async fn add_user(&self, name: &str, password: &str) {
        self.add_principal(name, password).await;
    }

    /// Adds a robot account `namespace+name`; returns its generated secret.
    pub async fn add_robot(&self, name: &str) -> String {
        let secret = quayside::auth::secrets::new_robot_secret().expect("secret");
        self.add_principal(name, &secret).await;
        secret
    }

    async fn add_principal(&self, name: &str, secret: &str) {
        let record = PrincipalRecord {
            name: name.into(),
            secret_hash: quayside::auth::secrets::hash_secret(secret).expect("hash"),
            create_namespaces: Default::default(),
            created: "2026-01-01T00:00:00Z".into(),
        };
        assert!(
            self.access.create_principal(&record).await.expect("store"),
            "{name} is new"
        );
    }

    pub async fn grant(&self, repo: &str, principal: &str, permission: Permission) {
        let repo = RepositoryName::parse(repo).expect("repository name");
        self.access
            .set_permission(&repo, principal, Some(permission))
            .await
            .expect("grant");
    }

    pub async fn make_public(&self, repo: &str) {
        let repo = RepositoryName::parse(repo).expect("repository name");
        self.access.set_public(&repo, true).await.expect("public");
    }

    /// Asks the token route for a token: `credentials` as HTTP Basic (none: anonymous),
    /// one `scope` parameter per scope. Returns the answer (the token is in its JSON).
    pub async fn token_answer(&self, credentials: Option<(&str, &str)>, scopes: &[&str]) -> Answer {
        let mut query = form_urlencoded_pairs(&[("service", TEST_SERVICE)]);
        for scope in scopes {
            query.push('&');
            query.push_str(&form_urlencoded_pairs(&[("scope", scope)]));
        }
        let mut headers = Vec::new();
        let basic;
        if let Some((user, secret)) = credentials {
            use base64::Engine as _;
            basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
            );
            headers.push(("authorization", basic.as_str()));
        }
        self.request(Method::GET, &format!("/v2/auth?{query}"), &headers, b"")
            .await
    }

    /// A token for `scopes`, which the token route must give (status 200).
    pub async fn token(&self, credentials: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let answer = self.token_answer(credentials, scopes).await;
        assert_eq!(answer.status, 200, "token: {}", answer.text());
        answer.json()["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// A request with `Authorization: Bearer <token>`.
    pub async fn request_with_token(
        &self,
        token: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let bearer = format!("Bearer {token}");
        let mut all: Vec<(&str, &str)> = vec![("authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.request(method, path, &all, body).await
    }

    /// A request with `Authorization: Bearer <token>` and no other header.
    pub async fn request_as(&self, token: &str, method: Method, path: &str, body: &[u8]) -> Answer {
        self.request_with_token(token, method, path, &[], body)
            .await
    }

    /// Stores a blob and links it to `repo`, as the upload API will.
    pub async fn seed_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        if let Some(deployment) = &self.deployment {
            // The deployment's client sees what it was granted: this repository too.
            deployment.grant(&self.access, repo).await;
        }
        let repo = RepositoryName::parse(repo).expect("repository name");
        let digest = Digest::sha256(bytes);
        self.registry
            .blobs
            .put(&digest, Bytes::copy_from_slice(bytes))
            .await
            .expect("blob put");
        self.registry
            .metadata
            .link_blob(&repo, &digest, bytes.len() as u64)
            .await
            .expect("blob link");
        digest
    }

    /// Seeds every blob of the `tiny` image (config and two layers) into `repo`.
    pub async fn seed_tiny_blobs(&self, repo: &str) {
        for hex in [TINY_CONFIG, TINY_LAYER0, TINY_LAYER1] {
            self.seed_blob(repo, &layout_blob(hex)).await;
        }
    }

    /// Bytes stored as blobs so far: counted as the registry stores them, or, on the
    /// deployment (where the function processes store them), the blob bytes its upload
    /// functions took in. How a test sees that a mount copies nothing.
    pub async fn blob_bytes_written(&self) -> u64 {
        match &self.deployment {
            Some(deployment) => deployment.upload_bytes_received(),
            None => self.blobs.bytes_written.load(Ordering::SeqCst),
        }
    }

    pub fn published(&self) -> Vec<RegistryEvent> {
        self.events.events.lock().expect("events lock").clone()
    }

    /// Sends a request through the route table, as API Gateway would: path parameters set,
    /// body as bytes.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        if let Some(deployment) = &self.deployment {
            let (parts, body) = req.into_parts();
            let request = deployment_support::OwnedRequest {
                authority: parts.uri.authority().map(|a| a.to_string()),
                method: parts.method,
                path: parts
                    .uri
                    .path_and_query()
                    .map(|pq| pq.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                headers: parts
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
                body: body.as_ref().to_vec(),
            };
            return deployment.send(&self.access, request).await;
        }
        let path = req.uri().path().to_string();
        let (route, params) = quayside::http::find_route(req.method(), &path)
            .unwrap_or_else(|e| panic!("no route for {} {path}: {}", req.method(), e.message));
        route
            .serve(&self.registry, req.with_path_parameters(params))
            .await
            .into()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body.to_vec())
        };
        self.send(builder.body(body).expect("request")).await
    }

    /// A POST with no headers.
    pub async fn post(&self, path: &str, body: &[u8]) -> Answer {
        self.request(Method::POST, path, &[], body).await
    }

    /// A PUT with no headers.
    pub async fn put(&self, path: &str, body: &[u8]) -> Answer {
        self.request(Method::PUT, path, &[], body).await
    }

    pub async fn get(&self, path: &str, accept: &[&str]) -> Answer {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        self.request(Method::GET, path, &headers, b"").await
    }

    pub async fn head(&self, path: &str) -> Answer {
        self.request(Method::HEAD, path, &[], b"").await
    }

    pub async fn put_manifest(&self, path: &str, content_type: &str, body: &[u8]) -> Answer {
        self.request(Method::PUT, path, &[("content-type", content_type)], body)
            .await
    }

    /// A blob's bytes as a client gets them: from the answer, or by following its redirect
    /// (to S3) with the same `Range`. Returns the final status and the bytes.
    pub async fn download(&self, path: &str, range: Option<&str>) -> (u16, Vec<u8>) {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", *r)).collect();
        let answer = self.request(Method::GET, path, &headers, b"").await;
        if answer.status != 307 {
            return (answer.status, answer.body);
        }
        let url = answer
            .header("location")
            .expect("a redirect has a Location")
            .to_string();
        let range = range.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut request = agent.get(&url);
            if let Some(range) = range {
                request = request.header("range", range);
            }
            let mut response = request.call().expect("the redirect is fetchable");
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_vec().expect("body");
            (status, body)
        })
        .await
        .expect("download")
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.request(Method::DELETE, path, &[], b"").await
    }
}

/// The `iss` and `aud` of a test registry's tokens.
pub const TEST_ISSUER: &str = "quayside-test";
pub const TEST_SERVICE: &str = "quayside-test";

/// `k=v&…`, form-encoded.
pub(crate) fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The `tiny` image of the OCI layout fixture: its config and two layers.
pub const TINY_CONFIG: &str = "fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d";
pub const TINY_LAYER0: &str = "24a863956fae3a40fb5b94126d87434c1f5fba66a4569ba3db6b9a37f26416c4";
pub const TINY_LAYER1: &str = "f2e9a1681beca57f3d4744cc55ce690d3eb4ae9d90c58a607827a0f47fd50f0e";

pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The six Accept headers skopeo sends on a manifest GET.
pub const SKOPEO_ACCEPT: [&str; 6] = [
    OCI_MANIFEST,
    OCI_INDEX,
    MANIFEST_LIST,
    SCHEMA2,
    SCHEMA1,
    "application/vnd.docker.distribution.manifest.v1+json",
];
