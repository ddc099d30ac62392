//! registry-local's HTTP server: every route of [`quayside::http::routes`] on one port,
//! each request turned into the `lambda_http::Request` API Gateway would deliver and handed
//! to the same handler the Lambda function runs.
//!
//! Checks before bytes: no body is read before the route's checks (the token gate, and for
//! an upload the upload limit and the declared sizes) pass: an upload's body is then
//! streamed to its handler as it arrives ([`StreamedBody`]), any other (a manifest, a token
//! request) collected up to [`MAX_SMALL_BODY`]. A blob GET streams the file.
//!
//! The server loop ([`serve_with`]) is HTTP/1.1 only (hyper's `http1`: no h2c), with the
//! limits of [`ServeOptions`]: a header read timeout, a body idle timeout, a bound on open
//! connections (over it, new ones wait in the listen backlog) and on uploads in flight
//! (over it, `429`). A request answered before its body was read whole (`401`, `413`,
//! `416`, …) gets `Connection: close`, and its body is read and dropped for a while
//! ([`DRAIN_TIME`], [`DRAIN_BYTES`]) before the connection closes, so that a client that
//! is still sending reads the answer rather than a reset (`write: broken pipe`).
//!
//! May call: `quayside::http` (routes, errors), axum, hyper and tokio. Nothing of storage:
//! the caller gives the [`Registry`].

use axum::Router;
use axum::body::{Body as AxumBody, Bytes, HttpBody};
use axum::extract::{Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use futures_util::TryStreamExt as _;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use lambda_http::{Body, RequestExt};
use quayside::error::{ErrorCode, RegistryError};
use quayside::http::{FileBody, StreamedBody, error_response, find_route};
use quayside::registry::Registry;
use quayside::registry::UploadBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// registry-local's largest blob, and so its largest chunk, by default: docker and skopeo
/// send a whole layer in one request, which Lambda cannot take but a local process can;
/// well above any real layer.
pub const DEFAULT_MAX_CHUNK_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// The largest body of a request that carries no blob: a manifest (4 MiB), a token request.
pub const MAX_SMALL_BODY: usize = quayside::manifest::MAX_MANIFEST_BYTES + 1;

/// How long a body unread by its handler is still read (and dropped) after the answer, so
/// that a client still sending it gets to read the answer. A client reads the answer as
/// soon as it has written its request, or at once if it reads while it writes (Go's
/// clients: docker, podman, containerd): ten seconds cover either on any link that could
/// push a layer, and bound what a client that never stops may cost.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// At most this much of an unread body is read and dropped (see [`DRAIN_TIME`]): what a
/// local client sends in about a second, which is all it needs to see the answer.
pub const DRAIN_BYTES: u64 = 1024 * 1024 * 1024;

/// How a client over [`ServeOptions::max_uploads`] is told to come back (seconds).
const UPLOADS_RETRY_AFTER: u32 = 5;

/// How registry-local serves connections; `registry-local --help` sets each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// A request's head (request line and headers) must arrive within this, counted from
    /// its first byte being awaited: a slow-loris client is cut off, and so is a keep-alive
    /// connection idle this long (clients open another). The connection closes with no
    /// answer, as hyper does.
    pub header_timeout: Duration,
    /// A request body that sends no byte for this long is dropped: its handler sees an
    /// error (an upload keeps what it had stored; the client may resume from its `Range`).
    pub body_idle_timeout: Duration,
    /// Open connections at most; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Requests sending blob bytes (PATCH, PUT and POST of an upload) at once at most;
    /// more get `429 TOOMANYREQUESTS` with `Retry-After`, before their body is read.
    pub max_uploads: usize,
    /// The functions whose routes are served (the upload service's sessions); `None`:
    /// every route. Another route's path gets `404 NAME_UNKNOWN`.
    pub only: Option<&'static [&'static str]>,
    /// A path answered `200` to `GET` without storage or token (a load balancer's health
    /// check), if any.
    pub health: Option<&'static str>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_uploads: 32,
            only: None,
            health: None,
        }
    }
}

/// What every request's handler shares: the registry, the upload slots, what is served.
struct Shared {
    registry: Registry,
    uploads: Arc<Semaphore>,
    only: Option<&'static [&'static str]>,
    health: Option<&'static str>,
}

/// The router over `registry`: the same routes, methods and handlers as the Lambda API,
/// with the default upload limit.
pub fn router(registry: Registry) -> Router {
    router_with(registry, ServeOptions::default())
}

/// The router over `registry`, with the upload limit and routes of `options`. The route
/// table matches every path itself ([`find_route`]): axum cannot match a name of any depth
/// in the middle of a path.
pub fn router_with(registry: Registry, options: ServeOptions) -> Router {
    let shared = Arc::new(Shared {
        registry,
        uploads: Arc::new(Semaphore::new(options.max_uploads)),
        only: options.only,
        health: options.health,
    });
    Router::new().fallback(serve_one).with_state(shared)
}

