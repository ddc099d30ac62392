//! registry-admin and `registry-local --auth` as a user runs them: the real binaries, a
//! data folder, HTTP. Secrets go in by standard input and come out once; neither the
//! database nor the server's log holds them.

mod support;

use base64::Engine as _;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{Server, agent, free_port, registry_local_on};

fn admin(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-admin"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("QUAYSIDE_BACKEND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("registry-admin starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `registry-local --auth` over `data_dir`, logging at debug level to `log`.
fn start(data_dir: &Path, log: &Path) -> Server {
    let port = free_port();
    let mut command = registry_local_on(port, data_dir);
    command
        .arg("--auth")
        .env_remove("QUAYSIDE_BACKEND")
        .env("RUST_LOG", "debug");
    Server::spawn(
        command,
        port,
        log.to_path_buf(),
        false,
        Duration::from_secs(30),
    )
}

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

#[test]
fn admin_manages_principals_and_registry_local_serves_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    ok(
        admin(&data, &["user", "add", "alice"], "alice-password\n"),
        "user add",
    );
    let again = admin(&data, &["user", "add", "alice"], "other-password\n");
    assert!(!again.status.success(), "a name is taken once");
    let bad = admin(&data, &["user", "add", "Alice"], "alice-password\n");
    assert!(!bad.status.success(), "an invalid name is refused");
    let short = admin(&data, &["user", "add", "bob"], "short\n");
    assert!(!short.status.success(), "a short password is refused");

    let secret = ok(admin(&data, &["robot", "add", "alice+ci"], ""), "robot add");
    let secret = secret.trim().to_string();
    assert_eq!(secret.len(), 43, "{secret}");
    ok(
        admin(&data, &["grant", "alice/app", "alice+ci", "write"], ""),
        "grant",
    );
    ok(
        admin(&data, &["allow-create", "alice+ci", "team"], ""),
        "allow-create",
    );
    ok(
        admin(&data, &["visibility", "alice/app", "public"], ""),
        "visibility",
    );
    let show = ok(admin(&data, &["show", "alice/app"], ""), "show");
    assert!(show.contains("alice/app: public"), "{show}");
    assert!(show.contains("alice+ci: Write"), "{show}");
    let list = ok(admin(&data, &["list"], ""), "list");
    assert!(list.contains("alice (user"), "{list}");
    assert!(list.contains("alice+ci (robot"), "{list}");
    assert!(list.contains("may create in team"), "{list}");
    let missing = admin(&data, &["grant", "alice/app", "nobody", "read"], "");
    assert!(!missing.status.success(), "a grant to no one is refused");

    // Only hashes are stored.
    let db = std::fs::read(data.join("metadata.redb")).unwrap();
    for secret in ["alice-password".as_bytes(), secret.as_bytes()] {
        assert!(
            !db.windows(secret.len()).any(|w| w == secret),
            "a secret is stored in clear"
        );
    }

    let log = dir.path().join("server.log");
    {
        let server = start(&data, &log);
        // No token: the challenge names the token service on this address.
        let v2 = agent().get(&format!("{}/v2/", server.base)).call().unwrap();
        assert_eq!(v2.status(), 401);
        assert_eq!(
            v2.headers()["www-authenticate"].to_str().unwrap(),
            format!(
                "Bearer realm=\"{}/v2/auth\",service=\"quayside\"",
                server.base
            )
        );
        // The robot's token grants pull and push on its repository.
        let mut token = agent()
            .get(&format!(
                "{}/v2/auth?service=quayside&scope=repository:alice/app:pull,push",
                server.base
            ))
            .header("authorization", basic("alice+ci", &secret))
            .call()
            .unwrap();
        assert_eq!(token.status(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&token.body_mut().read_to_string().unwrap()).unwrap();
        let jwt = body["token"].as_str().unwrap();
        let v2 = agent()
            .get(&format!("{}/v2/", server.base))
            .header("authorization", format!("Bearer {jwt}"))
            .call()
            .unwrap();
        assert_eq!(v2.status(), 200);
        let wrong = agent()
            .get(&format!("{}/v2/auth", server.base))
            .header("authorization", basic("alice", "not-the-password"))
            .call()
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    // The server's log (at debug level) names the failed login, never a secret.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("registry-local requires tokens"), "{log}");
    assert!(log.contains("login_failed"), "{log}");
    for secret in ["alice-password", "not-the-password", &secret] {
        assert!(!log.contains(secret), "the log holds a secret");
    }

    // The server is stopped: rotate the robot's secret; the old one stops working.
    let rotated = ok(admin(&data, &["robot", "rotate", "alice+ci"], ""), "rotate");
    assert_ne!(rotated.trim(), secret);
    let server = start(&data, &dir.path().join("server2.log"));
    let old = agent()
        .get(&format!("{}/v2/auth", server.base))
        .header("authorization", basic("alice+ci", &secret))
        .call()
        .unwrap();
    assert_eq!(old.status(), 401);
    let new = agent()
        .get(&format!("{}/v2/auth", server.base))
        .header("authorization", basic("alice+ci", rotated.trim()))
        .call()
        .unwrap();
    assert_eq!(new.status(), 200);
}
