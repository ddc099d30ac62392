//! Token authentication through the route table, on the test's backend: the token service,
//! the gate's answers, the rules (users, robots, grants, visibility, create rights), and
//! one test per attack: `alg: none`, HS256 keyed with the public key, another key,
//! expired and not-yet-valid tokens, wrong `aud`/`iss`, a pull token used to push, one
//! repository's token used on another (also by path tricks), a mount from a repository
//! the caller cannot read, a catalog the caller may not see, a manifest signature replayed
//! as a token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use lambda_http::{Body, RequestExt};
use quayside::auth::scope::ResourceActions;
use quayside::auth::token::{self, Claims};
use quayside::ports::{Permission, Signer};
use quayside_tests::*;
use serde_json::{Value, json};
use std::collections::HashMap;

const OCI_LAYOUT_MANIFEST: &str = "oci-image-manifest.json";

/// A registry with auth on, users `alice` and `bob`, robot `alice+ci`.
async fn registry() -> TestRegistry {
    let t = TestRegistry::with_auth().await;
    t.add_user("alice", "alice-password").await;
    t.add_user("bob", "bob-password").await;
    t
}

const ALICE: Option<(&str, &str)> = Some(("alice", "alice-password"));
const BOB: Option<(&str, &str)> = Some(("bob", "bob-password"));

/// The `access` claim of a token, read without checking it (the test's own token).
fn access_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["access"].clone()
}

/// Pushes the tiny OCI image (its blobs through the upload API, then the manifest) to
/// `repo:tag` with `token`; returns the manifest PUT's answer.
async fn push_tiny(t: &TestRegistry, token: &str, repo: &str, tag: &str) -> Answer {
    for hex in [TINY_CONFIG, TINY_LAYER0, TINY_LAYER1] {
        let blob = layout_blob(hex);
        let post = t
            .request_as(
                token,
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest=sha256:{hex}"),
                &blob,
            )
            .await;
        if post.status != 201 {
            return post;
        }
    }
    t.request_with_token(
        token,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("content-type", OCI_MANIFEST)],
        &manifest_fixture(OCI_LAYOUT_MANIFEST),
    )
    .await
}

/// Claims as the registry would issue them for `access`, valid now.
fn claims(access: Vec<ResourceActions>) -> Claims {
    let now = token::now();
    Claims {
        iss: TEST_ISSUER.into(),
        sub: "alice".into(),
        aud: TEST_SERVICE.into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        jti: token::new_jti(),
        access,
    }
}

fn pull_push(repo: &str) -> Vec<ResourceActions> {
    vec![ResourceActions {
        kind: "repository".into(),
        name: repo.into(),
        actions: vec!["pull".into(), "push".into()],
    }]
}

/// A compact JWT of `header` and `claims` with `signature` bytes.
fn jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn get_manifest(t: &TestRegistry, token: &str, repo: &str) -> Answer {
    t.request_with_token(
        token,
        Method::GET,
        &format!("/v2/{repo}/manifests/tiny"),
        &[("accept", OCI_MANIFEST)],
        b"",
    )
    .await
}

/// Every refused token gets 401 with the challenge of the route's scope and
/// `error="invalid_token"`.
fn assert_invalid_token(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text());
    assert_eq!(answer.error_code(), "UNAUTHORIZED", "{what}");
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// The `WWW-Authenticate` challenge of an answer (empty if it has none).
fn challenge(answer: &Answer) -> &str {
    answer.header("www-authenticate").unwrap_or_default()
}

/// A registry (as [`registry`]) where alice has pushed the tiny image as `repo:tiny`, and
/// her pull,push token for `repo`: where the attacks start.
async fn registry_with_alices(repo: &str) -> (TestRegistry, String) {
    let t = registry().await;
    let alice = t
        .token(ALICE, &[&format!("repository:{repo}:pull,push")])
        .await;
    assert_eq!(push_tiny(&t, &alice, repo, "tiny").await.status, 201);
    (t, alice)
}

/// A JWS of any `header` over `payload`, signed with RS256 by `signer`: a token as someone
/// holding a key (ours or another) can make it, whatever it claims.
async fn signed_rs256<S: Signer + ?Sized>(signer: &S, header: &Value, payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = signer.sign_rs256(input.as_bytes()).await.unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A GET of `path` with `Authorization: <authorization>`.
async fn get_authorized(t: &TestRegistry, path: &str, authorization: &str) -> Answer {
    t.request(Method::GET, path, &[("authorization", authorization)], b"")
        .await
}

#[tokio::test]
async fn the_token_service_grants_the_subset_the_caller_holds() {
    let t = registry().await;
    // Anonymous: a token, with nothing in it for a private repository.
    let anonymous = t.token(None, &["repository:alice/app:pull,push"]).await;
    assert_eq!(access_of(&anonymous), json!([]));

    // Alice owns alice/*: pull and push; asked `*`, she gets `*`.
    let answer = t
        .token_answer(
            ALICE,
            &["repository:alice/app:pull,push", "repository:alice/other:*"],
        )
        .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        access_of(token),
        json!([
            {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "alice/other", "actions": ["*"]},
        ])
    );
    // The header names the registry's key.
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = t.registry.signer.public_jwk().await.unwrap().kid.clone();
    assert_eq!(header, json!({"typ": "JWT", "alg": "RS256", "kid": kid}));

    // Bob has nothing in alice/*; read granted: pull only.
    assert_eq!(
        access_of(&t.token(BOB, &["repository:alice/app:pull,push"]).await),
        json!([])
    );
    t.grant("alice/app", "bob", Permission::Read).await;
    assert_eq!(
        access_of(&t.token(BOB, &["repository:alice/app:pull,push"]).await),
        json!([{"type": "repository", "name": "alice/app", "actions": ["pull"]}])
    );

    // Wrong password, unknown user, malformed Basic: 401 with a Basic challenge.
    for creds in [
        Some(("alice", "wrong")),
        Some(("mallory", "alice-password")),
        Some(("ALICE", "alice-password")),
    ] {
        let answer = t.token_answer(creds, &["repository:alice/app:pull"]).await;
        assert_eq!(answer.status, 401, "{creds:?}");
        assert_eq!(answer.error_code(), "UNAUTHORIZED");
        assert!(challenge(&answer).starts_with("Basic "));
    }
    let garbled = get_authorized(&t, "/v2/auth?scope=repository:alice/app:pull", "Basic !!!").await;
    assert_eq!(garbled.status, 401);
    // Another service's token is not ours to give.
    let other = t
        .request(Method::GET, "/v2/auth?service=elsewhere", &[], b"")
        .await;
    assert_eq!(other.status, 400);
}

