//! Uploads: a blob pushed in one request (`POST ?digest=`), or an upload session chunked
//! across requests that may each be a separate Lambda invocation (or upload-service task).
//!
//! An upload keeps its state in the metadata store (offset, serialized SHA-256 state, parts)
//! and its bytes in the blob store's parts. A request body is read as it arrives
//! ([`UploadBody`]: a socket in registry-local, a buffered event on Lambda), hashed on its
//! way into the store, never held whole: a store that streams parts (a folder) takes each
//! request's body as one part; a store that buffers them (S3) takes parts of its buffer's
//! size, smaller rests waiting as pending bytes until they make one. Nothing is re-read to
//! hash it.
//!
//! One writer at a time: a request first claims the upload (a conditional update of its
//! state, with a lease that runs out if the writer dies), so a request racing it gets `416`
//! before its body is read; the writer records each part it stores (so a crash loses only
//! what was not yet a part) and lets go at the end. A cancel wins over a writer: it deletes
//! the state first and then removes the bytes its last version names, so the writer's next
//! step finds the upload gone (`404`), and it removes the pending bytes it wrote but could
//! not record. Whatever raced, a store fault is a 5xx; a lost race never is.
//!
//! Abandoned uploads: [`Registry::purge_uploads`] removes those started more than an age
//! ago, as a cancel does, then the store's bytes no state names that are as old.
//!
//! Integrity: the state names exactly the bytes it was computed over. Pending bytes get a
//! new key at every write and parts a tag, both recorded in the state; the blob store checks
//! the digest of what it stores where it can, and never replaces a blob, so no bytes but
//! those of a digest are ever served under it.
//!
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use super::upload_body::{
    Budget, Hashing, UploadBody, blob_too_large, body_error, chunk_too_large,
};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::names::RepositoryName;
use crate::ports::{Part, StoreError, Upload};
use crate::registry::Registry;
use bytes::{Bytes, BytesMut};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where an upload stands: what `Location`, `Range` and `Docker-Upload-UUID` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    pub offset: u64,
}

/// What [`Registry::purge_uploads`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Uploads, with their parts and pending bytes.
    pub uploads: u64,
    /// Files or objects no upload named (left by a crash), temporary files among them.
    pub stray: u64,
}

