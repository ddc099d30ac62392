//! registry-local as a user runs it: the real binary, over real HTTP.

mod support;

use support::{Server, agent, start_upload};

const INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn data_survives_a_restart_and_head_keeps_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let url = "/v2/library/empty/manifests/latest";
    let digest = {
        let server = Server::start(dir.path(), &[]);
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

    let server = Server::start(dir.path(), &[]);
    let at = format!("{}{url}", server.base);
    let mut got = agent().get(&at).call().unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()["docker-content-digest"].to_str().unwrap(),
        digest
    );
    assert_eq!(got.body_mut().read_to_string().unwrap(), INDEX);

    let head = agent().head(&at).call().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        INDEX.len().to_string()
    );

    // Routes it does not serve answer the registry's error body, not a bare 404.
    let mut post = agent().post(&at).send_empty().unwrap();
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
    let server = Server::start(dir.path(), &[]);
    let location = start_upload(&server, "library/big");
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
