//! Upload sessions handed to the upload service: start-upload answers a `Location` on the
//! service's host with a capability for that one session, which stands for the caller's
//! token there (docker, containerd and crane drop `Authorization` on another host; podman
//! and oras keep it: both work). A forged, expired, other repository's or other session's
//! capability is refused with `401` and stores nothing.

use http::Method;
use quayside::auth::token::{self, UploadClaims};
use quayside::digest::Digest;
use quayside_tests::*;

const SERVICE: &str = "https://uploads.registry.test";

/// A registry with tokens on and an upload service; alice may push to alice/*.
async fn registry() -> TestRegistry {
    let mut t = TestRegistry::with_auth().await;
    t.registry = t
        .registry
        .clone()
        .with_upload_service(&format!("{SERVICE}/"));
    t.add_user("alice", "alice-password").await;
    t
}

const ALICE: Option<(&str, &str)> = Some(("alice", "alice-password"));

/// Opens a session of `repo` as alice: the path and query of its `Location` on the service.
async fn open(t: &TestRegistry, repo: &str) -> String {
    let token = t
        .token(ALICE, &[&format!("repository:{repo}:pull,push")])
        .await;
    let got = t
        .request_as(
            &token,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            b"",
        )
        .await;
    assert_eq!(got.status, 202, "{}", got.text());
    let location = got.header("location").expect("a location");
    let on_service = location
        .strip_prefix(SERVICE)
        .unwrap_or_else(|| panic!("{location} is not on the upload service"));
    assert!(
        on_service.starts_with(&format!("/v2/{repo}/blobs/uploads/"))
            && on_service.contains("?_upload="),
        "{on_service}"
    );
    on_service.to_string()
}

/// The capability in a session URL.
fn capability_of(location: &str) -> String {
    location
        .split_once("?_upload=")
        .map(|(_, rest)| rest.split('&').next().unwrap_or_default().to_string())
        .expect("a capability")
}

/// The session URL with `capability` instead of its own.
fn with_capability(location: &str, capability: &str) -> String {
    let (path, _) = location.split_once('?').expect("a query");
    format!("{path}?_upload={capability}")
}

/// The path of alice/app's blob `digest` on the registry.
fn alice_blob(digest: &Digest) -> String {
    format!("/v2/alice/app/blobs/{digest}")
}

/// The digest query parameter appended, as clients finish a session.
fn finishing(location: &str, digest: &Digest) -> String {
    format!("{location}&digest={digest}")
}

#[tokio::test]
async fn a_session_continues_on_the_service_with_its_capability_alone() {
    let t = registry().await;
    let data = b"layer bytes pushed through the upload service".repeat(100);
    let digest = Digest::sha256(&data);
    let location = open(&t, "alice/app").await;

    // No Authorization (docker, containerd, crane): the capability is the right.
    let got = t
        .request(Method::PATCH, &location, &[], &data[..1000])
        .await;
    assert_eq!(got.status, 202, "{}", got.text());
    let next = got.header("location").expect("a location").to_string();
    assert_eq!(capability_of(&next), capability_of(&location), "{next}");
    assert!(
        next.starts_with("/v2/alice/app/blobs/uploads/"),
        "relative: {next}"
    );
    let got = t.get(&next, &[]).await;
    assert_eq!((got.status, got.header("range")), (204, Some("0-999")));

    // With Authorization too (podman, oras keep sending it): the same.
    let token = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let got = t
        .request_as(&token, Method::PATCH, &next, &data[1000..])
        .await;
    assert_eq!(got.status, 202, "{}", got.text());
    let next = got.header("location").expect("a location").to_string();
    let got = t.put(&finishing(&next, &digest), b"").await;
    assert_eq!(got.status, 201, "{}", got.text());
    // The blob's URL is the registry's (the API that opened the session), not the service's.
    assert_eq!(
        got.header("location"),
        Some(format!("https://localhost/v2/alice/app/blobs/{digest}").as_str())
    );
    let got = t
        .request_as(&token, Method::HEAD, &alice_blob(&digest), b"")
        .await;
    assert_eq!(got.status, 200);

    // A cancel with the capability alone.
    let location = open(&t, "alice/app").await;
    assert_eq!(
        t.request(Method::DELETE, &location, &[], b"").await.status,
        204
    );
    assert_eq!(t.get(&location, &[]).await.status, 404);
}

