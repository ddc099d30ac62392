//! The blob port: content-addressed bytes, and an upload's bytes as parts and pending
//! bytes.

use super::*;
use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use std::time::SystemTime;

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
    ) -> StoreResult<Option<BlobBody>>;

    // The bytes of uploads in progress, assembled in parts as S3 multipart uploads are:
    // every part but the last at least [`MIN_PART_BYTES`]; smaller chunks wait as pending
    // bytes.

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
    async fn begin_parts(&self, id: &str) -> StoreResult<String>;

    /// Stores part `number` of upload `id`; returns its tag.
    async fn put_part(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        bytes: Bytes,
    ) -> StoreResult<String>;

    /// Stores pending bytes of upload `id` (those not yet in a part) under a new key, which
    /// it returns: no other write can change them (see [`Upload::pending_key`]).
    async fn put_pending(&self, id: &str, bytes: Bytes) -> StoreResult<String>;

    /// The pending bytes stored under `key`; `Conflict` if they are gone (the upload was
    /// finished or cancelled meanwhile).
    async fn pending(&self, id: &str, key: &str) -> StoreResult<Bytes>;

    /// Removes the pending bytes stored under `key` (superseded, or of a request that lost
    /// a race); already gone is fine.
    async fn remove_pending(&self, id: &str, key: &str) -> StoreResult<()>;

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
    ) -> StoreResult<()>;

    /// Removes every byte of upload `id`: its parts (`handle`, if the state names one) and
    /// its pending bytes (`pending`), and whatever else the store holds for the upload that
    /// no state named (the parts of a begin whose answer was lost and retried).
    async fn abort_parts(
        &self,
        id: &str,
        handle: Option<&str>,
        pending: Option<&str>,
    ) -> StoreResult<()>;

    /// Removes what the store holds for uploads that no upload state can name any more,
    /// last written before `cutoff`: bytes an upload left when its state went without them
    /// (a crash between the two), and temporary files a crash left behind. Whatever was
    /// written before `cutoff` belongs to an upload started before it, so a purge with
    /// the same cutoff as the registry's purge of uploads (`registry::started_before`) never
    /// touches a live upload. Returns how many files or objects it removed.
    async fn purge_stray(&self, cutoff: SystemTime) -> StoreResult<u64>;
}

/// S3's smallest part but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
