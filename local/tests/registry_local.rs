//! registry-local as a user runs it: the real binary, over real HTTP.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        // A free port: bind to 0, note it, let it go.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_registry-local"))
            .args(["--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("registry-local starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry-local did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn data_survives_a_restart_and_head_keeps_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let url = "/v2/library/empty/manifests/latest";
    let digest = {
        let server = Server::start(dir.path());
        let put = agent()
            .put(&format!("{}{url}", server.base))
            .header("content-type", INDEX_TYPE)
            .send(INDEX)
            .unwrap();
        assert_eq!(put.status(), 201);
        put.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    };

    let server = Server::start(dir.path());
    let mut got = agent()
        .get(&format!("{}{url}", server.base))
        .call()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()["docker-content-digest"].to_str().unwrap(),
        digest
    );
    assert_eq!(got.body_mut().read_to_string().unwrap(), INDEX);

    let head = agent()
        .head(&format!("{}{url}", server.base))
        .call()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        INDEX.len().to_string()
    );

    // Routes it does not serve answer the registry's error body, not a bare 404.
    let mut post = agent()
        .post(&format!("{}{url}", server.base))
        .send_empty()
        .unwrap();
    assert_eq!(post.status(), 405);
    assert!(
        post.body_mut()
            .read_to_string()
            .unwrap()
            .contains("UNSUPPORTED")
    );
}

#[test]
fn takes_a_whole_layer_in_one_patch_as_docker_sends_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let start = agent()
        .post(&format!("{}/v2/library/big/blobs/uploads/", server.base))
        .send_empty()
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_string();
    // Over Lambda's 4 MiB: registry-local must take it.
    let layer = vec![7u8; 6 * 1024 * 1024];
    let patch = agent()
        .patch(&format!("{}{location}", server.base))
        .send(&layer[..])
        .unwrap();
    assert_eq!(patch.status(), 202);
    assert_eq!(
        patch.headers()["range"].to_str().unwrap(),
        format!("0-{}", layer.len() - 1)
    );
}
