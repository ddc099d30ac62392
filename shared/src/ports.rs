//! The storage ports: what the registry needs from a metadata store, a blob store, a signer,
//! an event sink and an access store (users, robots, grants). Each has an embedded adapter
//! (`crate::embedded`) and an AWS adapter; `tests/contract/` holds the promises both keep.
//!
//! The records here are the domain's, not any backend's item shapes. Each method is shaped so
//! that a DynamoDB/S3 adapter answers it in one round trip where the hot path needs it
//! (manifest GET/HEAD: one read; manifest PUT: one batched lookup, one transaction).
//! May call: `digest`, `names`. Must not know HTTP or any backend.

use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// A failure of a backend. Never caused by what a client sent: the caller answers 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of a write failed because another writer got there first.
    #[error("write conflict: {0}")]
    Conflict(String),
    #[error("backend failure: {0}")]
    Backend(String),
    /// The backend refused the call for its rate (throttling): the client may retry soon.
    #[error("backend throttled: {0}")]
    Throttled(String),
    /// The backend did not answer in time or said it cannot now: the client may retry.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// What was to be stored under a digest does not hash to it: nothing was stored.
    #[error("digest mismatch: {0}")]
    Mismatch(String),
}

impl StoreError {
    pub fn backend(cause: impl std::fmt::Display) -> Self {
        StoreError::Backend(cause.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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

/// What a manifest deletion did to the tags that pointed at it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletedManifest {
    /// Tags removed with the manifest.
    pub removed_tags: Vec<Tag>,
    /// Schema1 tags kept because their v1 image chain remains; they now have no manifest.
    pub kept_tags: Vec<Tag>,
}

/// Repositories, tags, manifests, v1 images, blob links (and later uploads).
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
    /// the tag still names `v1_image` and has no manifest (else `Conflict`, nothing written).
    async fn attach_generated_manifest(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        v1_image: &str,
        manifest: &StoredManifest,
    ) -> StoreResult<()>;

    /// Deletes a manifest. Tags that pointed at it go too, except those with a v1 image,
    /// which stay without a manifest. `None` when the manifest is unknown. `event`
    /// (`manifest_delete`) is for an outbox, as in [`Push::event`]; the store sets its
    /// `updated_tags` to the tags it removed.
    async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        event: &RegistryEvent,
    ) -> StoreResult<Option<DeletedManifest>>;

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

    // The rest of the distribution API. Both adapters implement all of it; the default
    // bodies are for a store without the capability, which answers a backend fault naming
    // the method, never a wrong result.

    /// The size of a blob linked to the repository, or `None`: one read.
    async fn blob_link(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<Option<u64>> {
        let _ = (repo, digest);
        Err(not_implemented("blob_link"))
    }

    /// Removes a blob's link to the repository (the bytes stay for other repositories).
    /// False when it was not linked.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<bool> {
        let _ = (repo, digest);
        Err(not_implemented("unlink_blob"))
    }

    /// A page of the repository's tags in ASCII order, after `page.last`; `None` when the
    /// repository does not exist.
    async fn tags(&self, repo: &RepositoryName, page: &PageRequest) -> StoreResult<Option<Page>> {
        let _ = (repo, page);
        Err(not_implemented("tags"))
    }

    /// A page of every repository's name in ASCII order, after `page.last`.
    async fn repositories(&self, page: &PageRequest) -> StoreResult<Page> {
        let _ = page;
        Err(not_implemented("repositories"))
    }

    /// The manifests of the repository whose `subject` is `subject`.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>> {
        let _ = (repo, subject);
        Err(not_implemented("referrers"))
    }

    async fn create_upload(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<()> {
        let _ = (repo, upload);
        Err(not_implemented("create_upload"))
    }

    async fn upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        let _ = (repo, id);
        Err(not_implemented("upload"))
    }

    /// Replaces an upload's state, only if the stored one is still at `expected_version`
    /// (else `Conflict`, nothing written): of two writers that read one state, one wins.
    async fn update_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()> {
        let _ = (repo, upload, expected_version);
        Err(not_implemented("update_upload"))
    }

    /// Forgets an upload, atomically: returns the state it had when it was deleted (what
    /// names its bytes, which the caller then removes), or `None` when it was unknown. A
    /// writer that took the upload before can then record nothing: its next update finds
    /// no upload (`Conflict`).
    async fn delete_upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        let _ = (repo, id);
        Err(not_implemented("delete_upload"))
    }

    /// Every upload of every repository whose `started` is before `cutoff` (or cannot be
    /// read: it has no age, and would otherwise stay for ever): what a purge of abandoned
    /// uploads removes. Uploads are few (each lives a day by default), so all come at once.
    async fn uploads_started_before(
        &self,
        cutoff: SystemTime,
    ) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        let _ = cutoff;
        Err(not_implemented("uploads_started_before"))
    }
}

