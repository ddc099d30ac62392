//! registry-local: quayside on one port, over embedded storage (no AWS account needed) or,
//! with `--backend aws`, over DynamoDB, S3, KMS and SNS at whatever endpoint the AWS SDK is
//! given (moto's server on a laptop). `registry-local provision` creates those resources.
//!
//! May call: `registry_local::serve_with`, `quayside::backend`, the registry's upload
//! housekeeping (purge, dead claims) and, for the AWS backend, the provisioning code and the
//! stream reader of `quayside::aws`. Nothing of the ports' item shapes.

use clap::{Parser, Subcommand, ValueEnum};
#[cfg(feature = "aws")]
use quayside::aws::sns::{SnsEvents, find_topic};
#[cfg(feature = "aws")]
use quayside::aws::streams::StreamReader;
#[cfg(feature = "aws")]
use quayside::aws::{Aws, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
#[cfg(feature = "aws")]
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "quayside's registry on one port, over embedded storage or AWS services",
    after_help = "AWS resources and credentials come from the environment: QUAYSIDE_TABLE, \
                  QUAYSIDE_BUCKET, QUAYSIDE_KMS_KEY, QUAYSIDE_TOPIC (or QUAYSIDE_TOPIC_ARN), \
                  all defaulting to `quayside` (the key to `alias/quayside`), and the AWS SDK's \
                  own variables: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, \
                  AWS_SECRET_ACCESS_KEY, AWS_PROFILE."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", env = "QUAYSIDE_ADDR")]
    addr: SocketAddr,
    /// Folder for metadata, blobs, the signing key and the event log (embedded backend), or
    /// for the stream reader's checkpoints (aws backend: `stream-checkpoints/`); created if
    /// missing.
    #[arg(long, default_value = "./registry-data", env = "QUAYSIDE_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the registry keeps its state.
    #[arg(long, value_enum, default_value_t = Backend::Embedded, env = "QUAYSIDE_BACKEND")]
    backend: Backend,
    /// Require Docker token authentication: users, robots and grants are managed with
    /// `registry-admin`; the token service answers at /v2/auth on the same address.
    #[arg(long, env = "QUAYSIDE_AUTH")]
    auth: bool,
    /// With --auth: the token service's URL told to clients (default http://<addr>/v2/auth).
    #[arg(long, env = "QUAYSIDE_AUTH_REALM")]
    realm: Option<String>,
    /// The largest blob: an upload is refused (413 SIZE_INVALID) from its first byte past
    /// it. Over the AWS backend, at most 5 GiB (one S3 CopyObject).
    #[arg(long, default_value_t = registry_local::DEFAULT_MAX_CHUNK_BYTES, env = "QUAYSIDE_MAX_BLOB_BYTES")]
    max_blob_bytes: u64,
    /// The largest blob chunk one request may carry (default: the largest blob). docker and
    /// skopeo send a whole layer in one request, which Lambda caps at 4 MiB.
    #[arg(long, env = "QUAYSIDE_MAX_CHUNK_BYTES")]
    max_chunk_bytes: Option<u64>,
    /// How long an upload may stay unfinished, from its start (`24h`, `90m`, `2days`):
    /// older ones are removed with their bytes at start and then hourly. Over the AWS
    /// backend, set it as QUAYSIDE_UPLOAD_MAX_AGE: the table's TTL reads the variable.
    #[arg(long, default_value = "24h", env = "QUAYSIDE_UPLOAD_MAX_AGE", value_parser = quayside::ports::parse_upload_max_age)]
    upload_max_age: Duration,
    /// A request's headers must arrive within this (`30s`, `2m`): a client that trickles
    /// them (slow-loris), or a keep-alive connection idle this long, is closed.
    #[arg(long, default_value = "30s", env = "QUAYSIDE_HEADER_TIMEOUT", value_parser = registry_local::parse_timeout)]
    header_timeout: Duration,
    /// A request body that sends no byte for this long is dropped (`60s`); an upload keeps
    /// what it stored, and the client may resume.
    #[arg(long, default_value = "60s", env = "QUAYSIDE_BODY_IDLE_TIMEOUT", value_parser = registry_local::parse_timeout)]
    body_idle_timeout: Duration,
    /// Open connections at most; more wait in the listen backlog until one closes.
    #[arg(long, default_value_t = registry_local::ServeOptions::default().max_connections, env = "QUAYSIDE_MAX_CONNECTIONS", value_parser = parse_at_least_one)]
    max_connections: usize,
    /// Requests sending blob bytes at once at most; more get 429 TOOMANYREQUESTS with
    /// Retry-After before their body is read.
    #[arg(long, default_value_t = registry_local::ServeOptions::default().max_uploads, env = "QUAYSIDE_MAX_UPLOADS", value_parser = parse_at_least_one)]
    max_uploads: usize,
    /// Hand the upload sessions this registry opens to the upload service at this URL
    /// (`upload-service` over the same AWS backend, and --auth on both): a session's
    /// `Location` is there, with a capability for it.
    #[arg(long, env = "QUAYSIDE_UPLOAD_SERVICE_URL")]
    upload_service: Option<String>,
    /// Over the AWS backend, whether this process publishes the table's events to the
    /// topic: `auto` does when `provision` made the table (tagged quayside:events=
    /// registry-local), not for a deployed stack's, whose notify-push publishes them.
    #[arg(long, value_enum, default_value_t = PublishEvents::Auto, env = "QUAYSIDE_PUBLISH_EVENTS")]
    publish_events: PublishEvents,
    /// How log lines are written: `text`, or `json` (one object per line, for a log
    /// collector). One `quayside::access` line per request at `info` (RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "QUAYSIDE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PublishEvents {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// How long requests in flight at a shutdown (Ctrl-C, SIGTERM) may take to finish: docker
/// and systemd wait ten seconds before they kill.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?}: a whole number of at least 1")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// redb, a blob folder, a key file and a JSON-lines event file in --data-dir.
    Embedded,
    /// DynamoDB, S3, KMS and SNS (run `registry-local provision` first); pushes reach the
    /// SNS topic through the table's stream, as on AWS.
    Aws,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (what no subcommand does).
    Serve,
    /// Create the table, bucket, signing key and topic of the AWS backend where missing
    /// (idempotent), at the configured endpoint.
    Provision,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
    );
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match args.command.take().unwrap_or(Command::Serve) {
        Command::Provision => provision().await,
        Command::Serve => serve(&args).await,
    }
}