#[tokio::test]
async fn routes_answer_challenges_and_denials() {
    let t = registry().await;
    // No token: 401, the realm, the service, the route's scope.
    let get = t.get("/v2/alice/app/manifests/tiny", &[]).await;
    assert_eq!(get.status, 401);
    assert_eq!(get.error_code(), "UNAUTHORIZED");
    assert_eq!(
        get.header("www-authenticate"),
        Some(
            "Bearer realm=\"http://registry.test/v2/auth\",service=\"quayside-test\",\
             scope=\"repository:alice/app:pull\""
        )
    );
    assert_eq!(
        get.json()["errors"][0]["detail"],
        json!([{"Type": "repository", "Name": "alice/app", "Action": "pull"}])
    );
    // HEAD: the same status and challenge, no body.
    let head = t.head("/v2/alice/app/manifests/tiny").await;
    assert_eq!(head.status, 401);
    assert!(head.body.is_empty());
    assert!(head.header("www-authenticate").is_some());
    // A push route asks for pull and push; a delete for delete; the catalog for its scope.
    let post = t.post("/v2/alice/app/blobs/uploads/", b"").await;
    assert!(challenge(&post).ends_with("scope=\"repository:alice/app:pull,push\""));
    let delete = t.delete("/v2/alice/app/manifests/tiny").await;
    assert!(challenge(&delete).ends_with("scope=\"repository:alice/app:delete\""));
    let catalog = t.get("/v2/_catalog", &[]).await;
    assert!(challenge(&catalog).ends_with("scope=\"registry:catalog:*\""));

    // GET /v2/: 401 without a token (how clients find the realm), 200 with any valid one.
    let version = t.get("/v2/", &[]).await;
    assert_eq!(version.status, 401);
    assert_eq!(
        version.header("www-authenticate"),
        Some("Bearer realm=\"http://registry.test/v2/auth\",service=\"quayside-test\"")
    );
    let anonymous = t.token(None, &[]).await;
    let version = t.request_as(&anonymous, Method::GET, "/v2/", b"").await;
    assert_eq!(version.status, 200);
    // Basic credentials are for the token service only.
    let basic = get_authorized(&t, "/v2/", "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=").await;
    assert_eq!(basic.status, 401);

    // A valid token without the right: 403 DENIED, insufficient_scope.
    let denied = get_manifest(&t, &anonymous, "alice/app").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "DENIED");
    assert!(challenge(&denied).contains("error=\"insufficient_scope\""));

    // The token service itself needs no token; an invalid name is 400 to anyone.
    let bad_name = t.get("/v2/Alice/app/manifests/tiny", &[]).await;
    assert_eq!(bad_name.status, 400);
    assert_eq!(bad_name.error_code(), "NAME_INVALID");
}

#[tokio::test]
async fn users_robots_and_anonymous_push_and_pull_by_the_rules() {
    let t = registry().await;
    let alice = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let pushed = push_tiny(&t, &alice, "alice/app", "tiny").await;
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    assert_eq!(get_manifest(&t, &alice, "alice/app").await.status, 200);

    // Anonymous: no token is 401; an anonymous token cannot push (403) nor pull a private
    // repository (403).
    let no_token = t
        .put_manifest(
            "/v2/alice/app/manifests/x",
            OCI_MANIFEST,
            &manifest_fixture(OCI_LAYOUT_MANIFEST),
        )
        .await;
    assert_eq!(no_token.status, 401);
    let anonymous = t.token(None, &["repository:alice/app:pull,push"]).await;
    assert_eq!(
        push_tiny(&t, &anonymous, "alice/app", "x").await.status,
        403
    );
    assert_eq!(get_manifest(&t, &anonymous, "alice/app").await.status, 403);

    // Made public: anonymous pulls, still cannot push.
    t.make_public("alice/app").await;
    let anonymous = t.token(None, &["repository:alice/app:pull,push"]).await;
    assert_eq!(
        access_of(&anonymous),
        json!([{"type": "repository", "name": "alice/app", "actions": ["pull"]}])
    );
    let pulled = get_manifest(&t, &anonymous, "alice/app").await;
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, manifest_fixture(OCI_LAYOUT_MANIFEST));
    assert_eq!(
        push_tiny(&t, &anonymous, "alice/app", "x").await.status,
        403
    );

    // Another user: cannot push in alice/*, nor in a namespace it was not given.
    let bob = t.token(BOB, &["repository:alice/app:pull,push"]).await;
    assert_eq!(push_tiny(&t, &bob, "alice/app", "bob").await.status, 403);
    let bob = t.token(BOB, &["repository:team/app:pull,push"]).await;
    assert_eq!(push_tiny(&t, &bob, "team/app", "bob").await.status, 403);

    // A robot with a write grant pushes; its secret works only for it.
    let secret = t.add_robot("alice+ci").await;
    t.grant("alice/app", "alice+ci", Permission::Write).await;
    let ci = t
        .token(
            Some(("alice+ci", &secret)),
            &["repository:alice/app:pull,push"],
        )
        .await;
    assert_eq!(push_tiny(&t, &ci, "alice/app", "ci").await.status, 201);
    let wrong = t
        .token_answer(Some(("bob", &secret)), &["repository:alice/app:pull"])
        .await;
    assert_eq!(wrong.status, 401);
    // The robot has no rights beyond its grant: not even in its namespace's other repos.
    let ci = t
        .token(
            Some(("alice+ci", &secret)),
            &["repository:alice/other:pull,push"],
        )
        .await;
    assert_eq!(access_of(&ci), json!([]));

    // Delete needs `delete`: a pull,push token is refused (401: alice holds delete, so
    // her client is asked for a token that says so); her delete token works.
    let delete = t
        .request_as(&alice, Method::DELETE, "/v2/alice/app/manifests/ci", b"")
        .await;
    assert_eq!(delete.status, 401);
    let alice_delete = t.token(ALICE, &["repository:alice/app:delete"]).await;
    let delete = t
        .request_as(
            &alice_delete,
            Method::DELETE,
            "/v2/alice/app/manifests/ci",
            b"",
        )
        .await;
    assert_eq!(delete.status, 202);
}

