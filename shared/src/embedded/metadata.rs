//! [`RedbMetadata`]: the [`MetadataStore`] port over one redb database file.
//!
//! May call: `ports`, `digest`, `names`, redb, serde_json. Must not know HTTP or AWS.
//!
//! # Tables
//!
//! Keys join their parts with `\0`, which neither a repository name, a tag, a digest nor a
//! v1 image id may contain, so a key prefix `repo\0` selects exactly one repository's rows
//! (range `repo\0` .. `repo\x01`).
//!
//! | table          | key                          | value                                        |
//! |----------------|------------------------------|----------------------------------------------|
//! | `repositories` | `repo`                       | `()`                                         |
//! | `tags`         | `repo\0tag`                  | `(manifest digest?, v1 image id?)`           |
//! | `manifests`    | `repo\0digest`               | `(media type, subject digest?, body bytes)`  |
//! | `images`       | `repo\0docker_id`            | [`V1Image`] as JSON                          |
//! | `blob_links`   | `repo\0digest`               | size (`u64`)                                 |
//! | `referrers`    | `repo\0subject\0digest`      | [`Referrer`] as JSON                         |
//! | `uploads`      | `repo\0id`                   | [`Upload`] as JSON                           |
//!
//! Keys sort bytewise, which for names and tags (ASCII) is the order the list APIs page in:
//! a page is one range scan that starts just after `last` and stops after the rows asked,
//! never a load of every name.
//! A manifest row keeps its subject so that deleting the manifest finds its referrer row.
//! Finding the tags of a deleted manifest scans the repository's tags: fine for a local
//! registry, and it spares a reverse index that every tag write would have to keep in step.
//!
//! Every write method is one redb write transaction, committed durably: all of it or none.

use super::cache::ReadCache;
use super::{OrBackend, blocking_on};
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    Found, GeneratedManifest, Lookup, ManifestDeletion, ManifestInUse, MetadataStore, Push,
    Referrer, RegistryEvent, StoreError, StoreResult, StoredManifest, TagOnManifest, TagTarget,
    Upload, V1Image,
};
use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

const REPOSITORIES: TableDefinition<&str, ()> = TableDefinition::new("repositories");
/// `(manifest digest, v1 image id)`.
const TAGS: TableDefinition<&str, (Option<&str>, Option<&str>)> = TableDefinition::new("tags");
/// `(media type, subject digest, body)`.
const MANIFESTS: TableDefinition<&str, (&str, Option<&str>, &[u8])> =
    TableDefinition::new("manifests");
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const BLOB_LINKS: TableDefinition<&str, u64> = TableDefinition::new("blob_links");
const REFERRERS: TableDefinition<&str, &[u8]> = TableDefinition::new("referrers");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");

/// The metadata of every repository in one redb file.
///
/// redb is synchronous. A write transaction may wait for another writer and ends with an
/// fsync, and a scan may read many rows, so writes and scans run on tokio's blocking pool
/// (`spawn_blocking`) rather than stalling an async worker. Point reads (a tag, a manifest, a
/// blob link, an upload, a push's lookup) run on the calling task: a read transaction never
/// waits for a writer (redb reads the last committed snapshot) and never syncs, so it costs
/// a few microseconds of CPU, less than the blocking pool's two thread hand-offs, which
/// were most of a manifest GET's time (BENCHMARKS.md). The hottest of them (a tag, a
/// manifest by digest, a blob link) are answered from a `ReadCache` between writes.
#[derive(Clone)]
pub struct RedbMetadata {
    db: Arc<Database>,
    cache: Arc<ReadCache>,
}

impl std::fmt::Debug for RedbMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbMetadata").finish_non_exhaustive()
    }
}

impl RedbMetadata {
    /// Opens the database at `path`, creating the file and its tables if needed. One process
    /// at a time may hold the file open.
    pub fn open(path: &Path) -> StoreResult<RedbMetadata> {
        let db = Database::create(path).or_backend()?;
        // Create every table up front: a read transaction cannot open a table that was never
        // created, and this way reads need not treat "no table" as "no rows".
        let txn = db.begin_write().or_backend()?;
        txn.open_table(REPOSITORIES).or_backend()?;
        txn.open_table(TAGS).or_backend()?;
        txn.open_table(MANIFESTS).or_backend()?;
        txn.open_table(IMAGES).or_backend()?;
        txn.open_table(BLOB_LINKS).or_backend()?;
        txn.open_table(REFERRERS).or_backend()?;
        txn.open_table(UPLOADS).or_backend()?;
        txn.commit().or_backend()?;
        Ok(RedbMetadata {
            db: Arc::new(db),
            cache: Arc::default(),
        })
    }

