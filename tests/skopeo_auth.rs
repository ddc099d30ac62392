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

#[tokio::test]
async fn skopeo_logs_in_pushes_and_pulls_with_tokens() {
    let mut t = TestRegistry::new().await;
    t.add_user("alice", "alice-password").await;
    t.add_user("bob", "bob-password").await;
    let addr = serve_with_auth(&mut t).await;
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout_copy(tmp.path());
    let authfile = tmp.path().join("auth.json").display().to_string();
    let image = |repo: &str, tag: &str| format!("docker://{addr}/{repo}:{tag}");
    let src = format!("oci:{layout}:tiny");
    // skopeo's commands here, each with `creds` (its flags for the credentials it uses):
    // push the layout's image to alice/app:<tag>; inspect alice/app:<tag>.
    let push = |creds: &[&str], tag: &str| {
        let to = image("alice/app", tag);
        let head = ["copy", "--dest-tls-verify=false"];
        skopeo(args(&[&head, creds, &[&src, &to]].concat()), None)
    };
    let inspect = |creds: &[&str], tag: &str| {
        let of = image("alice/app", tag);
        let head = ["inspect", "--tls-verify=false"];
        skopeo(args(&[&head, creds, &[&of]].concat()), None)
    };

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
    let with_login = ["--authfile", authfile.as_str()];
    let pushed = push(&with_login, "tiny").await;
    assert_ok(&pushed, "alice pushes to her namespace");
    let out = tmp.path().join("pulled");
    let into_dir = format!("dir:{}", out.display());
    let pull = ["copy", "--src-tls-verify=false", "--authfile", &authfile];
    let pulled = skopeo(
        args(&[&pull[..], &[&image("alice/app", "tiny"), &into_dir]].concat()),
        None,
    )
    .await;
    assert_ok(&pulled, "alice pulls");
    assert_eq!(
        Digest_of(&out.join("manifest.json")),
        "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4"
    );

    // Anonymous: may not pull the private repository, nor push anywhere.
    let anonymous_pull = inspect(&["--no-creds"], "tiny").await;
    assert_refused(&anonymous_pull, "anonymous pull of a private repository");
    let anonymous_push = push(&["--dest-no-creds"], "anon").await;
    assert_refused(&anonymous_push, "anonymous push");

    // Public: anonymous pull works.
    t.make_public("alice/app").await;
    let public_pull = inspect(&["--no-creds"], "tiny").await;
    assert_ok(&public_pull, "anonymous pull of a public repository");
    let anonymous_push = push(&["--dest-no-creds"], "anon").await;
    assert_refused(&anonymous_push, "anonymous push to a public repository");

    // Another user may not push to alice's repository.
    let bob_push = push(&["--dest-creds", "bob:bob-password"], "bob").await;
    assert_refused(&bob_push, "bob pushes to alice/app");

    // A robot with a write grant pushes with --dest-creds and pulls with --src-creds.
    let secret = t.add_robot("alice+ci").await;
    t.grant("alice/app", "alice+ci", Permission::Write).await;
    let robot = format!("alice+ci:{secret}");
    let robot_push = push(&["--dest-creds", &robot], "ci").await;
    assert_ok(&robot_push, "the robot pushes");
    let robot_pull = inspect(&["--creds", &robot], "ci").await;
    assert_ok(&robot_pull, "the robot pulls");

    // Bob copies alice's private image into his own namespace: he may read neither the
    // source (so skopeo cannot pull it with his credentials) nor mount from it.
    t.access
        .set_public(
            &quayside::names::RepositoryName::parse("alice/app").unwrap(),
            false,
        )
        .await
        .unwrap();
    let (alices, bobs) = (image("alice/app", "tiny"), image("bob/copy", "tiny"));
    // skopeo copies alice/app:tiny to bob/copy:tiny, reading as `reader` (`user:password`)
    // and writing as bob.
    let copy_to_bob = |reader: &str| {
        let words = [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            reader,
            "--dest-creds",
            "bob:bob-password",
            &alices,
            &bobs,
        ];
        skopeo(args(&words), None)
    };
    let steal = copy_to_bob("bob:bob-password").await;
    assert_refused(&steal, "bob reads alice's private repository");
    // With alice's credentials for the source and bob's for the destination, skopeo may
    // try to mount from alice/app with bob's token: refused, so it uploads instead, and
    // the copy still works.
    let copied = copy_to_bob("alice:alice-password").await;
    assert_ok(&copied, "alice's image into bob's namespace");
}

#[allow(non_snake_case)]
fn Digest_of(path: &Path) -> String {
    quayside::digest::Digest::sha256(&std::fs::read(path).unwrap()).to_string()
}
