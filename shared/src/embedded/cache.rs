//! [`ReadCache`]: the hot point reads of [`super::RedbMetadata`] (a tag, a manifest by
//! digest, a blob link), kept in memory until the next write.
//!
//! Pulls read the same few rows over and over. Each redb read opens a transaction and its
//! tables, and redb checks a table's key and value types by name at every open: for the tag
//! and manifest tables (tuples of options) that is a few dozen small allocations, more than
//! the rest of a manifest GET together. This cache answers those reads between writes.
//!
//! Why it never serves a stale row:
//! - every write transaction of the store clears it once the transaction is over, on the
//!   blocking thread that ran it (a cancelled request cannot skip the clearing), and bumps
//!   [`ReadCache::generation`];
//! - a read that misses notes the generation *before* it begins its redb transaction, and
//!   fills the cache only if the generation is unchanged when it does: a read whose snapshot
//!   predates the last commit never lands in the cache, and one that lands before the
//!   clearing is cleared with the rest;
//! - only this process writes the file (redb holds it exclusively), through this store.
//!
//! Only found rows are kept (a miss costs redb, as before), at most [`BUDGET_BYTES`] of them;
//! when full, the cache starts over.
//!
//! May call: the `ports` types and std. Nothing of redb, HTTP or AWS.

use crate::ports::{StoredManifest, TagTarget};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{RwLock, RwLockWriteGuard};

/// The most the cache holds, manifest bodies and keys counted.
pub(super) const BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// What an entry costs besides its key and body (the map slot, the digest, the media type).
const ENTRY_OVERHEAD: usize = 160;

/// Tags, manifests and blob links by their redb keys (`repo\0tag`, `repo\0digest`).
#[derive(Debug, Default)]
pub(super) struct ReadCache {
    generation: AtomicU64,
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    tags: HashMap<String, TagTarget>,
    manifests: HashMap<String, StoredManifest>,
    blob_links: HashMap<String, u64>,
    bytes: usize,
}

impl ReadCache {
    /// The generation to hand back to a `put_*` after a read: call it before the read
    /// begins its transaction.
    pub(super) fn generation(&self) -> u64 {
        let generation = self.generation.load(Ordering::SeqCst);
        // Nothing of the read that follows (redb's snapshot) may happen before this load.
        fence(Ordering::SeqCst);
        generation
    }

    pub(super) fn tag(&self, key: &str) -> Option<TagTarget> {
        self.entries.read().ok()?.tags.get(key).cloned()
    }

    pub(super) fn manifest(&self, key: &str) -> Option<StoredManifest> {
        self.entries.read().ok()?.manifests.get(key).cloned()
    }

    pub(super) fn blob_link(&self, key: &str) -> Option<u64> {
        self.entries.read().ok()?.blob_links.get(key).copied()
    }

    /// Keeps a tag read at `generation`, unless a write came since.
    pub(super) fn put_tag(&self, generation: u64, key: String, target: &TagTarget) {
        let size =
            key.len() + target.manifest.as_ref().map_or(0, |m| m.body.len()) + ENTRY_OVERHEAD;
        if let Some(mut entries) = self.room(generation, size) {
            entries.tags.insert(key, target.clone());
        }
    }

    /// Keeps a manifest read at `generation`, unless a write came since.
    pub(super) fn put_manifest(&self, generation: u64, key: String, manifest: &StoredManifest) {
        let size = key.len() + manifest.body.len() + ENTRY_OVERHEAD;
        if let Some(mut entries) = self.room(generation, size) {
            entries.manifests.insert(key, manifest.clone());
        }
    }

    /// Keeps a blob link read at `generation`, unless a write came since.
    pub(super) fn put_blob_link(&self, generation: u64, key: String, size: u64) {
        let cost = key.len() + ENTRY_OVERHEAD;
        if let Some(mut entries) = self.room(generation, cost) {
            entries.blob_links.insert(key, size);
        }
    }

