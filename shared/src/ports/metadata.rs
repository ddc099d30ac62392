//! The metadata port: repositories, tags, manifests, v1 images, blob links, uploads, and the
//! records it keeps of them.

use super::*;
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A manifest exactly as pushed: its digest, media type and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// What a tag points at. A schema1 tag also names the leaf of its v1 image chain, so that it
/// survives the deletion of its manifest and a new one can be built from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagTarget {
    pub manifest: Option<StoredManifest>,
    pub v1_image: Option<String>,
}

/// A v1 image synthesized from a schema1 manifest's `v1Compatibility`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Image {
    pub docker_id: String,
    pub parent: Option<String>,
    /// The layer blob of this image.
    pub blob: Digest,
    pub created: Option<String>,
    pub comment: Option<String>,
    pub command: Option<String>,
    /// The `v1Compatibility` string as pushed, kept verbatim to rebuild manifests.
    pub v1_json: String,
}

/// A manifest that names another in its `subject` (OCI 1.1 referrers), as the referrers
/// API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub subject: Digest,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<HashMap<String, String>>,
}

/// Everything a manifest PUT needs to know before it writes, asked in one batch.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub blobs: Vec<Digest>,
    pub manifests: Vec<Digest>,
    pub images: Vec<String>,
}

/// The part of a [`Lookup`] that exists in the repository.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub blobs: HashSet<Digest>,
    pub manifests: HashSet<Digest>,
    pub images: HashMap<String, V1Image>,
}

/// One push, written atomically: the manifest, its tags, the v1 images it synthesizes and
/// its referrer entry. The repository is created if it does not exist.
#[derive(Clone, Debug)]
pub struct Push {
    pub manifest: StoredManifest,
    /// The tags the push points at the manifest: the reference's, when pushed by tag, and
    /// those of `tag` parameters (OCI dev spec); none for a plain push by digest. Distinct.
    pub tags: Vec<Tag>,
    /// For a schema1 push with tags: the leaf image id (`fsLayers[0]`) they point at.
    pub tag_v1_image: Option<String>,
    /// New images only (existing ones are left as they are); parents come before children.
    pub images: Vec<V1Image>,
    pub referrer: Option<Referrer>,
    /// The `repo_push` event of this push. A store with an outbox (DynamoDB, whose stream
    /// feeds the notifier) writes it in the same transaction; others may ignore it.
    pub event: RegistryEvent,
}

/// A schema1 manifest the registry built for `tag`, from its v1 image chain whose leaf is
/// `v1_image`, to attach to the tag ([`MetadataStore::attach_generated_manifest`]).
#[derive(Clone, Copy, Debug)]
pub struct GeneratedManifest<'a> {
    pub tag: &'a Tag,
    pub v1_image: &'a str,
    pub manifest: &'a StoredManifest,
}

/// A tag naming a manifest, as a deletion reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagOnManifest {
    pub tag: Tag,
    /// The leaf of a schema1 tag's v1 image chain.
    pub v1_image: Option<String>,
}

/// A manifest as read for its deletion ([`MetadataStore::manifest_in_use`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInUse {
    /// The manifest it refers to (OCI 1.1), whose referrers list names it.
    pub subject: Option<Digest>,
    /// Every tag naming it, in ASCII order.
    pub tags: Vec<TagOnManifest>,
    /// The store's own mark of this read, handed back in [`ManifestDeletion::read`] (the
    /// DynamoDB item's count of tag writes); opaque to the registry.
    pub mark: Option<u64>,
}

/// A deletion the registry planned from a [`ManifestInUse`]: the store applies all of it, or,
/// when the manifest or the tags naming it changed since that read, nothing (`Conflict`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDeletion {
    pub digest: Digest,
    /// The read the plan was made from: its precondition.
    pub read: ManifestInUse,
    /// The tags of `read` that stay, naming their v1 image only; the others go.
    pub kept_tags: Vec<Tag>,
    /// The `manifest_delete` event, for an outbox as in [`Push::event`].
    pub event: RegistryEvent,
}