    /// The database, for the other stores kept in the same file (`super::access`).
    pub(crate) fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// Runs the point read `f` against the database on the calling task (see the type's
    /// doc): no scan, no write.
    fn read<T>(&self, f: impl FnOnce(&Database) -> StoreResult<T>) -> StoreResult<T> {
        f(&self.db)
    }

    /// Runs the write transaction `f` on the blocking pool, then clears the read cache on
    /// the same thread: even when the request that asked is dropped meanwhile.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let cache = Arc::clone(&self.cache);
        blocking_on(&self.db, move |db| {
            let result = f(db);
            cache.invalidate();
            result
        })
        .await
    }

    /// Removes `key` from `table` in a write transaction of its own; whether it was there.
    async fn remove_key<V: redb::Value + Send + 'static>(
        &self,
        table: TableDefinition<'static, &'static str, V>,
        key: String,
    ) -> StoreResult<bool> {
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let existed = txn
                .open_table(table)
                .or_backend()?
                .remove(key.as_str())
                .or_backend()?
                .is_some();
            txn.commit().or_backend()?;
            Ok(existed)
        })
        .await
    }
}

/// `a\0b`.
fn key(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

/// The key range of rows under `prefix`: `prefix\0` inclusive to `prefix\x01` exclusive.
fn prefix_range(prefix: &str) -> (String, String) {
    (format!("{prefix}\0"), format!("{prefix}\u{1}"))
}

/// At most `count` keys that start with `prefix` (they end before `high`, exclusive) and
/// sort after `prefix` + `after`, with the prefix stripped.
fn names_after<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    prefix: &str,
    high: Bound<&str>,
    after: Option<&str>,
    count: usize,
) -> StoreResult<Vec<String>> {
    // Without `after`, excluding the prefix itself skips nothing: no key equals it, since
    // no name or tag is empty.
    let low = format!("{prefix}{}", after.unwrap_or_default());
    let mut names = Vec::new();
    let range = table
        .range::<&str>((Bound::Excluded(low.as_str()), high))
        .or_backend()?;
    for row in range.take(count) {
        let (k, _) = row.or_backend()?;
        let k = k.value();
        let name = k.strip_prefix(prefix).ok_or_else(|| {
            StoreError::backend(format!("key {k:?} outside the range of {prefix:?}"))
        })?;
        names.push(name.to_string());
    }
    Ok(names)
}

fn parse_digest(s: &str) -> StoreResult<Digest> {
    s.parse()
        .map_err(|e| StoreError::backend(format!("stored digest {s:?}: {e}")))
}