#[tokio::test]
async fn a_create_right_lets_the_first_pusher_create_and_keep_a_repository() {
    let t = registry().await;
    t.add_user("carol", "carol-password").await;
    for user in ["bob", "carol"] {
        assert!(
            t.access
                .set_namespace_create(user, "team", true)
                .await
                .unwrap()
        );
    }
    let bob = t.token(BOB, &["repository:team/app:pull,push"]).await;
    assert_eq!(
        access_of(&bob),
        json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    assert_eq!(push_tiny(&t, &bob, "team/app", "tiny").await.status, 201);
    // Bob keeps it (he is its admin now); Carol, who may also create in team, may not
    // take it over.
    let again = t.token(BOB, &["repository:team/app:pull,push"]).await;
    assert_eq!(push_tiny(&t, &again, "team/app", "v2").await.status, 201);
    let carol = t
        .token(
            Some(("carol", "carol-password")),
            &["repository:team/app:pull,push"],
        )
        .await;
    assert_eq!(access_of(&carol), json!([]));
    // A repository that exists (pushed by alice's own namespace rule) is not claimable.
    let alice = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    assert_eq!(push_tiny(&t, &alice, "alice/app", "tiny").await.status, 201);
    assert!(
        t.access
            .set_namespace_create("bob", "alice", true)
            .await
            .unwrap()
    );
    let bob = t.token(BOB, &["repository:alice/app:pull,push"]).await;
    assert_eq!(access_of(&bob), json!([]));

    // Names of any depth: the first component decides. Bob creates team/sub/app by his
    // right on team; alice owns alice/deep/er/app; neither reaches the other's.
    let bob = t.token(BOB, &["repository:team/sub/app:pull,push"]).await;
    assert_eq!(
        push_tiny(&t, &bob, "team/sub/app", "tiny").await.status,
        201
    );
    let alice = t
        .token(ALICE, &["repository:alice/deep/er/app:pull,push"])
        .await;
    assert_eq!(
        access_of(&alice),
        json!([{"type": "repository", "name": "alice/deep/er/app", "actions": ["pull", "push"]}])
    );
    assert_eq!(
        push_tiny(&t, &alice, "alice/deep/er/app", "tiny")
            .await
            .status,
        201
    );
    let alice = t.token(ALICE, &["repository:team/sub/app:pull"]).await;
    assert_eq!(access_of(&alice), json!([]));
    // A name that only starts like a namespace is another namespace.
    let bob = t.token(BOB, &["repository:teams/app:pull,push"]).await;
    assert_eq!(access_of(&bob), json!([]));
    // The catalog lists nested names by what the caller may pull.
    let catalog = t.token(BOB, &["registry:catalog:*"]).await;
    let got = t
        .request_as(&catalog, Method::GET, "/v2/_catalog", b"")
        .await;
    assert_eq!(
        got.json(),
        json!({"repositories": ["team/app", "team/sub/app"]})
    );
}

#[tokio::test]
async fn attack_alg_none_is_refused() {
    let t = registry().await;
    let kid = t.registry.signer.public_jwk().await.unwrap().kid.clone();
    let claims = serde_json::to_value(claims(pull_push("alice/app"))).unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"typ": "JWT", "alg": alg, "kid": kid});
        for token in [
            jwt(&header, &claims, b""),
            format!("{}.", jwt(&header, &claims, b"").trim_end_matches('.')),
        ] {
            assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, alg);
        }
    }
}

/// HMAC-SHA256, for forging tokens the way the algorithm-confusion attack does.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
}

#[tokio::test]
async fn attack_hs256_keyed_with_the_public_key_is_refused() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let t = registry().await;
    let jwk = t.registry.signer.public_jwk().await.unwrap();
    let n = URL_SAFE_NO_PAD.decode(&jwk.n).unwrap();
    let e = URL_SAFE_NO_PAD.decode(&jwk.e).unwrap();
    let public = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    )
    .unwrap();
    let der = public.to_public_key_der().unwrap().as_bytes().to_vec();
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let jwk_json = serde_json::to_vec(&*jwk).unwrap();
    let claims = serde_json::to_value(claims(pull_push("alice/app"))).unwrap();
    for (what, key) in [
        ("PEM", pem.as_bytes().to_vec()),
        ("DER", der),
        ("n", n.clone()),
        ("JWK", jwk_json),
    ] {
        for alg in ["HS256", "HS384", "HS512"] {
            let header = json!({"typ": "JWT", "alg": alg, "kid": jwk.kid});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let token = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(hmac_sha256(&key, input.as_bytes()))
            );
            assert_invalid_token(
                &get_manifest(&t, &token, "alice/app").await,
                &format!("{alg} keyed with the {what}"),
            );
        }
    }
}

#[tokio::test]
async fn attack_a_token_signed_by_another_key_is_refused() {
    let t = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let other = quayside::embedded::KeyFileSigner::open(&dir.path().join("other.pem")).unwrap();
    let claims_value = claims(pull_push("alice/app"));
    // Signed by the other key, with its own kid.
    let token = token::sign(&other, &claims_value).await.unwrap();
    assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, "other kid");
    // Signed by the other key, claiming the registry's kid.
    let kid = t.registry.signer.public_jwk().await.unwrap().kid.clone();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": kid});
    let payload = serde_json::to_vec(&claims_value).unwrap();
    let token = signed_rs256(&other, &header, &payload).await;
    assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, "our kid");
    // And a genuine token whose claims were edited after signing.
    let genuine = t.token(BOB, &["repository:bob/app:pull"]).await;
    let mut parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    let mut edited: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    edited["access"] = serde_json::to_value(pull_push("alice/app")).unwrap();
    parts[1] = URL_SAFE_NO_PAD.encode(edited.to_string());
    assert_invalid_token(
        &get_manifest(&t, &parts.join("."), "alice/app").await,
        "edited",
    );
    // Garbage.
    for junk in ["x", "a.b.c", "...", &"A".repeat(10_000)] {
        assert_invalid_token(&get_manifest(&t, junk, "alice/app").await, "junk");
    }
}

