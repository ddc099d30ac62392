//! The upload service as a deployment runs it, at moto (which `tests/run` starts): the
//! registry (registry-local --backend aws --auth, standing in for the Lambda API) hands a
//! session to `upload-service`; the client sends the layer there with the capability alone
//! (no Authorization, as docker does on another host); the task is killed mid-body, another
//! continues the session from its `Range`; the blob is then served by the registry, byte
//! for byte. Also: what the service does not serve, its health check, and its memory with
//! uploads in flight. Fails (never skips) without moto.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Server, aws_command, aws_names, free_port, provision};

const MIB: usize = 1024 * 1024;
const PASSWORD: &str = "upload-service-test-password";

/// The deployment in small: resources at moto, the user `ci`, the registry and one upload
/// service task.
struct Deployment {
    env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
    registry: Server,
}

impl Deployment {
    fn start() -> (Deployment, Server) {
        let env = aws_names("qs-upl");
        let dir = tempfile::tempdir().unwrap();
        provision(&env);
        let mut add = aws_command(env!("CARGO_BIN_EXE_registry-admin"), &env)
            .args(["--backend", "aws", "user", "add", "ci"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("registry-admin runs");
        add.stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success(), "user add");
        let service = Self::service(&env, dir.path(), "first");
        let port = free_port();
        let mut registry = aws_command(env!("CARGO_BIN_EXE_registry-local"), &env);
        registry
            .args([
                "--backend",
                "aws",
                "--auth",
                "--addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--upload-service", &service.base])
            .arg("--data-dir")
            .arg(dir.path());
        let registry = started(registry, port, dir.path().join("registry.log"));
        (Deployment { env, dir, registry }, service)
    }

    /// An upload-service task over the same resources; a dead writer's claim lapses in 2 s.
    fn service(env: &[(&'static str, String)], dir: &Path, run: &str) -> Server {
        let port = free_port();
        let mut service = aws_command(env!("CARGO_BIN_EXE_upload-service"), env);
        service
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--upload-lease",
                "2s",
            ])
            .env("RUST_LOG", "info");
        started(service, port, dir.join(format!("upload-service-{run}.log")))
    }

    fn another_service(&self, run: &str) -> Server {
        Self::service(&self.env, self.dir.path(), run)
    }

    fn token(&self, scope: &str) -> String {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}"));
        let (status, _, body) = request(
            "GET",
            &format!(
                "{}/v2/auth?service=quayside&scope={scope}",
                self.registry.base
            ),
            &[("authorization", &format!("Basic {basic}"))],
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["token"].as_str().unwrap().to_string()
    }

    /// Opens a session of `repo`: its URL on the service.
    fn open(&self, repo: &str, service: &Server) -> String {
        let token = self.token(&format!("repository:{repo}:pull,push"));
        let (status, headers, body) = request(
            "POST",
            &format!("{}/v2/{repo}/blobs/uploads/", self.registry.base),
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        );
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let location = header(&headers, "location").expect("a location");
        assert!(
            location.starts_with(&format!("{}/v2/{repo}/blobs/uploads/", service.base))
                && location.contains("?_upload="),
            "{location}"
        );
        location
    }
}

/// `command` started on `port`, once it listens; its log lines (standard output) and a
/// panic (standard error) in `log`.
fn started(command: Command, port: u16, log: std::path::PathBuf) -> Server {
    Server::spawn(command, port, log, true, Duration::from_secs(30))
}

/// The peak resident memory of `server` so far, from `/proc`.
fn peak_rss_bytes(server: &Server) -> u64 {
    server.memory_kib("VmHWM") * 1024
}

/// A socket to `service` on which the head of a `method` request of `url` (on the service)
/// is sent, with `headers` (each `Name: value`), for a body of `len` bytes: the body is the
/// caller's to send, or not.
fn raw_request(
    service: &Server,
    method: &str,
    url: &str,
    headers: &[&str],
    len: usize,
) -> TcpStream {
    let target = url
        .strip_prefix(&service.base)
        .expect("a URL on the service");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for header in headers {
        head.push_str(&format!("{header}\r\n"));
    }
    head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    let mut socket = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    socket
}

/// One HTTP/1.1 request (no redirects followed): status, headers, body.
fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = agent
        .run(builder.body(body.to_vec()).unwrap())
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_default();
    (status, headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// `url` moved onto `service`'s host (what a load balancer in front of several tasks does).
fn on(service: &Server, url: &str) -> String {
    let path = url
        .split_once("/v2/")
        .map(|(_, p)| p)
        .expect("a registry URL");
    format!("{}/v2/{path}", service.base)
}

/// The bytes stored so far: the end of `Range` plus one.
fn stored(url: &str) -> usize {
    let (status, headers, _) = request("GET", url, &[], b"");
    assert_eq!(status, 204);
    let range = header(&headers, "range").expect("a range");
    let end: usize = range.trim_start_matches("0-").parse().unwrap();
    if end == 0 { 0 } else { end + 1 }
}

fn layer(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn a_session_moves_to_another_task_after_a_crash_and_its_blob_is_served() {
    let (deployment, mut first) = Deployment::start();
    let data = layer(40 * MIB);
    let digest = sha256(&data);
    let session = deployment.open("ci/app", &first);

    // The first task takes the body as it comes, without Authorization, and dies in the
    // middle of it, once two S3 parts are recorded.
    let octets = ["Content-Type: application/octet-stream"];
    let mut socket = raw_request(&first, "PATCH", &session, &octets, data.len());
    socket.write_all(&data[..20 * MIB]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&session) < 16 * MIB {
        assert!(
            Instant::now() < deadline,
            "no part recorded: {}",
            first.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill();
    drop(socket);

    // Another task: the session stands where the dead one last recorded it.
    let second = deployment.another_service("second");
    let url = on(&second, &session);
    let offset = stored(&url);
    assert!((16 * MIB..=20 * MIB).contains(&offset), "{offset}");
    // The dead writer's claim lapses (2 s without progress), then the rest goes on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let range = format!("{offset}-{}", data.len() - 1);
        let (status, headers, body) = request(
            "PATCH",
            &url,
            &[
                ("content-range", &range),
                ("content-type", "application/octet-stream"),
            ],
            &data[offset..],
        );
        if status == 202 {
            assert_eq!(
                header(&headers, "range"),
                Some(format!("0-{}", data.len() - 1))
            );
            break header(&headers, "location").expect("a location");
        }
        assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "the claim never lapsed");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        next.starts_with("/v2/ci/app/blobs/uploads/") && next.contains("?_upload="),
        "{next}"
    );
    let (status, headers, body) = request(
        "PUT",
        &format!("{}{next}&digest={digest}", second.base),
        &[],
        b"",
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // The blob's URL is on the registry, not on the service.
    assert_eq!(
        header(&headers, "location"),
        Some(format!(
            "{}/v2/ci/app/blobs/{digest}",
            deployment.registry.base
        ))
    );

    // The registry serves it: a redirect to S3, and there the very bytes.
    let token = deployment.token("repository:ci/app:pull");
    let (status, headers, _) = request(
        "GET",
        &format!("{}/v2/ci/app/blobs/{digest}", deployment.registry.base),
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(status, 307);
    let (status, _, body) = request("GET", &header(&headers, "location").unwrap(), &[], b"");
    assert_eq!(status, 200);
    assert!(body == data, "the blob's bytes differ from the layer's");
}

#[test]
fn the_service_serves_sessions_and_its_health_check_only() {
    let (deployment, service) = Deployment::start();
    let (status, _, body) = request("GET", &format!("{}/health", service.base), &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
    let token = deployment.token("repository:ci/app:pull,push");
    let bearer = format!("Bearer {token}");
    for (method, path) in [
        ("GET", "/v2/"),
        ("GET", "/v2/ci/app/tags/list"),
        ("POST", "/v2/ci/app/blobs/uploads/"),
        ("GET", "/v2/ci/app/manifests/latest"),
        ("GET", "/v2/auth"),
    ] {
        let (status, _, body) = request(
            method,
            &format!("{}{path}", service.base),
            &[("authorization", &bearer)],
            b"",
        );
        assert_eq!(status, 404, "{method} {path}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["errors"][0]["code"], "NAME_UNKNOWN", "{method} {path}");
    }
    // A session's request without its capability needs a token, as on the registry.
    let session = deployment.open("ci/app", &service);
    let bare = session.split_once('?').unwrap().0;
    let (status, _, _) = request("GET", bare, &[], b"");
    assert_eq!(status, 401);
    let (status, _, _) = request("GET", bare, &[("authorization", &bearer)], b"");
    assert_eq!(status, 204);
}

/// Four layers streamed at once: the task's memory stays near its buffers (8 MiB S3 parts
/// per upload), whatever the layers' size.
#[test]
fn uploads_in_flight_hold_bounded_memory() {
    let (deployment, service) = Deployment::start();
    let sessions: Vec<String> = (0..4)
        .map(|_| deployment.open("ci/big", &service))
        .collect();
    let layers: Vec<Vec<u8>> = (0..4).map(|i| layer(48 * MIB + i)).collect();
    std::thread::scope(|scope| {
        for (session, data) in sessions.iter().zip(&layers) {
            scope.spawn(move || {
                let digest = sha256(data);
                let (status, _, body) =
                    request("PUT", &format!("{session}&digest={digest}"), &[], data);
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            });
        }
    });
    let peak = peak_rss_bytes(&service);
    eprintln!(
        "upload-service peak RSS with 4 × 48 MiB in flight: {} MiB",
        peak / MIB as u64
    );
    // 4 × 48 MiB went through; each upload holds a part buffer and the hasher's state.
    assert!(
        peak < 120 * MIB as u64,
        "peak RSS {} MiB",
        peak / MIB as u64
    );
}

/// A task being replaced (SIGTERM: ECS, after the load balancer stopped sending it new
/// requests) lets the upload in flight finish, then exits.
#[test]
fn sigterm_drains_the_upload_in_flight() {
    let (deployment, service) = Deployment::start();
    let data = layer(12 * MIB);
    let digest = sha256(&data);
    let session = deployment.open("ci/drain", &service);
    let finishing = format!("{session}&digest={digest}");
    let mut socket = raw_request(&service, "PUT", &finishing, &[], data.len());
    socket.write_all(&data[..MIB]).unwrap();
    // The request is under way: stop the task.
    let pid = service.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    // New connections are no longer taken; the one in flight is.
    socket.write_all(&data[MIB..]).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = std::io::Read::read(&mut socket, &mut buf).unwrap();
        assert!(n > 0, "closed without an answer: {}", service.log_text());
        answer.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.starts_with("HTTP/1.1 201"),
        "{head}\n{}",
        service.log_text()
    );
    let mut service = service;
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "still running after its upload finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        service.log_text().contains("stopping"),
        "{}",
        service.log_text()
    );
}