#[async_trait]
impl MetadataStore for RedbMetadata {
    async fn repository_exists(&self, repo: &RepositoryName) -> StoreResult<bool> {
        let repo = repo.as_str();
        self.read(|db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(REPOSITORIES).or_backend()?;
            Ok(table.get(repo).or_backend()?.is_some())
        })
    }

    async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> StoreResult<Option<TagTarget>> {
        let repo = repo.as_str();
        let tag_key = key(repo, tag.as_str());
        if let Some(hit) = self.cache.tag(&tag_key) {
            return Ok(Some(hit));
        }
        let generation = self.cache.generation();
        let found = self.read(|db| {
            // One read transaction: the tag and its manifest come from the same snapshot.
            let txn = db.begin_read().or_backend()?;
            let tags = txn.open_table(TAGS).or_backend()?;
            let Some(row) = tags.get(tag_key.as_str()).or_backend()? else {
                return Ok(None);
            };
            let (digest, v1_image) = row.value();
            let v1_image = v1_image.map(str::to_string);
            let manifest = match digest {
                None => None,
                Some(digest) => {
                    let digest = parse_digest(digest)?;
                    let manifests = txn.open_table(MANIFESTS).or_backend()?;
                    let found = read_manifest(&manifests, repo, &digest)?;
                    // Writes keep a tag's manifest in place (one transaction each), so a
                    // dangling tag means the file was damaged.
                    Some(found.ok_or_else(|| {
                        StoreError::backend(format!("tag {tag_key:?} names missing {digest}"))
                    })?)
                }
            };
            Ok(Some(TagTarget { manifest, v1_image }))
        })?;
        if let Some(target) = &found {
            self.cache.put_tag(generation, tag_key, target);
        }
        Ok(found)
    }

    async fn manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<StoredManifest>> {
        let manifest_key = key(repo.as_str(), &digest.to_string());
        if let Some(hit) = self.cache.manifest(&manifest_key) {
            return Ok(Some(hit));
        }
        let generation = self.cache.generation();
        let found = self.read(|db| {
            let txn = db.begin_read().or_backend()?;
            let manifests = txn.open_table(MANIFESTS).or_backend()?;
            read_manifest(&manifests, repo.as_str(), digest)
        })?;
        if let Some(manifest) = &found {
            self.cache.put_manifest(generation, manifest_key, manifest);
        }
        Ok(found)
    }

    async fn lookup(&self, repo: &RepositoryName, lookup: &Lookup) -> StoreResult<Found> {
        let repo = repo.as_str();
        self.read(|db| {
            let txn = db.begin_read().or_backend()?;
            let blobs = txn.open_table(BLOB_LINKS).or_backend()?;
            let manifests = txn.open_table(MANIFESTS).or_backend()?;
            let images = txn.open_table(IMAGES).or_backend()?;
            let mut found = Found::default();
            for digest in &lookup.blobs {
                let k = key(repo, &digest.to_string());
                if blobs.get(k.as_str()).or_backend()?.is_some() {
                    found.blobs.insert(digest.clone());
                }
            }
            for digest in &lookup.manifests {
                let k = key(repo, &digest.to_string());
                if manifests.get(k.as_str()).or_backend()?.is_some() {
                    found.manifests.insert(digest.clone());
                }
            }
            for id in &lookup.images {
                if let Some(image) = read_image(&images, repo, id)? {
                    found.images.insert(id.clone(), image);
                }
            }
            Ok(found)
        })
    }

    async fn image(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<V1Image>> {
        let repo = repo.as_str().to_string();
        let id = id.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let images = txn.open_table(IMAGES).or_backend()?;
            read_image(&images, &repo, &id)
        })
        .await
    }

    async fn commit_push(&self, repo: &RepositoryName, push: &Push) -> StoreResult<()> {
        let repo = repo.as_str().to_string();
        let push = push.clone();
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            {
                let mut repositories = txn.open_table(REPOSITORIES).or_backend()?;
                repositories.insert(repo.as_str(), ()).or_backend()?;

                let digest = push.manifest.digest.to_string();
                let subject = push.referrer.as_ref().map(|r| r.subject.to_string());
                let mut manifests = txn.open_table(MANIFESTS).or_backend()?;
                manifests
                    .insert(
                        key(&repo, &digest).as_str(),
                        (
                            push.manifest.media_type.as_str(),
                            subject.as_deref(),
                            push.manifest.body.as_ref(),
                        ),
                    )
                    .or_backend()?;

                let mut tags = txn.open_table(TAGS).or_backend()?;
                for tag in &push.tags {
                    tags.insert(
                        key(&repo, tag.as_str()).as_str(),
                        (Some(digest.as_str()), push.tag_v1_image.as_deref()),
                    )
                    .or_backend()?;
                }

                let mut images = txn.open_table(IMAGES).or_backend()?;
                for image in &push.images {
                    let k = key(&repo, &image.docker_id);
                    // An image id names its content; an existing row stays as first written.
                    if images.get(k.as_str()).or_backend()?.is_none() {
                        let json = serde_json::to_vec(image).or_backend()?;
                        images.insert(k.as_str(), json.as_slice()).or_backend()?;
                    }
                }

                if let Some(referrer) = &push.referrer {
                    let mut referrers = txn.open_table(REFERRERS).or_backend()?;
                    let k = key(&key(&repo, &referrer.subject.to_string()), &digest);
                    let json = serde_json::to_vec(referrer).or_backend()?;
                    referrers.insert(k.as_str(), json.as_slice()).or_backend()?;
                }
            }
            txn.commit().or_backend()
        })
        .await
    }

    async fn attach_generated_manifest(
        &self,
        repo: &RepositoryName,
        generated: GeneratedManifest<'_>,
    ) -> StoreResult<()> {
        let repo = repo.as_str().to_string();
        let tag_key = key(&repo, generated.tag.as_str());
        let tag_name = format!("{repo}:{}", generated.tag);
        let v1_image = generated.v1_image.to_string();
        let manifest = generated.manifest.clone();
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let conflict = {
                let mut tags = txn.open_table(TAGS).or_backend()?;
                // The condition and the writes share the transaction, so no other writer can
                // slip in between (redb has one writer at a time).
                let current = tags.get(tag_key.as_str()).or_backend()?.map(|row| {
                    let (digest, v1) = row.value();
                    (digest.is_some(), v1.map(str::to_string))
                });
                match current {
                    Some((false, Some(v1))) if v1 == v1_image => {
                        let digest = manifest.digest.to_string();
                        let mut manifests = txn.open_table(MANIFESTS).or_backend()?;
                        manifests
                            .insert(
                                key(&repo, &digest).as_str(),
                                (manifest.media_type.as_str(), None, manifest.body.as_ref()),
                            )
                            .or_backend()?;
                        tags.insert(
                            tag_key.as_str(),
                            (Some(digest.as_str()), Some(v1_image.as_str())),
                        )
                        .or_backend()?;
                        None
                    }
                    other => Some(format!(
                        "tag {tag_name} no longer names v1 image {v1_image} without a \
                         manifest (now: {other:?})"
                    )),
                }
            };
            commit_unless(txn, conflict)
        })
        .await
    }

    async fn manifest_in_use(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<ManifestInUse>> {
        let repo = repo.as_str().to_string();
        let digest = digest.to_string();
        blocking_on(&self.db, move |db| {
            // One snapshot: the manifest and the tags naming it agree.
            let txn = db.begin_read().or_backend()?;
            let manifests = txn.open_table(MANIFESTS).or_backend()?;
            let Some(row) = manifests.get(key(&repo, &digest).as_str()).or_backend()? else {
                return Ok(None);
            };
            let subject = row.value().1.map(parse_digest).transpose()?;
            let tags = tags_naming(&txn.open_table(TAGS).or_backend()?, &repo, &digest)?;
            Ok(Some(ManifestInUse {
                subject,
                tags,
                mark: None,
            }))
        })
        .await
    }

    /// The precondition is checked by reading again in the write transaction: redb has
    /// one writer at a time, so nothing lands between the check and the writes.
    async fn commit_deletion(
        &self,
        repo: &RepositoryName,
        deletion: &ManifestDeletion,
    ) -> StoreResult<()> {
        // Events go to the JSON-lines sink after the write: this store keeps no outbox.
        let repo = repo.as_str().to_string();
        let deletion = deletion.clone();
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let digest = deletion.digest.to_string();
            let manifest_key = key(&repo, &digest);
            let conflict = {
                let mut manifests = txn.open_table(MANIFESTS).or_backend()?;
                let mut tags = txn.open_table(TAGS).or_backend()?;
                // A conflict aborts the transaction: nothing removed here stays removed.
                if tags_naming(&tags, &repo, &digest)? != deletion.read.tags {
                    Some(format!("the tags naming {digest} in {repo} changed"))
                } else if manifests
                    .remove(manifest_key.as_str())
                    .or_backend()?
                    .is_none()
                {
                    Some(format!("manifest {digest} of {repo} is gone"))
                } else {
                    if let Some(subject) = &deletion.read.subject {
                        let mut referrers = txn.open_table(REFERRERS).or_backend()?;
                        let k = key(&key(&repo, &subject.to_string()), &digest);
                        referrers.remove(k.as_str()).or_backend()?;
                    }
                    for (tag, kept_image) in deletion.tag_fates() {
                        let tag_key = key(&repo, tag.as_str());
                        match kept_image {
                            Some(v1_image) => {
                                tags.insert(tag_key.as_str(), (None, Some(v1_image)))
                                    .or_backend()?;
                            }
                            None => {
                                tags.remove(tag_key.as_str()).or_backend()?;
                            }
                        }
                    }
                    None
                }
            };
            commit_unless(txn, conflict)
        })
        .await
    }

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        _event: &RegistryEvent,
    ) -> StoreResult<bool> {
        self.remove_key(TAGS, key(repo.as_str(), tag.as_str()))
            .await
    }

    async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> StoreResult<()> {
        let link_key = key(repo.as_str(), &digest.to_string());
        let repo = repo.as_str().to_string();
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            {
                // A repository exists from its first pushed blob, as in distribution.
                txn.open_table(REPOSITORIES)
                    .or_backend()?
                    .insert(repo.as_str(), ())
                    .or_backend()?;
                let mut links = txn.open_table(BLOB_LINKS).or_backend()?;
                links.insert(link_key.as_str(), size).or_backend()?;
            }
            txn.commit().or_backend()
        })
        .await
    }

    async fn blob_link(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<Option<u64>> {
        let link_key = key(repo.as_str(), &digest.to_string());
        if let Some(hit) = self.cache.blob_link(&link_key) {
            return Ok(Some(hit));
        }
        let generation = self.cache.generation();
        let found = self.read(|db| {
            let txn = db.begin_read().or_backend()?;
            let links = txn.open_table(BLOB_LINKS).or_backend()?;
            Ok(links
                .get(link_key.as_str())
                .or_backend()?
                .map(|row| row.value()))
        })?;
        if let Some(size) = found {
            self.cache.put_blob_link(generation, link_key, size);
        }
        Ok(found)
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> StoreResult<bool> {
        self.remove_key(BLOB_LINKS, key(repo.as_str(), &digest.to_string()))
            .await
    }

    async fn tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<String>> {
        let (prefix, high) = prefix_range(repo.as_str());
        let after = after.map(str::to_string);
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let tags = txn.open_table(TAGS).or_backend()?;
            // A schema1 tag kept without a manifest is still a row here, so it is listed.
            let high = Bound::Excluded(high.as_str());
            names_after(&tags, &prefix, high, after.as_deref(), count)
        })
        .await
    }

    async fn repositories(&self, after: Option<&str>, count: usize) -> StoreResult<Vec<String>> {
        let after = after.map(str::to_string);
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let repositories = txn.open_table(REPOSITORIES).or_backend()?;
            names_after(&repositories, "", Bound::Unbounded, after.as_deref(), count)
        })
        .await
    }

    /// Ordered by the referrers' digests.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>> {
        let (low, high) = prefix_range(&key(repo.as_str(), &subject.to_string()));
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(REFERRERS).or_backend()?;
            let mut out = Vec::new();
            for row in table.range(low.as_str()..high.as_str()).or_backend()? {
                let (_, value) = row.or_backend()?;
                out.push(serde_json::from_slice(value.value()).or_backend()?);
            }
            Ok(out)
        })
        .await
    }

    /// `Conflict` if the id is taken (never, for random ids), as a conditional put would be.
    async fn create_upload(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<()> {
        let upload_key = key(repo.as_str(), &upload.id);
        let json = serde_json::to_vec(upload).or_backend()?;
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let taken = {
                let mut uploads = txn.open_table(UPLOADS).or_backend()?;
                if uploads.get(upload_key.as_str()).or_backend()?.is_some() {
                    true
                } else {
                    uploads
                        .insert(upload_key.as_str(), json.as_slice())
                        .or_backend()?;
                    false
                }
            };
            if taken {
                txn.abort().or_backend()?;
                return Err(StoreError::Conflict(format!(
                    "upload {upload_key:?} exists"
                )));
            }
            txn.commit().or_backend()
        })
        .await
    }

    async fn upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        let upload_key = key(repo.as_str(), id);
        self.read(|db| {
            let txn = db.begin_read().or_backend()?;
            let uploads = txn.open_table(UPLOADS).or_backend()?;
            read_upload(&uploads, &upload_key)
        })
    }

    async fn update_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()> {
        let upload_key = key(repo.as_str(), &upload.id);
        let json = serde_json::to_vec(upload).or_backend()?;
        self.write(move |db| {
            // Read and replace in one write transaction: redb runs one writer at a time, so
            // no other update can land between the check and the write.
            let txn = db.begin_write().or_backend()?;
            let conflict = {
                let mut uploads = txn.open_table(UPLOADS).or_backend()?;
                match read_upload(&uploads, &upload_key)? {
                    None => Some(format!("upload {upload_key:?} is gone")),
                    Some(stored) if stored.version != expected_version => Some(format!(
                        "upload {upload_key:?} is at version {}, not {expected_version}",
                        stored.version
                    )),
                    Some(_) => {
                        uploads
                            .insert(upload_key.as_str(), json.as_slice())
                            .or_backend()?;
                        None
                    }
                }
            };
            commit_unless(txn, conflict)
        })
        .await
    }

    async fn delete_upload(&self, repo: &RepositoryName, id: &str) -> StoreResult<Option<Upload>> {
        let upload_key = key(repo.as_str(), id);
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let removed = {
                let mut uploads = txn.open_table(UPLOADS).or_backend()?;
                let row = uploads.remove(upload_key.as_str()).or_backend()?;
                row.map(|row| serde_json::from_slice::<Upload>(row.value()).or_backend())
                    .transpose()?
            };
            txn.commit().or_backend()?;
            Ok(removed)
        })
        .await
    }

    /// A scan of the `uploads` table on the blocking pool: it holds only uploads in
    /// progress, a few rows each a few hundred bytes.
    async fn uploads(&self) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let uploads = txn.open_table(UPLOADS).or_backend()?;
            let mut all = Vec::new();
            for row in uploads.iter().or_backend()? {
                let (k, v) = row.or_backend()?;
                let (repo, _) = k.value().split_once('\0').ok_or_else(|| {
                    StoreError::backend(format!("upload key {:?} has no repository", k.value()))
                })?;
                let repo = RepositoryName::parse(repo).map_err(StoreError::backend)?;
                all.push((repo, serde_json::from_slice(v.value()).or_backend()?));
            }
            Ok(all)
        })
        .await
    }
}