/// One request: its route, axum → lambda_http (method, URI, headers, path parameters), the
/// route's checks, then its body and handler, then lambda_http → axum.
async fn serve_one(State(shared): State<Arc<Shared>>, req: AxumRequest) -> AxumResponse {
    if shared.health == Some(req.uri().path()) && req.method() == http::Method::GET {
        return AxumResponse::new(AxumBody::from("ok\n"));
    }
    let (route, params) = match find_route(req.method(), req.uri().path()) {
        Ok(found) => found,
        Err(e) => return into_axum_now(error_response(&e, req.method())),
    };
    if shared
        .only
        .is_some_and(|only| !only.contains(&route.function))
    {
        let e = RegistryError::new(
            ErrorCode::NameUnknown,
            format!("{} {} is not served here", req.method(), req.uri().path()),
        )
        .with_status(404);
        return into_axum_now(error_response(&e, req.method()));
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let req = lambda_http::Request::from_parts(parts, Body::Empty).with_path_parameters(params);
    let uploads = shared.uploads.clone();
    // Runs once the token gate let the request through: a refused caller takes no upload
    // slot and sends no byte that is read.
    let attach = move |mut req: lambda_http::Request| async move {
        if route.takes_blob_body() {
            // A request with no body (docker's finishing PUT) needs no slot.
            let slot = if body.is_end_stream() {
                None
            } else {
                Some(
                    uploads
                        .try_acquire_owned()
                        .map_err(|_| too_many_uploads(&method))?,
                )
            };
            // The slot goes with the stream: held while the handler may read the body.
            let stream = body.into_data_stream().map_err(move |e| {
                let _held = &slot;
                std::io::Error::other(e)
            });
            let reader = tokio_util::io::StreamReader::new(stream);
            req.extensions_mut()
                .insert(StreamedBody::new(UploadBody::from_reader(reader, declared)));
            return Ok(req);
        }
        let bytes = collect_small(body, declared, &method).await?;
        if !bytes.is_empty() {
            *req.body_mut() = Body::Binary(bytes.into());
        }
        Ok(req)
    };
    into_axum(route.serve_with_body(&shared.registry, req, attach).await).await
}

/// `429 TOOMANYREQUESTS`: every upload slot is taken.
fn too_many_uploads(method: &http::Method) -> lambda_http::Response<Body> {
    let e = RegistryError::new(
        ErrorCode::TooManyRequests,
        "too many uploads are in progress: retry later",
    )
    .with_retry_after(UPLOADS_RETRY_AFTER);
    error_response(&e, method)
}

/// The whole body of a request that carries no blob: `413` over [`MAX_SMALL_BODY`] (from
/// `Content-Length` before a byte is read), `400 SIZE_INVALID` if it breaks off or stalls
/// short of its end.
async fn collect_small(
    body: AxumBody,
    declared: Option<u64>,
    method: &http::Method,
) -> Result<Bytes, lambda_http::Response<Body>> {
    let too_large = || {
        let e = RegistryError::new(
            ErrorCode::SizeInvalid,
            format!(
                "the request body is over {} bytes, the most one without blob bytes may carry",
                MAX_SMALL_BODY - 1
            ),
        )
        .with_status(413);
        error_response(&e, method)
    };
    if declared.is_some_and(|n| n > MAX_SMALL_BODY as u64) {
        return Err(too_large());
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut stream = body.into_data_stream();
    let mut all = Vec::new();
    while let Some(chunk) = stream.try_next().await.map_err(|e| {
        let e = RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("the request body broke off after {} bytes: {e}", all.len()),
        );
        error_response(&e, method)
    })? {
        if all.len().saturating_add(chunk.len()) > MAX_SMALL_BODY {
            return Err(too_large());
        }
        all.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(all))
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

/// Serves `registry` on `listener` with the default [`ServeOptions`] until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, registry: Registry) -> std::io::Result<()> {
    serve_with(
        listener,
        registry,
        ServeOptions::default(),
        std::future::pending(),
        Duration::ZERO,
    )
    .await
}

/// Serves `registry` on `listener` until `shutdown` completes; then accepts no more
/// connections, closes idle ones, and lets requests in flight finish for at most `grace`
/// (what is cut then is what a crash would cut: uploads resume from what they stored).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    registry: Registry,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let router = router_with(registry, options);
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: over the limit, connections wait in the kernel's backlog
        // rather than be accepted and refused, so that a client that waits gets served
        // (no client of ours retries a refused upload), and an attacker holding every
        // slot keeps each only until the header timeout.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // taken: neither ends the server; a pause lets descriptors free up.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // hyper writes each answer's head with its first bytes; Nagle would only hold a
        // streamed body's last short segment for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let idle = options.body_idle_timeout;
        let client = client.ip().to_string();
        let service = hyper::service::service_fn(move |req| {
            let router = router.clone();
            let client = client.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(router, req, idle, &client).await) }
        });
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "requests still in flight at shutdown were cut");
        }
    }
    Ok(())
}

