//! The `deployment` backend of the test harness: the test's requests go over HTTP to
//! `tests/deployment/serve`, the Lambda deployment on one machine (each route its own
//! function binary, built alone as `sam build` builds it, behind API Gateway's events and
//! limits), over a table, bucket, key and topic of the test's own at moto. The test's
//! in-process [`Registry`](quayside::registry::Registry) works on the same resources, so
//! seeding and inspecting storage work as on the `aws` backend.
//!
//! Tokens are always on there, as on Lambda. A test that turns auth on itself
//! ([`super::TestRegistry::enable_auth`]) sees every answer as it comes; any other test is
//! served as a client that logs in would be: an answer `401` is followed by a token request
//! (the challenge's realm and scope, HTTP Basic as the user [`CLIENT_USER`], made with
//! `registry-admin --backend aws`, who is granted what the scope names) and the request
//! again with the token, as docker and skopeo do.
//!
//! The function binaries must have been built (`tests/deployment/serve --build-only`, which
//! `tests/run` runs once); the harness is started with `--no-build`, on the first request.

use super::aws_support::endpoint;
use http::Method;
use quayside::aws::Settings;
use quayside::names::RepositoryName;
use quayside::ports::{AccessStore, Permission};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The user a test that did not turn auth on acts as.
pub const CLIENT_USER: &str = "tester";

/// The repository root, where `tests/deployment/serve` and `target/` are.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A deployment for one test: started on first use.
pub struct Deployment {
    settings: Settings,
    /// `AuthRealm`, when the test set one (else the functions derive it per request).
    realm: Mutex<Option<String>>,
    /// Whether the test turned auth on itself: answers are then passed on as they come.
    pub explicit_auth: Mutex<bool>,
    server: tokio::sync::OnceCell<Server>,
    password: String,
    granted: Mutex<HashSet<String>>,
    /// Tokens by the scopes they were asked for, reused as a client does until refused.
    tokens: Mutex<std::collections::HashMap<Vec<String>, String>>,
    state: tempfile::TempDir,
}

impl Drop for Deployment {
    /// A failing test shows what the deployment did: its invocation lines and the
    /// functions' own logs, last lines first.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let tail = |text: &str, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        eprintln!(
            "---- tests/deployment/serve's log (last 60 lines) ----\n{}",
            tail(&self.log(), 60)
        );
        if let Ok(entries) = std::fs::read_dir(self.state.path().join("logs")) {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text.contains("ERROR") || text.contains("panicked") {
                    eprintln!(
                        "---- {} (last 30 lines) ----\n{}",
                        entry.path().display(),
                        tail(&text, 30)
                    );
                }
            }
        }
    }
}

/// A running `tests/deployment/serve`.
struct Server {
    addr: String,
    child: Mutex<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            // serve's function processes die with it (PR_SET_PDEATHSIG).
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Deployment {
    pub fn new(settings: &Settings) -> Deployment {
        Deployment {
            settings: settings.clone(),
            realm: Mutex::new(None),
            explicit_auth: Mutex::new(false),
            server: tokio::sync::OnceCell::new(),
            password: format!("pw-{}", uuid_like()),
            granted: Mutex::new(HashSet::new()),
            tokens: Mutex::new(std::collections::HashMap::new()),
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Auth as the test set it: answers passed on as they come, and the realm clients are
    /// told (`None`: the functions derive it from each request, as with the template's
    /// default). Must come before the first request, which starts the deployment.
    pub fn set_explicit_auth(&self, realm: Option<&str>) {
        *self.realm.lock().expect("realm") = realm.map(str::to_string);
        *self.explicit_auth.lock().expect("auth") = true;
    }

    fn explicit(&self) -> bool {
        *self.explicit_auth.lock().expect("auth")
    }

    /// The QUAYSIDE_* variables that name this deployment's resources.
    fn resource_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("QUAYSIDE_TABLE", self.settings.table.clone()),
            ("QUAYSIDE_BUCKET", self.settings.bucket.clone()),
            ("QUAYSIDE_KMS_KEY", self.settings.key_id.clone()),
            ("QUAYSIDE_TOPIC", self.settings.topic_name.clone()),
        ]
    }

    /// `host:port` of the running deployment, started on first use.
    pub async fn addr(&self) -> String {
        self.server().await.addr.clone()
    }

    async fn server(&self) -> &Server {
        self.server
            .get_or_init(|| async {
                let mut command = Command::new(root().join("tests/deployment/serve"));
                command
                    .args(["--addr", "127.0.0.1:0", "--no-build", "--state-dir"])
                    .arg(self.state.path())
                    .args([
                        "--parameter",
                        &format!("AuthService={}", super::TEST_SERVICE),
                    ])
                    .args(["--parameter", &format!("AuthIssuer={}", super::TEST_ISSUER)])
                    .envs(self.resource_env());
                if let Some(realm) = self.realm.lock().expect("realm").clone() {
                    command.args(["--parameter", &format!("AuthRealm={realm}")]);
                }
                let log = self.state.path().join("serve.log");
                let started = tokio::task::spawn_blocking(move || start(command, &log))
                    .await
                    .expect("start task");
                let server = started.unwrap_or_else(|e| panic!("tests/deployment/serve: {e}"));
                self.add_client_user().await;
                server
            })
            .await
    }

    /// The harness's log so far (its invocation lines and its own errors), for a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("serve.log")).unwrap_or_default()
    }

