//! Blob operations: fetch, delete, cross-repository mount, and uploads (monolithic, or
//! chunked across requests that may each be a separate Lambda invocation).
//!
//! An upload keeps its state in the metadata store (offset, serialized SHA-256 state, parts)
//! and its bytes in the blob store's parts: S3 multipart parts of at least 5 MiB, smaller
//! chunks waiting as pending bytes until they make one. Nothing is re-read to hash it.
//!
//! Integrity: the state names exactly the bytes it was computed over. Pending bytes get a
//! new key at every write and parts a tag, both recorded in the state, so a request that
//! loses a race for the upload (its conditional update fails) cannot change what the winner
//! recorded; and the blob store checks the digest of what it stores and never replaces a
//! blob, so no bytes but those of a digest are ever served under it.
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

use crate::digest::{Algorithm, Digest};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::manifest::schema1_builder::{EMPTY_LAYER_BLOB, EMPTY_LAYER_DIGEST};
use crate::names::RepositoryName;
use crate::ports::{BlobBody, MIN_PART_BYTES, Part, StoreError, Upload};
use crate::registry::Registry;
use bytes::{Bytes, BytesMut};
use serde_json::json;
use sha2::Sha256;
use sha2::digest::Digest as _;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use std::time::SystemTime;

/// Where an upload stands: what `Location`, `Range` and `Docker-Upload-UUID` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    pub offset: u64,
}

/// A blob as GET answers it: its size and how to get its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedBlob {
    pub size: u64,
    pub body: BlobBody,
    /// The inclusive byte range served, when the request asked for one.
    pub range: Option<(u64, u64)>,
}

