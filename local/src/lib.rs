//! registry-local's HTTP server: every route of [`quayside::http::routes`] on one port,
//! each request turned into the `lambda_http::Request` API Gateway would deliver and handed
//! to the same handler the Lambda function runs.
//!
//! May call: `quayside::http` (routes, errors) and axum. Nothing of storage: the caller
//! gives the [`Registry`].

use axum::Router;
use axum::body::{Body as AxumBody, HttpBody};
use axum::extract::{RawPathParams, Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use axum::routing::MethodFilter;
use lambda_http::{Body, RequestExt};
use quayside::error::{ErrorCode, RegistryError};
use quayside::http::{Route, error_response, routes};
use quayside::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

/// registry-local's largest blob chunk by default: docker and skopeo send a whole layer in
/// one request, which Lambda cannot take but a local process can.
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 1024 * 1024 * 1024;

/// The router over `registry`: the same routes, methods and handlers as the Lambda API.
/// Request bodies may be as large as the registry's chunk limit (or a manifest's).
pub fn router(registry: Registry) -> Router {
    let max_body = registry
        .limits
        .max_chunk_bytes
        .max(quayside::manifest::MAX_MANIFEST_BYTES)
        + 1;
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
                    serve_one(state, params, req, route, max_body)
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
                into_axum(error_response(&e, req.method()))
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
            into_axum(error_response(&e, req.method()))
        })
        .with_state(registry)
}

/// One request: axum → lambda_http (method, URI, headers, body, path parameters), the
/// route (its token check, then its handler), then lambda_http → axum.
async fn serve_one(
    State(registry): State<Arc<Registry>>,
    params: RawPathParams,
    req: AxumRequest,
    route: Route,
    max_body: usize,
) -> AxumResponse {
    // The map lambda_http keeps (one value per name), built once.
    let params: HashMap<String, Vec<String>> = params
        .iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
    let (parts, body) = req.into_parts();
    // A GET or HEAD has no body: nothing to collect.
    let collected = if body.is_end_stream() {
        Ok(axum::body::Bytes::new())
    } else {
        axum::body::to_bytes(body, max_body).await
    };
    let bytes = match collected {
        Ok(bytes) => bytes,
        Err(_) => {
            let e = RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("the request body is over registry-local's {max_body} bytes"),
            )
            .with_status(413);
            return into_axum(error_response(&e, &parts.method));
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.into())
    };
    let req = lambda_http::Request::from_parts(parts, body).with_path_parameters(params);
    into_axum(route.serve(&registry, req).await)
}

fn into_axum(response: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        #[allow(unreachable_patterns)]
        other => AxumBody::from(other.as_ref().to_vec()),
    };
    AxumResponse::from_parts(parts, body)
}

/// Serves `registry` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, registry: Registry) -> std::io::Result<()> {
    axum::serve(listener, router(registry)).await
}
