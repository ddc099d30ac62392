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
//! a page is one range scan that starts just after `last` and stops after `limit + 1` rows
//! (the extra row only says whether more follow), never a load of every name.
//! A manifest row keeps its subject so that deleting the manifest finds its referrer row.
//! Finding the tags of a deleted manifest scans the repository's tags: fine for a local
//! registry, and it spares a reverse index that every tag write would have to keep in step.
//!
//! Every write method is one redb write transaction, committed durably: all of it or none.

use super::cache::ReadCache;
use super::{OrBackend, blocking};
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    DeletedManifest, Found, Lookup, MetadataStore, Page, PageRequest, Push, Referrer,
    RegistryEvent, StoreError, StoreResult, StoredManifest, TagTarget, Upload, V1Image,
    started_before,
};
use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

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
/// manifest by digest, a blob link) are answered from a [`ReadCache`] between writes.
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

    /// Runs `f` against the database on the blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking(move || f(&db)).await
    }

    /// Runs the write transaction `f` on the blocking pool, then clears the read cache on
    /// the same thread: even when the request that asked is dropped meanwhile.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let cache = Arc::clone(&self.cache);
        blocking(move || {
            let result = f(&db);
            cache.invalidate();
            result
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

/// One page of the keys that start with `prefix` (they end before `high`, exclusive) and
/// follow `prefix + page.last`, each without `prefix`: one range scan of `limit + 1` rows.
fn page_of<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    prefix: &str,
    high: Bound<&str>,
    page: &PageRequest,
) -> StoreResult<Page> {
    // Without `last`, excluding the prefix itself skips nothing: no key equals it, since
    // no name or tag is empty.
    let low = match &page.last {
        Some(last) => format!("{prefix}{last}"),
        None => prefix.to_string(),
    };
    let mut names = Vec::new();
    let mut more = false;
    let range = table
        .range::<&str>((Bound::Excluded(low.as_str()), high))
        .or_backend()?;
    for row in range {
        let (k, _) = row.or_backend()?;
        if names.len() == page.limit {
            more = true;
            break;
        }
        let k = k.value();
        let name = k.strip_prefix(prefix).ok_or_else(|| {
            StoreError::backend(format!("key {k:?} outside the range of {prefix:?}"))
        })?;
        names.push(name.to_string());
    }
    Ok(Page { names, more })
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

    async fn image_chain(&self, repo: &RepositoryName, leaf: &str) -> StoreResult<Vec<V1Image>> {
        let repo = repo.as_str().to_string();
        let leaf = leaf.to_string();
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let images = txn.open_table(IMAGES).or_backend()?;
            let mut chain = Vec::new();
            // Parents come from client-supplied v1 JSON, so a cycle is possible; stop at the
            // first id seen twice instead of looping forever.
            let mut seen = HashSet::new();
            let mut next = Some(leaf);
            while let Some(id) = next {
                if !seen.insert(id.clone()) {
                    break;
                }
                let Some(image) = read_image(&images, &repo, &id)? else {
                    break;
                };
                next = image.parent.clone();
                chain.push(image);
            }
            Ok(chain)
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
        tag: &Tag,
        v1_image: &str,
        manifest: &StoredManifest,
    ) -> StoreResult<()> {
        let repo = repo.as_str().to_string();
        let tag_key = key(&repo, tag.as_str());
        let tag_name = format!("{repo}:{tag}");
        let v1_image = v1_image.to_string();
        let manifest = manifest.clone();
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
            match conflict {
                Some(why) => {
                    txn.abort().or_backend()?;
                    Err(StoreError::Conflict(why))
                }
                None => txn.commit().or_backend(),
            }
        })
        .await
    }

    async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        // Events go to the JSON-lines sink after the write: this store keeps no outbox.
        _event: &RegistryEvent,
    ) -> StoreResult<Option<DeletedManifest>> {
        let repo = repo.as_str().to_string();
        let digest = digest.to_string();
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let outcome = {
                let mut manifests = txn.open_table(MANIFESTS).or_backend()?;
                let removed = manifests
                    .remove(key(&repo, &digest).as_str())
                    .or_backend()?
                    .map(|row| row.value().1.map(str::to_string));
                match removed {
                    None => None,
                    Some(subject) => {
                        if let Some(subject) = subject {
                            let mut referrers = txn.open_table(REFERRERS).or_backend()?;
                            let k = key(&key(&repo, &subject), &digest);
                            referrers.remove(k.as_str()).or_backend()?;
                        }
                        Some(detach_tags(&txn, &repo, &digest)?)
                    }
                }
            };
            match outcome {
                None => {
                    txn.abort().or_backend()?;
                    Ok(None)
                }
                Some(deleted) => {
                    txn.commit().or_backend()?;
                    Ok(Some(deleted))
                }
            }
        })
        .await
    }

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        _event: &RegistryEvent,
    ) -> StoreResult<bool> {
        let tag_key = key(repo.as_str(), tag.as_str());
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let existed = {
                let mut tags = txn.open_table(TAGS).or_backend()?;
                tags.remove(tag_key.as_str()).or_backend()?.is_some()
            };
            txn.commit().or_backend()?;
            Ok(existed)
        })
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
        let link_key = key(repo.as_str(), &digest.to_string());
        self.write(move |db| {
            let txn = db.begin_write().or_backend()?;
            let existed = {
                let mut links = txn.open_table(BLOB_LINKS).or_backend()?;
                links.remove(link_key.as_str()).or_backend()?.is_some()
            };
            txn.commit().or_backend()?;
            Ok(existed)
        })
        .await
    }

    async fn tags(&self, repo: &RepositoryName, page: &PageRequest) -> StoreResult<Option<Page>> {
        let repo = repo.as_str().to_string();
        let page = page.clone();
        self.run(move |db| {
            // One snapshot: the repository check and its tags agree.
            let txn = db.begin_read().or_backend()?;
            let repositories = txn.open_table(REPOSITORIES).or_backend()?;
            if repositories.get(repo.as_str()).or_backend()?.is_none() {
                return Ok(None);
            }
            let tags = txn.open_table(TAGS).or_backend()?;
            let (prefix, high) = prefix_range(&repo);
            // A schema1 tag kept without a manifest is still a row here, so it is listed.
            page_of(&tags, &prefix, Bound::Excluded(high.as_str()), &page).map(Some)
        })
        .await
    }

    async fn repositories(&self, page: &PageRequest) -> StoreResult<Page> {
        let page = page.clone();
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let repositories = txn.open_table(REPOSITORIES).or_backend()?;
            page_of(&repositories, "", Bound::Unbounded, &page)
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
        self.run(move |db| {
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
            match conflict {
                Some(why) => {
                    txn.abort().or_backend()?;
                    Err(StoreError::Conflict(why))
                }
                None => txn.commit().or_backend(),
            }
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
    async fn uploads_started_before(
        &self,
        cutoff: SystemTime,
    ) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let uploads = txn.open_table(UPLOADS).or_backend()?;
            let mut stale = Vec::new();
            for row in uploads.iter().or_backend()? {
                let (k, v) = row.or_backend()?;
                let (repo, _) = k.value().split_once('\0').ok_or_else(|| {
                    StoreError::backend(format!("upload key {:?} has no repository", k.value()))
                })?;
                let repo = RepositoryName::parse(repo).map_err(StoreError::backend)?;
                let upload: Upload = serde_json::from_slice(v.value()).or_backend()?;
                if started_before(&upload, cutoff) {
                    stale.push((repo, upload));
                }
            }
            Ok(stale)
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

/// For a manifest being deleted: drops the tags that named it, except schema1 tags whose v1
/// image is still stored, which stay without a manifest.
fn detach_tags(
    txn: &redb::WriteTransaction,
    repo: &str,
    digest: &str,
) -> StoreResult<DeletedManifest> {
    let mut tags = txn.open_table(TAGS).or_backend()?;
    let images = txn.open_table(IMAGES).or_backend()?;
    let (low, high) = prefix_range(repo);
    // Collect first: the range borrows the table, which the updates below need mutably.
    let mut pointing = Vec::new();
    for row in tags.range(low.as_str()..high.as_str()).or_backend()? {
        let (k, value) = row.or_backend()?;
        let (target, v1_image) = value.value();
        if target == Some(digest) {
            pointing.push((k.value().to_string(), v1_image.map(str::to_string)));
        }
    }
    let mut deleted = DeletedManifest::default();
    for (tag_key, v1_image) in pointing {
        let name = Tag::parse(tag_key.strip_prefix(low.as_str()).unwrap_or_default())
            .map_err(|e| StoreError::backend(format!("stored tag {tag_key:?}: {e}")))?;
        let keep = match &v1_image {
            Some(id) => images.get(key(repo, id).as_str()).or_backend()?.is_some(),
            None => false,
        };
        if keep {
            tags.insert(tag_key.as_str(), (None, v1_image.as_deref()))
                .or_backend()?;
            deleted.kept_tags.push(name);
        } else {
            tags.remove(tag_key.as_str()).or_backend()?;
            deleted.removed_tags.push(name);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn repo() -> RepositoryName {
        RepositoryName::parse("library/app").unwrap()
    }

    fn tag(s: &str) -> Tag {
        Tag::parse(s).unwrap()
    }

    fn manifest(body: &str) -> StoredManifest {
        StoredManifest {
            digest: Digest::sha256(body.as_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: Bytes::from(body.to_string()),
        }
    }

    fn image(id: &str, parent: Option<&str>) -> V1Image {
        V1Image {
            docker_id: id.into(),
            parent: parent.map(str::to_string),
            blob: Digest::sha256(id.as_bytes()),
            created: None,
            comment: None,
            command: None,
            v1_json: format!(r#"{{"id":"{id}"}}"#),
        }
    }

    fn push(m: &StoredManifest, t: Option<&str>) -> Push {
        Push {
            manifest: m.clone(),
            tags: t.map(tag).into_iter().collect(),
            tag_v1_image: None,
            images: vec![],
            referrer: None,
            event: event(),
        }
    }

    fn event() -> RegistryEvent {
        RegistryEvent {
            event: "test".into(),
            repository: "acme/app".into(),
            namespace: "acme".into(),
            updated_tags: vec![],
            digest: None,
            media_type: None,
            time: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// A schema1 push by tag: images `base` <- `leaf`, the tag naming `leaf`.
    fn schema1_push(m: &StoredManifest, t: &str) -> Push {
        Push {
            tag_v1_image: Some("leaf".into()),
            images: vec![image("base", None), image("leaf", Some("base"))],
            ..push(m, Some(t))
        }
    }

    fn open(dir: &tempfile::TempDir) -> RedbMetadata {
        RedbMetadata::open(&dir.path().join("metadata.redb")).unwrap()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn page(limit: usize, last: Option<&str>) -> PageRequest {
        PageRequest {
            limit,
            last: last.map(str::to_string),
        }
    }

    /// Every tag of `repo` in one page, or `None` if the repository does not exist.
    async fn all_tags(store: &RedbMetadata, repo: &RepositoryName) -> Option<Vec<String>> {
        let page = store.tags(repo, &page(usize::MAX, None)).await.unwrap()?;
        assert!(!page.more);
        Some(page.names)
    }

    fn upload(id: &str, offset: u64) -> Upload {
        Upload {
            id: id.into(),
            offset,
            hash_state: vec![1, 2, 3],
            pending: offset,
            pending_key: None,
            handle: None,
            parts: vec![],
            started: "2026-01-01T00:00:00Z".into(),
            // The tests read as if writers conditioned on the offset.
            version: offset,
            writer: None,
            lease_until: 0,
        }
    }

    #[tokio::test]
    async fn push_then_read_by_tag_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("one");
        assert!(!store.repository_exists(&repo()).await.unwrap());
        store
            .commit_push(&repo(), &push(&m, Some("latest")))
            .await
            .unwrap();

        assert!(store.repository_exists(&repo()).await.unwrap());
        let target = store.tag(&repo(), &tag("latest")).await.unwrap().unwrap();
        assert_eq!(
            target,
            TagTarget {
                manifest: Some(m.clone()),
                v1_image: None
            }
        );
        assert_eq!(
            store.manifest(&repo(), &m.digest).await.unwrap(),
            Some(m.clone())
        );
        assert_eq!(store.tag(&repo(), &tag("other")).await.unwrap(), None);
        let elsewhere = RepositoryName::parse("library/app2").unwrap();
        assert_eq!(store.manifest(&elsewhere, &m.digest).await.unwrap(), None);
        assert_eq!(all_tags(&store, &repo()).await, Some(names(&["latest"])));
        assert_eq!(all_tags(&store, &elsewhere).await, None);
    }

    #[tokio::test]
    async fn lookup_finds_only_what_the_repository_has() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let other = RepositoryName::parse("library/other").unwrap();
        let (b1, b2, b3) = (
            Digest::sha256(b"b1"),
            Digest::sha256(b"b2"),
            Digest::sha256(b"b3"),
        );
        store.link_blob(&repo(), &b1, 2).await.unwrap();
        store.link_blob(&other, &b2, 2).await.unwrap();
        let m = manifest("m");
        store
            .commit_push(&repo(), &schema1_push(&m, "v1"))
            .await
            .unwrap();

        let found = store
            .lookup(
                &repo(),
                &Lookup {
                    blobs: vec![b1.clone(), b2.clone(), b3],
                    manifests: vec![m.digest.clone(), manifest("nope").digest],
                    images: vec!["leaf".into(), "ghost".into()],
                },
            )
            .await
            .unwrap();
        assert_eq!(found.blobs, HashSet::from([b1]));
        assert_eq!(found.manifests, HashSet::from([m.digest.clone()]));
        assert_eq!(
            found.images,
            HashMap::from([("leaf".to_string(), image("leaf", Some("base")))])
        );
        let found = store
            .lookup(
                &other,
                &Lookup {
                    blobs: vec![b2.clone()],
                    images: vec!["leaf".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(found.blobs, HashSet::from([b2]));
        assert!(found.images.is_empty());
    }

    #[tokio::test]
    async fn delete_manifest_keeps_schema1_tags_and_removes_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("schema1");
        store
            .commit_push(&repo(), &schema1_push(&m, "old"))
            .await
            .unwrap();
        store
            .commit_push(&repo(), &push(&m, Some("plain")))
            .await
            .unwrap();
        let untouched = manifest("other");
        store
            .commit_push(&repo(), &push(&untouched, Some("keepme")))
            .await
            .unwrap();

        let deleted = store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            deleted,
            DeletedManifest {
                removed_tags: vec![tag("plain")],
                kept_tags: vec![tag("old")]
            }
        );
        assert_eq!(store.manifest(&repo(), &m.digest).await.unwrap(), None);
        let kept = store.tag(&repo(), &tag("old")).await.unwrap().unwrap();
        assert_eq!(
            kept,
            TagTarget {
                manifest: None,
                v1_image: Some("leaf".into())
            }
        );
        assert_eq!(store.tag(&repo(), &tag("plain")).await.unwrap(), None);
        assert!(store.tag(&repo(), &tag("keepme")).await.unwrap().is_some());
        // Unknown now.
        assert_eq!(
            store
                .delete_manifest(&repo(), &m.digest, &event())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn delete_manifest_removes_its_referrer_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let subject = manifest("subject");
        store
            .commit_push(&repo(), &push(&subject, Some("latest")))
            .await
            .unwrap();
        let sig = manifest("signature");
        let referrer = Referrer {
            subject: subject.digest.clone(),
            digest: sig.digest.clone(),
            media_type: sig.media_type.clone(),
            size: sig.body.len() as u64,
            artifact_type: Some("application/example".into()),
            annotations: None,
        };
        let p = Push {
            referrer: Some(referrer.clone()),
            ..push(&sig, None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        assert_eq!(
            store.referrers(&repo(), &subject.digest).await.unwrap(),
            vec![referrer]
        );

        let deleted = store
            .delete_manifest(&repo(), &sig.digest, &event())
            .await
            .unwrap();
        assert_eq!(deleted, Some(DeletedManifest::default()));
        assert!(
            store
                .referrers(&repo(), &subject.digest)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn schema1_tag_without_surviving_image_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("s1");
        // The tag names a v1 image that was never stored: nothing to rebuild from.
        let p = Push {
            tag_v1_image: Some("missing".into()),
            ..push(&m, Some("t"))
        };
        store.commit_push(&repo(), &p).await.unwrap();
        let deleted = store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.removed_tags, vec![tag("t")]);
        assert!(deleted.kept_tags.is_empty());
    }

    #[tokio::test]
    async fn attach_generated_manifest_succeeds_once_then_conflicts_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("pushed");
        store
            .commit_push(&repo(), &schema1_push(&m, "old"))
            .await
            .unwrap();
        store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();

        // Wrong v1 image: conflict, nothing written.
        let wrong = manifest("generated-wrong");
        let err = store
            .attach_generated_manifest(&repo(), &tag("old"), "base", &wrong)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(store.manifest(&repo(), &wrong.digest).await.unwrap(), None);

        // Unknown tag: conflict too.
        let err = store
            .attach_generated_manifest(&repo(), &tag("nope"), "leaf", &wrong)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(store.tag(&repo(), &tag("nope")).await.unwrap(), None);

        let generated = manifest("generated");
        store
            .attach_generated_manifest(&repo(), &tag("old"), "leaf", &generated)
            .await
            .unwrap();
        let target = store.tag(&repo(), &tag("old")).await.unwrap().unwrap();
        assert_eq!(
            target,
            TagTarget {
                manifest: Some(generated.clone()),
                v1_image: Some("leaf".into())
            }
        );

        // The tag has a manifest now: a second attach conflicts and changes nothing.
        let again = manifest("generated-again");
        let err = store
            .attach_generated_manifest(&repo(), &tag("old"), "leaf", &again)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(store.manifest(&repo(), &again.digest).await.unwrap(), None);
        assert_eq!(
            store.tag(&repo(), &tag("old")).await.unwrap().unwrap(),
            target
        );
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest("durable");
        let blob = Digest::sha256(b"layer");
        {
            let store = open(&dir);
            store
                .commit_push(&repo(), &schema1_push(&m, "v1"))
                .await
                .unwrap();
            store.link_blob(&repo(), &blob, 5).await.unwrap();
        }
        let store = open(&dir);
        assert!(store.repository_exists(&repo()).await.unwrap());
        let target = store.tag(&repo(), &tag("v1")).await.unwrap().unwrap();
        assert_eq!(target.manifest, Some(m));
        assert_eq!(store.image_chain(&repo(), "leaf").await.unwrap().len(), 2);
        let found = store
            .lookup(
                &repo(),
                &Lookup {
                    blobs: vec![blob.clone()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(found.blobs.contains(&blob));
    }

    #[tokio::test]
    async fn image_chain_is_leaf_first_and_survives_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let p = Push {
            images: vec![
                image("a", None),
                image("b", Some("a")),
                image("c", Some("b")),
            ],
            ..push(&manifest("chain"), None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        let ids = |chain: Vec<V1Image>| chain.into_iter().map(|i| i.docker_id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.image_chain(&repo(), "c").await.unwrap()),
            ["c", "b", "a"]
        );
        assert!(store.image_chain(&repo(), "zz").await.unwrap().is_empty());

        // A missing parent ends the chain.
        let p = Push {
            images: vec![image("orphan", Some("gone"))],
            ..push(&manifest("o"), None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        assert_eq!(
            ids(store.image_chain(&repo(), "orphan").await.unwrap()),
            ["orphan"]
        );

        // x -> y -> x: each image once, then stop.
        let p = Push {
            images: vec![image("x", Some("y")), image("y", Some("x"))],
            ..push(&manifest("cycle"), None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        assert_eq!(
            ids(store.image_chain(&repo(), "x").await.unwrap()),
            ["x", "y"]
        );
    }

    #[tokio::test]
    async fn existing_images_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let first = image("a", None);
        let p = Push {
            images: vec![first.clone()],
            ..push(&manifest("1"), None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        let changed = V1Image {
            comment: Some("changed".into()),
            ..first.clone()
        };
        let p = Push {
            images: vec![changed],
            ..push(&manifest("2"), None)
        };
        store.commit_push(&repo(), &p).await.unwrap();
        assert_eq!(store.image_chain(&repo(), "a").await.unwrap(), vec![first]);
    }

    #[tokio::test]
    async fn pushing_a_tag_again_overwrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (first, second) = (manifest("first"), manifest("second"));
        store
            .commit_push(&repo(), &schema1_push(&first, "latest"))
            .await
            .unwrap();
        store
            .commit_push(&repo(), &push(&second, Some("latest")))
            .await
            .unwrap();
        let target = store.tag(&repo(), &tag("latest")).await.unwrap().unwrap();
        assert_eq!(
            target,
            TagTarget {
                manifest: Some(second),
                v1_image: None
            }
        );
        // The first manifest stays reachable by digest.
        assert_eq!(
            store.manifest(&repo(), &first.digest).await.unwrap(),
            Some(first)
        );
    }

    #[tokio::test]
    async fn every_write_is_seen_by_the_next_read_though_reads_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (first, second) = (manifest("first"), manifest("second"));
        let latest = async |store: &RedbMetadata| {
            store
                .tag(&repo(), &tag("latest"))
                .await
                .unwrap()
                .map(|t| t.manifest)
        };
        store
            .commit_push(&repo(), &push(&first, Some("latest")))
            .await
            .unwrap();
        // The second of each read is answered from the cache.
        for _ in 0..2 {
            assert_eq!(latest(&store).await, Some(Some(first.clone())));
            assert_eq!(
                store.manifest(&repo(), &first.digest).await.unwrap(),
                Some(first.clone())
            );
        }
        store
            .commit_push(&repo(), &push(&second, Some("latest")))
            .await
            .unwrap();
        assert_eq!(latest(&store).await, Some(Some(second.clone())));
        assert!(
            store
                .delete_tag(&repo(), &tag("latest"), &event())
                .await
                .unwrap()
        );
        assert_eq!(latest(&store).await, None);
        assert!(
            store
                .delete_manifest(&repo(), &first.digest, &event())
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.manifest(&repo(), &first.digest).await.unwrap(), None);
        // A clone shares the cache, so a write through one is seen through the other.
        let clone = store.clone();
        assert_eq!(
            clone.manifest(&repo(), &second.digest).await.unwrap(),
            Some(second.clone())
        );
        store
            .delete_manifest(&repo(), &second.digest, &event())
            .await
            .unwrap();
        assert_eq!(clone.manifest(&repo(), &second.digest).await.unwrap(), None);
    }

    #[tokio::test]
    async fn delete_tag_removes_only_the_tag() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("m");
        store
            .commit_push(&repo(), &push(&m, Some("a")))
            .await
            .unwrap();
        store
            .commit_push(&repo(), &push(&m, Some("b")))
            .await
            .unwrap();
        assert!(
            store
                .delete_tag(&repo(), &tag("a"), &event())
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_tag(&repo(), &tag("a"), &event())
                .await
                .unwrap()
        );
        assert_eq!(all_tags(&store, &repo()).await, Some(names(&["b"])));
        assert_eq!(store.manifest(&repo(), &m.digest).await.unwrap(), Some(m));
    }

    #[tokio::test]
    async fn prefixes_do_not_leak_between_similar_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let longer = RepositoryName::parse("library/app-x").unwrap();
        let m = manifest("m");
        store
            .commit_push(&repo(), &push(&m, Some("mine")))
            .await
            .unwrap();
        store
            .commit_push(&longer, &push(&m, Some("theirs")))
            .await
            .unwrap();
        assert_eq!(all_tags(&store, &repo()).await, Some(names(&["mine"])));
        let deleted = store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.removed_tags, vec![tag("mine")]);
        assert!(store.tag(&longer, &tag("theirs")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tags_are_paged_in_ascii_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("m");
        // Pushed out of order; `B` sorts before `a` in ASCII.
        for t in ["c", "a", "B", "b", "a.1", "d"] {
            store
                .commit_push(&repo(), &push(&m, Some(t)))
                .await
                .unwrap();
        }
        let expect = |names_: &[&str], more| {
            Some(Page {
                names: names(names_),
                more,
            })
        };
        let tags = |limit, last| {
            let store = store.clone();
            async move { store.tags(&repo(), &page(limit, last)).await.unwrap() }
        };
        assert_eq!(tags(2, None).await, expect(&["B", "a"], true));
        assert_eq!(tags(2, Some("a")).await, expect(&["a.1", "b"], true));
        assert_eq!(tags(2, Some("b")).await, expect(&["c", "d"], false));
        assert_eq!(
            tags(10, None).await,
            expect(&["B", "a", "a.1", "b", "c", "d"], false)
        );
        // Exactly the rest: no more, though the page is full.
        assert_eq!(tags(3, Some("a.1")).await, expect(&["b", "c", "d"], false));
        // `last` need not be a tag: the page starts after where it would sort.
        assert_eq!(tags(2, Some("a0")).await, expect(&["b", "c"], true));
        assert_eq!(tags(2, Some("d")).await, expect(&[], false));
        assert_eq!(tags(2, Some("zzz")).await, expect(&[], false));
        // A limit of 0 lists nothing but still says whether anything follows.
        assert_eq!(tags(0, Some("c")).await, expect(&[], true));
        assert_eq!(tags(0, Some("d")).await, expect(&[], false));
    }

    #[tokio::test]
    async fn tags_of_empty_unknown_and_similarly_named_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let unknown = RepositoryName::parse("library/nope").unwrap();
        assert_eq!(store.tags(&unknown, &page(10, None)).await.unwrap(), None);

        // A repository with a blob but no tag exists, with no tags.
        store
            .link_blob(&repo(), &Digest::sha256(b"x"), 1)
            .await
            .unwrap();
        assert_eq!(
            store.tags(&repo(), &page(10, None)).await.unwrap(),
            Some(Page::default())
        );

        // Names that share a prefix with `library/app` (or it with them) are not it.
        let m = manifest("m");
        for (name, t) in [
            ("library/app-x", "x"),
            ("library/app_x", "under"),
            ("library/app0", "zero"),
            ("library/ap", "ap"),
        ] {
            let other = RepositoryName::parse(name).unwrap();
            store.commit_push(&other, &push(&m, Some(t))).await.unwrap();
        }
        assert_eq!(
            store.tags(&repo(), &page(10, None)).await.unwrap(),
            Some(Page::default())
        );
        store
            .commit_push(&repo(), &push(&m, Some("mine")))
            .await
            .unwrap();
        assert_eq!(
            store.tags(&repo(), &page(1, None)).await.unwrap(),
            Some(Page {
                names: names(&["mine"]),
                more: false
            })
        );
        assert_eq!(
            all_tags(&store, &RepositoryName::parse("library/app-x").unwrap()).await,
            Some(names(&["x"]))
        );
    }

    #[tokio::test]
    async fn a_schema1_tag_kept_without_its_manifest_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let m = manifest("s1");
        store
            .commit_push(&repo(), &schema1_push(&m, "old"))
            .await
            .unwrap();
        store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all_tags(&store, &repo()).await, Some(names(&["old"])));
    }

    #[tokio::test]
    async fn repositories_are_paged_in_ascii_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let repos = |limit, last| {
            let store = store.clone();
            async move { store.repositories(&page(limit, last)).await.unwrap() }
        };
        assert_eq!(repos(10, None).await, Page::default());
        for name in ["library/app-x", "library/app", "acme/b", "library/app_x"] {
            let name = RepositoryName::parse(name).unwrap();
            store
                .link_blob(&name, &Digest::sha256(b"x"), 1)
                .await
                .unwrap();
        }
        let expect = |names_: &[&str], more| Page {
            names: names(names_),
            more,
        };
        assert_eq!(
            repos(10, None).await,
            expect(
                &["acme/b", "library/app", "library/app-x", "library/app_x"],
                false
            )
        );
        assert_eq!(
            repos(2, None).await,
            expect(&["acme/b", "library/app"], true)
        );
        assert_eq!(
            repos(2, Some("library/app")).await,
            expect(&["library/app-x", "library/app_x"], false)
        );
        assert_eq!(
            repos(1, Some("library/app-x")).await,
            expect(&["library/app_x"], false)
        );
        assert_eq!(repos(5, Some("library/app_x")).await, expect(&[], false));
        assert_eq!(repos(1, Some("a")).await, expect(&["acme/b"], true));
    }

    #[tokio::test]
    async fn blob_link_and_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let other = RepositoryName::parse("library/app-x").unwrap();
        let blob = Digest::sha256(b"layer");
        assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), None);
        assert!(!store.unlink_blob(&repo(), &blob).await.unwrap());

        store.link_blob(&repo(), &blob, 5).await.unwrap();
        store.link_blob(&other, &blob, 5).await.unwrap();
        assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), Some(5));

        assert!(store.unlink_blob(&repo(), &blob).await.unwrap());
        assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), None);
        assert!(!store.unlink_blob(&repo(), &blob).await.unwrap());
        // Only this repository's link went; the repository itself stays.
        assert_eq!(store.blob_link(&other, &blob).await.unwrap(), Some(5));
        assert!(store.repository_exists(&repo()).await.unwrap());
    }

    #[tokio::test]
    async fn uploads_are_created_read_updated_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let other = RepositoryName::parse("library/other").unwrap();
        let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
        assert_eq!(store.upload(&repo(), id).await.unwrap(), None);

        let first = upload(id, 0);
        store.create_upload(&repo(), &first).await.unwrap();
        assert_eq!(
            store.upload(&repo(), id).await.unwrap(),
            Some(first.clone())
        );
        // An upload belongs to its repository.
        assert_eq!(store.upload(&other, id).await.unwrap(), None);
        // The same id again is refused and changes nothing.
        let err = store
            .create_upload(&repo(), &upload(id, 9))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            store.upload(&repo(), id).await.unwrap(),
            Some(first.clone())
        );

        let second = Upload {
            handle: Some("h".into()),
            parts: vec![crate::ports::Part {
                number: 1,
                tag: "t".into(),
                size: 10,
            }],
            ..upload(id, 10)
        };
        store.update_upload(&repo(), &second, 0).await.unwrap();
        assert_eq!(
            store.upload(&repo(), id).await.unwrap(),
            Some(second.clone())
        );

        // Deleting answers the state deleted (what names the bytes to remove), once.
        assert_eq!(
            store.delete_upload(&repo(), id).await.unwrap(),
            Some(second)
        );
        assert_eq!(store.upload(&repo(), id).await.unwrap(), None);
        assert_eq!(store.delete_upload(&repo(), id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn uploads_started_before_a_time_are_listed_across_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let other = RepositoryName::parse("library/other").unwrap();
        let at = |id: &str, started: &str| Upload {
            started: started.into(),
            ..upload(id, 0)
        };
        let old = at(
            "00000000-0000-4000-8000-000000000001",
            "2026-01-01T00:00:00Z",
        );
        let older = at(
            "00000000-0000-4000-8000-000000000002",
            "2025-06-01T12:00:00Z",
        );
        let fresh = at(
            "00000000-0000-4000-8000-000000000003",
            "2026-01-02T00:00:01Z",
        );
        let unreadable = at("00000000-0000-4000-8000-000000000004", "yesterday");
        store.create_upload(&repo(), &old).await.unwrap();
        store.create_upload(&other, &older).await.unwrap();
        store.create_upload(&repo(), &fresh).await.unwrap();
        store.create_upload(&other, &unreadable).await.unwrap();

        let cutoff = humantime::parse_rfc3339("2026-01-02T00:00:00Z").unwrap();
        let mut stale = store.uploads_started_before(cutoff).await.unwrap();
        stale.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        assert_eq!(
            stale,
            vec![(repo(), old), (other.clone(), older), (other, unreadable)]
        );
        let long_ago = humantime::parse_rfc3339("2020-01-01T00:00:00Z").unwrap();
        let stale = store.uploads_started_before(long_ago).await.unwrap();
        assert_eq!(stale.len(), 1, "only the one without a readable age");
    }

    #[tokio::test]
    async fn update_upload_conflicts_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
        let stored = upload(id, 10);
        store.create_upload(&repo(), &stored).await.unwrap();

        // Another writer advanced it from 0 first: this one expected 0 but it is at 10.
        let err = store
            .update_upload(&repo(), &upload(id, 20), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            store.upload(&repo(), id).await.unwrap(),
            Some(stored.clone())
        );

        // An unknown upload is a conflict too, and is not created.
        let gone = "ffffffff-9d5f-4c1e-8a7b-123456789abc";
        let err = store
            .update_upload(&repo(), &upload(gone, 5), 0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(store.upload(&repo(), gone).await.unwrap(), None);

        // The right expectation succeeds, once.
        store
            .update_upload(&repo(), &upload(id, 20), 10)
            .await
            .unwrap();
        let err = store
            .update_upload(&repo(), &upload(id, 30), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            store.upload(&repo(), id).await.unwrap(),
            Some(upload(id, 20))
        );
    }

    #[tokio::test]
    async fn uploads_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
        open(&dir)
            .create_upload(&repo(), &upload(id, 3))
            .await
            .unwrap();
        assert_eq!(
            open(&dir).upload(&repo(), id).await.unwrap(),
            Some(upload(id, 3))
        );
    }
}