/// What deleting a manifest does to a tag naming it, in every store: a schema1 tag whose v1
/// image is stored stays, without a manifest (the next `GET` by tag builds one from the
/// image chain, as the seed did: docs/seed.md); any other tag goes, and so does a schema1
/// tag whose image is missing, for which nothing could be built.
pub fn tag_outlives_its_manifest(v1_image: Option<&str>, image_stored: bool) -> bool {
    v1_image.is_some() && image_stored
}

/// Whether an upload's `started` (RFC 3339) is before `cutoff`; a time that does not parse
/// counts as before: such an upload has no age, and a purge must not keep it for ever.
pub fn started_before(upload: &Upload, cutoff: SystemTime) -> bool {
    match humantime::parse_rfc3339_weak(&upload.started) {
        Ok(started) => started < cutoff,
        Err(_) => true,
    }
}

fn not_implemented(method: &str) -> StoreError {
    StoreError::Backend(format!("{method} is not available in this store"))
}

/// What a client asks of a list: at most `limit` names after `last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub last: Option<String>,
}

/// A page of names, and whether more follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    pub more: bool,
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

/// What a blob GET answers: the bytes (registry-local), or where to fetch them (a presigned
/// S3 URL, so that no layer bytes pass through Lambda).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobBody {
    Bytes(Bytes),
    Redirect(String),
    /// `len` bytes of the file at `path` from `offset`: the HTTP server streams them (a
    /// blob is never read into memory).
    File {
        path: std::path::PathBuf,
        offset: u64,
        len: u64,
    },
}

/// Where a streamed part's bytes come from: the request body, hashed by the registry as
/// they pass (so the store writes exactly the bytes the upload's digest covers).
#[async_trait]
pub trait PartSource: Send {
    /// The next bytes, or `None` at the end of the part.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;

    /// Whether [`PartSource::part_sha256`] will know the part's SHA-256 once it has ended
    /// (the registry's own hash, when the part starts an upload hashed with SHA-256): then
    /// the store need not hash the bytes a second time.
    fn knows_part_sha256(&self) -> bool {
        false
    }

    /// Once the part has ended: the hex SHA-256 of exactly its bytes, if the source
    /// computed it on the way.
    fn part_sha256(&self) -> Option<String> {
        None
    }
}