/// Reads one upload row.
fn read_upload(
    uploads: &impl ReadableTable<&'static str, &'static [u8]>,
    upload_key: &str,
) -> StoreResult<Option<Upload>> {
    match uploads.get(upload_key).or_backend()? {
        None => Ok(None),
        Some(row) => serde_json::from_slice(row.value()).or_backend().map(Some),
    }
}

/// Reads one manifest row of `repo`.
fn read_manifest(
    manifests: &impl ReadableTable<&'static str, (&'static str, Option<&'static str>, &'static [u8])>,
    repo: &str,
    digest: &Digest,
) -> StoreResult<Option<StoredManifest>> {
    let k = key(repo, &digest.to_string());
    Ok(manifests.get(k.as_str()).or_backend()?.map(|row| {
        let (media_type, _subject, body) = row.value();
        StoredManifest {
            digest: digest.clone(),
            media_type: media_type.to_string(),
            body: Bytes::copy_from_slice(body),
        }
    }))
}

/// Commits `txn`, or aborts it and answers `Conflict` when a precondition failed (`why`).
fn commit_unless(txn: redb::WriteTransaction, conflict: Option<String>) -> StoreResult<()> {
    match conflict {
        Some(why) => {
            txn.abort().or_backend()?;
            Err(StoreError::Conflict(why))
        }
        None => txn.commit().or_backend(),
    }
}