impl Registry {
    /// Opens an upload session whose bytes are hashed with `algorithm` as they arrive (the
    /// spec's `digest-algorithm`; a finish with a digest of another algorithm is checked
    /// where the blob store can check it, see [`Registry::finish_upload`]).
    pub async fn start_upload(
        &self,
        repo: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadStatus> {
        let upload = Upload {
            id: uuid::Uuid::new_v4().to_string(),
            offset: 0,
            hash_state: Hasher::new(algorithm).save(),
            pending: 0,
            pending_key: None,
            handle: None,
            parts: Vec::new(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            version: 0,
            writer: None,
            lease_until: 0,
        };
        self.metadata.create_upload(repo, &upload).await?;
        Ok(status(&upload))
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        Ok(status(&self.load_upload(repo, id).await?))
    }

    /// Lets go of every upload's claim, for a store that one process owns (registry-local's
    /// embedded data folder, which redb locks), at its start: every claim then is a dead
    /// writer's, and would otherwise answer the client's retry `416` until its lease ran
    /// out. Never with stores that other processes write (the AWS backend): their claims
    /// may be live. Returns how many were let go; a claim that changed meanwhile is left.
    pub async fn release_dead_claims(&self) -> Result<u64> {
        let mut released = 0u64;
        for (repo, upload) in self.metadata.uploads().await? {
            if upload.writer.is_none() {
                continue;
            }
            let mut free = upload.clone();
            free.writer = None;
            free.lease_until = 0;
            free.version = upload.version.wrapping_add(1);
            match self
                .metadata
                .update_upload(&repo, &free, upload.version)
                .await
            {
                Ok(()) => released = released.saturating_add(1),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(released)
    }

    async fn load_upload(&self, repo: &RepositoryName, id: &str) -> Result<Upload> {
        // An id is ours only if it is a UUID: anything else cannot name an upload.
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(upload_unknown(id));
        }
        let cutoff = SystemTime::now().checked_sub(self.limits.upload_max_age);
        match self.metadata.upload(repo, id).await? {
            Some(upload) if !cutoff.is_some_and(|cutoff| started_before(&upload, cutoff)) => {
                Ok(upload)
            }
            _ => Err(upload_unknown(id)),
        }
    }
}

// What reads or writes the blob store: only in a build that has one (see the module `registry`).
#[cfg(feature = "blobs")]
impl Registry {
    /// A whole blob in one request (`POST ?digest=`). A body that fits the store's part
    /// buffer is checked and stored at once; a larger one goes through an upload session of
    /// its own, streamed as any upload is, and dropped if it fails.
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        mut body: UploadBody,
    ) -> Result<()> {
        self.check_declared(body.declared, 0)?;
        let small = match (self.blobs.part_buffer(), body.declared) {
            (Some(buffer), Some(declared)) => declared <= buffer as u64,
            _ => false,
        };
        if small {
            let bytes = body.read_all(self.limits.max_chunk_bytes).await?;
            if !digest.matches(&bytes) {
                return Err(digest_mismatch(digest, &digest.algorithm().digest(&bytes)));
            }
            let size = bytes.len() as u64;
            self.blobs.put(digest, bytes).await?;
            self.metadata.link_blob(repo, digest, size).await?;
            return Ok(());
        }
        let session = self.start_upload(repo, digest.algorithm()).await?;
        let finished = self
            .finish_upload(repo, &session.id, digest, None, body)
            .await;
        if finished.is_err()
            && let Ok(upload) = self.load_upload(repo, &session.id).await
        {
            self.discard(repo, &upload, upload.pending_key.as_deref())
                .await;
        }
        finished
    }

    /// A chunk (`PATCH`). `start` is the first byte's offset from `Content-Range`, if sent:
    /// it must be where the upload stands (else 416). The body is read only once the
    /// request holds the upload: a request racing another gets `416` unread.
    pub async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        mut body: UploadBody,
    ) -> Result<UploadStatus> {
        let mut upload = self.claim_for(repo, id, start, body.declared).await?;
        let superseded = upload.pending_key.clone();
        let written = match self.take_body(repo, &mut upload, &mut body, false).await {
            Ok(_) => self.release(repo, &mut upload).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                if let Some(old) = superseded.filter(|k| Some(k) != upload.pending_key.as_ref()) {
                    self.remove_pending(&upload.id, &old).await;
                }
                Ok(status(&upload))
            }
            Err(e) => {
                // The upload went (cancelled, purged) while this request wrote to it: the
                // pending bytes it wrote are named by no state, so nothing else would
                // remove them (a cancel removes what the state it deleted names). Only on
                // that certain answer: after a fault the state may name them after all.
                if e.code == ErrorCode::BlobUploadUnknown
                    && let Some(new) = upload.pending_key.as_ref()
                    && Some(new) != superseded.as_ref()
                {
                    self.remove_pending(&upload.id, new).await;
                }
                Err(self.after_failed_write(repo, upload, e).await)
            }
        }
    }