#[tokio::test]
async fn attack_expired_and_not_yet_valid_tokens_are_refused() {
    let (t, _) = registry_with_alices("alice/app").await;
    let signer = t.registry.signer.as_ref();
    let now = token::now();
    let base = claims(pull_push("alice/app"));
    // Within the 30 s leeway: accepted.
    let slightly_late = Claims {
        exp: now - 10,
        ..base.clone()
    };
    let ok = token::sign(signer, &slightly_late).await.unwrap();
    assert_eq!(get_manifest(&t, &ok, "alice/app").await.status, 200);
    for (what, claims) in [
        (
            "expired",
            Claims {
                exp: now - 120,
                nbf: now - 600,
                iat: now - 600,
                ..base.clone()
            },
        ),
        (
            "not yet valid",
            Claims {
                nbf: now + 120,
                exp: now + 600,
                ..base.clone()
            },
        ),
    ] {
        let token = token::sign(signer, &claims).await.unwrap();
        assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, what);
    }
    // Without exp or nbf at all.
    for missing in ["exp", "nbf"] {
        let mut value = serde_json::to_value(&base).unwrap();
        value.as_object_mut().unwrap().remove(missing);
        let kid = signer.public_jwk().await.unwrap().kid.clone();
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": kid});
        let token = signed_rs256(signer, &header, value.to_string().as_bytes()).await;
        assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, missing);
    }
}

#[tokio::test]
async fn attack_wrong_audience_or_issuer_is_refused() {
    let (t, _) = registry_with_alices("alice/app").await;
    let signer = t.registry.signer.as_ref();
    let base = claims(pull_push("alice/app"));
    let right = token::sign(signer, &base).await.unwrap();
    assert_eq!(get_manifest(&t, &right, "alice/app").await.status, 200);
    for (what, claims) in [
        (
            "aud",
            Claims {
                aud: "another-registry".into(),
                ..base.clone()
            },
        ),
        (
            "aud case",
            Claims {
                aud: TEST_SERVICE.to_uppercase(),
                ..base.clone()
            },
        ),
        (
            "iss",
            Claims {
                iss: "someone-else".into(),
                ..base.clone()
            },
        ),
        (
            "iss empty",
            Claims {
                iss: String::new(),
                ..base.clone()
            },
        ),
    ] {
        let token = token::sign(signer, &claims).await.unwrap();
        assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, what);
    }
}

#[tokio::test]
async fn attack_a_pull_token_cannot_push() {
    let (t, alice) = registry_with_alices("alice/app").await;
    // Alice asks for pull only: the token says pull only, whatever she holds.
    let pull = t.token(ALICE, &["repository:alice/app:pull"]).await;
    let upload = t
        .request_as(&alice, Method::POST, "/v2/alice/app/blobs/uploads/", b"")
        .await;
    assert_eq!(upload.status, 202);
    // The session without the capability a deployment's upload service puts in its URL
    // (tests/upload_capability.rs tries those): here the token alone decides.
    let location = upload.header("location").unwrap();
    let session = location.split('?').next().unwrap_or(location).to_string();
    let digest = format!("sha256:{TINY_LAYER0}");
    for (method, path, body) in [
        (
            Method::POST,
            "/v2/alice/app/blobs/uploads/".to_string(),
            Vec::new(),
        ),
        (Method::PATCH, session.clone(), b"bytes".to_vec()),
        (
            Method::PUT,
            format!("{session}?digest={digest}"),
            Vec::new(),
        ),
        (Method::GET, session.clone(), Vec::new()),
        (Method::DELETE, session.clone(), Vec::new()),
        (
            Method::PUT,
            "/v2/alice/app/manifests/evil".to_string(),
            manifest_fixture(OCI_LAYOUT_MANIFEST),
        ),
        (
            Method::DELETE,
            "/v2/alice/app/manifests/tiny".to_string(),
            Vec::new(),
        ),
        (
            Method::DELETE,
            format!("/v2/alice/app/blobs/{digest}"),
            Vec::new(),
        ),
    ] {
        let answer = t
            .request_with_token(
                &pull,
                method.clone(),
                &path,
                &[("content-type", OCI_MANIFEST)],
                &body,
            )
            .await;
        // Alice holds push: her client is asked to fetch a token that says so (401, as
        // distribution answers, which clients act on), and nothing happens meanwhile.
        assert_eq!(answer.status, 401, "{method} {path}");
        assert_eq!(answer.error_code(), "UNAUTHORIZED", "{method} {path}");
        assert!(
            challenge(&answer).contains("error=\"insufficient_scope\""),
            "{method} {path}"
        );
    }
    // Nothing changed.
    assert_eq!(
        t.get("/v2/alice/app/tags/list", &[]).await.status,
        401,
        "and no token is still no answer"
    );
    let tags = t
        .request_as(&pull, Method::GET, "/v2/alice/app/tags/list", b"")
        .await;
    assert_eq!(tags.json()["tags"], json!(["tiny"]));
}

/// The route `function` fed a request with explicit path parameters, as API Gateway
/// delivers them (decoded), whatever the raw path.
async fn serve_with_params(
    t: &TestRegistry,
    function: &str,
    token: &str,
    method: Method,
    params: &[(&str, &str)],
) -> Answer {
    let req = http::Request::builder()
        .method(method)
        .uri("/v2/x/y/manifests/tiny")
        .header("authorization", format!("Bearer {token}"))
        .header("accept", OCI_MANIFEST)
        .body(Body::Empty)
        .unwrap();
    let params: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    quayside::http::route(function)
        .unwrap()
        .serve(&t.registry, req.with_path_parameters(params))
        .await
        .into()
}

