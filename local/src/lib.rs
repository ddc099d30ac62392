//! registry-local's HTTP server: every route of [`quayside::http::routes`] on one port,
//! each request turned into the `lambda_http::Request` API Gateway would deliver and handed
//! to the same handler the Lambda function runs.
//!
//! No body is read before the route's checks (the token gate) pass: an upload's body is
//! then streamed to its handler as it arrives ([`StreamedBody`]), any other (a manifest, a
//! token request) collected up to [`MAX_SMALL_BODY`]. A blob GET streams the file.
//!
//! May call: `quayside::http` (routes, errors) and axum. Nothing of storage: the caller
//! gives the [`Registry`].

use axum::Router;
use axum::body::{Body as AxumBody, HttpBody};
use axum::extract::{RawPathParams, Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use axum::routing::MethodFilter;
use futures_util::TryStreamExt as _;
use lambda_http::{Body, RequestExt};
use quayside::blobs::UploadBody;
use quayside::error::{ErrorCode, RegistryError};
use quayside::http::{FileBody, Route, StreamedBody, error_response, routes};
use quayside::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

/// registry-local's largest blob, and so its largest chunk, by default: docker and skopeo
/// send a whole layer in one request, which Lambda cannot take but a local process can;
/// well above any real layer.
pub const DEFAULT_MAX_CHUNK_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// The largest body of a request that carries no blob: a manifest (4 MiB), a token request.
pub const MAX_SMALL_BODY: usize = quayside::manifest::MAX_MANIFEST_BYTES + 1;

/// The router over `registry`: the same routes, methods and handlers as the Lambda API.
pub fn router(registry: Registry) -> Router {
    let registry = Arc::new(registry);
    let mut by_path: HashMap<&str, axum::routing::MethodRouter<Arc<Registry>>> = HashMap::new();
    for route in routes() {
        for method in route.methods {
            let Ok(filter) = MethodFilter::try_from(method.clone()) else {
                continue;
            };
            let method_router = by_path
                .remove(route.path)
                .unwrap_or_default()
                .on(filter, move |state, params, req| {
                    serve_one(state, params, req, route)
                });
            by_path.insert(route.path, method_router);
        }
    }
    let mut router = Router::new();
    for (path, method_router) in by_path {
        router = router.route(
            path,
            method_router.fallback(|req: AxumRequest| async move {
                let e = RegistryError::new(
                    ErrorCode::Unsupported,
                    format!("{} is not supported on {}", req.method(), req.uri().path()),
                );
                into_axum_now(error_response(&e, req.method()))
            }),
        );
    }
    router
        .fallback(|req: AxumRequest| async move {
            let e = RegistryError::new(
                ErrorCode::NameUnknown,
                format!("no route for {}", req.uri().path()),
            )
            .with_status(404);
            into_axum_now(error_response(&e, req.method()))
        })
        .with_state(registry)
}

/// One request: axum → lambda_http (method, URI, headers, path parameters), the route's
/// checks, then its body and handler, then lambda_http → axum.
async fn serve_one(
    State(registry): State<Arc<Registry>>,
    params: RawPathParams,
    req: AxumRequest,
    route: Route,
) -> AxumResponse {
    // The map lambda_http keeps (one value per name), built once.
    let params: HashMap<String, Vec<String>> = params
        .iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let req = lambda_http::Request::from_parts(parts, Body::Empty).with_path_parameters(params);
    let attach = move |mut req: lambda_http::Request| async move {
        if route.takes_blob_body() {
            let stream = body.into_data_stream().map_err(std::io::Error::other);
            let reader = tokio_util::io::StreamReader::new(stream);
            req.extensions_mut()
                .insert(StreamedBody::new(UploadBody::from_reader(reader, declared)));
            return Ok(req);
        }
        let too_large = || {
            let e = RegistryError::new(
                ErrorCode::SizeInvalid,
                format!(
                    "the request body is over {} bytes, the most one without blob bytes may carry",
                    MAX_SMALL_BODY - 1
                ),
            )
            .with_status(413);
            error_response(&e, &method)
        };
        if declared.is_some_and(|n| n > MAX_SMALL_BODY as u64) {
            return Err(too_large());
        }
        let bytes = if body.is_end_stream() {
            axum::body::Bytes::new()
        } else {
            axum::body::to_bytes(body, MAX_SMALL_BODY)
                .await
                .map_err(|_| too_large())?
        };
        if !bytes.is_empty() {
            *req.body_mut() = Body::Binary(bytes.into());
        }
        Ok(req)
    };
    into_axum(route.serve_with_body(&registry, req, attach).await).await
}

async fn into_axum(response: lambda_http::Response<Body>) -> AxumResponse {
    let (mut parts, body) = response.into_parts();
    if let Some(file) = parts.extensions.remove::<FileBody>() {
        return match file_body(&file).await {
            Ok(body) => AxumResponse::from_parts(parts, body),
            Err(e) => {
                let e = RegistryError::internal(format!("reading {}: {e}", file.path.display()));
                into_axum_now(error_response(&e, &http::Method::GET))
            }
        };
    }
    AxumResponse::from_parts(parts, plain_body(body))
}

fn into_axum_now(response: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    AxumResponse::from_parts(parts, plain_body(body))
}

fn plain_body(body: Body) -> AxumBody {
    match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        #[allow(unreachable_patterns)]
        other => AxumBody::from(other.as_ref().to_vec()),
    }
}

/// `len` bytes of the file from `offset`, read as the client takes them.
async fn file_body(file: &FileBody) -> std::io::Result<AxumBody> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut opened = tokio::fs::File::open(&file.path).await?;
    opened.seek(std::io::SeekFrom::Start(file.offset)).await?;
    let reader = opened.take(file.len);
    Ok(AxumBody::from_stream(
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024),
    ))
}

/// Serves `registry` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, registry: Registry) -> std::io::Result<()> {
    axum::serve(listener, router(registry)).await
}