/// Content-addressed blob bytes.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The blob's size, or `None` if it is not stored.
    async fn size(&self, digest: &Digest) -> StoreResult<Option<u64>>;
    async fn get(&self, digest: &Digest) -> StoreResult<Option<Bytes>>;
    /// Stores `bytes` under `digest`, unless a blob is stored there already (a blob is
    /// never replaced). The store itself checks that the bytes hash to `digest`: nothing is
    /// ever stored under a digest that was not computed over exactly its bytes.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> StoreResult<()>;

    /// How a client gets the blob's bytes, `range` (inclusive, as HTTP `Range`) or all;
    /// `None` when it is not stored. A store that answers with a redirect may do so without
    /// asking whether the blob is there (S3 presigns without a call): the registry fetches
    /// only blobs its link says are stored.
    async fn fetch(
        &self,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> StoreResult<Option<BlobBody>> {
        let _ = (digest, range);
        Err(not_implemented("fetch"))
    }

    // The bytes of uploads in progress, assembled in parts as S3 multipart uploads are:
    // every part but the last at least [`MIN_PART_BYTES`]; smaller chunks wait as pending
    // bytes. The default bodies are for a store without the capability (a function built
    // without S3), as in `MetadataStore`.

    /// The largest part the store takes from memory (`put_part`), or `None` for a store
    /// that streams a part of any size ([`BlobStore::put_part_from`]), and needs no
    /// pending bytes: a folder. S3 parts are buffered, so their size bounds memory.
    fn part_buffer(&self) -> Option<usize> {
        Some(MIN_PART_BYTES)
    }

    /// Stores part `number` of upload `id` from `source`, to its end; returns its tag and
    /// size. Only for stores whose [`BlobStore::part_buffer`] is `None`.
    async fn put_part_from(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        source: &mut dyn PartSource,
    ) -> StoreResult<(String, u64)> {
        let _ = (id, handle, number, source);
        Err(not_implemented("put_part_from"))
    }

    /// Starts the parts of upload `id`; returns the backend's handle for them.
    async fn begin_parts(&self, id: &str) -> StoreResult<String> {
        let _ = id;
        Err(not_implemented("begin_parts"))
    }

    /// Stores part `number` of upload `id`; returns its tag.
    async fn put_part(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        bytes: Bytes,
    ) -> StoreResult<String> {
        let _ = (id, handle, number, bytes);
        Err(not_implemented("put_part"))
    }

    /// Stores pending bytes of upload `id` (those not yet in a part) under a new key, which
    /// it returns: no other write can change them (see [`Upload::pending_key`]).
    async fn put_pending(&self, id: &str, bytes: Bytes) -> StoreResult<String> {
        let _ = (id, bytes);
        Err(not_implemented("put_pending"))
    }

    /// The pending bytes stored under `key`; `Conflict` if they are gone (the upload was
    /// finished or cancelled meanwhile).
    async fn pending(&self, id: &str, key: &str) -> StoreResult<Bytes> {
        let _ = (id, key);
        Err(not_implemented("pending"))
    }

    /// Removes the pending bytes stored under `key` (superseded, or of a request that lost
    /// a race); already gone is fine.
    async fn remove_pending(&self, id: &str, key: &str) -> StoreResult<()> {
        let _ = (id, key);
        Err(not_implemented("remove_pending"))
    }

    /// Stores the pending bytes `key` (all of an upload, whose digest the registry computed
    /// as they were written) as the blob `digest`, which the registry found not stored. The
    /// default reads them and puts them; S3 copies them within the bucket.
    async fn adopt_pending(&self, id: &str, key: &str, digest: &Digest) -> StoreResult<()> {
        let bytes = self.pending(id, key).await?;
        self.put(digest, bytes).await
    }

    /// Whether [`BlobStore::complete_parts`] hashes the joined parts with the digest's own
    /// algorithm and refuses a mismatch ([`StoreError::Mismatch`]), so that a digest of
    /// another algorithm than the upload's can be checked there.
    fn checks_joined_parts(&self) -> bool {
        false
    }

    /// Joins the parts into the blob `digest` (unless a blob is stored there already) and
    /// removes the parts. A store that can hash what it joins checks the digest too.
    async fn complete_parts(
        &self,
        id: &str,
        handle: &str,
        parts: &[Part],
        digest: &Digest,
    ) -> StoreResult<()> {
        let _ = (id, handle, parts, digest);
        Err(not_implemented("complete_parts"))
    }

    /// Removes every byte of upload `id`: its parts (`handle`, if the state names one) and
    /// its pending bytes (`pending`), and whatever else the store holds for the upload that
    /// no state named (the parts of a begin whose answer was lost and retried).
    async fn abort_parts(
        &self,
        id: &str,
        handle: Option<&str>,
        pending: Option<&str>,
    ) -> StoreResult<()> {
        let _ = (id, handle, pending);
        Err(not_implemented("abort_parts"))
    }

    /// Removes what the store holds for uploads that no upload state can name any more,
    /// last written before `cutoff`: bytes an upload left when its state went without them
    /// (a crash between the two), and temporary files a crash left behind. Whatever was
    /// written before `cutoff` belongs to an upload started before it, so a purge with
    /// the same cutoff as [`MetadataStore::uploads_started_before`] never touches a live
    /// upload. Returns how many files or objects it removed.
    async fn purge_stray(&self, cutoff: SystemTime) -> StoreResult<u64> {
        let _ = cutoff;
        Err(not_implemented("purge_stray"))
    }
}

/// S3's smallest part but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// The public half of the signing key as a libtrust JWK (RSA: `n`, `e`, `kid`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// Signs with the registry's RSA key: RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The RS256 signature of `message`.
    async fn sign_rs256(&self, message: &[u8]) -> StoreResult<Vec<u8>>;
    /// The public key, fetched once and kept.
    async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>>;
}

/// A change of the registry that subscribers hear of (`repo_push` and the deletes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEvent {
    pub event: String,
    pub repository: String,
    pub namespace: String,
    pub updated_tags: Vec<String>,
    /// The manifest pushed or deleted; none for a tag deletion.
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// RFC 3339, UTC.
    pub time: String,
}

impl RegistryEvent {
    /// The event's line in the log (target `quayside::events`), as every sink writes it.
    pub fn log(&self, note: &str) {
        tracing::info!(
            target: "quayside::events",
            event = %self.event,
            repository = %self.repository,
            digest = ?self.digest,
            tags = ?self.updated_tags,
            "{note}"
        );
    }
}

/// Where events go once their change is stored. The embedded sink appends to a JSON-lines
/// file. On AWS the events travel in the table's outbox and its stream (see
/// [`Push::event`]), so the functions' sink only logs, and the notifier's publishes to SNS.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &RegistryEvent) -> StoreResult<()>;
}

