//! registry-local's HTTP server: every route of [`quayside::http::routes`] on one port,
//! each request turned into the `lambda_http::Request` API Gateway would deliver and handed
//! to the same handler the Lambda function runs.
//!
//! May call: `quayside::http` (routes, errors) and axum. Nothing of storage: the caller
//! gives the [`Registry`].

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Path, Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use axum::routing::MethodFilter;
use lambda_http::{Body, RequestExt};
use quayside::error::{ErrorCode, RegistryError};
use quayside::http::{Handler, error_response, routes};
use quayside::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

/// The largest request body API Gateway passes to a Lambda function (its 10 MB payload
/// limit); registry-local refuses the same, so that what works here works on AWS.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The router over `registry`: the same routes, methods and handlers as the Lambda API.
pub fn router(registry: Registry) -> Router {
    let registry = Arc::new(registry);
    let mut by_path: HashMap<&str, axum::routing::MethodRouter<Arc<Registry>>> = HashMap::new();
    for route in routes() {
        for method in route.methods {
            let Ok(filter) = MethodFilter::try_from(method.clone()) else {
                continue;
            };
            let handler = route.handler;
            let method_router = by_path
                .remove(route.path)
                .unwrap_or_default()
                .on(filter, move |state, params, req| {
                    serve(state, params, req, handler)
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
/// handler, then lambda_http → axum.
async fn serve(
    State(registry): State<Arc<Registry>>,
    Path(params): Path<HashMap<String, String>>,
    req: AxumRequest,
    handler: Handler,
) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let e = RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("request body is over {MAX_BODY_BYTES} bytes, the API Gateway limit"),
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
    into_axum(handler(&registry, req).await)
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