/// What `--backend aws` and `provision` answer in a build without them.
#[cfg(not(feature = "aws"))]
const NO_AWS: &str = "this registry-local was built without the AWS backend: \
    cargo run --release -p registry-local --features aws -- …";

#[cfg(not(feature = "aws"))]
async fn provision() -> Result<(), Box<dyn std::error::Error>> {
    Err(NO_AWS.into())
}

#[cfg(feature = "aws")]
async fn provision() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let aws = Aws::from_env().await;
    let done = quayside::aws::provision::provision(&aws, &settings).await?;
    println!("table      {}", done.table);
    println!("bucket     {}", done.bucket);
    println!("key        {} ({})", settings.key_id, done.key_id);
    println!("topic      {}", done.topic_arn);
    println!("ready: registry-local --backend aws");
    Ok(())
}

async fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let auth = auth_settings(args)?;
    let (registry, location) = match args.backend {
        Backend::Embedded => (
            quayside::backend::open_embedded_with_auth(&args.data_dir, auth.clone())?,
            args.data_dir.display().to_string(),
        ),
        #[cfg(not(feature = "aws"))]
        Backend::Aws => return Err(NO_AWS.into()),
        #[cfg(feature = "aws")]
        Backend::Aws => {
            let settings = Settings::from_env()?;
            let aws = Aws::from_env().await;
            let publish = match args.publish_events {
                PublishEvents::Always => true,
                PublishEvents::Never => false,
                PublishEvents::Auto => quayside::aws::provision::publishes_own_events(
                    &aws,
                    &settings.table,
                )
                .await
                .map_err(|e| {
                    format!(
                        "the AWS backend is not ready ({e}); run `registry-local provision` first"
                    )
                })?,
            };
            if publish {
                start_notifier(&aws, &settings, &args.data_dir).await?;
            } else {
                tracing::info!(
                    table = %settings.table,
                    "not publishing the table's events: its stack's notify-push does \
                     (the table is not tagged quayside:events=registry-local; --publish-events always overrides)"
                );
            }
            let location = format!(
                "table {}, bucket {}, key {}",
                settings.table, settings.bucket, settings.key_id
            );
            let registry = quayside::backend::open_aws(&aws, &settings);
            let registry = match auth.clone() {
                Some(auth) => registry.with_auth(quayside::auth::Auth::new(
                    quayside::backend::aws_access(&aws, &settings),
                    auth,
                )),
                None => registry,
            };
            (registry, location)
        }
    };
    let mut registry = match &args.upload_service {
        Some(url) => registry.with_upload_service(url),
        None => registry,
    };
    // Where the upload service sends clients back once a blob is stored: this address (or
    // the realm's host, which --realm sets when clients reach it by another name).
    registry.public_url = Some(match auth.as_ref().and_then(|a| a.realm.as_deref()) {
        Some(realm) => realm
            .strip_suffix(quayside::auth::TOKEN_PATH)
            .unwrap_or(realm)
            .to_string(),
        None => format!("http://{}", args.addr),
    });
    registry.limits.max_blob_bytes = match args.backend {
        Backend::Embedded => args.max_blob_bytes,
        Backend::Aws => args.max_blob_bytes.min(registry.limits.max_blob_bytes),
    };
    // A request streams a whole chunk into the folder before it records it: its claim must
    // outlast a long, slow one (Lambda's limits assume a function's 29 s).
    registry.limits.upload_lease = std::time::Duration::from_secs(15 * 60);
    registry.limits.upload_max_age = args.upload_max_age;
    registry.limits.max_chunk_bytes = args
        .max_chunk_bytes
        .unwrap_or(args.max_blob_bytes)
        .min(registry.limits.max_blob_bytes);
    if args.backend == Backend::Embedded {
        // This process owns the folder (redb locks it): a claim still held is a crashed
        // run's, and would answer the client's retry 416 until its lease ran out.
        let released = registry.release_dead_claims().await?;
        if released > 0 {
            tracing::info!(uploads = released, "claims of a previous run let go");
        }
    }
    tokio::spawn(purge_uploads(registry.clone(), args.upload_max_age));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    match &auth {
        None => tracing::warn!(
            addr = %listener.local_addr()?,
            backend = ?args.backend,
            storage = %location,
            "registry-local is listening WITHOUT authentication: anyone who can reach it may push \
             and pull (--auth requires tokens)"
        ),
        Some(auth) => tracing::info!(
            addr = %listener.local_addr()?,
            backend = ?args.backend,
            storage = %location,
            realm = auth.realm.as_deref().unwrap_or("per request"),
            service = %auth.service,
            "registry-local requires tokens; users, robots and grants: registry-admin"
        ),
    }
    let options = registry_local::ServeOptions {
        header_timeout: args.header_timeout,
        body_idle_timeout: args.body_idle_timeout,
        max_connections: args.max_connections,
        max_uploads: args.max_uploads,
        ..registry_local::ServeOptions::default()
    };
    registry_local::serve_with(
        listener,
        registry,
        options,
        registry_local::stop_signal(),
        SHUTDOWN_GRACE,
    )
    .await?;
    Ok(())
}