/// A permission on a repository, weakest first: `read` pulls; `write` also pushes and
/// deletes; `admin` is `write` and owns the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Write,
    Admin,
}

impl Permission {
    /// The name both stores keep a grant under.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    /// A grant as a store kept it ([`Permission::as_str`]); anything else is a fault of
    /// the store, not of a client.
    pub fn from_stored(text: &str) -> StoreResult<Permission> {
        match text {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            other => Err(StoreError::backend(format!("stored permission {other:?}"))),
        }
    }
}

/// A user (`name`) or a robot account (`namespace+name`) as the access store keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub name: String,
    /// The argon2id hash of the password or robot secret (a PHC string), never the secret.
    pub secret_hash: String,
    /// Namespaces where it may create repositories by pushing (a user's own needs no entry).
    pub create_namespaces: std::collections::BTreeSet<String>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl std::fmt::Debug for PrincipalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalRecord")
            .field("name", &self.name)
            .field("create_namespaces", &self.create_namespaces)
            .finish_non_exhaustive()
    }
}

/// What the access store knows of one repository, for one principal (or none: anonymous).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryAccess {
    pub public: bool,
    /// The principal that created it through a namespace create right, once claimed.
    pub creator: Option<String>,
    /// The principal's own grant on it.
    pub permission: Option<Permission>,
}

/// Who may do what: principals with their secrets' hashes, grants per repository,
/// visibility. The rules that read these live in `auth`; a store only keeps them.
#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn principal(&self, name: &str) -> StoreResult<Option<PrincipalRecord>>;
    /// Every principal, by name.
    async fn principals(&self) -> StoreResult<Vec<PrincipalRecord>>;
    /// Adds a principal; false (nothing written) when the name is taken.
    async fn create_principal(&self, record: &PrincipalRecord) -> StoreResult<bool>;
    /// Replaces a principal's secret hash; false when it is unknown.
    async fn set_secret(&self, name: &str, secret_hash: &str) -> StoreResult<bool>;
    /// Removes a principal and every grant it holds; false when it is unknown.
    async fn delete_principal(&self, name: &str) -> StoreResult<bool>;
    /// Allows or forbids creating repositories in `namespace`; false when unknown.
    async fn set_namespace_create(
        &self,
        name: &str,
        namespace: &str,
        allowed: bool,
    ) -> StoreResult<bool>;
    /// One read (or one batch): visibility, creator, and `principal`'s grant.
    async fn repository_access(
        &self,
        repo: &RepositoryName,
        principal: Option<&str>,
    ) -> StoreResult<RepositoryAccess> {
        let mut all = self
            .repositories_access(std::slice::from_ref(repo), principal)
            .await?;
        all.pop()
            .ok_or_else(|| StoreError::backend("the store answered no access for a repository"))
    }
    /// [`AccessStore::repository_access`] of many repositories at once, in order.
    async fn repositories_access(
        &self,
        repos: &[RepositoryName],
        principal: Option<&str>,
    ) -> StoreResult<Vec<RepositoryAccess>>;
    /// Grants (`Some`) or revokes (`None`) a permission; returns the one it replaced.
    async fn set_permission(
        &self,
        repo: &RepositoryName,
        principal: &str,
        permission: Option<Permission>,
    ) -> StoreResult<Option<Permission>>;
    /// The grants on a repository, by principal name.
    async fn grants(&self, repo: &RepositoryName) -> StoreResult<Vec<(String, Permission)>>;
    /// The grants a principal holds, by repository name.
    async fn grants_of(&self, principal: &str) -> StoreResult<Vec<(String, Permission)>>;
    async fn set_public(&self, repo: &RepositoryName, public: bool) -> StoreResult<()>;
    /// Records `principal` as the creator and admin of `repo`, only if no one claimed it
    /// before (atomically); true when `principal` holds the claim afterwards.
    async fn claim_repository(&self, repo: &RepositoryName, principal: &str) -> StoreResult<bool>;
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

    #[test]
    fn an_upload_started_before_a_cutoff_or_of_no_readable_age_is_stale() {
        let upload = |started: &str| Upload {
            id: "u".into(),
            offset: 0,
            hash_state: vec![],
            pending: 0,
            pending_key: None,
            handle: None,
            parts: vec![],
            started: started.into(),
            version: 0,
            writer: None,
            lease_until: 0,
        };
        let cutoff = humantime::parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        assert!(started_before(&upload("2026-01-01T23:59:59Z"), cutoff));
        assert!(!started_before(&upload("2026-01-02T00:00:00Z"), cutoff));
        assert!(!started_before(&upload("2026-01-03T00:00:00Z"), cutoff));
        assert!(started_before(&upload("not a time"), cutoff));
    }
}