#[tokio::test]
async fn attack_one_repositorys_token_on_another_including_path_tricks() {
    let (t, _) = registry_with_alices("alice/secret").await;
    t.grant("alice/shared", "bob", Permission::Write).await;
    let scopes = [
        "repository:alice/shared:pull,push",
        "repository:alice/secret:pull",
    ];
    let bob = t.token(BOB, &scopes).await;
    assert_eq!(
        access_of(&bob),
        json!([{"type": "repository", "name": "alice/shared", "actions": ["pull", "push"]}])
    );
    // The other repository, straight.
    assert_eq!(get_manifest(&t, &bob, "alice/secret").await.status, 403);
    // Path parameters as a gateway might decode them: every spelling is refused before
    // any lookup, never served.
    for components in [
        &["alice", "shared/../secret"][..],
        &["alice", "../secret"],
        &["alice/shared/..", "secret"],
        &["alice", "shared", "..", "secret"],
        &["alice", "shared%2F..%2Fsecret"],
        &["alice%2Fsecret", "x"],
        &["alice", "Secret"],
        &["Alice", "secret"],
        &["alice", "SHARED"],
        &["alice", "shared\0"],
        &["alice", "shared/"],
        &["alice", ""],
        &["alice", "", "secret"],
        &["..", "secret"],
        &[".", "secret"],
        &["alice", "shared", "."],
    ] {
        let mut params: Vec<(String, &str)> = components
            .iter()
            .enumerate()
            .map(|(k, c)| (format!("name{}", k + 1), *c))
            .collect();
        params.push(("reference".to_string(), "tiny"));
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let answer = serve_with_params(&t, "fetch-manifest", &bob, Method::GET, &params).await;
        assert!(
            answer.status == 400 || answer.status == 403,
            "{components:?}: {}",
            answer.status
        );
        assert_ne!(answer.body, manifest_fixture(OCI_LAYOUT_MANIFEST));
    }
    // A nested name is a repository of its own: bob's grant on alice/shared is not one on
    // alice/shared/sub, nor the other way round.
    let sub = t
        .token(BOB, &["repository:alice/shared/sub:pull,push"])
        .await;
    assert_eq!(access_of(&sub), json!([]));
    assert_eq!(get_manifest(&t, &bob, "alice/shared/sub").await.status, 403);
    assert_eq!(
        push_tiny(&t, &bob, "alice/shared/sub", "x").await.status,
        403
    );
    // A token asked for odd spellings of the name grants nothing at all.
    let odd = t
        .token(
            ALICE,
            &[
                "repository:ALICE/secret:pull",
                "repository:alice/../secret:pull",
                "repository:alice%2Fsecret:pull",
                "repository:alice//secret:pull",
                "repository:alice/secret/:pull",
                "repository:/alice/secret:pull",
            ],
        )
        .await;
    assert_eq!(access_of(&odd), json!([]));
}

#[tokio::test]
async fn attack_a_mount_from_an_unreadable_repository_becomes_a_plain_upload() {
    let (t, _) = registry_with_alices("alice/secret").await;
    let digest = format!("sha256:{TINY_LAYER0}");
    let mount = format!("/v2/bob/mine/blobs/uploads/?mount={digest}&from=alice/secret");
    let blob = format!("/v2/bob/mine/blobs/{digest}");
    // Bob asks for pull on the source too; he gets none, so no mount: a session (202).
    let scopes = [
        "repository:bob/mine:pull,push",
        "repository:alice/secret:pull",
    ];
    let bob = t.token(BOB, &scopes).await;
    let answer = t.request_as(&bob, Method::POST, &mount, b"").await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(answer.header("docker-upload-uuid").is_some());
    let head = t.request_as(&bob, Method::HEAD, &blob, b"").await;
    assert_eq!(head.status, 404, "the blob was not linked to bob/mine");
    // Spelling the source otherwise, or twice, changes nothing.
    for from in ["alice/secret&from=bob/mine", "ALICE/secret"] {
        let path = format!("/v2/bob/mine/blobs/uploads/?mount={digest}&from={from}");
        let answer = t.request_as(&bob, Method::POST, &path, b"").await;
        assert_ne!(answer.status, 201, "{from}");
    }
    let head = t.request_as(&bob, Method::HEAD, &blob, b"").await;
    assert_eq!(head.status, 404);
    // Granted read on the source, the same request mounts (201).
    t.grant("alice/secret", "bob", Permission::Read).await;
    let bob = t.token(BOB, &scopes).await;
    let answer = t.request_as(&bob, Method::POST, &mount, b"").await;
    assert_eq!(answer.status, 201);
}

#[tokio::test]
async fn attack_the_catalog_lists_only_what_the_caller_may_pull() {
    let t = registry().await;
    t.add_user("carol", "carol-password").await;
    let alice = t
        .token(
            ALICE,
            &[
                "repository:alice/secret:pull,push",
                "repository:alice/open:pull,push",
            ],
        )
        .await;
    assert_eq!(
        push_tiny(&t, &alice, "alice/secret", "tiny").await.status,
        201
    );
    assert_eq!(
        push_tiny(&t, &alice, "alice/open", "tiny").await.status,
        201
    );
    let bob = t.token(BOB, &["repository:bob/app:pull,push"]).await;
    assert_eq!(push_tiny(&t, &bob, "bob/app", "tiny").await.status, 201);
    t.make_public("alice/open").await;

    let catalog = |token: String| {
        let t = &t;
        async move { t.request_as(&token, Method::GET, "/v2/_catalog", b"").await }
    };
    let bob = t.token(BOB, &["registry:catalog:*"]).await;
    let listed = catalog(bob).await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.json()["repositories"],
        json!(["alice/open", "bob/app"])
    );
    let alice = t.token(ALICE, &["registry:catalog:*"]).await;
    assert_eq!(
        catalog(alice).await.json()["repositories"],
        json!(["alice/open", "alice/secret"])
    );
    // Paging over the visible names only: Link names a visible repository.
    let bob = t.token(BOB, &["registry:catalog:*"]).await;
    let first = t
        .request_as(&bob, Method::GET, "/v2/_catalog?n=1", b"")
        .await;
    assert_eq!(first.json()["repositories"], json!(["alice/open"]));
    assert_eq!(
        first.header("link"),
        Some("</v2/_catalog?n=1&last=alice%2Fopen>; rel=\"next\"")
    );
    let second = t
        .request_as(&bob, Method::GET, "/v2/_catalog?n=1&last=alice%2Fopen", b"")
        .await;
    assert_eq!(second.json()["repositories"], json!(["bob/app"]));
    assert_eq!(second.header("link"), None);
    // Carol sees the public one only; anonymous gets no catalog scope (403).
    let carol = t
        .token(Some(("carol", "carol-password")), &["registry:catalog:*"])
        .await;
    assert_eq!(
        catalog(carol).await.json()["repositories"],
        json!(["alice/open"])
    );
    let anonymous = t.token(None, &["registry:catalog:*"]).await;
    assert_eq!(access_of(&anonymous), json!([]));
    assert_eq!(catalog(anonymous).await.status, 403);
    // A repository token is no catalog token: a user may get one, so 401 asks for it.
    let repo_only = t.token(BOB, &["repository:bob/app:pull"]).await;
    assert_eq!(catalog(repo_only).await.status, 401);
}

