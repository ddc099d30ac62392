//! Each manifest function's handler fed API Gateway HTTP API (payload 2.0) events, as JSON,
//! deserialized by `lambda_http` itself: path parameters, base64-encoded bodies, HEAD.

use quayside_tests::*;
use serde_json::Value;

/// The handler of the function whose route the event's `routeKey` names, fed the event.
async fn invoke(t: &TestRegistry, event_file: &str) -> Answer {
    let json = String::from_utf8(fixture(&format!("events/{event_file}"))).unwrap();
    let route_key = serde_json::from_str::<Value>(&json).unwrap()["routeKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (method, path) = route_key.split_once(' ').unwrap();
    let route = quayside::http::routes()
        .into_iter()
        .find(|r| {
            r.api_gateway_paths().iter().any(|p| p == path)
                && r.methods.iter().any(|m| m.as_str() == method)
        })
        .unwrap_or_else(|| panic!("no function serves {route_key}"));
    let req = lambda_http::request::from_str(&json).expect("lambda_http reads the event");
    route.serve_api_gateway(&t.registry, req).await.into()
}

#[tokio::test]
async fn manifest_functions_answer_api_gateway_events() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let oci = manifest_fixture("oci-image-manifest.json");
    let digest = "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4";

    // A base64-encoded body, as API Gateway delivers a binary one.
    let put = invoke(&t, "put-manifest-base64.json").await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(digest));

    let get = invoke(&t, "get-manifest-by-tag.json").await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, oci);
    assert_eq!(get.header("content-type"), Some(OCI_MANIFEST));

    let head = invoke(&t, "head-manifest-by-digest.json").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(oci.len().to_string().as_str())
    );
    assert_eq!(head.header("docker-content-digest"), Some(digest));

    let bad = invoke(&t, "put-manifest-bad-name.json").await;
    bad.assert_error(400, "NAME_INVALID");

    let deleted = invoke(&t, "delete-manifest-by-digest.json").await;
    assert_eq!(deleted.status, 202);
    assert_eq!(invoke(&t, "get-manifest-by-tag.json").await.status, 404);
}

#[tokio::test]
async fn tag_parameters_are_answered_in_one_oci_tag_header_through_api_gateway() {
    // Payload 2.0 answers one value per header name (lambda_http would keep only the first
    // OCI-Tag): the function joins them, as HTTP allows for a list header.
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("library/tiny").await;
    let digest = "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4";
    let mut event: Value =
        serde_json::from_slice(&fixture("events/put-manifest-base64.json")).unwrap();
    event["rawPath"] = format!("/v2/library/tiny/manifests/{digest}").into();
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"]["reference"] = digest.into();
    event["rawQueryString"] = "tag=one&tag=two".into();
    event["queryStringParameters"] = serde_json::json!({"tag": "one,two"});
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let route = quayside::http::route("write-manifest").unwrap();
    let put: Answer = route.serve_api_gateway(&t.registry, req).await.into();
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.headers.get_all("oci-tag").iter().count(), 1);
    assert_eq!(put.header("oci-tag"), Some("one, two"));
}

/// A name of three components, as API Gateway delivers it: the route of that depth, one path
/// parameter per component.
#[tokio::test]
async fn a_nested_name_arrives_as_one_parameter_per_component() {
    let t = TestRegistry::new().await;
    t.seed_tiny_blobs("org/team/app").await;
    let nested = |file: &str, method: &str| {
        let mut event: Value = serde_json::from_slice(&fixture(&format!("events/{file}"))).unwrap();
        let key = format!("{method} /v2/{{name1}}/{{name2}}/{{name3}}/manifests/{{reference}}");
        event["routeKey"] = key.clone().into();
        event["requestContext"]["routeKey"] = key.into();
        event["rawPath"] = "/v2/org/team/app/manifests/latest".into();
        event["requestContext"]["http"]["path"] = event["rawPath"].clone();
        event["pathParameters"] = serde_json::json!({"name1": "org", "name2": "team", "name3": "app", "reference": "latest"});
        lambda_http::request::from_str(&event.to_string()).expect("an event")
    };
    let put: Answer = quayside::http::route("write-manifest")
        .unwrap()
        .serve_api_gateway(&t.registry, nested("put-manifest-base64.json", "PUT"))
        .await
        .into();
    assert_eq!(put.status, 201, "{}", put.text());
    assert!(
        put.header("location")
            .unwrap_or_default()
            .starts_with("/v2/org/team/app/manifests/sha256:")
    );
    let get: Answer = quayside::http::route("fetch-manifest")
        .unwrap()
        .serve_api_gateway(&t.registry, nested("get-manifest-by-tag.json", "GET"))
        .await
        .into();
    assert_eq!(get.status, 200);
    assert_eq!(get.body, manifest_fixture("oci-image-manifest.json"));
}

/// Without a configured realm (the template's default), the `401` challenge names the API
/// the event came through: API Gateway's `domainName`, its stage unless `$default`, and the
/// scheme of `X-Forwarded-Proto`. The template cannot give it: that was a circular
/// dependency that made `sam deploy` fail.
#[tokio::test]
async fn the_challenge_names_the_api_the_event_came_through() {
    let mut t = TestRegistry::new().await;
    let settings = quayside::auth::AuthSettings::with_realm_per_request();
    t.registry = t
        .registry
        .clone()
        .with_auth(quayside::auth::Auth::new(t.access.clone(), settings));
    let event: Value = serde_json::from_slice(&fixture("events/get-manifest-by-tag.json")).unwrap();
    let route = quayside::http::route("fetch-manifest").unwrap();
    let challenge = |event: &Value| {
        let req = lambda_http::request::from_str(&event.to_string()).expect("an event");
        let registry = t.registry.clone();
        async move {
            let answer: Answer = route.serve(&registry, req).await.into();
            assert_eq!(answer.status, 401);
            answer.header("www-authenticate").unwrap().to_string()
        }
    };
    assert!(
        challenge(&event).await.starts_with(
            "Bearer realm=\"https://abc123.execute-api.eu-west-1.amazonaws.com/v2/auth\""
        ),
        "{}",
        challenge(&event).await
    );

    let mut staged = event.clone();
    staged["requestContext"]["stage"] = "prod".into();
    staged["requestContext"]["domainName"] = "registry.example.com".into();
    staged["headers"]["x-forwarded-proto"] = "http".into();
    let value = challenge(&staged).await;
    assert!(
        value.starts_with("Bearer realm=\"http://registry.example.com/prod/v2/auth\""),
        "{value}"
    );
}
