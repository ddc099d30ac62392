//! [`DynamoMetadata`]: the [`MetadataStore`] port over one DynamoDB table, with the event
//! outbox that feeds notify-push through the table's stream.
//!
//! May call: `ports`, `digest`, `names`, the DynamoDB SDK, and the [`BlobStore`] port (for
//! manifests too large for an item). Must not know HTTP.
//!
//! # The table
//!
//! One table keyed by repository: partition key `pk` (S) = `namespace/repo`, sort key `sk`
//! (S). Every per-repository access is one `GetItem`, `Query`, `BatchGetItem` or
//! `TransactWriteItems` on one partition. Item shapes (attributes besides `pk`, `sk`):
//!
//! | `sk`                             | attributes                                                                  |
//! |----------------------------------|-----------------------------------------------------------------------------|
//! | `REPOSITORY`                     | `created` (S, RFC 3339), `catalog` (S, always `repository`: the partition key of the sparse index `catalog`, whose sort key is `pk`) |
//! | `TAG#<tag>`                      | `digest`, `media_type` (S), `length` (N), the bytes (below), `v1_image` (S, schema1 only). A schema1 tag whose manifest was deleted keeps only `v1_image` |
//! | `MANIFEST#<digest>`              | `media_type` (S), `length` (N), the bytes, `subject` (S, if it has one), `tag_writes` (N: bumped by every write that points a tag at it) |
//! | `IMAGE#<docker id>`              | `docker_id`, `blob`, `v1_json` (S), `parent`, `created`, `comment`, `command` (S, when present) |
//! | `BLOB#<digest>`                  | `length` (N): the blob is linked to the repository                          |
//! | `REFERRER#<subject>#<digest>`    | `subject`, `digest`, `media_type` (S), `length` (N), `artifact_type` (S), `annotations` (M of S) |
//! | `EVENT#<rfc3339 nanos>#<id>`     | `kind` (S), `event` (S: the [`RegistryEvent`] as JSON), `expires_at` (N, epoch seconds: the table's TTL attribute) |
//! | `UPLOAD#<uuid>`                  | `state` (S: the [`Upload`] as JSON: offset, SHA-256 state, S3 multipart id, parts, pending key, writer and lease), `version` (N, bumped by every update, apart for the conditional one), `expires_at` (N, TTL: its start plus the uploads' greatest age) |
//!
//! The catalog of repositories is the sparse global secondary index `catalog` (partition
//! `catalog`, sort `pk`, keys only): only `REPOSITORY` items carry `catalog`, so a `Query`
//! on it lists every repository in name order, paged with `Limit`/`ExclusiveStartKey`. It
//! is written when a repository is created and costs nothing after (rewriting the same
//! value does not touch an index), and it avoids a single hot `_catalog` partition.
//!
//! **Manifest bytes** are inline in `body` (B) up to [`INLINE_LIMIT`] bytes: an item holds
//! 400 KB, and a tag item carries a copy so that a GET by tag is one `GetItem`. A larger
//! manifest (the spec allows 4 MiB) is stored through the [`BlobStore`] port under its
//! digest (S3: `blobs/<alg>/<hex>`, as distribution stores manifests among blobs; a digest
//! names the bytes, so sharing the key space is safe) and the item says `spilled` (BOOL):
//! a GET then costs a second call. Spilled bytes are not deleted with the manifest: another
//! repository may hold the same digest.
//!
//! # Writes
//!
//! - A push is one `TransactWriteItems`: repository (created if absent), manifest, tag,
//!   new images (`attribute_not_exists`: an image id names its content, the first write
//!   stays), referrer and the outbox event. An image that appeared since the caller's
//!   lookup fails its condition; the push retries without it. Past 100 items (or ~3 MB),
//!   the images are written first, each idempotently, and the transaction holds the rest.
//! - A tag always points at a stored manifest: the tag and its manifest are written in one
//!   transaction, and deleting a manifest deletes (or, for schema1 tags, detaches) its tags
//!   in one transaction conditioned on the manifest's `tag_writes` and each tag's `digest`,
//!   so a tag pointed at it meanwhile makes the delete retry, not dangle.
//! - Concurrent pushes of one tag: each transaction is atomic, the last one wins, and a
//!   `TransactionConflict` is retried with backoff (then [`StoreError::Conflict`]).
//! - The outbox: every change's [`RegistryEvent`] is an `EVENT#` item in the change's own
//!   transaction, so an event exists exactly when its change does; the stream delivers it
//!   to notify-push at least once, and the TTL removes it a day later.
//!
//! Reads are strongly consistent: a client that pushes, then pulls, sees its push (the
//! catalog excepted: an index is eventually consistent).
//!
//! # Abandoned uploads
//!
//! An `UPLOAD#` item expires (TTL) when its upload is older than the greatest age
//! ([`DEFAULT_UPLOAD_MAX_AGE`], or `QUAYSIDE_UPLOAD_MAX_AGE`), counted from its start and
//! never pushed back by a write, so that it goes with the bucket's lifecycle rules, which
//! count the same days from each object's creation. DynamoDB deletes expired items lazily
//! (within days); the registry treats an upload past its age as gone from then
//! (`Limits::upload_max_age`), so an upload ends at its age exactly, and costs nothing to
//! remove. [`MetadataStore::uploads_started_before`]
//! (registry-local's hourly purge, which removes their bytes at once too) is a `Scan`: the
//! Lambda deployment never runs it, TTL and the lifecycle rules being free and enough.
//!
//! Other items may share the table (the access store's `_users` partition, `ACCESS` and
//! `GRANT#` items): none carries `catalog` nor an `EVENT#` key, and no prefix above selects
//! them.