#[tokio::test]
async fn attack_a_schema1_signature_of_the_same_key_is_no_token() {
    // The registry signs schema1 manifests with the token key: a signature it made over a
    // manifest must not pass for a token.
    let (t, alice) = registry_with_alices("alice/app").await;
    let schema1 = t
        .request_with_token(
            &alice,
            Method::GET,
            "/v2/alice/app/manifests/tiny",
            &[("accept", SCHEMA1)],
            b"",
        )
        .await;
    assert_eq!(schema1.status, 200, "{}", schema1.text());
    let manifest: Value = serde_json::from_slice(&schema1.body).unwrap();
    let signature = &manifest["signatures"][0];
    let protected = signature["protected"].as_str().unwrap();
    let sig = signature["signature"].as_str().unwrap();
    // The payload is the manifest without its signatures, as signed.
    let protected_json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
    let length = protected_json["formatLength"].as_u64().unwrap() as usize;
    let tail = URL_SAFE_NO_PAD
        .decode(protected_json["formatTail"].as_str().unwrap())
        .unwrap();
    let mut payload = schema1.body[..length].to_vec();
    payload.extend(tail);
    let token = format!("{protected}.{}.{sig}", URL_SAFE_NO_PAD.encode(&payload));
    assert_invalid_token(&get_manifest(&t, &token, "alice/app").await, "schema1 JWS");
}

#[tokio::test]
async fn the_open_registry_needs_no_token() {
    // The harness's default: auth off, every route serves anyone; the token route says so.
    let mut t = TestRegistry::new().await;
    if t.is_deployment() {
        // Except on the Lambda deployment, which is never open: tokens are always on.
        t.enable_auth("http://registry.test/v2/auth");
        assert_eq!(t.get("/v2/", &[]).await.status, 401);
        let token = t.get("/v2/auth?scope=repository:a/b:pull", &[]).await;
        assert_eq!(token.status, 200, "an anonymous token");
        return;
    }
    assert_eq!(t.get("/v2/", &[]).await.status, 200);
    let token = t.get("/v2/auth?scope=repository:a/b:pull", &[]).await;
    assert_eq!(token.status, 404);
    assert_eq!(token.error_code(), "UNSUPPORTED");
}

/// The form containerd sends (`remotes/docker/auth/fetch.go`), then `extra` fields.
fn oauth_form(grant: &[(&str, &str)], scopes: &[&str], extra: &[(&str, &str)]) -> Vec<u8> {
    let joined = scopes.join(" ");
    let mut pairs: Vec<(&str, &str)> = vec![("service", TEST_SERVICE), ("client_id", "containerd")];
    if !scopes.is_empty() {
        pairs.push(("scope", &joined));
    }
    pairs.extend_from_slice(grant);
    pairs.extend_from_slice(extra);
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// `POST /v2/auth` with `form`, as containerd posts it.
async fn oauth(t: &TestRegistry, form: &[u8]) -> Answer {
    t.request(
        Method::POST,
        "/v2/auth",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form,
    )
    .await
}

fn password<'a>(user: &'a str, secret: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "password"),
        ("username", user),
        ("password", secret),
    ]
}

/// A refresh token for `user` by the password grant with `access_type=offline`.
async fn refresh_token_of(t: &TestRegistry, user: &str, secret: &str) -> String {
    let answer = oauth(
        t,
        &oauth_form(&password(user, secret), &[], &[("access_type", "offline")]),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string()
}

async fn refresh(t: &TestRegistry, refresh_token: &str, scopes: &[&str]) -> Answer {
    oauth(
        t,
        &oauth_form(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            scopes,
            &[],
        ),
    )
    .await
}

/// A refused refresh: `401 UNAUTHORIZED` with a Basic challenge, as a wrong password.
fn assert_refresh_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text());
    assert_eq!(answer.error_code(), "UNAUTHORIZED", "{what}");
    assert!(challenge(answer).starts_with("Basic "), "{what}");
    assert!(answer.json().get("access_token").is_none(), "{what}");
}

