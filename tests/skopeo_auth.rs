//! The token flow end to end with a real client: skopeo logs in, pushes and pulls against
//! registry-local's router with auth on (the token service on the same listener), on the
//! test's backend. Also: a robot's `--creds`, anonymous pull of a public repository,
//! anonymous and wrong-user pushes refused, a wrong password refused at login, and a copy
//! between two users' repositories that cannot mount what the pusher may not read.

use quayside::ports::Permission;
use quayside_tests::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Serves `t` with auth on, its realm on the same listener; returns `host:port`. On the
/// `deployment` backend, the deployment's address (tokens are always on there), its realm
/// derived from each request as the template's default has it.
async fn serve_with_auth(t: &mut TestRegistry) -> String {
    if let Some(deployment) = &t.deployment {
        deployment.set_explicit_auth(None);
        return deployment.addr().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    t.enable_auth(&format!("http://{addr}/v2/auth"));
    let mut registry = t.registry.clone();
    registry.limits.max_chunk_bytes = registry_local::DEFAULT_MAX_CHUNK_BYTES;
    tokio::spawn(registry_local::serve(listener, registry));
    addr
}

/// Runs skopeo with `stdin`; returns its output, successful or not.
async fn skopeo(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("skopeo")
            .arg("--insecure-policy")
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skopeo is installed (tests/run installs it)");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).expect("stdin");
        }
        child.wait_with_output().expect("skopeo ran")
    })
    .await
    .expect("skopeo task")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_refused(output: &Output, what: &str) {
    assert!(!output.status.success(), "{what} should have been refused");
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(
        [
            "denied",
            "unauthorized",
            "authentication required",
            "forbidden"
        ]
        .iter()
        .any(|word| stderr.contains(word)),
        "{what}: {stderr}"
    );
}

/// A copy of the fixture layout (skopeo may write lock files next to it).
fn layout(dir: &Path) -> String {
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

#[tokio::test]
async fn skopeo_logs_in_pushes_and_pulls_with_tokens() {
    let mut t = TestRegistry::new().await;
    t.add_user("alice", "alice-password").await;
    t.add_user("bob", "bob-password").await;
    let addr = serve_with_auth(&mut t).await;
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(tmp.path());
    let authfile = tmp.path().join("auth.json").display().to_string();
    let image = |repo: &str, tag: &str| format!("docker://{addr}/{repo}:{tag}");
    let src = format!("oci:{layout}:tiny");

    // A wrong password fails at login; the right one logs in.
    let login = |user: &str, password: &str| {
        skopeo(
            args(&[
                "login",
                "--tls-verify=false",
                "--authfile",
                &authfile,
                "-u",
                user,
                "--password-stdin",
                &addr,
            ]),
            Some(format!("{password}\n")),
        )
    };
    let wrong = login("alice", "not-her-password").await;
    assert!(!wrong.status.success(), "a wrong password logs in");
    assert_ok(&login("alice", "alice-password").await, "login");

    // Push and pull with the login's credentials.
    assert_ok(
        &skopeo(
            args(&[
                "copy",
                "--authfile",
                &authfile,
                "--dest-tls-verify=false",
                &src,
                &image("alice/app", "tiny"),
            ]),
            None,
        )
        .await,
        "alice pushes to her namespace",
    );
    let out = tmp.path().join("pulled");
    assert_ok(
        &skopeo(
            args(&[
                "copy",
                "--authfile",
                &authfile,
                "--src-tls-verify=false",
                &image("alice/app", "tiny"),
                &format!("dir:{}", out.display()),
            ]),
            None,
        )
        .await,
        "alice pulls",
    );
    assert_eq!(
        Digest_of(&out.join("manifest.json")),
        "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4"
    );

    // Anonymous: may not pull the private repository, nor push anywhere.
    let anonymous_pull = skopeo(
        args(&[
            "inspect",
            "--tls-verify=false",
            "--no-creds",
            &image("alice/app", "tiny"),
        ]),
        None,
    )
    .await;
    assert_refused(&anonymous_pull, "anonymous pull of a private repository");
    let anonymous_push = skopeo(
        args(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            &src,
            &image("alice/app", "anon"),
        ]),
        None,
    )
    .await;
    assert_refused(&anonymous_push, "anonymous push");

    // Public: anonymous pull works.
    t.make_public("alice/app").await;
    assert_ok(
        &skopeo(
            args(&[
                "inspect",
                "--tls-verify=false",
                "--no-creds",
                &image("alice/app", "tiny"),
            ]),
            None,
        )
        .await,
        "anonymous pull of a public repository",
    );
    let anonymous_push = skopeo(
        args(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            &src,
            &image("alice/app", "anon"),
        ]),
        None,
    )
    .await;
    assert_refused(&anonymous_push, "anonymous push to a public repository");

    // Another user may not push to alice's repository.
    let bob_push = skopeo(
        args(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "bob:bob-password",
            &src,
            &image("alice/app", "bob"),
        ]),
        None,
    )
    .await;
    assert_refused(&bob_push, "bob pushes to alice/app");

    // A robot with a write grant pushes with --dest-creds and pulls with --src-creds.
    let secret = t.add_robot("alice+ci").await;
    t.grant("alice/app", "alice+ci", Permission::Write).await;
    let robot = format!("alice+ci:{secret}");
    assert_ok(
        &skopeo(
            args(&[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                &robot,
                &src,
                &image("alice/app", "ci"),
            ]),
            None,
        )
        .await,
        "the robot pushes",
    );
    assert_ok(
        &skopeo(
            args(&[
                "inspect",
                "--tls-verify=false",
                "--creds",
                &robot,
                &image("alice/app", "ci"),
            ]),
            None,
        )
        .await,
        "the robot pulls",
    );

    // Bob copies alice's private image into his own namespace: he may read neither the
    // source (so skopeo cannot pull it with his credentials) nor mount from it.
    t.access
        .set_public(
            &quayside::names::RepositoryName::parse("alice/app").unwrap(),
            false,
        )
        .await
        .unwrap();
    let steal = skopeo(
        args(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "bob:bob-password",
            "--dest-creds",
            "bob:bob-password",
            &image("alice/app", "tiny"),
            &image("bob/copy", "tiny"),
        ]),
        None,
    )
    .await;
    assert_refused(&steal, "bob reads alice's private repository");
    // With alice's credentials for the source and bob's for the destination, skopeo may
    // try to mount from alice/app with bob's token: refused, so it uploads instead, and
    // the copy still works.
    let copy = skopeo(
        args(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "alice:alice-password",
            "--dest-creds",
            "bob:bob-password",
            &image("alice/app", "tiny"),
            &image("bob/copy", "tiny"),
        ]),
        None,
    )
    .await;
    assert_ok(&copy, "alice's image into bob's namespace");
}

#[allow(non_snake_case)]
fn Digest_of(path: &Path) -> String {
    quayside::digest::Digest::sha256(&std::fs::read(path).unwrap()).to_string()
}