    /// The body bytes the upload functions (`start-upload`, `patch-upload`, `finish-upload`)
    /// and the upload service took in answers they accepted, from the harness's invocation
    /// lines and the service tasks' access logs: the bytes clients uploaded as blobs (a
    /// mount uploads none).
    pub fn upload_bytes_received(&self) -> u64 {
        let functions: u64 = self
            .log()
            .lines()
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                };
                let function = field("function")?;
                let ok = field("status")?.starts_with('2');
                let upload = ["start-upload", "patch-upload", "finish-upload"].contains(&function);
                (upload && ok).then(|| field("bytes_in")?.parse::<u64>().ok())?
            })
            .sum();
        let service: u64 = std::fs::read_dir(self.state.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("upload-service-")
            })
            .flat_map(|entry| {
                std::fs::read_to_string(entry.path())
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|line| {
                let record: serde_json::Value = serde_json::from_str(&line).ok()?;
                let fields = &record["fields"];
                let ok = record["target"] == "quayside::access"
                    && fields["status"]
                        .as_u64()
                        .is_some_and(|s| (200..300).contains(&s));
                ok.then(|| fields["bytes_in"].as_u64())?
            })
            .sum();
        functions + service
    }

    /// [`CLIENT_USER`], made as a user makes one: `registry-admin --backend aws user add`.
    async fn add_client_user(&self) {
        let mut command = Command::new(root().join("target/debug/registry-admin"));
        command
            .args(["--backend", "aws", "user", "add", CLIENT_USER])
            .envs(self.resource_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let password = self.password.clone();
        let output = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = command.spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(stdin, "{password}")?;
            }
            child.wait_with_output()
        })
        .await
        .expect("registry-admin task")
        .expect("target/debug/registry-admin runs (tests/run builds it)");
        assert!(
            output.status.success(),
            "registry-admin user add {CLIENT_USER}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Gives [`CLIENT_USER`] `admin` on `repo` (once), as an administrator would.
    pub async fn grant(&self, access: &Arc<dyn AccessStore>, repo: &str) {
        if !self
            .granted
            .lock()
            .expect("granted")
            .insert(repo.to_string())
        {
            return;
        }
        let Ok(name) = RepositoryName::parse(repo) else {
            return;
        };
        access
            .set_permission(&name, CLIENT_USER, Some(Permission::Admin))
            .await
            .expect("grant");
    }

    /// Sends a request as it comes; with `as_client`, logs in on a `401` and sends it again.
    pub async fn send(
        &self,
        access: &Arc<dyn AccessStore>,
        request: OwnedRequest,
    ) -> super::Answer {
        let server = self.server().await;
        // An absolute URL goes to its own host (the upload service), as a client sends it.
        let addr = request
            .authority
            .clone()
            .unwrap_or_else(|| server.addr.clone());
        let first = http_send(&addr, &request).await;
        if self.explicit() || first.status != 401 {
            return first;
        }
        let Some(challenge) = first.header("www-authenticate").map(parse_challenge) else {
            return first;
        };
        // A challenge may name several scopes, space-separated (a mount's names its source).
        let mut scopes: Vec<String> = challenge
            .scope
            .iter()
            .flat_map(|s| s.split_whitespace().map(str::to_string))
            .collect();
        // A mount's source needs pull in the same token, as docker asks for it.
        if let Some(from) = query_value(&request.path, "from") {
            let source = format!("repository:{from}:pull");
            if !scopes.contains(&source) {
                scopes.push(source);
            }
        }
        for scope in &scopes {
            if let Some(repo) = scope
                .strip_prefix("repository:")
                .and_then(|s| s.rsplit_once(':'))
                .map(|(repo, _)| repo)
            {
                self.grant(access, repo).await;
            }
        }
        let cached = self.tokens.lock().expect("tokens").get(&scopes).cloned();
        if let Some(token) = cached {
            let answer = http_send(&addr, &with_bearer(&request, &token)).await;
            if answer.status != 401 {
                return answer;
            }
        }
        let token = self.token(&server.addr, &challenge.service, &scopes).await;
        self.tokens
            .lock()
            .expect("tokens")
            .insert(scopes, token.clone());
        http_send(&addr, &with_bearer(&request, &token)).await
    }

    /// A token for `scopes` from the token route, as [`CLIENT_USER`].
    async fn token(&self, addr: &str, service: &str, scopes: &[String]) -> String {
        use base64::Engine as _;
        let mut query = form_urlencoded(&[("service", service)]);
        for scope in scopes {
            query.push('&');
            query.push_str(&form_urlencoded(&[("scope", scope)]));
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_USER}:{}", self.password));
        let request = OwnedRequest {
            authority: None,
            method: Method::GET,
            path: format!("/v2/auth?{query}"),
            headers: vec![("authorization".into(), format!("Basic {basic}"))],
            body: Vec::new(),
        };
        let answer = http_send(addr, &request).await;
        assert_eq!(
            answer.status,
            200,
            "token for {scopes:?}: {}",
            answer.text()
        );
        answer.json()["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// Lets [`CLIENT_USER`] create repositories in `namespace` by pushing, as
    /// `registry-admin allow-create` does: how a real client's pushes are let in.
    pub async fn allow_create(&self, access: &Arc<dyn AccessStore>, namespace: &str) {
        self.server().await;
        assert!(
            access
                .set_namespace_create(CLIENT_USER, namespace, true)
                .await
                .expect("allow create"),
            "{CLIENT_USER} exists"
        );
    }

    /// `REGISTRY_AUTH_FILE` contents for a real client logged in as [`CLIENT_USER`].
    pub async fn client_auth_file(&self) -> PathBuf {
        use base64::Engine as _;
        let addr = self.addr().await;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_USER}:{}", self.password));
        let path = self.state.path().join("auth.json");
        let json = serde_json::json!({ "auths": { addr: { "auth": auth } } });
        std::fs::write(&path, json.to_string()).expect("auth file");
        path
    }
}

/// Starts serve and waits for its `serving on http://HOST:PORT` line; stderr goes to `log`.
fn start(mut command: Command, log: &Path) -> Result<Server, String> {
    endpoint();
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = command
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot run ({e}): run tests/run, which installs .venv"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(addr) = line.trim().strip_prefix("serving on http://") {
                let _ = tx.send(addr.to_string());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(addr) => Ok(Server {
            addr,
            child: Mutex::new(child),
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "did not start:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ))
        }
    }
}

fn with_bearer(request: &OwnedRequest, token: &str) -> OwnedRequest {
    let mut again = request.clone();
    again
        .headers
        .push(("authorization".into(), format!("Bearer {token}")));
    again
}

/// A request the harness can send more than once.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    pub method: Method,
    /// The host and port of an absolute URL (an upload session on the upload service's
    /// load balancer); `None`: the API's.
    pub authority: Option<String>,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends `request` to `addr` over HTTP/1.1; redirects are answers, not followed.
async fn http_send(addr: &str, request: &OwnedRequest) -> super::Answer {
    let url = format!("http://{addr}{}", request.path);
    let request = request.clone();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .allow_non_standard_methods(true)
            .build()
            .into();
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(&url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let result = if request.body.is_empty() {
            agent.run(builder.body(()).expect("request"))
        } else {
            agent.run(builder.body(request.body.clone()).expect("request"))
        };
        let mut response =
            result.unwrap_or_else(|e| panic!("{} {url}: {e}", request.method.as_str()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = if request.method == Method::HEAD {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .expect("response body")
        };
        super::Answer {
            status,
            headers,
            body,
        }
    })
    .await
    .expect("request task")
}

/// The parts of a `Bearer` challenge a client uses.
struct Challenge {
    service: String,
    scope: Option<String>,
}

fn parse_challenge(value: &str) -> Challenge {
    let param = |name: &str| {
        let start = value.find(&format!("{name}=\""))? + name.len() + 2;
        let end = value[start..].find('"')? + start;
        Some(value[start..end].to_string())
    };
    Challenge {
        service: param("service").unwrap_or_default(),
        scope: param("scope"),
    }
}

fn query_value(path: &str, name: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    super::form_urlencoded_pairs(pairs)
}

fn uuid_like() -> String {
    super::aws_support::unique_name("x")
}