#[tokio::test]
async fn the_oauth2_form_grants_as_get_does_and_issues_refresh_tokens_offline() {
    let t = registry().await;
    // The password grant, scopes space-separated in one field: what the caller holds.
    let answer = oauth(
        &t,
        &oauth_form(
            &password("alice", "alice-password"),
            &["repository:alice/app:pull,push", "repository:bob/app:pull"],
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    assert_eq!(body["scope"], "repository:alice/app:pull,push");
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    // Online access (the default): no refresh token.
    assert!(body.get("refresh_token").is_none(), "{body}");
    let alice = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        access_of(&alice),
        json!([{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}])
    );
    assert_eq!(push_tiny(&t, &alice, "alice/app", "tiny").await.status, 201);

    // Offline: a refresh token, which gets access tokens without the password, decided by
    // the rules anew (bob's repository stays out), and comes back unchanged.
    let refresh_token = refresh_token_of(&t, "alice", "alice-password").await;
    let refreshed = refresh(
        &t,
        &refresh_token,
        &["repository:alice/app:pull", "repository:bob/app:pull"],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let body = refreshed.json();
    assert_eq!(body["refresh_token"], refresh_token.as_str());
    assert_eq!(body["scope"], "repository:alice/app:pull");
    let pull = body["access_token"].as_str().unwrap();
    assert_eq!(get_manifest(&t, pull, "alice/app").await.status, 200);
    // Robots too.
    let secret = t.add_robot("alice+ci").await;
    t.grant("alice/app", "alice+ci", Permission::Read).await;
    let robot_refresh = refresh_token_of(&t, "alice+ci", &secret).await;
    let robot = refresh(&t, &robot_refresh, &["repository:alice/app:pull,push"]).await;
    assert_eq!(robot.status, 200);
    assert_eq!(robot.json()["scope"], "repository:alice/app:pull");

    // The GET form gives one on offline_token=true (docker login asks so), to a signed-in
    // caller only.
    let get = t
        .token_answer(ALICE, &["repository:alice/app:pull"])
        .await
        .json();
    assert!(get.get("refresh_token").is_none());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:alice-password")
    );
    let offline = t
        .request(
            Method::GET,
            &format!("/v2/auth?service={TEST_SERVICE}&offline_token=true"),
            &[("authorization", &basic)],
            b"",
        )
        .await;
    assert_eq!(offline.status, 200);
    let from_get = offline.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        refresh(&t, &from_get, &["repository:alice/app:pull"])
            .await
            .status,
        200
    );
    let anonymous = t
        .request(
            Method::GET,
            &format!("/v2/auth?service={TEST_SERVICE}&offline_token=true"),
            &[],
            b"",
        )
        .await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.json().get("refresh_token").is_none());
    let bad_bool = t
        .request(Method::GET, "/v2/auth?offline_token=maybe", &[], b"")
        .await;
    assert_eq!(bad_bool.status, 400);
    assert_eq!(bad_bool.error_code(), "UNSUPPORTED");

    // Wrong password, unknown user: the same 401 as the GET form.
    for (user, secret) in [("alice", "wrong"), ("mallory", "alice-password")] {
        let answer = oauth(&t, &oauth_form(&password(user, secret), &[], &[])).await;
        assert_refresh_refused(&answer, user);
        assert_eq!(
            answer.json()["errors"][0]["message"],
            "invalid username or password"
        );
    }

    // Missing or unknown fields: 400, the registry's error body, nothing issued.
    let bad_forms: Vec<(&str, Vec<u8>)> =
        vec![
        (
            "no grant_type",
            oauth_form(&[("username", "alice"), ("password", "alice-password")], &[], &[]),
        ),
        (
            "unknown grant_type",
            oauth_form(&[("grant_type", "authorization_code")], &[], &[]),
        ),
        (
            "no password",
            oauth_form(&[("grant_type", "password"), ("username", "alice")], &[], &[]),
        ),
        (
            "no refresh_token",
            oauth_form(&[("grant_type", "refresh_token")], &[], &[]),
        ),
        (
            "unknown access_type",
            oauth_form(
                &password("alice", "alice-password"),
                &[],
                &[("access_type", "forever")],
            ),
        ),
        (
            "no service, no client_id",
            b"grant_type=password&username=alice&password=alice-password".to_vec(),
        ),
        (
            "no client_id",
            format!(
                "grant_type=password&username=alice&password=alice-password&service={TEST_SERVICE}"
            )
            .into_bytes(),
        ),
    ];
    for (what, form) in bad_forms {
        let answer = oauth(&t, &form).await;
        assert_eq!(answer.status, 400, "{what}");
        assert_eq!(answer.error_code(), "UNSUPPORTED", "{what}");
    }
    let elsewhere = oauth(
        &t,
        b"grant_type=password&username=alice&password=alice-password&service=elsewhere&client_id=x",
    )
    .await;
    assert_eq!(elsewhere.status, 400);
    assert_eq!(elsewhere.error_code(), "DENIED");
    let json_body = t
        .request(
            Method::POST,
            "/v2/auth",
            &[("content-type", "application/json")],
            br#"{"grant_type":"password","username":"alice","password":"alice-password"}"#,
        )
        .await;
    assert_eq!(json_body.status, 400);
    assert_eq!(json_body.error_code(), "UNSUPPORTED");
}

/// Refresh claims as the registry issues them for `sub`, valid now.
async fn refresh_claims(t: &TestRegistry, sub: &str) -> token::RefreshClaims {
    let record = t.access.principal(sub).await.unwrap().expect("principal");
    let now = token::now();
    token::RefreshClaims {
        iss: TEST_ISSUER.into(),
        sub: sub.into(),
        aud: token::refresh_audience(TEST_SERVICE),
        exp: now + 3600,
        nbf: now,
        iat: now,
        jti: token::new_jti(),
        sfp: token::secret_fingerprint(&record.secret_hash),
    }
}