use super::{EVENT_PREFIX, sdk_error};
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    BlobStore, DEFAULT_UPLOAD_MAX_AGE, DeletedManifest, Found, Lookup, MetadataStore, Page,
    PageRequest, Push, Referrer, RegistryEvent, StoreError, StoreResult, StoredManifest, TagTarget,
    Upload, V1Image, started_before, tag_outlives_its_manifest, upload_max_age_from_env,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Item = HashMap<String, AttributeValue>;

/// The largest manifest kept inside its items. An item holds 400 KB including attribute
/// names and the other attributes; this leaves ample room for them.
pub const INLINE_LIMIT: usize = 350 * 1024;
/// DynamoDB's limit of actions in one `TransactWriteItems`.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Below DynamoDB's 4 MB per transaction, with room for keys and attribute names.
const TRANSACTION_BYTES: usize = 3 * 1024 * 1024;
/// Attempts of one write when it meets a conflict or a throttled item.
const ATTEMPTS: u32 = 8;
/// How long an outbox item stays: the stream keeps records 24 hours, so the item is
/// only a trace after that.
const EVENT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The sparse global secondary index of repositories.
pub const CATALOG_INDEX: &str = "catalog";
/// The TTL attribute of outbox and upload items.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The metadata of every repository in one table.
#[derive(Clone)]
pub struct DynamoMetadata {
    client: Client,
    table: String,
    /// Where manifests larger than [`INLINE_LIMIT`] go.
    spill: Arc<dyn BlobStore>,
    /// How long an upload lives from its start (its item's TTL).
    upload_max_age: Duration,
}

impl std::fmt::Debug for DynamoMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoMetadata")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Why a transaction did not commit.
enum TxFailure {
    /// Cancelled: one reason code per action, in order (`None` where the action was fine).
    Cancelled(Vec<String>),
    Other(StoreError),
}

impl TxFailure {
    fn into_store_error(self, what: &str) -> StoreError {
        match self {
            TxFailure::Cancelled(codes) => {
                StoreError::backend(format!("{what}: transaction cancelled: {codes:?}"))
            }
            TxFailure::Other(e) => e,
        }
    }
}

