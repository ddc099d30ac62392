//! Builds a [`Registry`] over the adapters the configuration names. The one module that
//! knows every adapter; handlers and the registry know only the ports.

#[cfg(any(feature = "embedded", feature = "dynamodb"))]
use crate::{ports::StoreError, registry::Registry};
#[cfg(feature = "embedded")]
use std::path::Path;

/// The registry over embedded storage in `data_dir` (created if needed), open to every
/// caller.
#[cfg(feature = "embedded")]
pub fn open_embedded(data_dir: &Path) -> Result<Registry, StoreError> {
    open_embedded_with_auth(data_dir, None)
}

/// The registry over embedded storage in `data_dir`, checking tokens when `auth` is given
/// (users, robots and grants in the same `metadata.redb`; tokens signed with its key).
#[cfg(feature = "embedded")]
pub fn open_embedded_with_auth(
    data_dir: &Path,
    auth: Option<crate::auth::AuthSettings>,
) -> Result<Registry, StoreError> {
    let backend = crate::embedded::EmbeddedBackend::open(data_dir)?;
    let registry = Registry::new(
        backend.metadata,
        backend.blobs,
        backend.signer,
        backend.events,
    );
    Ok(match auth {
        Some(settings) => registry.with_auth(crate::auth::Auth::new(backend.access, settings)),
        None => registry,
    })
}

/// The registry over the AWS adapters this build links: DynamoDB and KMS always (every
/// function's gate verifies tokens with the key), S3 when its feature is on: a function
/// that never reads blobs is built without it, and its registry then has no blob store and
/// no operation that reads one (the `blobs` feature). Events go to the log: their delivery
/// is the table's outbox, stream and notify-push. Builds clients only; no call is made
/// until a request needs one.
#[cfg(all(feature = "dynamodb", feature = "kms"))]
pub fn open_aws(aws: &crate::aws::Aws, settings: &crate::aws::Settings) -> Registry {
    use crate::aws::dynamodb::DynamoMetadata;
    use crate::ports::Signer;
    use std::sync::Arc;

    let signer: Arc<dyn Signer> =
        Arc::new(crate::aws::kms::KmsSigner::new(aws.kms(), &settings.key_id));
    let events = Arc::new(crate::aws::LogEvents);
    #[cfg(feature = "s3")]
    let blobs: Arc<dyn crate::ports::BlobStore> = Arc::new(crate::aws::s3::S3Blobs::new(
        aws.s3(),
        &settings.bucket,
        settings.presign_expiry,
    ));
    let metadata = DynamoMetadata::new(
        aws.dynamodb(),
        &settings.table,
        #[cfg(feature = "s3")]
        Arc::clone(&blobs),
    );
    let upload_max_age = metadata.upload_max_age();
    let mut registry = Registry::new(
        Arc::new(metadata),
        #[cfg(feature = "s3")]
        blobs,
        signer,
        events,
    );
    // The uploads' TTL and the registry's rule count the same age.
    registry.limits.upload_max_age = upload_max_age;
    registry
}

// The AWS registry's blob store is S3: with the embedded adapters' `blobs` on, it needs S3.
#[cfg(all(feature = "dynamodb", feature = "embedded", not(feature = "s3")))]
compile_error!("the AWS backend beside the embedded one needs the `s3` feature");

/// The users, robots and grants of the AWS backend: items in the registry's table.
#[cfg(feature = "dynamodb")]
pub fn aws_access(
    aws: &crate::aws::Aws,
    settings: &crate::aws::Settings,
) -> std::sync::Arc<crate::aws::access::DynamoAccess> {
    std::sync::Arc::new(crate::aws::access::DynamoAccess::new(
        aws.dynamodb(),
        &settings.table,
    ))
}

/// The upload service's URL, where the deployment has one: start-upload hands the
/// sessions it opens there (see `http::uploads`).
pub const UPLOAD_SERVICE_VAR: &str = "QUAYSIDE_UPLOAD_SERVICE_URL";

/// The registry a Lambda function serves: the AWS adapters, with the resources the
/// template names in `QUAYSIDE_*` variables, credentials and region from Lambda's
/// environment ([`crate::aws::Aws::from_lambda_env`]), and token authentication always on (`QUAYSIDE_AUTH_*`, see
/// [`crate::auth::AuthSettings::from_env`]): a function without its settings does not start.
#[cfg(all(feature = "dynamodb", feature = "kms"))]
pub async fn from_env() -> Result<Registry, StoreError> {
    let settings = crate::aws::Settings::from_env()?;
    let auth = crate::auth::AuthSettings::from_env().map_err(StoreError::Backend)?;
    let aws = crate::aws::Aws::from_lambda_env();
    let access = aws_access(&aws, &settings);
    let registry = open_aws(&aws, &settings).with_auth(crate::auth::Auth::new(access, auth));
    Ok(match std::env::var(UPLOAD_SERVICE_VAR) {
        Ok(url) if !url.trim().is_empty() => registry.with_upload_service(url.trim()),
        _ => registry,
    })
}

/// The whole `main` of an API function: logging, the registry of [`from_env`] built once
/// per container, then every invocation served by the route `route_name` of
/// [`crate::http::routes`] (its gate checks the caller before the handler runs).
#[cfg(all(feature = "dynamodb", feature = "kms"))]
pub async fn run_lambda_route(route_name: &str) -> Result<(), lambda_http::Error> {
    crate::aws::logging::init();
    let registry = from_env().await?;
    let route = crate::http::route(route_name).ok_or_else(|| {
        format!("no route {route_name} in this build's route table (a blob route needs `s3`)")
    })?;
    let serve = async |req: lambda_http::Request| {
        Ok::<_, lambda_http::Error>(route.serve_api_gateway(&registry, req).await)
    };
    lambda_http::run(lambda_http::service_fn(serve)).await
}