    /// The entries, ready to take `size` more bytes, if a read at `generation` may still
    /// fill the cache.
    fn room(&self, generation: u64, size: usize) -> Option<RwLockWriteGuard<'_, Entries>> {
        // One manifest near the 4 MiB limit is not worth the others it would push out.
        if size > BUDGET_BYTES / 8 {
            return None;
        }
        let mut entries = self.entries.write().ok()?;
        // Checked under the lock that `invalidate` takes: no clearing can slip in between.
        if self.generation.load(Ordering::SeqCst) != generation {
            return None;
        }
        if entries.bytes + size > BUDGET_BYTES {
            *entries = Entries::default();
        }
        entries.bytes += size;
        Some(entries)
    }

    /// After a write transaction (committed or not): forgets everything, and stops the reads
    /// in flight from filling the cache with what they saw.
    pub(super) fn invalidate(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        *entries = Entries::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use bytes::Bytes;

    fn manifest(body: &'static [u8]) -> StoredManifest {
        StoredManifest {
            digest: Digest::sha256(body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn keeps_reads_until_a_write() {
        let cache = ReadCache::default();
        let target = TagTarget {
            manifest: Some(manifest(b"{}")),
            v1_image: None,
        };
        let generation = cache.generation();
        cache.put_tag(generation, "a/b\0latest".into(), &target);
        cache.put_manifest(generation, "a/b\0sha256:x".into(), &manifest(b"{}"));
        cache.put_blob_link(generation, "a/b\0sha256:y".into(), 7);
        assert_eq!(cache.tag("a/b\0latest"), Some(target));
        assert_eq!(cache.manifest("a/b\0sha256:x"), Some(manifest(b"{}")));
        assert_eq!(cache.blob_link("a/b\0sha256:y"), Some(7));
        assert_eq!(cache.tag("a/b\0other"), None);

        cache.invalidate();
        assert_eq!(cache.tag("a/b\0latest"), None);
        assert_eq!(cache.manifest("a/b\0sha256:x"), None);
        assert_eq!(cache.blob_link("a/b\0sha256:y"), None);
    }

    #[test]
    fn a_read_that_began_before_a_write_is_not_kept() {
        let cache = ReadCache::default();
        let before = cache.generation();
        // A write commits and clears while the read is in flight…
        cache.invalidate();
        // …so what the read saw (the old row) must not be kept.
        cache.put_manifest(before, "a/b\0sha256:x".into(), &manifest(b"old"));
        assert_eq!(cache.manifest("a/b\0sha256:x"), None);
        // A read that began after the write is.
        let after = cache.generation();
        cache.put_manifest(after, "a/b\0sha256:x".into(), &manifest(b"new"));
        assert_eq!(cache.manifest("a/b\0sha256:x"), Some(manifest(b"new")));
    }

    #[test]
    fn stays_within_its_budget() {
        static BIG: [u8; BUDGET_BYTES / 16] = [b' '; BUDGET_BYTES / 16];
        let cache = ReadCache::default();
        let generation = cache.generation();
        for i in 0..40 {
            let big = StoredManifest {
                body: Bytes::from_static(&BIG),
                ..manifest(b"{}")
            };
            cache.put_manifest(generation, format!("a/b\0{i}"), &big);
            let entries = cache.entries.read().unwrap();
            assert!(entries.bytes <= BUDGET_BYTES);
            assert!(entries.manifests.contains_key(&format!("a/b\0{i}")));
        }
        // Too large for the cache: not kept.
        static HUGE: [u8; BUDGET_BYTES / 4] = [b' '; BUDGET_BYTES / 4];
        let huge = StoredManifest {
            body: Bytes::from_static(&HUGE),
            ..manifest(b"{}")
        };
        cache.put_manifest(generation, "a/b\0huge".into(), &huge);
        assert_eq!(cache.manifest("a/b\0huge"), None);
    }
}
