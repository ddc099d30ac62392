//! The AWS side of the test harness: each [`AwsEnv`] provisions a table, bucket, key and
//! topic of its own at `AWS_ENDPOINT_URL` (moto's server, which `tests/run` starts), with
//! the very code `registry-local provision` runs, and counts every SDK call its clients
//! make. Tests run in parallel, so every name is unique; `tests/run` resets moto at the end.
//!
//! Without `AWS_ENDPOINT_URL` an AWS test fails (it never skips, and never reaches real
//! AWS): run `tests/run`, or start `moto_server` and export the variables it exports.

use aws_sdk_dynamodb::config::ConfigBag;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use quayside::aws::provision::{Provisioned, provision};
use quayside::aws::{Aws, Settings};
use quayside::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The moto endpoint, or a failure saying how to get one.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: the AWS tests need moto's server. Run tests/run, \
             which installs and starts it (or start moto_server and export AWS_ENDPOINT_URL, \
             AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION)"
        ),
    }
}

/// One SDK call as the interceptor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `Service.Operation`, e.g. `DynamoDB.GetItem`.
    pub operation: String,
    /// For KMS `Sign`: the message type and the message's length, exactly as sent.
    pub sign: Option<(String, usize)>,
}

/// Records every operation the clients start (once per operation, retries not counted).
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<Call>>,
}

impl CallLog {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("call log"))
    }

    /// The operations since the last `take`, by name.
    pub fn take_operations(&self) -> Vec<String> {
        self.take().into_iter().map(|c| c.operation).collect()
    }
}

#[derive(Debug)]
struct Counter(Arc<CallLog>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "quayside-test-call-counter"
    }

    // Once per operation (retries are not counted), after the operation's metadata is set.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        let sign = context
            .input()
            .downcast_ref::<aws_sdk_kms::operation::sign::SignInput>()
            .map(|input| {
                (
                    input
                        .message_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    input
                        .message()
                        .map(|m| m.as_ref().len())
                        .unwrap_or_default(),
                )
            });
        self.0
            .calls
            .lock()
            .expect("call log")
            .push(Call { operation, sign });
        Ok(())
    }
}

/// A name no other test of this run uses: lowercase, digits and dashes (valid for a
/// bucket, a table, a topic and an alias alike).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A provisioned set of resources and clients that count their calls.
pub struct AwsEnv {
    pub aws: Aws,
    pub settings: Settings,
    pub provisioned: Provisioned,
    pub calls: Arc<CallLog>,
}

impl AwsEnv {
    /// Provisions a table, bucket, key and topic named for this test.
    pub async fn provision() -> AwsEnv {
        endpoint();
        let calls = Arc::new(CallLog::default());
        let aws = Aws::from_env()
            .await
            .with_interceptor(SharedInterceptor::new(Counter(Arc::clone(&calls))));
        let name = unique_name("qs");
        let settings = Settings {
            table: name.clone(),
            bucket: name.clone(),
            key_id: format!("alias/{name}"),
            topic_arn: None,
            topic_name: name,
            presign_expiry: Duration::from_secs(300),
        };
        let provisioned = provision(&aws, &settings)
            .await
            .unwrap_or_else(|e| panic!("provisioning at {}: {e}", endpoint()));
        calls.take();
        AwsEnv {
            aws,
            settings,
            provisioned,
            calls,
        }
    }

    /// The S3 blob store over this bucket, as the registry opens it.
    pub fn s3_blobs(&self) -> quayside::aws::s3::S3Blobs {
        quayside::aws::s3::S3Blobs::new(
            self.aws.s3(),
            &self.settings.bucket,
            self.settings.presign_expiry,
        )
    }

    /// The registry over these resources, as a Lambda function builds it.
    pub fn registry(&self) -> Registry {
        quayside::backend::open_aws(&self.aws, &self.settings)
    }

    /// The keys the bucket holds under `prefix` (all of them without one): of its objects,
    /// and of its multipart uploads under way. What a test sees the registry left in S3.
    pub async fn bucket_keys(&self, prefix: Option<&str>) -> (Vec<String>, Vec<String>) {
        let s3 = self.aws.s3();
        let bucket = &self.settings.bucket;
        let prefix = prefix.map(str::to_string);
        let objects = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(prefix.clone())
            .send();
        let multipart = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .set_prefix(prefix)
            .send();
        let (objects, multipart) = tokio::join!(objects, multipart);
        let objects = objects
            .expect("ListObjectsV2")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        let multipart = multipart
            .expect("ListMultipartUploads")
            .uploads()
            .iter()
            .map(|u| u.key().unwrap_or_default().to_string())
            .collect();
        (objects, multipart)
    }
}
