//! The HTTP handlers: one per Lambda function, `lambda_http::Request` in, `Response` out.
//! registry-local and the tests call the very same functions.
//!
//! May call: `registry` (the operations), `auth` (through [`auth`], the gate), the domain
//! types, `error`. Must not touch a store directly nor know any backend: a handler parses
//! HTTP, calls the registry, and writes HTTP.
//!
//! Every route runs behind the gate: [`Route::serve`] checks the [`Access`] the route
//! declares before its handler runs. The Lambda functions, registry-local and the tests all
//! go through [`Route::serve`]; the handler functions themselves check nothing.

pub mod access;
pub mod auth;
pub mod blobs;
pub mod lists;
pub mod manifests;
pub mod uploads;

use crate::error::RegistryError;
use crate::names::RepositoryName;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

pub use self::auth::{Access, Caller};
use crate::auth::scope::Action;

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");

/// A response with the headers every registry answer carries.
pub(crate) fn response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(API_VERSION, http::HeaderValue::from_static("registry/2.0"))
}

/// `202 Accepted` with no body: what a delete answers.
pub(crate) fn accepted() -> Result<Response<Body>, RegistryError> {
    response(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(Body::Empty)
        .map_err(RegistryError::internal)
}

/// The spec's error body with the error's status. A HEAD answer has the status only.
pub fn error_response(error: &RegistryError, method: &Method) -> Response<Body> {
    let body = error.body().to_string();
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = response(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    if let Some(seconds) = error.retry_after {
        builder = builder.header(http::header::RETRY_AFTER, seconds);
    }
    let body = if method == Method::HEAD {
        Body::Empty
    } else {
        Body::Text(body)
    };
    builder.body(body).unwrap_or_default()
}

/// Runs a handler's body on its request and answers its error, if any, the registry's way
/// (a `HEAD` answer without a body).
pub(crate) async fn answer(
    req: Request,
    body: impl AsyncFnOnce(Request) -> Result<Response<Body>, RegistryError>,
) -> Response<Body> {
    let method = req.method().clone();
    body(req)
        .await
        .unwrap_or_else(|e| error_response(&e, &method))
}

/// A path parameter of the route (`{reference}`, `{digest}`, `{uuid}`), as API Gateway
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

/// The first value of query parameter `name`, read from the URI (API Gateway's events and
/// registry-local's requests both carry the query there).
pub(crate) fn query(req: &Request, name: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A header's value as text, if it has one.
pub(crate) fn header(req: &Request, name: impl http::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A digest from the path or query: `DIGEST_INVALID` if malformed.
pub(crate) fn digest(value: &str) -> Result<crate::digest::Digest, RegistryError> {
    value.parse().map_err(|e| {
        RegistryError::new(
            crate::error::ErrorCode::DigestInvalid,
            format!("invalid digest {value:?}: {e}"),
        )
    })
}

/// The repository named by the path's `{name1}`…`{nameK}`: the one the gate checked, when
/// it did.
pub(crate) fn repository(req: &Request) -> Result<RepositoryName, RegistryError> {
    if let Some(checked) = req.extensions().get::<auth::CheckedRepository>() {
        return Ok(checked.0.clone());
    }
    let params = req.path_parameters_ref();
    let components: Vec<&str> = (1..)
        .map_while(|k| params.and_then(|p| p.first(&format!("{NAME_PARAMETER}{k}"))))
        .collect();
    if components.is_empty() {
        return Err(RegistryError::new(
            crate::error::ErrorCode::NameInvalid,
            "the request has no repository name in its path",
        ));
    }
    RepositoryName::parse(&components.join("/"))
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
    // A `Bytes` that owns its buffer alone becomes a `Vec` without a copy.
    match String::from_utf8(Vec::from(bytes)) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    }
}

/// A request body that registry-local streams: put in the request's extensions (the
/// lambda_http body stays empty), so that it is read only by the handler, once the route's
/// checks passed, and as it arrives. The Lambda functions have their body in the event.
#[derive(Clone)]
pub struct StreamedBody {
    body: std::sync::Arc<std::sync::Mutex<Option<crate::registry::UploadBody>>>,
    declared: Option<u64>,
}

impl StreamedBody {
    pub fn new(body: crate::registry::UploadBody) -> StreamedBody {
        StreamedBody {
            declared: body.declared(),
            body: std::sync::Arc::new(std::sync::Mutex::new(Some(body))),
        }
    }

    /// `Content-Length`, if the client declared one.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// The body, to read; `None` once taken.
    pub fn take(&self) -> Option<crate::registry::UploadBody> {
        self.body.lock().ok().and_then(|mut body| body.take())
    }
}

/// A response body that registry-local streams from a file (a blob, never read into
/// memory): in the response's extensions, the lambda_http body empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileBody {
    pub path: std::path::PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// A handler as the route table holds it.
pub type Handler =
    for<'a> fn(
        &'a crate::registry::Registry,
        Request,
    ) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// One route of the API: the Lambda function that serves it, its methods, its API Gateway
/// path template and the access it needs. registry-local serves exactly these;
/// template.yaml declares them. The handler is reachable only through [`Route::serve`].
#[derive(Clone, Copy)]
pub struct Route {
    pub function: &'static str,
    pub methods: &'static [Method],
    pub path: &'static str,
    /// What the caller's token must grant, checked before the handler runs.
    pub access: Access,
    handler: Handler,
}

impl Route {
    /// Checks the caller against [`Route::access`] (when the registry has auth on), then
    /// runs the handler, or answers `401`/`403` without running it.
    pub async fn serve(
        &self,
        registry: &crate::registry::Registry,
        req: Request,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let bytes_in = req.body().len() as u64;
        let (client, request_id) = match req.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => (
                ctx.http.source_ip.clone(),
                ctx.request_id.clone().unwrap_or_default(),
            ),
            _ => (None, String::new()),
        };
        let response = self
            .serve_with_body(registry, req, |req| async { Ok(req) })
            .await;
        access::AccessRecord {
            method: &method,
            uri: &uri,
            status: response.status().as_u16(),
            bytes_in,
            bytes_out: response.body().len() as u64,
            duration: started.elapsed(),
            client: client.as_deref(),
            principal: response
                .extensions()
                .get::<access::Principal>()
                .and_then(|p| p.0.as_deref()),
            request_id: &request_id,
        }
        .log();
        response
    }

    /// [`Route::serve`] in a Lambda function behind API Gateway's HTTP API: a header with
    /// several values (`OCI-Tag`, one per tag) is answered as one, its values comma-joined,
    /// as HTTP allows for list headers. Payload 2.0 has one value per name, and lambda_http
    /// would keep only the first.
    pub async fn serve_api_gateway(
        &self,
        registry: &crate::registry::Registry,
        req: Request,
    ) -> Response<Body> {
        let mut response = self.serve(registry, req).await;
        let repeated: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| {
                *name != http::header::SET_COOKIE
                    && response.headers().get_all(*name).iter().count() > 1
            })
            .cloned()
            .collect();
        for name in repeated {
            let joined = response
                .headers()
                .get_all(&name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = http::HeaderValue::from_str(&joined) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }

    /// [`Route::serve`] for a server that reads bodies from a socket (registry-local): the
    /// checks are decided from the headers alone, and only then does `attach` give the
    /// request its body (or answer instead, e.g. `413`). No body is read for a refused
    /// request.
    pub async fn serve_with_body<F, Fut>(
        &self,
        registry: &crate::registry::Registry,
        req: Request,
        attach: F,
    ) -> Response<Body>
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Result<Request, Response<Body>>>,
    {
        let req = match auth::check(self.access, registry, req).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let principal = access::Principal(
            req.extensions()
                .get::<Caller>()
                .and_then(|caller| caller.subject.clone()),
        );
        let mut response = match attach(req).await {
            Ok(req) => (self.handler)(registry, req).await,
            Err(refused) => refused,
        };
        response.extensions_mut().insert(principal);
        response
    }

    /// Whether the route takes blob bytes (uploads): a server streams those to the handler
    /// ([`StreamedBody`]) rather than collect them; other bodies are small (a manifest, a
    /// token request).
    pub fn takes_blob_body(&self) -> bool {
        matches!(
            self.function,
            "start-upload" | "patch-upload" | "finish-upload"
        )
    }
}

/// The route of the Lambda function `function` (its crate's name).
pub fn route(function: &str) -> Option<Route> {
    routes().into_iter().find(|r| r.function == function)
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

/// Where a route's path holds a repository name: one or more segments, one per component.
/// A request's path parameters spell it `{name1}`…`{nameK}`, as API Gateway's routes do.
const NAME: &str = "{name}";
const NAME_PARAMETER: &str = "name";

/// The most components a name has through API Gateway: a variable there matches one
/// segment and none may be greedy in the middle of a path, so each route is declared once
/// per depth from 1 to this (14 routes × 6 = 84 of the HTTP API's 300). registry-local
/// serves names of any depth.
pub const API_GATEWAY_NAME_DEPTH: usize = 6;

const MANIFEST_PATH: &str = "/v2/{name}/manifests/{reference}";
const BLOB_PATH: &str = "/v2/{name}/blobs/{digest}";
#[cfg(feature = "blobs")]
const UPLOADS_PATH: &str = "/v2/{name}/blobs/uploads/";
const UPLOAD_PATH: &str = "/v2/{name}/blobs/uploads/{uuid}";

impl Route {
    /// The API Gateway paths of this route: `{name}` spelled `{name1}/…/{nameK}` for each
    /// depth K up to [`API_GATEWAY_NAME_DEPTH`]; a path without a name, as it is.
    pub fn api_gateway_paths(&self) -> Vec<String> {
        if !self.path.contains(NAME) {
            return vec![self.path.to_string()];
        }
        (1..=API_GATEWAY_NAME_DEPTH)
            .map(|depth| {
                let name: Vec<String> = (1..=depth)
                    .map(|k| format!("{{{NAME_PARAMETER}{k}}}"))
                    .collect();
                self.path.replace(NAME, &name.join("/"))
            })
            .collect()
    }

    /// The path parameters of `segments` (a path split at `/`, still percent-encoded) if it
    /// is this route's path: literal segments equal, each variable one non-empty segment,
    /// `{name}` all the segments between its neighbours (at least one).
    fn parameters(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        let template: Vec<&str> = self.path.split('/').collect();
        let (before, after) = match template.iter().position(|t| *t == NAME) {
            Some(at) => (&template[..at], &template[at + 1..]),
            None if template.len() == segments.len() => (&template[..], &template[..0]),
            None => return None,
        };
        let name_len = segments.len().checked_sub(before.len() + after.len())?;
        if template.contains(&NAME) && name_len == 0 {
            return None;
        }
        let mut params = Vec::new();
        let fixed = before
            .iter()
            .zip(segments)
            .chain(after.iter().zip(&segments[before.len() + name_len..]));
        for (pattern, segment) in fixed {
            match pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(_) if segment.is_empty() => return None,
                Some(variable) => params.push((variable.to_string(), segment.to_string())),
                None if pattern == segment => {}
                None => return None,
            }
        }
        for (k, segment) in segments[before.len()..before.len() + name_len]
            .iter()
            .enumerate()
        {
            params.push((format!("{NAME_PARAMETER}{}", k + 1), segment.to_string()));
        }
        Some(params)
    }
}

/// The route that serves `method` on `path` (the URI's path, percent-encoded), with its path
/// parameters decoded. `404 NAME_UNKNOWN` when no route has that path, `405 UNSUPPORTED`
/// when one has it but not the method, `400 NAME_INVALID` when a parameter is not UTF-8.
pub fn find_route(
    method: &Method,
    path: &str,
) -> Result<(Route, std::collections::HashMap<String, Vec<String>>), RegistryError> {
    // The table, built once per process: registry-local looks up every request in it.
    static TABLE: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(routes);
    let segments: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for &route in TABLE.iter() {
        let Some(params) = route.parameters(&segments) else {
            continue;
        };
        path_known = true;
        if !route.methods.contains(method) {
            continue;
        }
        let mut decoded = std::collections::HashMap::new();
        for (name, raw) in params {
            let value = percent_encoding::percent_decode_str(&raw)
                .decode_utf8()
                .map_err(|_| {
                    RegistryError::new(
                        crate::error::ErrorCode::NameInvalid,
                        format!("the path is not a registry path: {raw:?} is not UTF-8"),
                    )
                })?;
            decoded.insert(name, vec![value.into_owned()]);
        }
        return Ok((route, decoded));
    }
    Err(if path_known {
        RegistryError::new(
            crate::error::ErrorCode::Unsupported,
            format!("{method} is not supported on {path}"),
        )
    } else {
        RegistryError::new(
            crate::error::ErrorCode::NameUnknown,
            format!("no route for {path}"),
        )
        .with_status(404)
    })
}

/// Every route of the registry; those that read or write blobs only in a build that has a
/// blob store (feature `blobs`).
pub fn routes() -> Vec<Route> {
    vec![
        #[cfg(feature = "blobs")]
        Route {
            function: "fetch-manifest",
            methods: &[Method::GET, Method::HEAD],
            path: MANIFEST_PATH,
            access: Access::Repository(Action::Pull),
            handler: boxed!(manifests::fetch_manifest),
        },
        Route {
            function: "write-manifest",
            methods: &[Method::PUT],
            path: MANIFEST_PATH,
            access: Access::Repository(Action::Push),
            handler: boxed!(manifests::write_manifest),
        },
        Route {
            function: "delete-manifest",
            methods: &[Method::DELETE],
            path: MANIFEST_PATH,
            access: Access::Repository(Action::Delete),
            handler: boxed!(manifests::delete_manifest),
        },
        Route {
            function: "api-version",
            methods: &[Method::GET],
            path: "/v2/",
            access: Access::AnyToken,
            handler: boxed!(api_version),
        },
        #[cfg(feature = "blobs")]
        Route {
            function: "fetch-blob",
            methods: &[Method::GET, Method::HEAD],
            path: BLOB_PATH,
            access: Access::Repository(Action::Pull),
            handler: boxed!(blobs::fetch_blob),
        },
        Route {
            function: "delete-blob",
            methods: &[Method::DELETE],
            path: BLOB_PATH,
            access: Access::Repository(Action::Delete),
            handler: boxed!(blobs::delete_blob),
        },
        #[cfg(feature = "blobs")]
        Route {
            function: "start-upload",
            methods: &[Method::POST],
            path: UPLOADS_PATH,
            access: Access::PushOrMount,
            handler: boxed!(uploads::start_upload),
        },
        #[cfg(feature = "blobs")]
        Route {
            function: "patch-upload",
            methods: &[Method::PATCH],
            path: UPLOAD_PATH,
            access: Access::UploadSession,
            handler: boxed!(uploads::patch_upload),
        },
        #[cfg(feature = "blobs")]
        Route {
            function: "finish-upload",
            methods: &[Method::PUT],
            path: UPLOAD_PATH,
            access: Access::UploadSession,
            handler: boxed!(uploads::finish_upload),
        },
        Route {
            function: "upload-status",
            methods: &[Method::GET],
            path: UPLOAD_PATH,
            // Part of a push (the session's owner asks), not a read or a delete of content.
            access: Access::UploadSession,
            handler: boxed!(uploads::upload_status),
        },
        #[cfg(feature = "blobs")]
        Route {
            function: "cancel-upload",
            methods: &[Method::DELETE],
            path: UPLOAD_PATH,
            // Part of a push (the session's owner asks), not a read or a delete of content.
            access: Access::UploadSession,
            handler: boxed!(uploads::cancel_upload),
        },
        Route {
            function: "list-tags",
            methods: &[Method::GET],
            path: "/v2/{name}/tags/list",
            access: Access::Repository(Action::Pull),
            handler: boxed!(lists::list_tags),
        },
        Route {
            function: "catalog",
            methods: &[Method::GET],
            path: "/v2/_catalog",
            access: Access::Catalog,
            handler: boxed!(lists::catalog),
        },
        Route {
            function: "list-referrers",
            methods: &[Method::GET],
            path: "/v2/{name}/referrers/{digest}",
            access: Access::Repository(Action::Pull),
            handler: boxed!(lists::list_referrers),
        },
        Route {
            function: "token",
            // GET: the token spec; POST: its OAuth2 form, which containerd and docker try
            // first (a 405 there costs them a round trip, and docker its refresh token).
            methods: &[Method::GET, Method::POST],
            path: auth::PATH,
            access: Access::TokenService,
            handler: boxed!(auth::token),
        },
    ]
}

/// `GET /v2/` as a route of the table.
async fn api_version(_registry: &crate::registry::Registry, _req: Request) -> Response<Body> {
    version_check()
}

/// `GET /v2/`: the API version check every client makes first. It needs no storage.
pub fn version_check() -> Response<Body> {
    let body = "{}";
    response(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(Body::Text(body.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn found(method: Method, path: &str) -> (&'static str, Vec<(String, String)>) {
        let (route, params) = find_route(&method, path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let mut params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, mut v)| (k, v.remove(0)))
            .collect();
        params.sort();
        (route.function, params)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_name_takes_every_segment_between_the_fixed_ones() {
        assert_eq!(
            found(Method::GET, "/v2/myapp/manifests/latest"),
            (
                "fetch-manifest",
                pairs(&[("name1", "myapp"), ("reference", "latest")])
            )
        );
        assert_eq!(
            found(Method::PATCH, "/v2/org/team/app/blobs/uploads/u1"),
            (
                "patch-upload",
                pairs(&[
                    ("name1", "org"),
                    ("name2", "team"),
                    ("name3", "app"),
                    ("uuid", "u1")
                ])
            )
        );
        // Components that spell a route's words are part of the name.
        assert_eq!(
            found(Method::POST, "/v2/a/blobs/uploads/blobs/uploads/"),
            (
                "start-upload",
                pairs(&[("name1", "a"), ("name2", "blobs"), ("name3", "uploads")])
            )
        );
        assert_eq!(
            found(Method::GET, "/v2/a/manifests/tags/list"),
            (
                "list-tags",
                pairs(&[("name1", "a"), ("name2", "manifests")])
            )
        );
        assert_eq!(
            found(Method::GET, "/v2/a/blobs/uploads/x").0,
            "upload-status",
            "an upload's path is not a blob of a/blobs"
        );
        let deep: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let (function, params) = found(Method::GET, &format!("/v2/{}/tags/list", deep.join("/")));
        assert_eq!((function, params.len()), ("list-tags", 20));
        // Decoded once, per segment.
        assert_eq!(
            found(Method::GET, "/v2/a/b/manifests/sha256%3Aab").1[2],
            ("reference".to_string(), "sha256:ab".to_string())
        );
        assert_eq!(found(Method::GET, "/v2/_catalog").0, "catalog");
        assert_eq!(found(Method::POST, "/v2/auth").0, "token");
    }

    #[test]
    fn other_paths_and_methods_are_the_registrys_errors() {
        for path in [
            "/v2/manifests/latest",
            "/v2/a/b/manifests/",
            "/v2/a/b/nothing/x",
            "/v3/a/b/manifests/x",
            "/v2/a/b/tags/list/x",
        ] {
            let e = find_route(&Method::GET, path).map(|_| ()).unwrap_err();
            assert_eq!(
                (e.code, e.status()),
                (ErrorCode::NameUnknown, 404),
                "{path}"
            );
        }
        let e = find_route(&Method::PATCH, "/v2/a/b/manifests/x")
            .map(|_| ())
            .unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::Unsupported, 405));
        let e = find_route(&Method::GET, "/v2/a/%FF/manifests/x")
            .map(|_| ())
            .unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::NameInvalid, 400));
    }

    #[test]
    fn api_gateway_gets_one_path_per_depth() {
        let fetch = route("fetch-manifest").expect("route");
        let paths = fetch.api_gateway_paths();
        assert_eq!(paths.len(), API_GATEWAY_NAME_DEPTH);
        assert_eq!(paths[0], "/v2/{name1}/manifests/{reference}");
        assert_eq!(
            paths[2],
            "/v2/{name1}/{name2}/{name3}/manifests/{reference}"
        );
        assert_eq!(
            route("catalog").expect("route").api_gateway_paths(),
            ["/v2/_catalog"]
        );
        // Each depth's path is served by the same route, its parameters those of the path.
        for path in &paths {
            let concrete = path.replace(['{', '}'], "");
            assert_eq!(found(Method::HEAD, &concrete).0, "fetch-manifest", "{path}");
        }
    }
}
