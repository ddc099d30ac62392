//! The AWS adapters: the five ports over DynamoDB, S3, KMS and SNS, plus what the Lambda
//! functions and registry-local need around them (settings from the environment, SDK
//! clients, the notify-push handler, a stream reader and provisioning).
//!
//! One cargo feature per service, so that each function links only the SDKs it calls:
//!
//! | module          | feature     | what                                                        |
//! |-----------------|-------------|-------------------------------------------------------------|
//! | (this one)      | `aws`       | [`Settings`], [`Aws`] (SDK config → clients), [`LogEvents`]  |
//! | [`logging`]     | `aws`       | a function's log subscriber                                   |
//! | [`access`]      | `dynamodb`  | [`AccessStore`](crate::ports::AccessStore): users, robots, grants, visibility in the same table |
//! | [`dynamodb`]    | `dynamodb`  | [`MetadataStore`](crate::ports::MetadataStore) over one table, with the event outbox |
//! | [`s3`]          | `s3`        | [`BlobStore`](crate::ports::BlobStore), presigned GETs, multipart |
//! | [`kms`]         | `kms`       | [`Signer`](crate::ports::Signer) over an asymmetric KMS key |
//! | [`sns`]         | `sns`       | publishes outbox events to a topic, each with its id   |
//! | [`notify`]      | `notify`    | the notify-push handler: stream records → outbox events (with their ids) → an `OutboxSink` |
//! | [`streams`]     | `streams`   | reads the table's stream (DynamoDB Streams API) for registry-local, with checkpoints |
//! | [`provision`]   | `provision` | creates the table, bucket, key and topic                     |
//!
//! May call: `ports`, the domain types, `signing`, the AWS SDK. Must not know HTTP: the
//! handlers reach these adapters only through the ports.
//!
//! # Configuration
//!
//! Resources come from the environment (the template sets these on every function); each has
//! a default, so that `AWS_ENDPOINT_URL=http://127.0.0.1:5005 registry-local provision` then
//! `registry-local --backend aws` work against moto with nothing else set:
//!
//! | variable                    | default          | what                                            |
//! |-----------------------------|------------------|-------------------------------------------------|
//! | `QUAYSIDE_TABLE`            | `quayside`       | the DynamoDB table                              |
//! | `QUAYSIDE_BUCKET`           | `quayside`       | the S3 bucket                                   |
//! | `QUAYSIDE_KMS_KEY`          | `alias/quayside` | key id, ARN or alias of the RSA signing key     |
//! | `QUAYSIDE_TOPIC_ARN`        | (the topic named `QUAYSIDE_TOPIC`) | the SNS topic of registry events |
//! | `QUAYSIDE_TOPIC`            | `quayside`       | the topic's name, for provisioning and lookup   |
//! | `QUAYSIDE_PRESIGN_SECONDS`  | `900`            | lifetime of presigned blob URLs                 |
//! | `QUAYSIDE_S3_PATH_STYLE`    | on when an endpoint URL is set | path-style S3 addressing (moto needs it) |
//!
//! | `QUAYSIDE_AWS_ATTEMPT_TIMEOUT` | `20s`        | how long one try of an AWS call may take            |
//! | `QUAYSIDE_AWS_CALL_TIMEOUT` | `60s`            | how long an AWS call may take, retries included (the template sets both well within a function's timeout) |
//!
//! A throttled AWS call (after the SDK's retries) is a [`crate::ports::StoreError::Throttled`], one that
//! timed out or found the service unavailable a [`crate::ports::StoreError::Unavailable`]: the client gets
//! `429` or `503` with `Retry-After`, not a `500` (`sdk_error`).
//!
//! In registry-local, registry-admin and the tests, credentials and region come from the
//! SDK's default chain (environment, profile, web identity, container or instance metadata;
//! [`Aws::from_env`]), and `AWS_ENDPOINT_URL` (or a per-service `AWS_ENDPOINT_URL_DYNAMODB`
//! …) redirects every client, as the SDK documents. A Lambda function reads only what Lambda
//! sets, plus `AWS_ENDPOINT_URL` ([`Aws::from_lambda_env`]).

#[cfg(feature = "dynamodb")]
pub mod access;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "aws")]
pub mod logging;
#[cfg(feature = "notify")]
pub mod notify;
#[cfg(feature = "provision")]
pub mod provision;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "streams")]
pub mod streams;