#[tokio::test]
async fn forged_expired_and_other_sessions_capabilities_store_nothing() {
    let t = registry().await;
    let data = b"bytes that must not be stored".to_vec();
    let digest = Digest::sha256(&data);
    let mine = open(&t, "alice/app").await;
    let other_repo = open(&t, "alice/other").await;
    let other_session = open(&t, "alice/app").await;
    let signer = t.registry.signer.as_ref();
    let id = mine
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .expect("an id")
        .to_string();
    let claims = |exp: u64, repository: &str, upload: &str| UploadClaims {
        iss: TEST_ISSUER.into(),
        sub: "alice".into(),
        aud: token::upload_audience(TEST_SERVICE),
        exp,
        nbf: token::now().saturating_sub(7200),
        iat: token::now().saturating_sub(7200),
        jti: token::new_jti(),
        repository: repository.into(),
        upload: upload.into(),
        registry: String::new(),
    };
    let expired = token::sign_upload(signer, &claims(token::now() - 3600, "alice/app", &id))
        .await
        .expect("signed");
    let bearer = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let mut forged = capability_of(&mine);
    // The last signature character changed: the same claims, a signature that fails.
    let last = forged.pop().expect("a character");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let mut wrong_audience = claims(token::now() + 3600, "alice/app", &id);
    wrong_audience.aud = TEST_SERVICE.into();
    let wrong_audience = token::sign_upload(signer, &wrong_audience)
        .await
        .expect("signed");

    for (what, capability) in [
        ("forged", forged),
        ("expired", expired),
        ("another repository's", capability_of(&other_repo)),
        ("another session's", capability_of(&other_session)),
        ("a bearer token", bearer.clone()),
        ("a bearer token's audience", wrong_audience),
        ("empty", String::new()),
    ] {
        let url = with_capability(&mine, &capability);
        for (method, path, body) in [
            (Method::PATCH, url.clone(), data.clone()),
            (Method::PUT, finishing(&url, &digest), data.clone()),
            (Method::GET, url.clone(), Vec::new()),
            (Method::DELETE, url.clone(), Vec::new()),
        ] {
            let got = t.request(method.clone(), &path, &[], &body).await;
            assert_eq!(got.status, 401, "{what} capability, {method}");
            assert_eq!(got.error_code(), "UNAUTHORIZED", "{what}, {method}");
            assert!(
                got.header("www-authenticate")
                    .is_some_and(|c| c.contains("error=\"invalid_token\"")),
                "{what}, {method}"
            );
        }
        // Refused even with a valid bearer token beside it: a capability that does not
        // check out is never overlooked.
        let got = t.request_as(&bearer, Method::PATCH, &url, &data).await;
        assert_eq!(got.status, 401, "{what} capability beside a token");
    }
    // Nothing was stored: the session is where it was, the blob unknown.
    let got = t.get(&mine, &[]).await;
    assert_eq!((got.status, got.header("range")), (204, Some("0-0")));
    let got = t
        .request_as(&bearer, Method::HEAD, &alice_blob(&digest), b"")
        .await;
    assert_eq!(got.status, 404);

    // A capability is no bearer token, and opens nothing but its session's routes.
    let capability = capability_of(&mine);
    let got = t
        .request_as(&capability, Method::GET, "/v2/alice/app/tags/list", b"")
        .await;
    assert_eq!(got.status, 401);
    let start_with_it = format!("/v2/alice/app/blobs/uploads/?_upload={capability}");
    let got = t.post(&start_with_it, b"").await;
    assert_eq!(got.status, 401, "a capability opens no new session");
}

/// Without an upload service, sessions stay on the registry's own host, as before.
#[tokio::test]
async fn without_the_service_sessions_stay_here() {
    let t = TestRegistry::with_auth().await;
    t.add_user("alice", "alice-password").await;
    let token = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let got = t
        .request_as(&token, Method::POST, "/v2/alice/app/blobs/uploads/", b"")
        .await;
    assert_eq!(got.status, 202);
    let location = got.header("location").expect("a location");
    assert!(
        location.starts_with("/v2/alice/app/blobs/uploads/") && !location.contains('?'),
        "{location}"
    );
}

/// oras refuses an upload Location on another host than the registry's (oras-go's guard):
/// its sessions stay on the registry's own host, with no capability.
#[tokio::test]
async fn orass_sessions_stay_on_the_registrys_host() {
    let t = registry().await;
    let token = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let open_as = async |agent: &str| {
        t.request_with_token(
            &token,
            Method::POST,
            "/v2/alice/app/blobs/uploads/",
            &[("user-agent", agent)],
            b"",
        )
        .await
    };
    let got = open_as("oras/1.3.3").await;
    assert_eq!(got.status, 202);
    let location = got.header("location").expect("a location");
    assert!(
        location.starts_with("/v2/alice/app/blobs/uploads/") && !location.contains('?'),
        "{location}"
    );
    // Another client's session still goes to the service.
    let got = open_as("crane/v0.21.9 go-containerregistry/v0.21.9").await;
    assert!(
        got.header("location")
            .is_some_and(|l| l.starts_with(SERVICE))
    );
}