/// Reads one v1 image row of `repo`.
fn read_image(
    images: &impl ReadableTable<&'static str, &'static [u8]>,
    repo: &str,
    id: &str,
) -> StoreResult<Option<V1Image>> {
    let k = key(repo, id);
    match images.get(k.as_str()).or_backend()? {
        None => Ok(None),
        Some(row) => serde_json::from_slice(row.value()).or_backend().map(Some),
    }
}

/// The tags of `repo` naming manifest `digest`, in ASCII order: a scan of the repository's
/// tags (see the module's doc).
fn tags_naming(
    tags: &impl ReadableTable<&'static str, (Option<&'static str>, Option<&'static str>)>,
    repo: &str,
    digest: &str,
) -> StoreResult<Vec<TagOnManifest>> {
    let (low, high) = prefix_range(repo);
    let mut naming = Vec::new();
    for row in tags.range(low.as_str()..high.as_str()).or_backend()? {
        let (k, value) = row.or_backend()?;
        let (target, v1_image) = value.value();
        if target == Some(digest) {
            let k = k.value();
            let tag = Tag::parse(k.strip_prefix(low.as_str()).unwrap_or_default())
                .map_err(|e| StoreError::backend(format!("stored tag {k:?}: {e}")))?;
            naming.push(TagOnManifest {
                tag,
                v1_image: v1_image.map(str::to_string),
            });
        }
    }
    Ok(naming)
}