#[tokio::test]
async fn attack_refresh_and_bearer_tokens_are_not_interchangeable() {
    let (t, alice) = registry_with_alices("alice/app").await;
    let refresh_token = refresh_token_of(&t, "alice", "alice-password").await;
    let signer = t.registry.signer.as_ref();
    // The genuine one works: what the refusals below are measured against.
    assert_eq!(
        refresh(&t, &refresh_token, &["repository:alice/app:pull"])
            .await
            .status,
        200
    );

    // A refresh token is no bearer token: not on a repository route, not on /v2/.
    assert_invalid_token(
        &get_manifest(&t, &refresh_token, "alice/app").await,
        "refresh token as bearer",
    );
    let version = t.request_as(&refresh_token, Method::GET, "/v2/", b"").await;
    assert_invalid_token(&version, "refresh token on /v2/");
    // A bearer token is no refresh token.
    assert_refresh_refused(
        &refresh(&t, &alice, &["repository:alice/app:pull"]).await,
        "bearer token as refresh token",
    );
    // Either kind's claims under the other kind's header type, signed by our key.
    let mut value = serde_json::to_value(refresh_claims(&t, "alice").await).unwrap();
    let kid = signer.public_jwk().await.unwrap().kid.clone();
    let signed = |typ: &str, claims: &Value| {
        let header = json!({"typ": typ, "alg": "RS256", "kid": kid});
        let payload = claims.to_string();
        async move { signed_rs256(signer, &header, payload.as_bytes()).await }
    };
    let jwt_typed_refresh = signed("JWT", &value).await;
    assert_refresh_refused(
        &refresh(&t, &jwt_typed_refresh, &[]).await,
        "refresh claims, typ JWT",
    );
    assert_invalid_token(
        &get_manifest(&t, &jwt_typed_refresh, "alice/app").await,
        "refresh claims, typ JWT, as bearer",
    );
    let bearer_claims = serde_json::to_value(claims(pull_push("alice/app"))).unwrap();
    let refresh_typed_bearer = signed(token::REFRESH_TYP, &bearer_claims).await;
    assert_invalid_token(
        &get_manifest(&t, &refresh_typed_bearer, "alice/app").await,
        "bearer claims, refresh typ",
    );
    assert_refresh_refused(
        &refresh(&t, &refresh_typed_bearer, &[]).await,
        "bearer claims, refresh typ, as refresh",
    );
    // A refresh token whose audience is the service itself.
    value["aud"] = json!(TEST_SERVICE);
    assert_refresh_refused(
        &refresh(&t, &signed(token::REFRESH_TYP, &value).await, &[]).await,
        "refresh with the service as audience",
    );

    // Expired (beyond the leeway), not yet valid, another issuer.
    let base = refresh_claims(&t, "alice").await;
    let now = token::now();
    for (what, claims) in [
        (
            "expired",
            token::RefreshClaims {
                exp: now - 120,
                nbf: now - 7200,
                iat: now - 7200,
                ..base.clone()
            },
        ),
        (
            "not yet valid",
            token::RefreshClaims {
                nbf: now + 120,
                ..base.clone()
            },
        ),
        (
            "iss",
            token::RefreshClaims {
                iss: "someone-else".into(),
                ..base.clone()
            },
        ),
    ] {
        let forged = token::sign_refresh(signer, &claims).await.unwrap();
        assert_refresh_refused(&refresh(&t, &forged, &[]).await, what);
    }
    // Another key: with its own kid, and claiming ours.
    let dir = tempfile::tempdir().unwrap();
    let other = quayside::embedded::KeyFileSigner::open(&dir.path().join("other.pem")).unwrap();
    let forged = token::sign_refresh(&other, &base).await.unwrap();
    assert_refresh_refused(&refresh(&t, &forged, &[]).await, "other key");
    let header = json!({"typ": token::REFRESH_TYP, "alg": "RS256", "kid": kid});
    let payload = serde_json::to_vec(&base).unwrap();
    let forged = signed_rs256(&other, &header, &payload).await;
    assert_refresh_refused(&refresh(&t, &forged, &[]).await, "other key, our kid");
    // A genuine refresh token edited to name bob.
    let mut parts: Vec<String> = refresh_token.split('.').map(str::to_string).collect();
    let mut edited: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    edited["sub"] = json!("bob");
    parts[1] = URL_SAFE_NO_PAD.encode(edited.to_string());
    assert_refresh_refused(&refresh(&t, &parts.join("."), &[]).await, "edited sub");
    // Garbage.
    for junk in ["x", "a.b.c", &"A".repeat(10_000)] {
        assert_refresh_refused(&refresh(&t, junk, &[]).await, "junk");
    }
}

#[tokio::test]
async fn a_refresh_token_dies_with_its_principal_or_its_secret() {
    let t = registry().await;
    let alice = refresh_token_of(&t, "alice", "alice-password").await;
    let bob = refresh_token_of(&t, "bob", "bob-password").await;
    assert_eq!(refresh(&t, &alice, &[]).await.status, 200);
    // A new password voids every refresh token issued under the old one.
    let new_hash = quayside::auth::secrets::hash_secret("alice-new").unwrap();
    assert!(t.access.set_secret("alice", &new_hash).await.unwrap());
    assert_refresh_refused(&refresh(&t, &alice, &[]).await, "password changed");
    let again = refresh_token_of(&t, "alice", "alice-new").await;
    assert_eq!(refresh(&t, &again, &[]).await.status, 200);
    // A deleted principal's refresh tokens stop at once, even re-created with the same
    // password.
    assert_eq!(refresh(&t, &bob, &[]).await.status, 200);
    assert!(t.access.delete_principal("bob").await.unwrap());
    assert_refresh_refused(&refresh(&t, &bob, &[]).await, "deleted");
    t.add_user("bob", "bob-password").await;
    assert_refresh_refused(&refresh(&t, &bob, &[]).await, "re-created");
}

#[tokio::test]
async fn a_mounts_challenge_asks_for_its_source_too() {
    let t = registry().await;
    let digest = format!("sha256:{TINY_LAYER0}");
    let mount_from =
        |from: &str| format!("/v2/alice/app/blobs/uploads/?mount={digest}&from={from}");
    let answer = t.post(&mount_from("bob/base"), b"").await;
    assert_eq!(answer.status, 401);
    let asked = challenge(&answer);
    assert!(
        asked.contains("scope=\"repository:alice/app:pull,push repository:bob/base:pull\""),
        "{asked}"
    );
    // A token for the target only, from a source its owner may read: 401, so that the
    // client fetches a token naming both and the mount happens (not an upload instead).
    let push_only = t.token(ALICE, &["repository:alice/app:pull,push"]).await;
    let answer = t
        .request_as(&push_only, Method::POST, &mount_from("alice/base"), b"")
        .await;
    assert_eq!(answer.status, 401);
    let asked = challenge(&answer);
    assert!(
        asked.contains("insufficient_scope") && asked.contains("alice/base:pull"),
        "{:?}",
        answer.header("www-authenticate")
    );
    // A source it may not read (bob's, private): an upload instead, nothing revealed.
    let answer = t
        .request_as(&push_only, Method::POST, &mount_from("bob/base"), b"")
        .await;
    assert_eq!(answer.status, 202);
}