    /// Finishes an upload (`PUT ?digest=`), with an optional last chunk: the digest must be
    /// that of every byte received, then the blob is stored and linked, and the upload gone.
    /// Asked again once the blob is stored (a retry after a lost answer or a crash), it
    /// answers the same.
    ///
    /// The bytes were hashed with the upload's algorithm as they came. A digest of another
    /// algorithm (a client that pushes sha512 without `digest-algorithm=`, as the spec's
    /// conformance suite does) is checked over the bytes themselves where they are at hand:
    /// when the blob is all in this request's buffer, or by a blob store that hashes the
    /// parts as it joins them (a folder). Otherwise (S3's parts, which cannot be read
    /// before they are joined) it is refused with a hint, and the upload stays.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        mut body: UploadBody,
    ) -> Result<()> {
        if body.declared == Some(0)
            && self.metadata.blob_link(repo, digest).await?.is_some()
            && self.load_upload(repo, id).await.is_err()
        {
            // Finished already: the blob is stored and linked, the session gone.
            return Ok(());
        }
        let mut upload = self.claim_for(repo, id, start, body.declared).await?;
        let superseded = upload.pending_key.clone();
        let rest = match self.take_body(repo, &mut upload, &mut body, true).await {
            Ok(rest) => rest,
            Err(e) => return Err(self.after_failed_write(repo, upload, e).await),
        };
        let hashed = restore_hasher(&upload)?;
        let actual = if hashed.algorithm() == digest.algorithm() {
            Some(hashed.finish())
        } else if upload.parts.is_empty() {
            // The whole blob is what waits: hash it with the digest's algorithm.
            let bytes = match &rest {
                Rest::Bytes(bytes) => bytes.clone(),
                Rest::Pending(key) => self
                    .blobs
                    .pending(&upload.id, key)
                    .await
                    .map_err(|e| store_error(&upload, e))?,
            };
            Some(digest.algorithm().digest(&bytes))
        } else if self.blobs.checks_joined_parts() {
            None
        } else {
            let error = RegistryError::new(
                ErrorCode::DigestInvalid,
                format!(
                    "this upload's bytes were hashed with {}, so {digest} cannot be checked: \
                     start the upload with ?digest-algorithm={}",
                    hashed.algorithm().name(),
                    digest.algorithm().name()
                ),
            );
            return Err(self.after_failed_write(repo, upload, error).await);
        };
        if let Some(actual) = actual
            && actual != *digest
        {
            // The bytes are not what the client meant: drop them all.
            self.discard(repo, &upload, superseded.as_deref()).await;
            return Err(digest_mismatch(digest, &actual));
        }
        if self.blobs.size(digest).await?.is_some() {
            // Stored already (by another upload, or by this one before a crash): a blob is
            // never replaced, and these bytes hash to it; only the parts go.
            if let Err(e) = self
                .blobs
                .abort_parts(&upload.id, upload.handle.as_deref(), None)
                .await
            {
                tracing::warn!(error = %e, upload = upload.id, "parts not removed");
            }
        } else {
            match &upload.handle {
                // Its parts gone means the upload was cancelled or purged meanwhile.
                Some(handle) if !upload.parts.is_empty() => {
                    match self
                        .blobs
                        .complete_parts(&upload.id, handle, &upload.parts, digest)
                        .await
                    {
                        Ok(()) => {}
                        // The store hashed the joined parts: not the digest's bytes.
                        Err(StoreError::Mismatch(cause)) => {
                            self.discard(repo, &upload, superseded.as_deref()).await;
                            return Err(RegistryError::new(ErrorCode::DigestInvalid, cause)
                                .with_detail(json!({ "digest": digest.to_string() })));
                        }
                        Err(e) => return Err(store_error(&upload, e)),
                    }
                }
                // No part: the blob is what waits (all of it, or nothing: the empty blob).
                _ => {
                    match rest {
                        Rest::Bytes(bytes) => self.blobs.put(digest, bytes).await?,
                        Rest::Pending(key) => self
                            .blobs
                            .adopt_pending(&upload.id, &key, digest)
                            .await
                            .map_err(|e| store_error(&upload, e))?,
                    }
                    if let Some(handle) = &upload.handle
                        && let Err(e) = self.blobs.abort_parts(&upload.id, Some(handle), None).await
                    {
                        tracing::warn!(error = %e, upload = upload.id, "empty parts not removed");
                    }
                }
            }
        }
        self.metadata.link_blob(repo, digest, upload.offset).await?;
        tracing::info!(target: "quayside::audit", action = "blob_push", repository = %repo, %digest, size = upload.offset);
        // The blob is stored and linked: what follows only tidies up, and never fails it.
        if let Some(pending) = superseded {
            self.remove_pending(&upload.id, &pending).await;
        }
        if let Err(e) = self.metadata.delete_upload(repo, &upload.id).await {
            tracing::warn!(error = %e, upload = upload.id, "finished upload not removed");
        }
        Ok(())
    }

    /// Cancels an upload and removes its bytes. It wins over a request writing to it, whose
    /// next step finds the upload gone.
    ///
    /// The state goes first, and the bytes its last version names after: a writer can then
    /// record nothing more, and removes itself what it wrote but could not record. (Bytes
    /// first, as before, let a writer record new bytes between the two, which stayed.)
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        // An id is ours only if it is a UUID (as in `load_upload`).
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(upload_unknown(id));
        }
        match self.metadata.delete_upload(repo, id).await? {
            Some(upload) => {
                self.remove_bytes(&upload).await?;
                Ok(())
            }
            None => {
                // Unknown, or deleted by a try of this very call whose answer was lost (the
                // SDK retried it): the bytes of such a one would be left, so the store
                // removes whatever it holds for the id.
                if let Err(e) = self.blobs.abort_parts(id, None, None).await {
                    tracing::warn!(error = %e, upload = id, "bytes of an unknown upload not removed");
                }
                Err(upload_unknown(id))
            }
        }
    }

    /// Removes every byte an upload's state names: its parts and pending bytes.
    async fn remove_bytes(&self, upload: &Upload) -> Result<()> {
        self.blobs
            .abort_parts(
                &upload.id,
                upload.handle.as_deref(),
                upload.pending_key.as_deref(),
            )
            .await?;
        Ok(())
    }

    /// Removes every upload started more than `max_age` ago, with its parts and pending
    /// bytes, then what the blob store holds of uploads that no state names (bytes of a
    /// crashed request, temporary files) and last changed as long ago: abandoned uploads
    /// would otherwise stay for ever. Each upload goes as a cancel does (its state first,
    /// so a request still writing to it gets `404` and removes what it wrote); one that
    /// fails is logged and left for the next purge. registry-local runs this at start and
    /// hourly; on AWS the table's TTL and the bucket's lifecycle rules do it.
    pub async fn purge_uploads(&self, max_age: Duration) -> Result<Purged> {
        let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(UNIX_EPOCH);
        let mut purged = Purged::default();
        let uploads = self.metadata.uploads().await?;
        let stale = uploads
            .into_iter()
            .filter(|(_, u)| started_before(u, cutoff));
        for (repo, stale) in stale {
            let removed = async {
                match self.metadata.delete_upload(&repo, &stale.id).await? {
                    Some(last) => self.remove_bytes(&last).await.map(|()| true),
                    // Finished or cancelled since it was listed.
                    None => Ok(false),
                }
            };
            match removed.await {
                Ok(true) => {
                    purged.uploads = purged.uploads.saturating_add(1);
                    tracing::info!(target: "quayside::audit", action = "upload_purge", repository = %repo, upload = stale.id, started = stale.started, size = stale.offset);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, repository = %repo, upload = stale.id, "stale upload not purged")
                }
            }
        }
        purged.stray = self.blobs.purge_stray(cutoff).await?;
        Ok(purged)
    }

    /// [`Registry::claim`] for a request whose body declares `declared` bytes: let go again
    /// if they cannot fit.
    async fn claim_for(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        declared: Option<u64>,
    ) -> Result<Upload> {
        let mut upload = self.claim(repo, id, start).await?;
        if let Err(e) = self.check_declared(declared, upload.offset) {
            self.release(repo, &mut upload).await?;
            return Err(e);
        }
        Ok(upload)
    }

    /// Makes this request the upload's one writer: `416` if the chunk does not start where
    /// the upload stands, or another request holds it (until its lease runs out).
    async fn claim(&self, repo: &RepositoryName, id: &str, start: Option<u64>) -> Result<Upload> {
        let upload = self.load_upload(repo, id).await?;
        if let Some(start) = start
            && start != upload.offset
        {
            return Err(out_of_order(upload.offset, start));
        }
        let now = unix_now();
        if upload.writer.is_some() && upload.lease_until > now {
            return Err(busy(&upload));
        }
        let mut claimed = upload.clone();
        claimed.writer = Some(uuid::Uuid::new_v4().simple().to_string());
        claimed.lease_until = now.saturating_add(self.limits.upload_lease.as_secs());
        claimed.version = upload.version.wrapping_add(1);
        match self
            .metadata
            .update_upload(repo, &claimed, upload.version)
            .await
        {
            Ok(()) => Ok(claimed),
            Err(StoreError::Conflict(_)) => Err(busy(&upload)),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the upload's progress as its writer, the claim renewed: what it records is
    /// durable. `BLOB_UPLOAD_UNKNOWN` if the upload was cancelled or taken over meanwhile.
    async fn record(&self, repo: &RepositoryName, upload: &mut Upload) -> Result<()> {
        let expected = upload.version;
        upload.version = expected.wrapping_add(1);
        upload.lease_until = unix_now().saturating_add(self.limits.upload_lease.as_secs());
        match self.metadata.update_upload(repo, upload, expected).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(upload_lost(&upload.id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the upload's state and lets go of it.
    async fn release(&self, repo: &RepositoryName, upload: &mut Upload) -> Result<()> {
        upload.writer = None;
        upload.lease_until = 0;
        self.record(repo, upload).await
    }

    /// A write failed: let go of the upload with what was recorded (a client may resume
    /// from its `Range`), except that a blob over the size limit drops the whole upload.
    /// The request's error stands; tidying up is logged if it fails.
    async fn after_failed_write(
        &self,
        repo: &RepositoryName,
        upload: Upload,
        error: RegistryError,
    ) -> RegistryError {
        if error.code == ErrorCode::BlobUploadUnknown {
            return error;
        }
        let Ok(mut stored) = self.load_upload(repo, &upload.id).await else {
            return error;
        };
        if stored.writer != upload.writer {
            return error;
        }
        if error.code == ErrorCode::SizeInvalid {
            self.discard(repo, &stored, stored.pending_key.clone().as_deref())
                .await;
        } else if let Err(e) = self.release(repo, &mut stored).await {
            tracing::warn!(error = %e, upload = upload.id, "upload not released");
        }
        error
    }

    /// Refuses, from the headers, a body that cannot fit: over one request's limit, or
    /// over the blob's with what the upload holds.
    fn check_declared(&self, declared: Option<u64>, offset: u64) -> Result<()> {
        let Some(declared) = declared else {
            return Ok(());
        };
        if declared > self.limits.max_chunk_bytes {
            return Err(chunk_too_large(declared, self.limits.max_chunk_bytes));
        }
        if offset.saturating_add(declared) > self.limits.max_blob_bytes {
            return Err(blob_too_large(self.limits.max_blob_bytes));
        }
        Ok(())
    }

    /// Takes the request's body into the upload, which this request holds, hashing every
    /// byte on the way and recording each part as it is stored. A store that streams parts
    /// takes the whole body as one part; one that buffers them (S3) takes parts of its
    /// buffer's size, and what is left waits as pending bytes, or, when `last`, is returned
    /// (a final part is written if parts were begun).
    async fn take_body(
        &self,
        repo: &RepositoryName,
        upload: &mut Upload,
        body: &mut UploadBody,
        last: bool,
    ) -> Result<Rest> {
        let limits = Budget {
            chunk_left: self.limits.max_chunk_bytes,
            blob_left: self.limits.max_blob_bytes.saturating_sub(upload.offset),
            max_chunk: self.limits.max_chunk_bytes,
            max_blob: self.limits.max_blob_bytes,
        };
        let Some(buffer) = self.blobs.part_buffer() else {
            // No bytes (docker's finishing PUT): the store is not touched, so that the
            // retry of a finish that crashed after the parts became the blob (their
            // folder gone) still finishes.
            if body.declared == Some(0) {
                return Ok(Rest::Bytes(Bytes::new()));
            }
            let mut source = Hashing {
                body,
                hasher: restore_hasher(upload)?,
                budget: limits,
                taken: 0,
                failure: None,
                whole_part: upload.offset == 0,
            };
            if upload.handle.is_none() {
                self.begin_parts(repo, upload).await?;
            }
            let handle = upload.handle.clone().unwrap_or_default();
            let number = next_part_number(upload)?;
            let (tag, size) = self
                .blobs
                .put_part_from(&upload.id, &handle, number, &mut source)
                .await
                .map_err(|e| source.error().unwrap_or_else(|| store_error(upload, e)))?;
            if size > 0 {
                upload.parts.push(Part { number, tag, size });
                upload.offset = checked_add(upload.offset, size)?;
                upload.hash_state = source.hasher.save();
            }
            return Ok(Rest::Bytes(Bytes::new()));
        };
        if last
            && body.declared == Some(0)
            && upload.parts.is_empty()
            && let Some(key) = upload.pending_key.clone().filter(|_| upload.pending > 0)
        {
            // A small blob, all pending, and a finish with no bytes (docker's): the store
            // makes the pending bytes the blob itself (S3 copies within the bucket), so
            // they are not read back into this request only to be written again.
            return Ok(Rest::Pending(key));
        }
        let mut hasher = restore_hasher(upload)?;
        let mut budget = limits;
        let mut waiting = match (&upload.pending_key, upload.pending) {
            (_, 0) => BytesMut::new(),
            (Some(key), size) => {
                // Gone means a cancel or purge removed them after this request's claim.
                let stored = self
                    .blobs
                    .pending(&upload.id, key)
                    .await
                    .map_err(|e| store_error(upload, e))?;
                if stored.len() as u64 != size {
                    return Err(RegistryError::internal(format!(
                        "upload {}: {} pending bytes stored, {size} recorded",
                        upload.id,
                        stored.len()
                    )));
                }
                BytesMut::from(stored)
            }
            // Written before pending bytes had keys: they cannot be told from a racer's.
            (None, _) => {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("upload {} cannot be continued: start it again", upload.id),
                ));
            }
        };
        let pending_before = upload.pending;
        let mut received = 0u64;
        while let Some(chunk) = body.next_chunk(buffer).await.map_err(body_error)? {
            budget.take(chunk.len() as u64)?;
            hasher.update(&chunk);
            received = checked_add(received, chunk.len() as u64)?;
            waiting.extend_from_slice(&chunk);
            if waiting.len() >= buffer {
                let part = waiting.split().freeze();
                self.write_part(repo, upload, part, &hasher, pending_before, received)
                    .await?;
                received = 0;
            }
        }
        let waiting = waiting.freeze();
        upload.offset = checked_add(upload.offset, received)?;
        upload.hash_state = hasher.save();
        if last {
            if upload.handle.is_some() && !waiting.is_empty() {
                // The last part may be smaller than S3's 5 MiB.
                self.put_next_part(upload, waiting).await?;
                upload.pending = 0;
                return Ok(Rest::Bytes(Bytes::new()));
            }
            return Ok(Rest::Bytes(waiting));
        }
        if !waiting.is_empty() {
            upload.pending = waiting.len() as u64;
            upload.pending_key = Some(self.blobs.put_pending(&upload.id, waiting).await?);
        } else {
            upload.pending = 0;
            upload.pending_key = None;
        }
        Ok(Rest::Bytes(Bytes::new()))
    }

    /// Stores a full buffer as the upload's next part and records it. `received` bytes of
    /// this request (beyond what the upload held) are in it, with the pending bytes.
    async fn write_part(
        &self,
        repo: &RepositoryName,
        upload: &mut Upload,
        part: Bytes,
        hasher: &Hasher,
        pending_before: u64,
        received: u64,
    ) -> Result<()> {
        if upload.handle.is_none() {
            self.begin_parts(repo, upload).await?;
        }
        self.put_next_part(upload, part).await?;
        upload.offset = checked_add(upload.offset, received)?;
        upload.hash_state = hasher.save();
        let superseded = upload.pending_key.take();
        upload.pending = 0;
        self.record(repo, upload).await?;
        if let Some(old) = superseded.filter(|_| pending_before > 0) {
            self.remove_pending(&upload.id, &old).await;
        }
        Ok(())
    }

    /// Stores `bytes` as the upload's next part (its parts begun) and adds it to the state.
    async fn put_next_part(&self, upload: &mut Upload, bytes: Bytes) -> Result<()> {
        let number = next_part_number(upload)?;
        let size = bytes.len() as u64;
        let handle = upload.handle.as_deref().unwrap_or_default();
        let tag = self
            .blobs
            .put_part(&upload.id, handle, number, bytes)
            .await
            .map_err(|e| store_error(upload, e))?;
        upload.parts.push(Part { number, tag, size });
        Ok(())
    }

    /// Begins the upload's parts and records their handle before any part is written, so
    /// that nothing the store holds is unknown to the upload's state.
    async fn begin_parts(&self, repo: &RepositoryName, upload: &mut Upload) -> Result<()> {
        let handle = self
            .blobs
            .begin_parts(&upload.id)
            .await
            .map_err(|e| store_error(upload, e))?;
        upload.handle = Some(handle.clone());
        if let Err(e) = self.record(repo, upload).await {
            if let Err(abort) = self
                .blobs
                .abort_parts(&upload.id, Some(&handle), None)
                .await
            {
                tracing::warn!(error = %abort, upload = upload.id, "parts not aborted");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes pending bytes nothing refers to any more; a failure only wastes space (the
    /// upload's folder or the bucket's lifecycle rule takes them later), so it is logged.
    async fn remove_pending(&self, id: &str, key: &str) {
        if let Err(e) = self.blobs.remove_pending(id, key).await {
            tracing::warn!(error = %e, upload = id, key, "pending bytes not removed");
        }
    }

    /// Removes an upload that cannot finish (the state first, as a cancel does), and the
    /// pending bytes `pending` this request read; failures are logged, the client's error
    /// stands.
    async fn discard(&self, repo: &RepositoryName, upload: &Upload, pending: Option<&str>) {
        let removed = async {
            let stored = self.metadata.delete_upload(repo, &upload.id).await?;
            let last = stored.as_ref().unwrap_or(upload);
            self.blobs
                .abort_parts(&upload.id, last.handle.as_deref(), pending)
                .await?;
            if let Some(other) = last.pending_key.as_deref().filter(|k| Some(*k) != pending) {
                self.blobs.remove_pending(&upload.id, other).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = removed.await {
            tracing::warn!(error = %e, upload = upload.id, "upload not cleaned up");
        }
    }
}

/// What waits to become the blob when an upload with no parts finishes.
enum Rest {
    /// These bytes (all of the blob; none for the empty blob).
    Bytes(Bytes),
    /// The upload's pending bytes under this key, all of the blob, not read.
    Pending(String),
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn checked_add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| RegistryError::new(ErrorCode::SizeInvalid, "the upload's size overflows"))
}

/// The next part's number: S3 numbers parts 1 to 10000.
fn next_part_number(upload: &Upload) -> Result<u32> {
    u32::try_from(upload.parts.len())
        .ok()
        .and_then(|n| n.checked_add(1))
        .filter(|n| *n <= 10_000)
        .ok_or_else(|| {
            RegistryError::new(
                ErrorCode::SizeInvalid,
                "the upload has 10000 parts, the most it may have: send larger chunks",
            )
            .with_status(413)
        })
}

/// A store fault while writing the upload's bytes: a `Conflict` means the upload was
/// cancelled or finished meanwhile.
fn store_error(upload: &Upload, e: StoreError) -> RegistryError {
    match e {
        StoreError::Conflict(_) => upload_lost(&upload.id),
        e => e.into(),
    }
}

fn busy(upload: &Upload) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        format!(
            "another request is writing to upload {}; the upload has {} bytes",
            upload.id, upload.offset
        ),
    )
    .with_status(416)
    .with_detail(json!({ "offset": upload.offset }))
}

fn upload_lost(id: &str) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadUnknown,
        format!("upload {id:?} was cancelled or finished while this request wrote to it"),
    )
}

fn status(upload: &Upload) -> UploadStatus {
    UploadStatus {
        id: upload.id.clone(),
        offset: upload.offset,
    }
}

fn restore_hasher(upload: &Upload) -> Result<Hasher> {
    Hasher::restore(&upload.hash_state).ok_or_else(|| {
        RegistryError::internal(format!("upload {} has a damaged hash state", upload.id))
    })
}

fn upload_unknown(id: &str) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadUnknown,
        format!("upload {id:?} is unknown, finished or cancelled"),
    )
}

fn out_of_order(offset: u64, start: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        format!("the chunk starts at byte {start}, but the upload has {offset} bytes"),
    )
    .with_status(416)
    .with_detail(json!({ "offset": offset }))
}

fn digest_mismatch(expected: &Digest, actual: &Digest) -> RegistryError {
    RegistryError::new(
        ErrorCode::DigestInvalid,
        format!("the uploaded bytes have digest {actual}, not {expected}"),
    )
    .with_detail(json!({ "digest": expected.to_string() }))
}

/// Whether an upload's `started` (RFC 3339) is before `cutoff`; a time that does not parse
/// counts as before: such an upload has no age, and a purge must not keep it for ever.
pub fn started_before(upload: &Upload, cutoff: SystemTime) -> bool {
    match humantime::parse_rfc3339_weak(&upload.started) {
        Ok(started) => started < cutoff,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