impl ManifestDeletion {
    /// Each tag of the read with what becomes of it: `Some(v1 image)`, it stays naming that
    /// image only; `None`, it goes.
    pub fn tag_fates(&self) -> impl Iterator<Item = (&Tag, Option<&str>)> {
        self.read.tags.iter().map(|t| {
            let kept = self.kept_tags.contains(&t.tag);
            (&t.tag, t.v1_image.as_deref().filter(|_| kept))
        })
    }
}

/// Repositories, tags, manifests, v1 images, blob links and uploads.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    async fn repository_exists(&self, repo: &RepositoryName) -> StoreResult<bool>;

    /// The tag's target, with the manifest's bytes: one read.
    async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> StoreResult<Option<TagTarget>>;

    /// A manifest by digest: one read.
    async fn manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<StoredManifest>>;

    /// Which of the asked blobs, manifests and images the repository has: one batched read.
    async fn lookup(&self, repo: &RepositoryName, lookup: &Lookup) -> StoreResult<Found>;

    /// The repository's v1 image `id`, if stored (its chain is walked by
    /// [`crate::registry::image_chain`]).
    async fn image(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<V1Image>>;

    /// Writes a push atomically: all of it or none of it.
    async fn commit_push(&self, repo: &RepositoryName, push: &Push) -> StoreResult<()>;

    /// Stores a manifest built for a tag that had none and points the tag at it, only if
    /// the tag still names the v1 image and has no manifest (else `Conflict`, nothing
    /// written).
    async fn attach_generated_manifest(
        &self,
        repo: &RepositoryName,
        generated: GeneratedManifest<'_>,
    ) -> StoreResult<()>;

    /// The manifest `digest` with the tags naming it, as [`Self::commit_deletion`] takes it
    /// back; `None` when the manifest is unknown.
    async fn manifest_in_use(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<ManifestInUse>>;

    /// Applies a deletion atomically (the manifest, its referrer entry, its tags as planned,
    /// the event into an outbox), only if exactly the read's tags still name the manifest
    /// and it is still stored (else `Conflict`, nothing written).
    async fn commit_deletion(
        &self,
        repo: &RepositoryName,
        deletion: &ManifestDeletion,
    ) -> StoreResult<()>;

    /// Deletes a tag only. False when the tag is unknown. `event` (`tag_delete`) is for an
    /// outbox, as in [`Push::event`].
    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        event: &RegistryEvent,
    ) -> StoreResult<bool>;

    /// Links a blob to a repository, creating the repository if needed (the upload API
    /// does this; tests seed with it).
    async fn link_blob(&self, repo: &RepositoryName, digest: &Digest, size: u64)
    -> StoreResult<()>;

    // The rest of the distribution API: both adapters implement all of it (no defaults:
    // every function links a whole metadata store).

    /// The size of a blob linked to the repository, or `None`: one read.
    async fn blob_link(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<Option<u64>>;

    /// Removes a blob's link to the repository (the bytes stay for other repositories).
    /// False when it was not linked.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<bool>;

    /// At most `count` of the repository's tags in ASCII order, those after `after` (none
    /// for a repository that does not exist: the registry tells it from an empty one).
    async fn tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<String>>;

    /// At most `count` repository names in ASCII order, those after `after`.
    async fn repositories(&self, after: Option<&str>, count: usize) -> StoreResult<Vec<String>>;

    /// The manifests of the repository whose `subject` is `subject`.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>>;

    async fn create_upload(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<()>;

    async fn upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>>;

    /// Replaces an upload's state, only if the stored one is still at `expected_version`
    /// (else `Conflict`, nothing written): of two writers that read one state, one wins.
    async fn update_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()>;

    /// Forgets an upload, atomically: returns the state it had when it was deleted (what
    /// names its bytes, which the caller then removes), or `None` when it was unknown. A
    /// writer that took the upload before can then record nothing: its next update finds
    /// no upload (`Conflict`).
    async fn delete_upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>>;

    /// Every upload in progress, of every repository: what a purge chooses the abandoned
    /// ones from (`registry::started_before`). Uploads are few (each lives a day by default), so
    /// all come at once.
    async fn uploads(&self) -> StoreResult<Vec<(RepositoryName, Upload)>>;
}

/// A blob upload in progress: its state between requests, each of which may be a separate
/// Lambda invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
    /// The serialized SHA-256 state over those bytes, so no request re-reads them.
    pub hash_state: Vec<u8>,
    /// Bytes received but held back until they make a part (see [`BlobStore::put_pending`]).
    pub pending: u64,
    /// The key [`BlobStore::put_pending`] gave those bytes. Each write of pending bytes has
    /// a key of its own, so a request that loses a race for the upload can never change the
    /// bytes the winner recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_key: Option<String>,
    /// The backend's handle of the parts (S3's multipart UploadId), once one is written.
    pub handle: Option<String>,
    pub parts: Vec<Part>,
    /// RFC 3339, UTC.
    pub started: String,
    /// Bumped by every update: what [`MetadataStore::update_upload`] conditions on.
    #[serde(default)]
    pub version: u64,
    /// The request writing to the upload now, if one is: one writer at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Until when (Unix seconds) the writer's claim holds; a writer that died loses it then.
    #[serde(default)]
    pub lease_until: u64,
}

/// How long an upload may live from its start, unless configured otherwise: a day, as
/// S3's lifecycle rules count (in whole days).
pub const DEFAULT_UPLOAD_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The variable that configures it: registry-local's `--upload-max-age`, and on Lambda the
/// template's `UploadMaxAgeDays`. A duration as `24h`, `90m`, `2days`.
pub const UPLOAD_MAX_AGE_VAR: &str = "QUAYSIDE_UPLOAD_MAX_AGE";

/// An upload's greatest age as configured: `24h`, `90m`, `2days` (at least a minute: an
/// upload must have time to finish).
pub fn parse_upload_max_age(text: &str) -> Result<std::time::Duration, String> {
    let age = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{UPLOAD_MAX_AGE_VAR}={text:?} is not a duration ({e})"))?;
    if age < std::time::Duration::from_secs(60) {
        return Err(format!(
            "{UPLOAD_MAX_AGE_VAR}={text:?}: an upload needs at least a minute to finish"
        ));
    }
    Ok(age)
}

/// [`UPLOAD_MAX_AGE_VAR`] from the environment, [`DEFAULT_UPLOAD_MAX_AGE`] when it is unset.
pub fn upload_max_age_from_env() -> Result<std::time::Duration, String> {
    match std::env::var(UPLOAD_MAX_AGE_VAR) {
        Ok(text) => parse_upload_max_age(&text),
        Err(_) => Ok(DEFAULT_UPLOAD_MAX_AGE),
    }
}

/// The whole days S3's lifecycle rules must wait before removing an upload's bytes: the
/// greatest age rounded up (so a rule never removes the bytes of an upload that may still
/// finish), at least one.
pub fn upload_max_age_days(age: std::time::Duration) -> i32 {
    let days = age.as_secs().div_ceil(24 * 3600).max(1);
    i32::try_from(days).unwrap_or(i32::MAX)
}

/// A stored part of an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// 1-based, as S3 numbers parts.
    pub number: u32,
    /// The backend's tag of the part (S3's ETag).
    pub tag: String,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_uploads_greatest_age_is_a_duration_of_a_minute_or_more() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(parse_upload_max_age("24h"), Ok(hours(24)));
        assert_eq!(parse_upload_max_age("1days"), Ok(hours(24)));
        assert_eq!(parse_upload_max_age(" 90m "), Ok(Duration::from_secs(5400)));
        for bad in ["", "30s", "0", "soon", "-1h"] {
            assert!(parse_upload_max_age(bad).is_err(), "{bad:?}");
        }
        // S3's lifecycle rules wait whole days, never fewer than the age.
        assert_eq!(upload_max_age_days(Duration::from_secs(5400)), 1);
        assert_eq!(upload_max_age_days(hours(24)), 1);
        assert_eq!(upload_max_age_days(hours(25)), 2);
        assert_eq!(upload_max_age_days(hours(24 * 365)), 365);
    }
}
