//! Creates what the AWS backend needs, as template.yaml declares it for a deployment: the
//! table (with its stream, TTL, catalog index and point-in-time recovery), the bucket
//! (private, encrypted, stale multipart uploads aborted, abandoned uploads expired), the signing key (RSA_2048,
//! SIGN_VERIFY, under an alias so that it is found by name) and the topic.
//! `registry-local provision` runs this; so does every AWS test, with names of its own.
//!
//! May call: the DynamoDB, S3, KMS and SNS SDKs, [`super::Settings`]. Must not know HTTP,
//! nor more of the item shapes than the key schema and the attributes the table declares.
//!
//! Every step is idempotent: what exists is kept as it is, so running it twice is harmless.
//!
//! A table made here is tagged [`EVENTS_TAG`]: its events are registry-local's to publish
//! (a deployed stack's table has no such tag: its notify-push publishes them, and
//! registry-local pointed at it must not publish them a second time).

use super::dynamodb::{CATALOG_INDEX, TTL_ATTRIBUTE};
use super::{Aws, Settings, sdk_error};
use crate::ports::{StoreError, StoreResult};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, Tag, TimeToLiveSpecification,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use std::time::Duration;

/// The tag (key, value) of a table whose events registry-local publishes: one
/// [`provision`] created.
pub const EVENTS_TAG: (&str, &str) = ("quayside:events", "registry-local");

/// Whether the table's events are registry-local's to publish: it carries [`EVENTS_TAG`].
/// An error when the table is missing.
pub async fn publishes_own_events(aws: &Aws, table: &str) -> StoreResult<bool> {
    let client = aws.dynamodb();
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTable", e))?;
    let Some(arn) = described.table.and_then(|t| t.table_arn) else {
        return Err(StoreError::backend(format!("table {table} has no ARN")));
    };
    let tags = client
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error("ListTagsOfResource", e))?;
    Ok(tags
        .tags()
        .iter()
        .any(|t| (t.key(), t.value()) == EVENTS_TAG))
}

/// What [`provision`] made or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    pub table: String,
    pub stream_arn: Option<String>,
    pub bucket: String,
    /// The key's id (its alias is [`Settings::key_id`] when that names an alias).
    pub key_id: String,
    pub topic_arn: String,
}

/// Creates the table, bucket, key and topic that `settings` name, where missing.
pub async fn provision(aws: &Aws, settings: &Settings) -> StoreResult<Provisioned> {
    let stream_arn = table(aws, &settings.table).await?;
    bucket(aws, &settings.bucket).await?;
    let key_id = key(aws, &settings.key_id).await?;
    let topic_arn = match &settings.topic_arn {
        Some(arn) => arn.clone(),
        None => topic(aws, &settings.topic_name).await?,
    };
    Ok(Provisioned {
        table: settings.table.clone(),
        stream_arn,
        bucket: settings.bucket.clone(),
        key_id,
        topic_arn,
    })
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("building a provisioning request: {e}"))
}

