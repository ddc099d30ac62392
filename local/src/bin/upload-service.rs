//! upload-service: the upload sessions of a deployed registry, served where a request may
//! be gigabytes long (a container behind a load balancer; Lambda takes 6 MB). start-upload
//! (on Lambda) hands each session here with a capability in its URL (see
//! `quayside::http::uploads`); this process serves that session's `PATCH`, `PUT`, `GET` and
//! `DELETE`, streaming each body into S3 multipart with the digest computed on the way, and
//! keeps the session's state in its table item, so that any task continues any session
//! from its `Range`. It links a finished blob as finish-upload does, its event into the
//! table's outbox, which the deployment's notify-push publishes: this process publishes
//! nothing itself.
//!
//! Configured as the functions are, from the environment: `QUAYSIDE_TABLE`,
//! `QUAYSIDE_BUCKET`, `QUAYSIDE_KMS_KEY` (the key whose public half verifies tokens and
//! capabilities), `QUAYSIDE_AUTH_*`, `QUAYSIDE_UPLOAD_MAX_AGE`, and the AWS SDK's own
//! (credentials from the task role).
//!
//! May call: `registry_local::serve_with` (the server loop), `quayside::backend`,
//! `quayside::aws` settings. Nothing of HTTP handling or storage of its own.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// The routes served: an upload session's, nothing else.
const SESSION_ROUTES: &[&str] = &[
    "patch-upload",
    "finish-upload",
    "upload-status",
    "cancel-upload",
];

/// The load balancer's health check.
const HEALTH_PATH: &str = "/health";

#[derive(Parser)]
#[command(
    name = "upload-service",
    version,
    about = "quayside's upload sessions over S3 and DynamoDB, for a deployment's load balancer"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "QUAYSIDE_ADDR")]
    addr: SocketAddr,
    /// Requests sending blob bytes at once at most; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64, env = "QUAYSIDE_MAX_UPLOADS")]
    max_uploads: usize,
    /// Open connections at most; more wait in the listen backlog.
    #[arg(long, default_value_t = 512, env = "QUAYSIDE_MAX_CONNECTIONS")]
    max_connections: usize,
    /// A request's headers must arrive within this.
    #[arg(long, default_value = "30s", env = "QUAYSIDE_HEADER_TIMEOUT", value_parser = registry_local::parse_timeout)]
    header_timeout: Duration,
    /// A request body that sends no byte for this long is dropped (the upload keeps what
    /// it stored; the client may resume).
    #[arg(long, default_value = "60s", env = "QUAYSIDE_BODY_IDLE_TIMEOUT", value_parser = registry_local::parse_timeout)]
    body_idle_timeout: Duration,
    /// How long a request's claim on a session holds without recorded progress (each S3
    /// part renews it): after a task dies mid-request, its sessions wait this long before
    /// another task continues them (docker and most clients start over with a new session
    /// anyway). Longer than a part takes to arrive on the slowest link served.
    #[arg(long, default_value = "2m", env = "QUAYSIDE_UPLOAD_LEASE", value_parser = registry_local::parse_timeout)]
    upload_lease: Duration,
    /// On SIGTERM, how long uploads in flight may take to finish (ECS waits up to its
    /// stopTimeout, 120 s at most, before it kills). What is cut then resumes elsewhere.
    #[arg(long, default_value = "110s", env = "QUAYSIDE_DRAIN", value_parser = registry_local::parse_timeout)]
    drain: Duration,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    quayside::aws::logging::init();
    let settings = quayside::aws::Settings::from_env()?;
    let auth = quayside::auth::AuthSettings::from_env()?;
    let aws = quayside::aws::Aws::from_env().await;
    let access = quayside::backend::aws_access(&aws, &settings);
    let mut registry = quayside::backend::open_aws(&aws, &settings)
        .with_auth(quayside::auth::Auth::new(access, auth));
    // A whole layer per request, up to the largest blob.
    registry.limits.max_chunk_bytes = registry.limits.max_blob_bytes;
    registry.limits.upload_lease = args.upload_lease;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        table = %settings.table,
        bucket = %settings.bucket,
        "upload-service serving upload sessions"
    );
    let options = registry_local::ServeOptions {
        header_timeout: args.header_timeout,
        body_idle_timeout: args.body_idle_timeout,
        max_connections: args.max_connections,
        max_uploads: args.max_uploads,
        only: Some(SESSION_ROUTES),
        health: Some(HEALTH_PATH),
    };
    registry_local::serve_with(
        listener,
        registry,
        options,
        registry_local::stop_signal(),
        args.drain,
    )
    .await?;
    Ok(())
}
