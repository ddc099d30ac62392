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
//! remove. [`MetadataStore::uploads`]
//! (registry-local's hourly purge, which removes their bytes at once too) is a `Scan`: the
//! Lambda deployment never runs it, TTL and the lifecycle rules being free and enough.
//!
//! Other items may share the table (the access store's `_users` partition, `ACCESS` and
//! `GRANT#` items): none carries `catalog` nor an `EVENT#` key, and no prefix above selects
//! them.
//!
//! # The code
//!
//! This module holds [`DynamoMetadata`] and its [`MetadataStore`] implementation: the
//! single-item reads are written in place, every other method calls its body, an inherent
//! method in the module of its concern:
//!
//! | module         | what                                                                  |
//! |----------------|-----------------------------------------------------------------------|
//! | `items`        | the item codecs: sort keys, attribute values, items built, read back  |
//! | `transactions` | transactions, single-item reads and conditional writes, backoff, ids  |
//! | `pushes`       | pushes, generated manifests, blob links; spilled manifests            |
//! | `deletes`      | deleting a manifest (with its tags) or a tag                          |
//! | `lists`        | the paged lists of tags, repositories and referrers; the batch lookup |
//! | `uploads`      | the uploads' items                                                    |
//!
//! [`StoreError::Conflict`]: crate::ports::StoreError::Conflict

use self::items::{
    blob_sk, image_of, image_sk, manifest_sk, optional_s, parse_digest, required_n, tag_sk,
};
use super::sdk_error;
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    BlobStore, DEFAULT_UPLOAD_MAX_AGE, Found, GeneratedManifest, Lookup, ManifestDeletion,
    ManifestInUse, MetadataStore, Push, Referrer, RegistryEvent, StoreResult, StoredManifest,
    TagTarget, Upload, V1Image, upload_max_age_from_env,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
#[cfg(feature = "s3")]
use std::sync::Arc;
use std::time::Duration;

mod deletes;
mod items;
mod lists;
mod pushes;
mod transactions;
mod uploads;

pub(crate) use transactions::{get_item, query_prefix};

/// The largest manifest kept inside its items. An item holds 400 KB including attribute
/// names and the other attributes; this leaves ample room for them.
pub const INLINE_LIMIT: usize = 350 * 1024;

/// The sparse global secondary index of repositories.
pub const CATALOG_INDEX: &str = "catalog";
/// The TTL attribute of outbox and upload items.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The metadata of every repository in one table.
#[derive(Clone)]
pub struct DynamoMetadata {
    client: Client,
    table: String,
    /// Where manifests larger than [`INLINE_LIMIT`] go: the blob store (S3), in a build
    /// that links it (see [`DynamoMetadata::spill`]).
    #[cfg(feature = "s3")]
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

impl DynamoMetadata {
    /// The store over `table`, spilling large manifests to `spill` (in a build with S3).
    /// Uploads live `QUAYSIDE_UPLOAD_MAX_AGE` (see [`upload_max_age_from_env`]; the template
    /// sets it on every function), or a day.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        #[cfg(feature = "s3")] spill: Arc<dyn BlobStore>,
    ) -> Self {
        let upload_max_age = upload_max_age_from_env().unwrap_or_else(|e| {
            // A construction cannot fail; the template only ever sets whole days.
            tracing::error!(error = %e, "using the default greatest age of uploads");
            DEFAULT_UPLOAD_MAX_AGE
        });
        DynamoMetadata {
            client,
            table: table.into(),
            #[cfg(feature = "s3")]
            spill,
            upload_max_age,
        }
    }

    /// The blob store that holds spilled manifests. A function built without S3 never
    /// reads or writes a manifest's bytes (its registry has no operation that does: the
    /// `blobs` feature), so reaching here there is a fault, answered as one.
    fn spill(&self) -> StoreResult<&dyn BlobStore> {
        #[cfg(feature = "s3")]
        return Ok(self.spill.as_ref());
        #[cfg(not(feature = "s3"))]
        return Err(crate::ports::StoreError::backend(
            "a manifest spilled to S3, in a function built without S3",
        ));
    }

    /// How long an upload lives from its start.
    pub fn upload_max_age(&self) -> Duration {
        self.upload_max_age
    }

    /// The same store, with uploads living `age` from their start.
    pub fn with_upload_max_age(mut self, age: Duration) -> Self {
        self.upload_max_age = age;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
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
        self.batch_get_lookup(repo, lookup).await
    }

    async fn image(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<V1Image>> {
        self.get_item(Self::key(repo, image_sk(id)), "GetItem image")
            .await?
            .map(|item| image_of(&item))
            .transpose()
    }

    async fn commit_push(&self, repo: &RepositoryName, push: &Push) -> StoreResult<()> {
        self.transact_push(repo, push).await
    }

    async fn attach_generated_manifest(
        &self,
        repo: &RepositoryName,
        generated: GeneratedManifest<'_>,
    ) -> StoreResult<()> {
        self.transact_generated_manifest(repo, generated).await
    }

    async fn manifest_in_use(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<ManifestInUse>> {
        self.read_manifest_in_use(repo, digest).await
    }

    async fn commit_deletion(
        &self,
        repo: &RepositoryName,
        deletion: &ManifestDeletion,
    ) -> StoreResult<()> {
        self.transact_deletion(repo, deletion).await
    }

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        event: &RegistryEvent,
    ) -> StoreResult<bool> {
        self.transact_tag_delete(repo, tag, event).await
    }

    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> StoreResult<()> {
        self.transact_blob_link(repo, digest, size).await
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

    /// One `Query` (paged by DynamoDB past 1 MB).
    async fn tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<String>> {
        self.query_tags(repo, after, count).await
    }

    /// A `Query` of the sparse index `catalog` (eventually consistent, as every index is:
    /// a repository created a moment ago may be missing for that moment).
    async fn repositories(&self, after: Option<&str>, count: usize) -> StoreResult<Vec<String>> {
        self.query_catalog(after, count).await
    }

    /// One `Query`, ordered by the referrers' digests.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>> {
        self.query_referrers(repo, subject).await
    }

    /// `Conflict` if the id is taken (never, for random ids).
    async fn create_upload(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<()> {
        self.put_new_upload(repo, upload).await
    }

    /// One `GetItem`; an item past its TTL is gone (DynamoDB removes it within days).
    async fn upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        self.get_upload(repo, id).await
    }

    /// One conditional `PutItem`: the stored version must still be `expected_version`.
    async fn update_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()> {
        self.put_upload_at_version(repo, upload, expected_version)
            .await
    }

    /// One `DeleteItem` that returns the item it deleted (expired or not: its bytes go
    /// either way).
    async fn delete_upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        self.delete_upload_item(repo, id).await
    }

    /// A `Scan` of the table for `UPLOAD#` items, eventually consistent (an upload a day
    /// old is no news): only their keys and state come back, but every item is read, so a
    /// table of 1 GB costs about 131 000 read request units a run. registry-local's purge
    /// runs it at start and hourly; the Lambda deployment never does (TTL is free).
    async fn uploads(&self) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        self.scan_uploads().await
    }
}
