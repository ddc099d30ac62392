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
//!
//! A manifest row keeps its subject so that deleting the manifest finds its referrer row.
//! Finding the tags of a deleted manifest scans the repository's tags: fine for a local
//! registry, and it spares a reverse index that every tag write would have to keep in step.
//!
//! Every write method is one redb write transaction, committed durably: all of it or none.

use super::{OrBackend, blocking};
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    DeletedManifest, Found, Lookup, MetadataStore, Push, Referrer, RegistryEvent, StoreError,
    StoreResult, StoredManifest, TagTarget, V1Image,
};
use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashSet;
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

/// The metadata of every repository in one redb file.
///
/// redb is synchronous, and a write transaction may wait for another writer and ends with an
/// fsync, so every call runs on tokio's blocking pool (`spawn_blocking`) rather than stalling
/// an async worker; reads go there too, for one code path (the hop costs microseconds).
#[derive(Clone)]
pub struct RedbMetadata {
    db: Arc<Database>,
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
        txn.commit().or_backend()?;
        Ok(RedbMetadata { db: Arc::new(db) })
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

    /// The referrers of `subject` in `repo`, ordered by digest.
    pub async fn referrers(
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

    /// The names of `repo`'s tags, sorted (bytewise, which for tags is ASCII order).
    pub async fn tags(&self, repo: &RepositoryName) -> StoreResult<Vec<String>> {
        let (low, high) = prefix_range(repo.as_str());
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(TAGS).or_backend()?;
            let mut out = Vec::new();
            for row in table.range(low.as_str()..high.as_str()).or_backend()? {
                let (k, _) = row.or_backend()?;
                // Every key in the range starts with `low`.
                let name = k.value().strip_prefix(low.as_str()).unwrap_or_default();
                out.push(name.to_string());
            }
            Ok(out)
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

fn parse_digest(s: &str) -> StoreResult<Digest> {
    s.parse()
        .map_err(|e| StoreError::backend(format!("stored digest {s:?}: {e}")))
}

#[async_trait]
impl MetadataStore for RedbMetadata {
    async fn repository_exists(&self, repo: &RepositoryName) -> StoreResult<bool> {
        let repo = repo.as_str().to_string();
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(REPOSITORIES).or_backend()?;
            Ok(table.get(repo.as_str()).or_backend()?.is_some())
        })
        .await
    }

    async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> StoreResult<Option<TagTarget>> {
        let repo = repo.as_str().to_string();
        let tag_key = key(&repo, tag.as_str());
        self.run(move |db| {
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
                    let found = read_manifest(&manifests, &repo, &digest)?;
                    // Writes keep a tag's manifest in place (one transaction each), so a
                    // dangling tag means the file was damaged.
                    Some(found.ok_or_else(|| {
                        StoreError::backend(format!("tag {tag_key:?} names missing {digest}"))
                    })?)
                }
            };
            Ok(Some(TagTarget { manifest, v1_image }))
        })
        .await
    }

    async fn manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<StoredManifest>> {
        let repo = repo.as_str().to_string();
        let digest = digest.clone();
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let manifests = txn.open_table(MANIFESTS).or_backend()?;
            read_manifest(&manifests, &repo, &digest)
        })
        .await
    }

    async fn lookup(&self, repo: &RepositoryName, lookup: &Lookup) -> StoreResult<Found> {
        let repo = repo.as_str().to_string();
        let lookup = lookup.clone();
        self.run(move |db| {
            let txn = db.begin_read().or_backend()?;
            let blobs = txn.open_table(BLOB_LINKS).or_backend()?;
            let manifests = txn.open_table(MANIFESTS).or_backend()?;
            let images = txn.open_table(IMAGES).or_backend()?;
            let mut found = Found::default();
            for digest in lookup.blobs {
                let k = key(&repo, &digest.to_string());
                if blobs.get(k.as_str()).or_backend()?.is_some() {
                    found.blobs.insert(digest);
                }
            }
            for digest in lookup.manifests {
                let k = key(&repo, &digest.to_string());
                if manifests.get(k.as_str()).or_backend()?.is_some() {
                    found.manifests.insert(digest);
                }
            }
            for id in lookup.images {
                if let Some(image) = read_image(&images, &repo, &id)? {
                    found.images.insert(id, image);
                }
            }
            Ok(found)
        })
        .await
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
        self.run(move |db| {
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

                if let Some(tag) = &push.tag {
                    let mut tags = txn.open_table(TAGS).or_backend()?;
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
        self.run(move |db| {
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
        self.run(move |db| {
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
        self.run(move |db| {
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
        self.run(move |db| {
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
            tag: t.map(tag),
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
        assert_eq!(
            store.tags(&repo()).await.unwrap(),
            vec!["latest".to_string()]
        );
        assert!(store.tags(&elsewhere).await.unwrap().is_empty());
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
        assert_eq!(store.tags(&repo()).await.unwrap(), vec!["b".to_string()]);
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
        assert_eq!(store.tags(&repo()).await.unwrap(), vec!["mine".to_string()]);
        let deleted = store
            .delete_manifest(&repo(), &m.digest, &event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.removed_tags, vec![tag("mine")]);
        assert!(store.tag(&longer, &tag("theirs")).await.unwrap().is_some());
    }
}