impl Registry {
    /// The size of a blob of the repository (HEAD): one read.
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        match self.metadata.blob_link(repo, digest).await? {
            Some(size) => Ok(size),
            None if is_empty_layer(digest) => Ok(EMPTY_LAYER_BLOB.len() as u64),
            None => Err(blob_unknown(repo, digest)),
        }
    }

    /// A blob's bytes, or where to fetch them; `range` is an HTTP byte range (inclusive).
    pub async fn fetch_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<FetchedBlob> {
        let size = self.blob_size(repo, digest).await?;
        let range = match range {
            None => None,
            Some((start, end)) => {
                let end = end.unwrap_or(u64::MAX).min(size.saturating_sub(1));
                if start >= size || start > end {
                    return Err(RegistryError::new(
                        ErrorCode::BlobUnknown,
                        format!("range {start}-{end} is outside the blob's {size} bytes"),
                    )
                    .with_status(416)
                    .with_detail(json!({ "size": size })));
                }
                Some((start, end))
            }
        };
        // The gzipped empty tar of converted schema1 manifests is served by every registry.
        if is_empty_layer(digest) && self.blobs.size(digest).await?.is_none() {
            let (start, end) = range.unwrap_or((0, size - 1));
            let bytes = Bytes::from_static(&EMPTY_LAYER_BLOB);
            return Ok(FetchedBlob {
                size,
                body: BlobBody::Bytes(bytes.slice(start as usize..=end as usize)),
                range,
            });
        }
        match self.blobs.fetch(digest, range).await? {
            Some(body) => Ok(FetchedBlob { size, body, range }),
            None => Err(RegistryError::internal(format!(
                "blob {digest} is linked to {repo} but not stored"
            ))),
        }
    }

    /// Removes the blob from the repository (the link; bytes may serve other repositories).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.metadata.unlink_blob(repo, digest).await? {
            tracing::info!(target: "quayside::audit", action = "blob_delete", repository = %repo, %digest);
            Ok(())
        } else {
            Err(blob_unknown(repo, digest))
        }
    }

    /// Links a blob of `from` into `repo` without copying a byte. False when `from` does not
    /// have it (the client then uploads it).
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
    ) -> Result<bool> {
        match self.metadata.blob_link(from, digest).await? {
            Some(size) => {
                self.metadata.link_blob(repo, digest, size).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A whole blob in one request (`POST ?digest=`, or `PUT` of an upload with no parts).
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<()> {
        if !digest.matches(&bytes) {
            return Err(digest_mismatch(digest, &digest.algorithm().digest(&bytes)));
        }
        let size = bytes.len() as u64;
        self.blobs.put(digest, bytes).await?;
        self.metadata.link_blob(repo, digest, size).await?;
        Ok(())
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        let upload = Upload {
            id: uuid::Uuid::new_v4().to_string(),
            offset: 0,
            hash_state: Sha256::new().serialize().to_vec(),
            pending: 0,
            pending_key: None,
            handle: None,
            parts: Vec::new(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        self.metadata.create_upload(repo, &upload).await?;
        Ok(status(&upload))
    }

    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        Ok(status(&self.load_upload(repo, id).await?))
    }

    /// A chunk (`PATCH`). `start` is the first byte's offset from `Content-Range`, if sent:
    /// it must be where the upload stands (else 416).
    pub async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        chunk: Bytes,
    ) -> Result<UploadStatus> {
        let upload = self.load_upload(repo, id).await?;
        let expected = upload.offset;
        let superseded = upload.pending_key.clone();
        let (upload, _) = self.absorb(upload, start, chunk, false).await?;
        let written = upload
            .pending_key
            .clone()
            .filter(|k| Some(k) != superseded.as_ref());
        match self.metadata.update_upload(repo, &upload, expected).await {
            Ok(()) => {
                if let Some(old) = superseded.filter(|k| Some(k) != upload.pending_key.as_ref()) {
                    self.remove_pending(&upload.id, &old).await;
                }
                Ok(status(&upload))
            }
            // Another request advanced the upload first: this chunk is out of order, and
            // the pending bytes it wrote are nobody's.
            Err(StoreError::Conflict(_)) => {
                if let Some(written) = written {
                    self.remove_pending(&upload.id, &written).await;
                }
                Err(out_of_order(expected, start.unwrap_or(expected)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Finishes an upload (`PUT ?digest=`), with an optional last chunk: the digest must be
    /// that of every byte received, then the blob is stored and linked, and the upload gone.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        chunk: Bytes,
    ) -> Result<()> {
        let upload = self.load_upload(repo, id).await?;
        if digest.algorithm() != Algorithm::Sha256 {
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("uploads are checked with sha256; {digest} cannot be verified"),
            ));
        }
        let superseded = upload.pending_key.clone();
        let (upload, rest) = self.absorb(upload, start, chunk, true).await?;
        let hasher = restore_hasher(&upload)?;
        let actual = Digest::from_hash(Algorithm::Sha256, hasher.finalize().as_slice());
        if actual != *digest {
            // The bytes are not what the client meant: drop them all.
            self.discard(repo, &upload, superseded.as_deref()).await;
            return Err(digest_mismatch(digest, &actual));
        }
        match &upload.handle {
            None => self.blobs.put(digest, rest).await?,
            Some(handle) => {
                self.blobs
                    .complete_parts(&upload.id, handle, &upload.parts, digest)
                    .await?
            }
        }
        self.metadata.link_blob(repo, digest, upload.offset).await?;
        if let Some(pending) = superseded {
            // Now in the blob: only waste.
            self.remove_pending(&upload.id, &pending).await;
        }
        self.metadata.delete_upload(repo, &upload.id).await?;
        tracing::info!(target: "quayside::audit", action = "blob_push", repository = %repo, %digest, size = upload.offset);
        Ok(())
    }

    /// Cancels an upload and removes its bytes.
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let upload = self.load_upload(repo, id).await?;
        self.blobs
            .abort_parts(
                &upload.id,
                upload.handle.as_deref(),
                upload.pending_key.as_deref(),
            )
            .await?;
        self.metadata.delete_upload(repo, id).await?;
        Ok(())
    }

    async fn load_upload(&self, repo: &RepositoryName, id: &str) -> Result<Upload> {
        // An id is ours only if it is a UUID: anything else cannot name an upload.
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(upload_unknown(id));
        }
        self.metadata
            .upload(repo, id)
            .await?
            .ok_or_else(|| upload_unknown(id))
    }

    /// Takes a chunk into the upload: hashes it and stores it as a part once 5 MiB are
    /// waiting. When `last`, what still waits is returned instead: the final part, or the
    /// whole blob if no part was written.
    async fn absorb(
        &self,
        mut upload: Upload,
        start: Option<u64>,
        chunk: Bytes,
        last: bool,
    ) -> Result<(Upload, Bytes)> {
        if let Some(start) = start
            && start != upload.offset
        {
            return Err(out_of_order(upload.offset, start));
        }
        let mut hasher = restore_hasher(&upload)?;
        hasher.update(&chunk);
        upload.hash_state = hasher.serialize().to_vec();
        upload.offset += chunk.len() as u64;

        let waiting = match (&upload.pending_key, upload.pending) {
            (_, 0) => chunk,
            (Some(key), size) => {
                let stored = self.blobs.pending(&upload.id, key).await?;
                if stored.len() as u64 != size {
                    return Err(RegistryError::internal(format!(
                        "upload {}: {} pending bytes stored, {size} recorded",
                        upload.id,
                        stored.len()
                    )));
                }
                let mut joined = BytesMut::from(stored);
                joined.extend_from_slice(&chunk);
                joined.freeze()
            }
            // Written before pending bytes had keys: they cannot be told from a racer's.
            (None, _) => {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("upload {} cannot be continued: start it again", upload.id),
                ));
            }
        };
        let ready = waiting.len() >= MIN_PART_BYTES || (last && upload.handle.is_some());
        if ready && !waiting.is_empty() {
            let handle = match &upload.handle {
                Some(handle) => handle.clone(),
                None => self.blobs.begin_parts(&upload.id).await?,
            };
            let number = upload.parts.len() as u32 + 1;
            let size = waiting.len() as u64;
            let tag = self
                .blobs
                .put_part(&upload.id, &handle, number, waiting)
                .await?;
            upload.parts.push(Part { number, tag, size });
            upload.handle = Some(handle);
            upload.pending = 0;
            upload.pending_key = None;
            return Ok((upload, Bytes::new()));
        }
        if !last && !waiting.is_empty() {
            upload.pending = waiting.len() as u64;
            upload.pending_key = Some(self.blobs.put_pending(&upload.id, waiting.clone()).await?);
        }
        Ok((upload, waiting))
    }

    /// Removes pending bytes nothing refers to any more; a failure only wastes space (the
    /// upload's folder or the bucket's lifecycle rule takes them later), so it is logged.
    async fn remove_pending(&self, id: &str, key: &str) {
        if let Err(e) = self.blobs.remove_pending(id, key).await {
            tracing::warn!(error = %e, upload = id, key, "pending bytes not removed");
        }
    }

    /// Removes an upload that cannot finish; failures are logged, the client's error stands.
    async fn discard(&self, repo: &RepositoryName, upload: &Upload, pending: Option<&str>) {
        let removed = async {
            self.blobs
                .abort_parts(&upload.id, upload.handle.as_deref(), pending)
                .await?;
            self.metadata.delete_upload(repo, &upload.id).await
        };
        if let Err(e) = removed.await {
            tracing::warn!(error = %e, upload = upload.id, "upload not cleaned up");
        }
    }
}

fn status(upload: &Upload) -> UploadStatus {
    UploadStatus {
        id: upload.id.clone(),
        offset: upload.offset,
    }
}

fn restore_hasher(upload: &Upload) -> Result<Sha256> {
    SerializedState::<Sha256>::try_from(upload.hash_state.as_slice())
        .ok()
        .and_then(|state| Sha256::deserialize(&state).ok())
        .ok_or_else(|| {
            RegistryError::internal(format!("upload {} has a damaged hash state", upload.id))
        })
}

fn is_empty_layer(digest: &Digest) -> bool {
    digest.to_string() == EMPTY_LAYER_DIGEST
}

fn blob_unknown(repo: &RepositoryName, digest: &Digest) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} is not in {repo}"),
    )
    .with_detail(json!({ "digest": digest.to_string() }))
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