/// Reads the table's stream in the background and hands it to the notify-push handler,
/// which publishes to the topic: what Lambda's event source mapping does on AWS, keeping
/// its place in the stream in `data_dir/stream-checkpoints/` across restarts. Fails at once
/// when the table is missing, with the remedy.
#[cfg(feature = "aws")]
async fn start_notifier(
    aws: &Aws,
    settings: &Settings,
    data_dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let reader = StreamReader::new(aws.dynamodb(), aws.dynamodb_streams(), &settings.table);
    if let Err(e) = reader.stream_arn().await {
        return Err(format!(
            "the AWS backend is not ready ({e}); run `registry-local provision` first"
        )
        .into());
    }
    let topic = match &settings.topic_arn {
        Some(arn) => arn.clone(),
        None => find_topic(&aws.sns(), &settings.topic_name)
            .await?
            .ok_or_else(|| {
                format!(
                    "no SNS topic named {}; run `registry-local provision` first",
                    settings.topic_name
                )
            })?,
    };
    tracing::info!(table = %settings.table, %topic, "publishing the table's outbox to SNS");
    let sink = Arc::new(SnsEvents::new(aws.sns(), topic));
    // From where the last run stopped (the whole stream on a first start), so that an
    // event written while registry-local was down is published now, and none twice.
    let positioned = reader
        .start(&data_dir.join("stream-checkpoints"))
        .await
        .map_err(|e| format!("the stream reader cannot start: {e}"))?;
    tokio::spawn(positioned.run(sink, Duration::from_millis(500)));
    Ok(())
}

/// Removes uploads older than `max_age` with their bytes, and what crashes left in the blob
/// store as old: now, then hourly (or as often as the age, if shorter). A failure is logged
/// and the next round tries again.
async fn purge_uploads(registry: quayside::registry::Registry, max_age: Duration) {
    let mut rounds = tokio::time::interval(max_age.min(Duration::from_secs(3600)));
    loop {
        // The first tick is at once.
        rounds.tick().await;
        match registry.purge_uploads(max_age).await {
            Ok(purged) if purged != Default::default() => tracing::info!(
                uploads = purged.uploads,
                stray = purged.stray,
                "abandoned uploads purged"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "abandoned uploads not purged"),
        }
    }
}

/// The token settings of `--auth`: `QUAYSIDE_AUTH_*` from the environment, the realm on
/// this address unless `--realm` names another.
fn auth_settings(args: &Args) -> Result<Option<quayside::auth::AuthSettings>, String> {
    if !args.auth {
        return Ok(None);
    }
    let realm = args
        .realm
        .clone()
        .unwrap_or_else(|| format!("http://{}{}", args.addr, quayside::auth::TOKEN_PATH));
    quayside::auth::AuthSettings::from_lookup(|name| match name {
        "QUAYSIDE_AUTH_REALM" => Some(realm.clone()),
        _ => std::env::var(name).ok(),
    })
    .map(Some)
}