/// One request through the router, its body guarded ([`GuardedBody`]); an answer given
/// before the body was read whole closes the connection after draining it.
async fn answer(
    router: Router,
    req: http::Request<Incoming>,
    idle: Duration,
    client: &str,
) -> AxumResponse {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, incoming) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let state = Arc::new(Mutex::new(BodyState {
        incoming: Some(incoming),
        received: 0,
        declared,
        polled: false,
        ended: false,
        broken: false,
    }));
    let body = GuardedBody {
        state: state.clone(),
        idle,
        timer: None,
        waiting: false,
    };
    let req = http::Request::from_parts(parts, AxumBody::new(body));
    // hyper keeps polling a handler whose client went away: the body fails, and the
    // handler lets go of an upload as for any error (a_client_gone_mid_patch_…).
    let mut response = match router.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let unread = {
        let mut state = lock(&state);
        let done = state.ended || state.incoming.as_ref().is_none_or(|b| b.is_end_stream());
        if done {
            None
        } else {
            let incoming = state.incoming.take();
            // Not read at all while the client waits for `100 Continue`: it sends nothing
            // more (hyper sends no 100 after an answer), so there is nothing to drain. A
            // body that broke off or stalled will bring nothing worth waiting for.
            let drain = !state.broken && (!expects_continue || state.polled);
            incoming.map(|b| (b, drain))
        }
    };
    if let Some((incoming, drain)) = unread {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        if drain {
            tokio::spawn(drain_body(incoming));
        }
    }
    if let Ok(id) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    // Logged as the answer goes out: a streamed body (a blob GET) goes on after.
    quayside::http::access::AccessRecord {
        method: &method,
        uri: &uri,
        status: response.status().as_u16(),
        bytes_in: lock(&state).received,
        bytes_out: response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
        duration: started.elapsed(),
        client: Some(client),
        principal: response
            .extensions()
            .get::<quayside::http::access::Principal>()
            .and_then(|p| p.0.as_deref()),
        request_id: &request_id,
    }
    .log();
    response
}

/// The id of the request in registry-local's access log, told to the client.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Reads and drops what is left of a body, for at most [`DRAIN_TIME`] and [`DRAIN_BYTES`]:
/// hyper reads a body only while someone takes it, and closing a socket with unread bytes
/// sends a reset, which loses the answer for a client still writing. hyper closes the
/// connection when this ends (the answer said `Connection: close`).
async fn drain_body(mut incoming: Incoming) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut left = DRAIN_BYTES;
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx));
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, next).await else {
            break;
        };
        if let Some(data) = frame.data_ref() {
            match left.checked_sub(data.len() as u64) {
                Some(rest) => left = rest,
                None => break,
            }
        }
    }
}

/// A request body as the handler sees it, shared with [`answer`], which gets back what
/// the handler left unread.
struct BodyState {
    incoming: Option<Incoming>,
    received: u64,
    /// `Content-Length`: a body that ends short of it broke off.
    declared: Option<u64>,
    /// The handler asked for bytes (and so hyper sent `100 Continue` if asked).
    polled: bool,
    /// Read to its end.
    ended: bool,
    /// Failed: broke off, or stalled past the idle timeout.
    broken: bool,
}

/// The request body with the idle timeout: no byte for that long is an error. It keeps
/// hyper's body in [`BodyState`] rather than own it, so that a handler that drops it
/// unread does not make hyper close the connection under a client still sending.
struct GuardedBody {
    state: Arc<Mutex<BodyState>>,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Waiting for bytes since the timer was last set.
    waiting: bool,
}

fn lock(state: &Mutex<BodyState>) -> std::sync::MutexGuard<'_, BodyState> {
    // Nothing panics while holding it; a poisoned lock still holds consistent flags.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let mut state = lock(&this.state);
        state.polled = true;
        if state.broken {
            return Poll::Ready(Some(Err(std::io::Error::other("the body broke off"))));
        }
        let Some(incoming) = state.incoming.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let Some(data) = frame.data_ref() {
                    state.received = state.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                state.broken = true;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => match state.declared {
                // hyper ends a body whose connection went away without an error.
                Some(declared) if state.received < declared => {
                    state.broken = true;
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the body ended after {} of its {declared} bytes",
                            state.received
                        ),
                    ))))
                }
                _ => {
                    state.ended = true;
                    Poll::Ready(None)
                }
            },
            Poll::Pending => {
                // Idle from when the wait began, not from the last byte: a handler busy
                // storing what it read is not a client that stopped sending.
                let deadline = tokio::time::Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    this.waiting = true;
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                state.broken = true;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no byte of the body for {}",
                        humantime::format_duration(this.idle)
                    ),
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.state);
        state.ended || state.incoming.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.state)
            .incoming
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

/// A timeout as the command lines take it: `30s`, `2m`, more than zero.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("a timeout must be more than zero".into()),
        Err(e) => Err(format!("{text:?}: {e} (e.g. 30s, 2m)")),
    }
}

/// Ctrl-C or SIGTERM (docker stop, systemd, a test harness).
pub async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a handler, SIGTERM keeps its default: the process ends at once.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stopping: no new connections; requests in flight may finish");
}