#[cfg(feature = "aws")]
pub use self::config::*;

/// The sort-key prefix of the table's outbox items: the change's event, written in the
/// change's own transaction; notify-push's stream filter selects these.
pub const EVENT_PREFIX: &str = "EVENT#";

#[cfg(feature = "aws")]
mod config {
    use crate::ports::{EventSink, RegistryEvent, StoreError, StoreResult};
    use async_trait::async_trait;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, SdkConfig};
    use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
    use std::time::Duration;

    /// The AWS resources the registry uses, by name.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Settings {
        pub table: String,
        pub bucket: String,
        /// Key id, key ARN or alias (`alias/…`) of the RSA_2048 SIGN_VERIFY key.
        pub key_id: String,
        /// The topic's ARN; `None` means "the topic named [`Settings::topic_name`]",
        /// which registry-local resolves with `ListTopics`.
        pub topic_arn: Option<String>,
        pub topic_name: String,
        pub presign_expiry: Duration,
    }

    impl Default for Settings {
        fn default() -> Self {
            Settings {
                table: "quayside".into(),
                bucket: "quayside".into(),
                key_id: "alias/quayside".into(),
                topic_arn: None,
                topic_name: "quayside".into(),
                presign_expiry: Duration::from_secs(900),
            }
        }
    }

    impl Settings {
        /// The settings from `QUAYSIDE_*` variables, defaults for those unset.
        pub fn from_env() -> Result<Settings, StoreError> {
            Self::from_lookup(|name| std::env::var(name).ok())
        }

        /// The settings from any variable lookup (the environment, or a test's map).
        pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Settings, StoreError> {
            let defaults = Settings::default();
            let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
            let presign_expiry = match non_empty("QUAYSIDE_PRESIGN_SECONDS") {
                None => defaults.presign_expiry,
                Some(s) => s
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=7 * 24 * 3600).contains(n))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        // S3 accepts presigned URLs of at most seven days.
                        StoreError::backend(format!(
                            "QUAYSIDE_PRESIGN_SECONDS={s:?} is not a number of seconds in 1..=604800"
                        ))
                    })?,
            };
            Ok(Settings {
                table: non_empty("QUAYSIDE_TABLE").unwrap_or(defaults.table),
                bucket: non_empty("QUAYSIDE_BUCKET").unwrap_or(defaults.bucket),
                key_id: non_empty("QUAYSIDE_KMS_KEY").unwrap_or(defaults.key_id),
                topic_arn: non_empty("QUAYSIDE_TOPIC_ARN"),
                topic_name: non_empty("QUAYSIDE_TOPIC").unwrap_or(defaults.topic_name),
                presign_expiry,
            })
        }
    }

    /// The SDK configuration and what every client built from it gets (interceptors: the
    /// tests count calls with one). Cheap to clone; build clients once per process.
    #[derive(Clone, Debug)]
    pub struct Aws {
        pub sdk: SdkConfig,
        interceptors: Vec<SharedInterceptor>,
        /// Read by the S3 client only.
        #[cfg_attr(not(feature = "s3"), allow(dead_code))]
        path_style: bool,
        /// Every client's endpoint, when [`Aws::with_endpoint`] set one.
        endpoint: Option<String>,
    }

    impl Aws {
        /// The default chain: credentials, region and `AWS_ENDPOINT_URL*` from the
        /// environment, profile or metadata services. registry-local, registry-admin and
        /// the tests; the functions use [`Aws::from_lambda_env`].
        pub async fn from_env() -> Aws {
            Aws::new(aws_config::defaults(BehaviorVersion::latest()).load().await)
        }

        /// What Lambda gives a function: credentials (`AWS_ACCESS_KEY_ID`,
        /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and `AWS_REGION` in the environment,
        /// plus `AWS_ENDPOINT_URL` when set (an emulator). Not the SDK's default chain: its
        /// profile files, SSO, STS web identity, IMDS and container providers are code a
        /// function never runs but links (3 MB of each binary with the old log filter,
        /// BENCHMARKS.md), and
        /// lookups its cold start need not make. Retries, timeouts and the HTTPS client are
        /// each service client's defaults, as with the chain.
        pub fn from_lambda_env() -> Aws {
            use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
            use aws_credential_types::provider::SharedCredentialsProvider;

            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let region = var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .map(aws_config::Region::new);
            let mut sdk = SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .credentials_provider(SharedCredentialsProvider::new(
                    EnvironmentVariableCredentialsProvider::new(),
                ));
            if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
                sdk = sdk.endpoint_url(endpoint);
            }
            Aws::new(sdk.build())
        }

        fn new(sdk: SdkConfig) -> Aws {
            let forced = std::env::var("QUAYSIDE_S3_PATH_STYLE").ok();
            let path_style = match forced.as_deref() {
                Some("1" | "true") => true,
                Some("0" | "false") => false,
                // An S3 emulator (moto, MinIO) behind one host name needs path-style URLs;
                // real S3 prefers virtual-hosted ones.
                _ => {
                    sdk.endpoint_url().is_some()
                        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                }
            };
            let timeouts = Timeouts::from_env();
            Aws {
                sdk: timeouts.apply(sdk),
                interceptors: Vec::new(),
                path_style,
                endpoint: None,
            }
        }

        /// The same clients with other timeouts (a test of a stalled backend).
        pub fn with_timeouts(mut self, attempt: Duration, call: Duration) -> Aws {
            self.sdk = Timeouts { attempt, call }.apply(self.sdk);
            self
        }

        /// The same clients at another endpoint (a test's proxy in front of an emulator),
        /// over `AWS_ENDPOINT_URL` too (which a client built from the SDK config would
        /// prefer).
        pub fn with_endpoint(mut self, url: &str) -> Aws {
            self.endpoint = Some(url.to_string());
            self
        }

        /// Adds an interceptor to every client built after this call.
        pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Aws {
            self.interceptors.push(interceptor);
            self
        }

        #[cfg(feature = "dynamodb")]
        pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
            let mut config = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
            for i in &self.interceptors {
                config.push_interceptor(i.clone());
            }
            if let Some(url) = &self.endpoint {
                config.set_endpoint_url(Some(url.clone()));
            }
            aws_sdk_dynamodb::Client::from_conf(config.build())
        }

        #[cfg(feature = "streams")]
        pub fn dynamodb_streams(&self) -> aws_sdk_dynamodbstreams::Client {
            let mut config = aws_sdk_dynamodbstreams::config::Builder::from(&self.sdk);
            for i in &self.interceptors {
                config.push_interceptor(i.clone());
            }
            if let Some(url) = &self.endpoint {
                config.set_endpoint_url(Some(url.clone()));
            }
            aws_sdk_dynamodbstreams::Client::from_conf(config.build())
        }

        #[cfg(feature = "s3")]
        pub fn s3(&self) -> aws_sdk_s3::Client {
            let mut config =
                aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(self.path_style);
            for i in &self.interceptors {
                config.push_interceptor(i.clone());
            }
            if let Some(url) = &self.endpoint {
                config.set_endpoint_url(Some(url.clone()));
            }
            aws_sdk_s3::Client::from_conf(config.build())
        }

        #[cfg(feature = "kms")]
        pub fn kms(&self) -> aws_sdk_kms::Client {
            let mut config = aws_sdk_kms::config::Builder::from(&self.sdk);
            for i in &self.interceptors {
                config.push_interceptor(i.clone());
            }
            if let Some(url) = &self.endpoint {
                config.set_endpoint_url(Some(url.clone()));
            }
            aws_sdk_kms::Client::from_conf(config.build())
        }

        #[cfg(feature = "sns")]
        pub fn sns(&self) -> aws_sdk_sns::Client {
            let mut config = aws_sdk_sns::config::Builder::from(&self.sdk);
            for i in &self.interceptors {
                config.push_interceptor(i.clone());
            }
            if let Some(url) = &self.endpoint {
                config.set_endpoint_url(Some(url.clone()));
            }
            aws_sdk_sns::Client::from_conf(config.build())
        }
    }

    /// How long AWS calls may take: without a bound a stalled backend holds a request (and
    /// a Lambda function) for as long as it stalls.
    struct Timeouts {
        attempt: Duration,
        call: Duration,
    }

    impl Timeouts {
        const ATTEMPT_VAR: &str = "QUAYSIDE_AWS_ATTEMPT_TIMEOUT";
        const CALL_VAR: &str = "QUAYSIDE_AWS_CALL_TIMEOUT";

        /// From the environment; a value that is not a duration is logged and the default
        /// stands (a bad setting must not keep a function from starting).
        fn from_env() -> Timeouts {
            let var = |name: &str, default: u64| {
                let default = Duration::from_secs(default);
                match std::env::var(name) {
                    Ok(text) if !text.trim().is_empty() => {
                        match humantime::parse_duration(text.trim()) {
                            Ok(d) if !d.is_zero() => d,
                            _ => {
                                tracing::warn!(
                                    variable = name,
                                    value = text,
                                    "not a duration; default used"
                                );
                                default
                            }
                        }
                    }
                    _ => default,
                }
            };
            Timeouts {
                attempt: var(Self::ATTEMPT_VAR, 20),
                call: var(Self::CALL_VAR, 60),
            }
        }

        fn apply(&self, sdk: SdkConfig) -> SdkConfig {
            sdk.to_builder()
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(3).min(self.attempt))
                        .operation_attempt_timeout(self.attempt)
                        .operation_timeout(self.call)
                        .build(),
                )
                .build()
        }
    }

    /// The functions' [`EventSink`] on AWS: a log line only. The event itself travels in
    /// the table's outbox (written with the change) and its stream, to notify-push and SNS.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct LogEvents;

    #[async_trait]
    impl EventSink for LogEvents {
        async fn publish(&self, event: &RegistryEvent) -> StoreResult<()> {
            event.log("registry event (delivered through the table's outbox)");
            Ok(())
        }
    }

    /// An SDK call's failure, after the SDK's own retries, as the registry answers it:
    /// throttling is [`StoreError::Throttled`] (`429`), a timeout, a connection that failed
    /// or broke, or a service that says it cannot answer now [`StoreError::Unavailable`]
    /// (`503`), anything else [`StoreError::Backend`] (`500`). The text is the error with its
    /// whole chain of causes (the bare error often says only "service error").
    pub(crate) fn sdk_error<E>(
        context: &str,
        e: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> StoreError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let text = error_chain(context, &e);
        match &e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => StoreError::Unavailable(text),
            SdkError::DispatchFailure(failure) if failure.is_timeout() || failure.is_io() => {
                StoreError::Unavailable(text)
            }
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or_default();
                let status = service.raw().status().as_u16();
                if aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
                    || status == 429
                {
                    StoreError::Throttled(text)
                } else if aws_runtime::retries::classifiers::TRANSIENT_ERRORS.contains(&code)
                    || matches!(status, 500 | 502 | 503 | 504)
                {
                    StoreError::Unavailable(text)
                } else {
                    StoreError::Backend(text)
                }
            }
            _ => StoreError::Backend(text),
        }
    }

    /// A response body that broke off while it was read: the service may answer the
    /// next try.
    #[cfg(feature = "s3")]
    pub(crate) fn broken_body(context: &str, e: impl std::error::Error) -> StoreError {
        StoreError::Unavailable(error_chain(context, &e))
    }

    fn error_chain(context: &str, e: &dyn std::error::Error) -> String {
        let mut text = format!("{context}: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::collections::HashMap;

        #[test]
        fn settings_default_and_from_variables() {
            assert_eq!(
                Settings::from_lookup(|_| None).unwrap(),
                Settings::default()
            );
            let vars: HashMap<&str, &str> = [
                ("QUAYSIDE_TABLE", "t"),
                ("QUAYSIDE_BUCKET", "b"),
                ("QUAYSIDE_KMS_KEY", "arn:aws:kms:eu-west-1:1:key/k"),
                ("QUAYSIDE_TOPIC_ARN", "arn:aws:sns:eu-west-1:1:topic"),
                ("QUAYSIDE_PRESIGN_SECONDS", "60"),
            ]
            .into();
            let s = Settings::from_lookup(|n| vars.get(n).map(|v| v.to_string())).unwrap();
            assert_eq!(s.table, "t");
            assert_eq!(s.bucket, "b");
            assert_eq!(s.key_id, "arn:aws:kms:eu-west-1:1:key/k");
            assert_eq!(
                s.topic_arn.as_deref(),
                Some("arn:aws:sns:eu-west-1:1:topic")
            );
            assert_eq!(s.presign_expiry, Duration::from_secs(60));
            for bad in ["0", "-1", "x", "604801"] {
                let r = Settings::from_lookup(|n| {
                    (n == "QUAYSIDE_PRESIGN_SECONDS").then(|| bad.to_string())
                });
                assert!(r.is_err(), "{bad}");
            }
        }
    }
}
