//! The access log of the real binary: one line per request, refused ones included, as JSON
//! with `--log-format json`, never a password or a token.

mod support;

use support::{Server, agent};

#[test]
fn one_json_line_per_request_refused_ones_included_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut admin = std::process::Command::new(env!("CARGO_BIN_EXE_registry-admin"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "alice"])
        .env_remove("QUAYSIDE_BACKEND")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut admin.stdin.take().unwrap(), b"alice-password-1\n").unwrap();
    assert!(admin.wait().unwrap().success());
    let server = Server::start(&data, &["--auth", "--log-format", "json"]);
    let agent = agent();
    let refused = agent.get(&format!("{}/v2/", server.base)).call().unwrap();
    assert_eq!(refused.status(), 401);
    let secret = "hunter2-not-logged";
    let token = agent
        .get(&format!(
            "{}/v2/auth?service=quayside&scope=repository:acme/app:pull&password={secret}",
            server.base
        ))
        .header(
            "authorization",
            format!("Basic {}", base64_of(&format!("nobody:{secret}"))),
        )
        .call()
        .unwrap();
    assert_eq!(token.status(), 401);
    let id = token.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut granted = agent
        .get(&format!("{}/v2/auth?service=quayside", server.base))
        .header(
            "authorization",
            format!("Basic {}", base64_of("alice:alice-password-1")),
        )
        .call()
        .unwrap();
    assert_eq!(granted.status(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&granted.body_mut().read_to_string().unwrap()).unwrap();
    let bearer = body["token"].as_str().unwrap().to_string();
    let welcomed = agent
        .get(&format!("{}/v2/", server.base))
        .header("authorization", format!("Bearer {bearer}"))
        .call()
        .unwrap();
    assert_eq!(welcomed.status(), 200);

    let log = std::fs::read_to_string(&server.log).unwrap();
    for secret in [secret, "alice-password-1", bearer.as_str()] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    let requests: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["target"] == "quayside::access")
        .collect();
    assert_eq!(requests.len(), 4, "one line per request:\n{log}");
    assert_eq!(requests[3]["fields"]["status"], 200);
    assert_eq!(requests[3]["fields"]["principal"], "alice");
    let first = &requests[0]["fields"];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/v2/");
    assert_eq!(first["status"], 401);
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["principal"], "-");
    let second = &requests[1]["fields"];
    assert_eq!(second["status"], 401);
    assert_eq!(second["request_id"], id.as_str());
    assert!(
        second["path"]
            .as_str()
            .unwrap()
            .contains("password=REDACTED"),
        "{second}"
    );
    for field in ["bytes_in", "bytes_out", "duration_ms"] {
        assert!(second[field].is_number(), "{field}: {second}");
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
