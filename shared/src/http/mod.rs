//! The HTTP handlers: one per Lambda function, `lambda_http::Request` in, `Response` out.
//! registry-local and the tests call the very same functions.
//!
//! May call: `registry` (the operations), the domain types, `error`. Must not touch a
//! store directly nor know any backend: a handler parses HTTP, calls the registry, and
//! writes HTTP.

pub mod manifests;

use crate::error::RegistryError;
use crate::names::RepositoryName;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");

/// A response with the headers every registry answer carries.
pub(crate) fn response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(API_VERSION, "registry/2.0")
}

/// The spec's error body with the error's status. A HEAD answer has the status only.
pub fn error_response(error: &RegistryError, method: &Method) -> Response<Body> {
    let body = error.body().to_string();
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let builder = response(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    let body = if method == Method::HEAD {
        Body::Empty
    } else {
        Body::Text(body)
    };
    builder.body(body).unwrap_or_default()
}

/// Runs a handler body and answers its error, if any, the registry's way.
pub(crate) fn respond(
    method: &Method,
    result: Result<Response<Body>, RegistryError>,
) -> Response<Body> {
    result.unwrap_or_else(|e| error_response(&e, method))
}

/// A path parameter of the route (`{namespace}`, `{repo}`, `{reference}`), as API Gateway
/// passes it and registry-local's router sets it.
pub(crate) fn path_parameter(req: &Request, name: &str) -> Result<String, RegistryError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_string)
        .ok_or_else(|| {
            RegistryError::new(
                crate::error::ErrorCode::NameInvalid,
                format!("the request has no {name} in its path"),
            )
        })
}

/// The repository named by `{namespace}/{repo}`.
pub(crate) fn repository(req: &Request) -> Result<RepositoryName, RegistryError> {
    RepositoryName::new(
        &path_parameter(req, "namespace")?,
        &path_parameter(req, "repo")?,
    )
}

/// The request body as bytes, however API Gateway delivered it (text, or base64 decoded).
pub(crate) fn body_bytes(body: Body) -> bytes::Bytes {
    match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(text) => text.into(),
        Body::Binary(bytes) => bytes.into(),
        // The body type is non-exhaustive; take any future variant by its bytes.
        #[allow(unreachable_patterns)]
        other => bytes::Bytes::copy_from_slice(other.as_ref()),
    }
}

/// A response body: JSON documents go as text, so API Gateway need not base64 them.
pub(crate) fn body_of(bytes: bytes::Bytes) -> Body {
    match std::str::from_utf8(&bytes) {
        Ok(text) => Body::Text(text.to_string()),
        Err(_) => Body::Binary(bytes.to_vec()),
    }
}

/// A handler as the route table holds it.
pub type Handler =
    for<'a> fn(
        &'a crate::registry::Registry,
        Request,
    ) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// One route of the API: the Lambda function that serves it, its methods and its API
/// Gateway path template. registry-local serves exactly these; template.yaml declares them.
pub struct Route {
    pub function: &'static str,
    pub methods: &'static [Method],
    pub path: &'static str,
    pub handler: Handler,
}

macro_rules! boxed {
    ($handler:path) => {{
        fn boxed<'a>(
            registry: &'a crate::registry::Registry,
            req: Request,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>> {
            Box::pin($handler(registry, req))
        }
        boxed as Handler
    }};
}

const MANIFEST_PATH: &str = "/v2/{namespace}/{repo}/manifests/{reference}";

/// Every route of the registry.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            function: "fetch-manifest",
            methods: &[Method::GET, Method::HEAD],
            path: MANIFEST_PATH,
            handler: boxed!(manifests::fetch_manifest),
        },
        Route {
            function: "write-manifest",
            methods: &[Method::PUT],
            path: MANIFEST_PATH,
            handler: boxed!(manifests::write_manifest),
        },
        Route {
            function: "delete-manifest",
            methods: &[Method::DELETE],
            path: MANIFEST_PATH,
            handler: boxed!(manifests::delete_manifest),
        },
    ]
}