/// Whether a cancellation is worth retrying as it is: another transaction held an item, or
/// the partition was throttled.
fn transient(codes: &[String]) -> bool {
    codes.iter().any(|c| {
        matches!(
            c.as_str(),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    })
}

fn condition_failed(code: &str) -> bool {
    code == "ConditionalCheckFailed"
}

impl DynamoMetadata {
    /// The store over `table`, spilling large manifests to `spill`. Uploads live
    /// `QUAYSIDE_UPLOAD_MAX_AGE` (see [`upload_max_age_from_env`]; the template sets it on
    /// every function), or a day.
    pub fn new(client: Client, table: impl Into<String>, spill: Arc<dyn BlobStore>) -> Self {
        let upload_max_age = upload_max_age_from_env().unwrap_or_else(|e| {
            // A construction cannot fail; the template only ever sets whole days.
            tracing::error!(error = %e, "using the default greatest age of uploads");
            DEFAULT_UPLOAD_MAX_AGE
        });
        DynamoMetadata {
            client,
            table: table.into(),
            spill,
            upload_max_age,
        }
    }

    /// The same store, with uploads living `age` from their start.
    pub fn upload_max_age(&self) -> Duration {
        self.upload_max_age
    }

    pub fn with_upload_max_age(mut self, age: Duration) -> Self {
        self.upload_max_age = age;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(repo: &RepositoryName, sk: impl Into<String>) -> Item {
        HashMap::from([
            ("pk".to_string(), s(repo.as_str())),
            ("sk".to_string(), s(sk)),
        ])
    }

    async fn get_item(&self, key: Item, what: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(what, e))?;
        Ok(out.item)
    }

    /// Runs one transaction. `token` makes the SDK's own retries of it idempotent.
    async fn transact(&self, items: Vec<TransactWriteItem>, token: &str) -> Result<(), TxFailure> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Err(TxFailure::Cancelled(
                        c.cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_string())
                            .collect(),
                    ))
                }
                // The same token still running (an SDK retry overtook it): try again.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Err(TxFailure::Cancelled(vec!["TransactionConflict".into()]))
                }
                _ => Err(TxFailure::Other(sdk_error("TransactWriteItems", e))),
            },
        }
    }

    /// The `REPOSITORY` item, created if absent (and left as it is otherwise).
    fn repository_update(&self, repo: &RepositoryName) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, "REPOSITORY")))
            .update_expression("SET #created = if_not_exists(#created, :now), #catalog = :catalog")
            .expression_attribute_names("#created", "created")
            .expression_attribute_names("#catalog", "catalog")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":catalog", s("repository"))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes the `MANIFEST#` item; `tagged` bumps `tag_writes`, which a concurrent delete
    /// of the manifest conditions on.
    fn manifest_update(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        subject: Option<&Digest>,
        tagged: bool,
    ) -> StoreResult<TransactWriteItem> {
        let spilled = is_spilled(manifest);
        let mut set = vec!["#mt = :mt", "#len = :len"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, manifest_sk(&manifest.digest))))
            .expression_attribute_names("#mt", "media_type")
            .expression_attribute_names("#len", "length")
            .expression_attribute_names("#tw", "tag_writes")
            .expression_attribute_values(":mt", s(&manifest.media_type))
            .expression_attribute_values(":len", n(manifest.body.len() as u64))
            .expression_attribute_values(":inc", n(u64::from(tagged)));
        if spilled {
            set.push("#spilled = :true");
            update = update
                .expression_attribute_names("#spilled", "spilled")
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        } else {
            set.push("#body = :body");
            update = update
                .expression_attribute_names("#body", "body")
                .expression_attribute_values(":body", b(&manifest.body));
        }
        if let Some(subject) = subject {
            set.push("#subject = :subject");
            update = update
                .expression_attribute_names("#subject", "subject")
                .expression_attribute_values(":subject", s(subject.to_string()));
        }
        let update = update
            .update_expression(format!("SET {} ADD #tw :inc", set.join(", ")))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The whole `TAG#` item pointing at `manifest`.
    fn tag_item(
        repo: &RepositoryName,
        tag: &Tag,
        manifest: &StoredManifest,
        v1_image: Option<&str>,
    ) -> Item {
        let mut item = Self::key(repo, tag_sk(tag));
        item.insert("digest".into(), s(manifest.digest.to_string()));
        item.insert("media_type".into(), s(&manifest.media_type));
        item.insert("length".into(), n(manifest.body.len() as u64));
        if is_spilled(manifest) {
            item.insert("spilled".into(), AttributeValue::Bool(true));
        } else {
            item.insert("body".into(), b(&manifest.body));
        }
        if let Some(v1) = v1_image {
            item.insert("v1_image".into(), s(v1));
        }
        item
    }

    fn put(&self, item: Item, condition: Option<&str>) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition)
                .expression_attribute_names("#pk", "pk");
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build())
    }

    fn image_item(repo: &RepositoryName, image: &V1Image) -> Item {
        let mut item = Self::key(repo, image_sk(&image.docker_id));
        item.insert("docker_id".into(), s(&image.docker_id));
        item.insert("blob".into(), s(image.blob.to_string()));
        item.insert("v1_json".into(), s(&image.v1_json));
        for (name, value) in [
            ("parent", &image.parent),
            ("created", &image.created),
            ("comment", &image.comment),
            ("command", &image.command),
        ] {
            if let Some(value) = value {
                item.insert(name.into(), s(value));
            }
        }
        item
    }

    fn referrer_item(repo: &RepositoryName, r: &Referrer) -> Item {
        let mut item = Self::key(repo, referrer_sk(&r.subject, &r.digest));
        item.insert("subject".into(), s(r.subject.to_string()));
        item.insert("digest".into(), s(r.digest.to_string()));
        item.insert("media_type".into(), s(&r.media_type));
        item.insert("length".into(), n(r.size));
        if let Some(t) = &r.artifact_type {
            item.insert("artifact_type".into(), s(t));
        }
        if let Some(a) = &r.annotations {
            let map = a.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            item.insert("annotations".into(), AttributeValue::M(map));
        }
        item
    }

    /// The outbox item of `event` and a token for the transaction that carries it.
    fn event_item(repo: &RepositoryName, event: &RegistryEvent) -> StoreResult<(Item, String)> {
        let json = serde_json::to_string(event).map_err(StoreError::backend)?;
        let id = random_id()?;
        let now = SystemTime::now();
        let expires = (now + EVENT_TTL)
            .duration_since(UNIX_EPOCH)
            .map_err(StoreError::backend)?
            .as_secs();
        let sk = format!(
            "{EVENT_PREFIX}{}#{id}",
            humantime::format_rfc3339_nanos(now)
        );
        let mut item = Self::key(repo, sk);
        item.insert("kind".into(), s(&event.event));
        item.insert("event".into(), s(json));
        item.insert(TTL_ATTRIBUTE.into(), n(expires));
        Ok((item, id))
    }

    /// Writes an image unless its id is already stored: for pushes too large for one
    /// transaction. Idempotent, so a push that fails later leaves only unreferenced images.
    async fn put_image_if_absent(&self, repo: &RepositoryName, image: &V1Image) -> StoreResult<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::image_item(repo, image)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("PutItem image", e)),
        }
    }

    /// Stores a large manifest's bytes in the blob store, before any item names them.
    async fn spill_if_large(&self, manifest: &StoredManifest) -> StoreResult<()> {
        if is_spilled(manifest) {
            self.spill
                .put(&manifest.digest, manifest.body.clone())
                .await?;
        }
        Ok(())
    }

    /// The manifest an item (`MANIFEST#` or `TAG#`) carries or points at.
    async fn manifest_of(&self, item: &Item, digest: Digest) -> StoreResult<StoredManifest> {
        let media_type = required_s(item, "media_type")?.to_string();
        let body = match item.get("body") {
            Some(AttributeValue::B(body)) => Bytes::copy_from_slice(body.as_ref()),
            _ if matches!(item.get("spilled"), Some(AttributeValue::Bool(true))) => {
                self.spill.get(&digest).await?.ok_or_else(|| {
                    StoreError::backend(format!("the spilled bytes of {digest} are missing"))
                })?
            }
            _ => {
                return Err(StoreError::backend(format!(
                    "the item of {digest} has no manifest bytes"
                )));
            }
        };
        Ok(StoredManifest {
            digest,
            media_type,
            body,
        })
    }

    /// The tags of `repo` that point at `digest`, with their v1 images: one `Query` (paged).
    async fn tags_pointing_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Vec<(Tag, Option<String>)>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .filter_expression("#digest = :digest")
            .projection_expression("#sk, #v1")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#digest", "digest")
            .expression_attribute_names("#v1", "v1_image")
            .expression_attribute_values(":pk", s(repo.as_str()))
            .expression_attribute_values(":prefix", s("TAG#"))
            .expression_attribute_values(":digest", s(digest.to_string()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut tags = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Query tags", e))?;
            for item in page.items() {
                let sk = required_s(item, "sk")?;
                let name = sk.strip_prefix("TAG#").unwrap_or(sk);
                let tag = Tag::parse(name)
                    .map_err(|e| StoreError::backend(format!("stored tag {sk:?}: {e}")))?;
                tags.push((tag, optional_s(item, "v1_image").map(str::to_string)));
            }
        }
        Ok(tags)
    }

    /// The change to one tag of a manifest being deleted: delete it, or (schema1) keep it
    /// with its v1 image only. Conditioned on the tag still naming `digest`.
    fn detach_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        v1_image: Option<&str>,
        digest: &Digest,
    ) -> StoreResult<TransactWriteItem> {
        let key = Self::key(repo, tag_sk(tag));
        let condition = "#digest = :digest";
        Ok(match v1_image {
            // A tag that outlives its manifest: served from its image chain from now on.
            Some(_) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .update_expression("REMOVE #digest, #mt, #len, #body, #spilled")
                        .condition_expression(condition)
                        .expression_attribute_names("#digest", "digest")
                        .expression_attribute_names("#mt", "media_type")
                        .expression_attribute_names("#len", "length")
                        .expression_attribute_names("#body", "body")
                        .expression_attribute_names("#spilled", "spilled")
                        .expression_attribute_values(":digest", s(digest.to_string()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .condition_expression(condition)
                        .expression_attribute_names("#digest", "digest")
                        .expression_attribute_values(":digest", s(digest.to_string()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        })
    }

    /// Deletes an item if it exists: one `DeleteItem`; false when it did not.
    async fn delete_if_exists(&self, key: Item, what: &str) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(what, e)),
        }
    }

    /// Puts an item under `condition` (which may name `#pk`, `#version` and `:expected`);
    /// false when the condition failed and nothing was written.
    ///
    /// Safe to retry: when the SDK retries a put whose first try took effect but whose
    /// answer was lost, the retry finds its own write and the condition fails. So a failed
    /// condition reads the item back (consistently, only on this rare path), and if its
    /// `state` is this put's own (every upload state names its version and writer, so no
    /// other write has it) the put took effect: the answer the first try earned.
    async fn put_conditionally(
        &self,
        item: Item,
        condition: &str,
        expected: Option<u64>,
    ) -> StoreResult<bool> {
        let key: Item = item
            .iter()
            .filter(|(name, _)| *name == "pk" || *name == "sk")
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let state = item.get("state").cloned();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", "pk");
        if let Some(expected) = expected {
            put = put
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(expected));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let Some(state) = state else {
                    return Ok(false);
                };
                let stored = self
                    .get_item(key, "GetItem after a failed condition")
                    .await?;
                Ok(stored.and_then(|item| item.get("state").cloned()) == Some(state))
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// Up to `limit` names from a `Query` (whose items each carry `attribute`, named after
    /// `prefix`), and whether more follow: one request, more only past DynamoDB's 1 MB page.
    async fn page(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        prefix: &str,
        attribute: &str,
        limit: usize,
    ) -> StoreResult<Page> {
        let mut out = Page::default();
        let mut start = None;
        let mut first = true;
        loop {
            // One more than asked tells whether more follow.
            let wanted = limit.saturating_sub(out.names.len()).saturating_add(1);
            let mut request = query
                .clone()
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX).min(1000));
            if !first {
                request = request.set_exclusive_start_key(start.take());
            }
            first = false;
            let result = request.send().await.map_err(|e| sdk_error("Query", e))?;
            for item in result.items() {
                let value = required_s(item, attribute)?;
                let name = value.strip_prefix(prefix).unwrap_or(value);
                if out.names.len() == limit {
                    out.more = true;
                    return Ok(out);
                }
                out.names.push(name.to_string());
            }
            match result.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }

    /// The `UPLOAD#` item: the state as JSON, its version apart for the update's condition,
    /// and a TTL: the upload's start plus the greatest age (its bytes expire in the bucket
    /// as many days after each was written, so never before it).
    fn upload_item(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<Item> {
        let mut item = Self::key(repo, upload_sk(&upload.id));
        let state = serde_json::to_string(upload).map_err(StoreError::backend)?;
        // A start that does not parse (never written so) counts from now.
        let started =
            humantime::parse_rfc3339_weak(&upload.started).unwrap_or_else(|_| SystemTime::now());
        let expires = started
            .checked_add(self.upload_max_age)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        item.insert("state".into(), s(state));
        item.insert("version".into(), n(upload.version));
        item.insert(TTL_ATTRIBUTE.into(), n(expires));
        Ok(item)
    }

    /// One attempt at deleting a manifest. `Ok(Err(()))` means "a condition failed: read
    /// again and retry".
    async fn try_delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        event: &RegistryEvent,
    ) -> StoreResult<Result<Option<DeletedManifest>, ()>> {
        let Some(manifest) = self
            .get_item(Self::key(repo, manifest_sk(digest)), "GetItem manifest")
            .await?
        else {
            return Ok(Ok(None));
        };
        // Every write of a manifest item sets `tag_writes`; an item without it (written by
        // hand, say) is deleted only if it still has none.
        let tag_writes = required_n(&manifest, "tag_writes").ok();
        let subject = optional_s(&manifest, "subject").map(str::to_string);
        let pointing = self.tags_pointing_at(repo, digest).await?;
        // Images are never deleted: one read of theirs holds for the transaction below.
        let v1_images: Vec<String> = pointing.iter().filter_map(|(_, v1)| v1.clone()).collect();
        let stored = match v1_images.is_empty() {
            true => HashMap::new(),
            false => {
                let lookup = Lookup {
                    images: v1_images,
                    ..Lookup::default()
                };
                self.lookup(repo, &lookup).await?.images
            }
        };

        let mut deleted = DeletedManifest::default();
        let mut detach = Vec::new();
        for (tag, v1) in &pointing {
            let v1 = v1.as_deref();
            let kept = tag_outlives_its_manifest(v1, v1.is_some_and(|id| stored.contains_key(id)));
            detach.push(self.detach_tag(repo, tag, v1.filter(|_| kept), digest)?);
            if kept {
                deleted.kept_tags.push(tag.clone());
            } else {
                deleted.removed_tags.push(tag.clone());
            }
        }
        let mut event = event.clone();
        event.updated_tags = deleted.removed_tags.iter().map(|t| t.to_string()).collect();
        let (event_item, id) = Self::event_item(repo, &event)?;

        // The manifest goes only if no tag was pointed at it since it was read.
        let tw = ("#tw".to_string(), "tag_writes".to_string());
        let (condition, names, values) = match tag_writes {
            Some(count) => (
                "#tw = :tw",
                HashMap::from([tw]),
                Some(HashMap::from([(":tw".to_string(), n(count))])),
            ),
            None => (
                "attribute_exists(#pk) AND attribute_not_exists(#tw)",
                HashMap::from([tw, ("#pk".to_string(), "pk".to_string())]),
                None,
            ),
        };
        let mut last = vec![
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(Self::key(repo, manifest_sk(digest))))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            self.put(event_item, Some("attribute_not_exists(#pk)"))?,
        ];
        if let Some(subject) = subject {
            let subject: Digest = subject
                .parse()
                .map_err(|e| StoreError::backend(format!("stored subject {subject:?}: {e}")))?;
            last.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(Self::key(repo, referrer_sk(&subject, digest))))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            );
        }
        // Tags beyond one transaction's room are detached first, in transactions of their
        // own: each stays a valid tag or goes, so no tag ever names a missing manifest.
        let room = MAX_TRANSACTION_ITEMS - last.len();
        let early = detach.len().saturating_sub(room);
        let mut rest = detach.split_off(early);
        for (i, chunk) in detach.chunks(MAX_TRANSACTION_ITEMS).enumerate() {
            match self.transact(chunk.to_vec(), &format!("{id}-t{i}")).await {
                Ok(()) => {}
                Err(TxFailure::Cancelled(codes))
                    if transient(&codes) || codes.iter().any(|c| condition_failed(c)) =>
                {
                    return Ok(Err(()));
                }
                Err(f) => return Err(f.into_store_error("detaching tags")),
            }
        }
        rest.extend(last);
        match self.transact(rest, &id).await {
            Ok(()) => Ok(Ok(Some(deleted))),
            Err(TxFailure::Cancelled(codes))
                if transient(&codes) || codes.iter().any(|c| condition_failed(c)) =>
            {
                Ok(Err(()))
            }
            Err(f) => Err(f.into_store_error("deleting a manifest")),
        }
    }
}