/// The table; returns its stream's ARN.
async fn table(aws: &Aws, name: &str) -> StoreResult<Option<String>> {
    let client = aws.dynamodb();
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(build_error)
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .attribute_definitions(attribute("catalog")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(CATALOG_INDEX)
                .key_schema(key("catalog", KeyType::Hash)?)
                .key_schema(key("pk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(build_error)?,
        )
        .tags(
            Tag::builder()
                .key(EVENTS_TAG.0)
                .value(EVENTS_TAG.1)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table = name, "created the table"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(table = name, "the table exists");
        }
        Err(e) => return Err(sdk_error("CreateTable", e)),
    }
    // A new table is CREATING for a few seconds on AWS (at once on moto).
    let mut stream_arn = None;
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        let table = out.table;
        if table.as_ref().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            stream_arn = table.and_then(|t| t.latest_stream_arn);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ttl = client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    if let Err(e) = ttl {
        // Asking again once it is on is an error on AWS ("already enabled"): harmless.
        tracing::debug!(error = %sdk_error("UpdateTimeToLive", e), "TTL not changed");
    }
    let backups = client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    if let Err(e) = backups {
        tracing::warn!(error = %sdk_error("UpdateContinuousBackups", e), "point-in-time recovery not enabled");
    }
    Ok(stream_arn)
}

/// The bucket: private, encrypted, the bytes of abandoned uploads (multipart uploads and
/// `uploads/` objects) removed once as old as `QUAYSIDE_UPLOAD_MAX_AGE` (in whole days,
/// rounded up), as the template's `UploadMaxAgeDays` does.
async fn bucket(aws: &Aws, name: &str) -> StoreResult<()> {
    let days = crate::ports::upload_max_age_days(
        crate::ports::upload_max_age_from_env().map_err(StoreError::backend)?,
    );
    let client = aws.s3();
    let mut create = client.create_bucket().bucket(name);
    // us-east-1 is the one region that refuses a location constraint.
    if let Some(region) = aws.sdk.region().map(|r| r.as_ref().to_string())
        && region != "us-east-1"
    {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => tracing::info!(bucket = name, "created the bucket"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
        {
            tracing::info!(bucket = name, "the bucket exists");
        }
        Err(e) => return Err(sdk_error("CreateBucket", e)),
    }
    client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("PutPublicAccessBlock", e))?;
    client
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| sdk_error("PutBucketEncryption", e))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("abort-stale-multipart-uploads")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .abort_incomplete_multipart_upload(
                            AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(days)
                                .build(),
                        )
                        .build()
                        .map_err(build_error)?,
                )
                // Uploads left unfinished (their table items expire at the same age).
                .rules(
                    LifecycleRule::builder()
                        .id("expire-abandoned-uploads")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("uploads/").build())
                        .expiration(LifecycleExpiration::builder().days(days).build())
                        .build()
                        .map_err(build_error)?,
                )
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| sdk_error("PutBucketLifecycleConfiguration", e))?;
    Ok(())
}

/// The signing key named by `key_id`. An alias that does not exist yet is created with a
/// new RSA_2048 SIGN_VERIFY key behind it; any other id must name an existing key.
async fn key(aws: &Aws, key_id: &str) -> StoreResult<String> {
    let client = aws.kms();
    match client.describe_key().key_id(key_id).send().await {
        Ok(out) => {
            let id = out
                .key_metadata
                .map(|m| m.key_id)
                .ok_or_else(|| StoreError::backend("DescribeKey returned no key"))?;
            tracing::info!(key = key_id, id, "the signing key exists");
            return Ok(id);
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) => {}
        Err(e) => return Err(sdk_error("DescribeKey", e)),
    }
    if !key_id.starts_with("alias/") {
        return Err(StoreError::backend(format!(
            "KMS key {key_id} does not exist; name an alias (alias/…) to have one created"
        )));
    }
    let out = client
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::SignVerify)
        .description("quayside: signs schema1 manifests (RS256)")
        .send()
        .await
        .map_err(|e| sdk_error("CreateKey", e))?;
    let id = out
        .key_metadata
        .map(|m| m.key_id)
        .ok_or_else(|| StoreError::backend("CreateKey returned no key"))?;
    client
        .create_alias()
        .alias_name(key_id)
        .target_key_id(&id)
        .send()
        .await
        .map_err(|e| sdk_error("CreateAlias", e))?;
    tracing::info!(key = key_id, id, "created the signing key");
    Ok(id)
}

/// The topic (CreateTopic returns the existing one's ARN).
async fn topic(aws: &Aws, name: &str) -> StoreResult<String> {
    let out = aws
        .sns()
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| sdk_error("CreateTopic", e))?;
    out.topic_arn
        .ok_or_else(|| StoreError::backend("CreateTopic returned no ARN"))
}