#[async_trait]
impl MetadataStore for DynamoMetadata {
    async fn repository_exists(&self, repo: &RepositoryName) -> StoreResult<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, "REPOSITORY")))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", "pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem repository", e))?;
        Ok(out.item.is_some())
    }

    async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> StoreResult<Option<TagTarget>> {
        let Some(item) = self
            .get_item(Self::key(repo, tag_sk(tag)), "GetItem tag")
            .await?
        else {
            return Ok(None);
        };
        let v1_image = optional_s(&item, "v1_image").map(str::to_string);
        let manifest = match optional_s(&item, "digest") {
            None => None,
            Some(digest) => Some(self.manifest_of(&item, parse_digest(digest)?).await?),
        };
        Ok(Some(TagTarget { manifest, v1_image }))
    }

    async fn manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<StoredManifest>> {
        match self
            .get_item(Self::key(repo, manifest_sk(digest)), "GetItem manifest")
            .await?
        {
            None => Ok(None),
            Some(item) => self.manifest_of(&item, digest.clone()).await.map(Some),
        }
    }

    async fn lookup(&self, repo: &RepositoryName, lookup: &Lookup) -> StoreResult<Found> {
        enum Asked<'a> {
            Blob(&'a Digest),
            Manifest(&'a Digest),
            Image,
        }
        // BatchGetItem refuses duplicate keys: one entry per sort key.
        let mut asked: BTreeMap<String, Asked> = BTreeMap::new();
        for d in &lookup.blobs {
            asked.insert(blob_sk(d), Asked::Blob(d));
        }
        for d in &lookup.manifests {
            asked.insert(manifest_sk(d), Asked::Manifest(d));
        }
        for id in &lookup.images {
            asked.insert(image_sk(id), Asked::Image);
        }
        let sks: Vec<&String> = asked.keys().collect();
        let mut found = Found::default();
        // At most 100 keys per request; a manifest PUT of a usual image needs one request.
        for chunk in sks.chunks(100) {
            let names = [
                "pk",
                "sk",
                "docker_id",
                "parent",
                "blob",
                "created",
                "comment",
                "command",
                "v1_json",
            ];
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk
                        .iter()
                        .map(|sk| Self::key(repo, sk.as_str()))
                        .collect(),
                ))
                .consistent_read(true)
                .projection_expression(
                    names
                        .iter()
                        .map(|n| format!("#{n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            for name in names {
                request = request.expression_attribute_names(format!("#{name}"), name);
            }
            let mut pending = request.build().map_err(build_error)?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                let items = out
                    .responses
                    .as_ref()
                    .and_then(|r| r.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for item in items {
                    let sk = required_s(item, "sk")?;
                    match asked.get(sk) {
                        Some(Asked::Blob(d)) => {
                            found.blobs.insert((*d).clone());
                        }
                        Some(Asked::Manifest(d)) => {
                            found.manifests.insert((*d).clone());
                        }
                        Some(Asked::Image) => {
                            let image = image_of(item)?;
                            found.images.insert(image.docker_id.clone(), image);
                        }
                        None => {}
                    }
                }
                // DynamoDB may leave keys unprocessed under load: ask again for those.
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt + 1 >= ATTEMPTS {
                            return Err(StoreError::backend(
                                "BatchGetItem left keys unprocessed after every retry",
                            ));
                        }
                        backoff(attempt).await;
                        pending = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    async fn image(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<V1Image>> {
        self.get_item(Self::key(repo, image_sk(id)), "GetItem image")
            .await?
            .map(|item| image_of(&item))
            .transpose()
    }

    async fn commit_push(&self, repo: &RepositoryName, push: &Push) -> StoreResult<()> {
        self.spill_if_large(&push.manifest).await?;
        let (event_item, id) = Self::event_item(repo, &push.event)?;
        let mut images: Vec<&V1Image> = push.images.iter().collect();

        let fixed = 3 + push.tags.len() + usize::from(push.referrer.is_some());
        if fixed > MAX_TRANSACTION_ITEMS {
            // The registry caps a push's tags far below this.
            return Err(StoreError::backend(format!(
                "a push of {} with {} tags does not fit one transaction",
                push.manifest.digest,
                push.tags.len()
            )));
        }
        // The manifest item and each tag item carry the manifest's bytes (unless spilled):
        // when many tags of a large manifest would not fit the transaction, the tag items
        // point at its S3 copy instead, as a spilled manifest's do.
        let mut inline = if is_spilled(&push.manifest) {
            0
        } else {
            (1 + push.tags.len()).saturating_mul(push.manifest.body.len())
        };
        let spill_tags = inline > TRANSACTION_BYTES;
        if spill_tags {
            self.spill
                .put(&push.manifest.digest, push.manifest.body.clone())
                .await?;
            inline = push.manifest.body.len();
        }
        let image_bytes: usize = images.iter().map(|i| approximate_size(i)).sum();
        if fixed + images.len() > MAX_TRANSACTION_ITEMS || inline + image_bytes > TRANSACTION_BYTES
        {
            // Parents first, as given: an interrupted push leaves complete chains only.
            for image in &images {
                self.put_image_if_absent(repo, image).await?;
            }
            images.clear();
        }

        for attempt in 0..ATTEMPTS {
            let mut items = vec![
                self.repository_update(repo)?,
                self.manifest_update(
                    repo,
                    &push.manifest,
                    push.referrer.as_ref().map(|r| &r.subject),
                    !push.tags.is_empty(),
                )?,
                self.put(event_item.clone(), Some("attribute_not_exists(#pk)"))?,
            ];
            for tag in &push.tags {
                let mut item =
                    Self::tag_item(repo, tag, &push.manifest, push.tag_v1_image.as_deref());
                if spill_tags {
                    item.remove("body");
                    item.insert("spilled".into(), AttributeValue::Bool(true));
                }
                items.push(self.put(item, None)?);
            }
            if let Some(referrer) = &push.referrer {
                items.push(self.put(Self::referrer_item(repo, referrer), None)?);
            }
            let first_image = items.len();
            for image in &images {
                items.push(self.put(
                    Self::image_item(repo, image),
                    Some("attribute_not_exists(#pk)"),
                )?);
            }
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Cancelled(codes)) => {
                    let failed: HashSet<usize> = codes
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| condition_failed(c))
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() && failed.iter().all(|i| *i >= first_image) {
                        // Images stored since the caller's lookup: keep them as they are.
                        let mut index = first_image;
                        images.retain(|_| {
                            let keep = !failed.contains(&index);
                            index += 1;
                            keep
                        });
                        continue;
                    }
                    if failed.is_empty() && transient(&codes) {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(TxFailure::Cancelled(codes).into_store_error("push"));
                }
                Err(TxFailure::Other(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!(
            "push of {} to {repo} kept conflicting with other writers",
            push.manifest.digest
        )))
    }

    async fn attach_generated_manifest(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        v1_image: &str,
        manifest: &StoredManifest,
    ) -> StoreResult<()> {
        self.spill_if_large(manifest).await?;
        let id = random_id()?;
        for attempt in 0..ATTEMPTS {
            let tag_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(Self::tag_item(repo, tag, manifest, Some(v1_image))))
                .condition_expression(
                    "attribute_exists(#pk) AND attribute_not_exists(#digest) AND #v1 = :v1",
                )
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#digest", "digest")
                .expression_attribute_names("#v1", "v1_image")
                .expression_attribute_values(":v1", s(v1_image))
                .build()
                .map_err(build_error)?;
            let items = vec![
                self.manifest_update(repo, manifest, None, true)?,
                TransactWriteItem::builder().put(tag_put).build(),
            ];
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Cancelled(codes)) if codes.iter().any(|c| condition_failed(c)) => {
                    return Err(StoreError::Conflict(format!(
                        "tag {repo}:{tag} no longer names v1 image {v1_image} without a manifest"
                    )));
                }
                Err(TxFailure::Cancelled(codes)) if transient(&codes) => backoff(attempt).await,
                Err(f) => return Err(f.into_store_error("attaching a generated manifest")),
            }
        }
        Err(StoreError::Conflict(format!(
            "attaching a manifest to {repo}:{tag} kept conflicting with other writers"
        )))
    }

    async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        event: &RegistryEvent,
    ) -> StoreResult<Option<DeletedManifest>> {
        for attempt in 0..ATTEMPTS {
            match self.try_delete_manifest(repo, digest, event).await? {
                Ok(outcome) => return Ok(outcome),
                // A tag moved or was added meanwhile: read again.
                Err(()) => backoff(attempt).await,
            }
        }
        Err(StoreError::Conflict(format!(
            "deleting {digest} from {repo} kept conflicting with other writers"
        )))
    }

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        event: &RegistryEvent,
    ) -> StoreResult<bool> {
        let (event_item, id) = Self::event_item(repo, event)?;
        for attempt in 0..ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(repo, tag_sk(tag))))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.put(event_item.clone(), Some("attribute_not_exists(#pk)"))?,
            ];
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Cancelled(codes))
                    if codes.first().is_some_and(|c| condition_failed(c)) =>
                {
                    return Ok(false);
                }
                Err(TxFailure::Cancelled(codes)) if transient(&codes) => backoff(attempt).await,
                Err(f) => return Err(f.into_store_error("deleting a tag")),
            }
        }
        Err(StoreError::Conflict(format!(
            "deleting {repo}:{tag} kept conflicting with other writers"
        )))
    }

    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> StoreResult<()> {
        let mut link = Self::key(repo, blob_sk(digest));
        link.insert("length".into(), n(size));
        let id = random_id()?;
        for attempt in 0..ATTEMPTS {
            // One transaction: a link never exists without its repository.
            let items = vec![self.repository_update(repo)?, self.put(link.clone(), None)?];
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Cancelled(codes)) if transient(&codes) => backoff(attempt).await,
                Err(f) => return Err(f.into_store_error("linking a blob")),
            }
        }
        Err(StoreError::Conflict(format!(
            "linking {digest} to {repo} kept conflicting with other writers"
        )))
    }

    async fn blob_link(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<Option<u64>> {
        match self
            .get_item(Self::key(repo, blob_sk(digest)), "GetItem blob link")
            .await?
        {
            None => Ok(None),
            Some(item) => required_n(&item, "length").map(Some),
        }
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<bool> {
        self.delete_if_exists(Self::key(repo, blob_sk(digest)), "DeleteItem blob link")
            .await
    }

    /// One `Query` (paged by DynamoDB past 1 MB); a repository with no tag on the page
    /// costs one `GetItem` more, to tell "no tags" from "no repository".
    async fn tags(&self, repo: &RepositoryName, page: &PageRequest) -> StoreResult<Option<Page>> {
        let start = page.last.as_ref().map(|last| {
            HashMap::from([
                ("pk".to_string(), s(repo.as_str())),
                ("sk".to_string(), s(format!("TAG#{last}"))),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .projection_expression("#sk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(repo.as_str()))
            .expression_attribute_values(":prefix", s("TAG#"))
            .consistent_read(true)
            .set_exclusive_start_key(start);
        let found = self.page(query, "TAG#", "sk", page.limit).await?;
        if found.names.is_empty() && !self.repository_exists(repo).await? {
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// A `Query` of the sparse index `catalog` (eventually consistent, as every index is:
    /// a repository created a moment ago may be missing for that moment).
    async fn repositories(&self, page: &PageRequest) -> StoreResult<Page> {
        let start = page.last.as_ref().map(|last| {
            HashMap::from([
                ("catalog".to_string(), s("repository")),
                ("pk".to_string(), s(last.as_str())),
                ("sk".to_string(), s("REPOSITORY")),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CATALOG_INDEX)
            .key_condition_expression("#catalog = :catalog")
            .expression_attribute_names("#catalog", "catalog")
            .expression_attribute_values(":catalog", s("repository"))
            .set_exclusive_start_key(start);
        self.page(query, "", "pk", page.limit).await
    }

    /// One `Query`, ordered by the referrers' digests.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(repo.as_str()))
            .expression_attribute_values(":prefix", s(format!("REFERRER#{subject}#")))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut referrers = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Query referrers", e))?;
            for item in page.items() {
                referrers.push(referrer_of(item)?);
            }
        }
        Ok(referrers)
    }

    /// `Conflict` if the id is taken (never, for random ids).
    async fn create_upload(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<()> {
        let item = self.upload_item(repo, upload)?;
        match self
            .put_conditionally(item, "attribute_not_exists(#pk)", None)
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!(
                "upload {} of {repo} exists",
                upload.id
            ))),
        }
    }

    /// One `GetItem`; an item past its TTL is gone (DynamoDB removes it within days).
    async fn upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        match self
            .get_item(Self::key(repo, upload_sk(id)), "GetItem upload")
            .await?
        {
            Some(item) => upload_of(&item).map(Some),
            None => Ok(None),
        }
    }

    /// One conditional `PutItem`: the stored version must still be `expected_version`.
    async fn update_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()> {
        let item = self.upload_item(repo, upload)?;
        match self
            .put_conditionally(
                item,
                "attribute_exists(#pk) AND #version = :expected",
                Some(expected_version),
            )
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!(
                "upload {} of {repo} is gone or no longer at version {expected_version}",
                upload.id
            ))),
        }
    }

    /// One `DeleteItem` that returns the item it deleted (expired or not: its bytes go
    /// either way).
    async fn delete_upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, upload_sk(id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem upload", e))?;
        result.attributes.as_ref().map(upload_of).transpose()
    }

    /// A `Scan` of the table for `UPLOAD#` items, eventually consistent (an upload a day
    /// old is no news): only their keys and state come back, but every item is read, so a
    /// table of 1 GB costs about 131 000 read request units a run. registry-local's purge
    /// runs it at start and hourly; the Lambda deployment never does (TTL is free).
    async fn uploads_started_before(
        &self,
        cutoff: SystemTime,
    ) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#sk, :prefix)")
            .projection_expression("#pk, #sk, #state")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":prefix", s("UPLOAD#"))
            .into_paginator()
            .send();
        let mut stale = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Scan uploads", e))?;
            for item in page.items() {
                let upload = upload_of(item)?;
                if started_before(&upload, cutoff) {
                    let repo = RepositoryName::parse(required_s(item, "pk")?)
                        .map_err(StoreError::backend)?;
                    stale.push((repo, upload));
                }
            }
        }
        Ok(stale)
    }
}

/// The upload state of an `UPLOAD#` item.
fn upload_of(item: &Item) -> StoreResult<Upload> {
    serde_json::from_str(required_s(item, "state")?)
        .map_err(|e| StoreError::backend(format!("a stored upload: {e}")))
}

/// Whether an item's TTL has passed (DynamoDB deletes it lazily).
fn tag_sk(tag: &Tag) -> String {
    format!("TAG#{tag}")
}

fn manifest_sk(digest: &Digest) -> String {
    format!("MANIFEST#{digest}")
}

fn image_sk(id: &str) -> String {
    format!("IMAGE#{id}")
}

fn blob_sk(digest: &Digest) -> String {
    format!("BLOB#{digest}")
}

fn upload_sk(id: &str) -> String {
    format!("UPLOAD#{id}")
}

fn referrer_sk(subject: &Digest, digest: &Digest) -> String {
    format!("REFERRER#{subject}#{digest}")
}

fn is_spilled(manifest: &StoredManifest) -> bool {
    manifest.body.len() > INLINE_LIMIT
}

/// Roughly the bytes an image item takes in a transaction.
fn approximate_size(image: &V1Image) -> usize {
    let optional = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    256 + image.docker_id.len()
        + image.v1_json.len()
        + optional(&image.parent)
        + optional(&image.created)
        + optional(&image.comment)
        + optional(&image.command)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn b(bytes: &Bytes) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.to_vec()))
}

fn optional_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn required_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    optional_s(item, name)
        .ok_or_else(|| StoreError::backend(format!("a stored item lacks the string {name}")))
}

fn required_n(item: &Item, name: &str) -> StoreResult<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|e| StoreError::backend(format!("stored number {name}={v:?}: {e}"))),
        _ => Err(StoreError::backend(format!(
            "a stored item lacks the number {name}"
        ))),
    }
}

fn parse_digest(s: &str) -> StoreResult<Digest> {
    s.parse()
        .map_err(|e| StoreError::backend(format!("stored digest {s:?}: {e}")))
}

fn referrer_of(item: &Item) -> StoreResult<Referrer> {
    let annotations = match item.get("annotations") {
        Some(AttributeValue::M(map)) => Some(
            map.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect(),
        ),
        _ => None,
    };
    Ok(Referrer {
        subject: parse_digest(required_s(item, "subject")?)?,
        digest: parse_digest(required_s(item, "digest")?)?,
        media_type: required_s(item, "media_type")?.to_string(),
        size: required_n(item, "length")?,
        artifact_type: optional_s(item, "artifact_type").map(str::to_string),
        annotations,
    })
}

fn image_of(item: &Item) -> StoreResult<V1Image> {
    let text = |name: &str| optional_s(item, name).map(str::to_string);
    Ok(V1Image {
        docker_id: required_s(item, "docker_id")?.to_string(),
        parent: text("parent"),
        blob: parse_digest(required_s(item, "blob")?)?,
        created: text("created"),
        comment: text("comment"),
        command: text("command"),
        v1_json: required_s(item, "v1_json")?.to_string(),
    })
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::backend(format!("building a DynamoDB request: {e}"))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// 16 hex characters from the OS's random source: outbox ids and transaction tokens.
fn random_id() -> StoreResult<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::backend(format!("random id: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Waits before retry `attempt` (0-based): exponential from 25 ms, capped, with jitter so
/// that two conflicting writers do not retry in step.
async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(5);
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default(),
    ) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_keep_kinds_apart() {
        let d = Digest::sha256(b"x");
        let tag = Tag::parse("v1").unwrap();
        assert_eq!(tag_sk(&tag), "TAG#v1");
        assert_eq!(manifest_sk(&d), format!("MANIFEST#{d}"));
        assert_eq!(blob_sk(&d), format!("BLOB#{d}"));
        assert_eq!(referrer_sk(&d, &d), format!("REFERRER#{d}#{d}"));
        // `REFERRER#` must not select `REPOSITORY` in a begins_with query.
        assert!(!"REPOSITORY".starts_with("REFERRER#"));
    }

    #[test]
    fn outbox_items_carry_the_event_and_a_ttl() {
        let repo = RepositoryName::parse("library/app").unwrap();
        let event = RegistryEvent {
            event: "repo_push".into(),
            repository: "library/app".into(),
            namespace: "library".into(),
            updated_tags: vec!["latest".into()],
            digest: None,
            media_type: None,
            time: "2024-01-01T00:00:00Z".into(),
        };
        let (item, id) = DynamoMetadata::event_item(&repo, &event).unwrap();
        assert_eq!(id.len(), 16);
        let sk = required_s(&item, "sk").unwrap();
        assert!(sk.starts_with(EVENT_PREFIX) && sk.ends_with(&id), "{sk}");
        let json: RegistryEvent =
            serde_json::from_str(required_s(&item, "event").unwrap()).unwrap();
        assert_eq!(json, event);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expires = required_n(&item, TTL_ATTRIBUTE).unwrap();
        assert!(expires > now && expires <= now + EVENT_TTL.as_secs() + 1);
    }

    #[test]
    fn large_manifests_spill() {
        let small = StoredManifest {
            digest: Digest::sha256(b"s"),
            media_type: "m".into(),
            body: Bytes::from(vec![b'a'; INLINE_LIMIT]),
        };
        assert!(!is_spilled(&small));
        let large = StoredManifest {
            body: Bytes::from(vec![b'a'; INLINE_LIMIT + 1]),
            ..small
        };
        assert!(is_spilled(&large));
    }
}
