//! [`S3Blobs`]: the [`BlobStore`] port over one S3 bucket, plus what the blob and upload
//! routes need beyond the port: presigned GET URLs (pulls are redirected to S3, so no layer
//! byte passes through Lambda) and the multipart and copy calls that assemble an upload.
//!
//! May call: `ports`, `digest`, the S3 SDK. Must not know HTTP or the metadata store.
//!
//! Keys: a blob is `blobs/<algorithm>/<hex>` (content-addressed, as the embedded folder).
//! An upload in progress keeps its multipart upload at `uploads/<id>/blob` and the bytes
//! waiting to make a 5 MiB part at `uploads/<id>/pending-<key>`, a new key per write (so a
//! request that loses a race for the upload cannot change what the winner recorded);
//! completing it copies the assembled object to the blob's key, unless a blob is there.
//! Abandoned uploads' objects and multipart uploads are the bucket's lifecycle rules' to
//! remove (template.yaml), or registry-local's purge ([`BlobStore::purge_stray`]).
//! A blob is never replaced: `PutObject` carries `If-None-Match: *`, and a digest's bytes
//! are checked before they are sent. A [`Digest`] is validated lowercase hex of a known
//! algorithm, and an upload id a UUID, so both are safe in a key.

use super::{broken_body, sdk_error};
use crate::digest::{Algorithm, Digest};
use crate::ports::{BlobBody, BlobStore, Part, StoreError, StoreResult};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use base64::Engine as _;
use bytes::Bytes;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Blobs in one bucket.
#[derive(Clone, Debug)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
    presign_expiry: Duration,
}

/// A part of a multipart upload, as `CompleteMultipartUpload` needs it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

impl S3Blobs {
    /// Blobs in `bucket`; presigned URLs live `presign_expiry`.
    pub fn new(client: Client, bucket: impl Into<String>, presign_expiry: Duration) -> Self {
        S3Blobs {
            client,
            bucket: bucket.into(),
            presign_expiry,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key of a blob: `blobs/<algorithm>/<hex>`.
    pub fn key(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
    }

    /// A URL that GETs the blob for the configured expiry, without credentials: the blob
    /// route answers `307` to it. Signing is local (no call to S3); whether the blob
    /// exists is the caller's business.
    pub async fn presigned_get(&self, digest: &Digest) -> StoreResult<String> {
        self.presigned_get_for(digest, self.presign_expiry).await
    }

    /// As [`S3Blobs::presigned_get`], with its own expiry (S3 allows up to seven days).
    pub async fn presigned_get_for(
        &self,
        digest: &Digest,
        expiry: Duration,
    ) -> StoreResult<String> {
        let config = PresigningConfig::expires_in(expiry)
            .map_err(|e| StoreError::backend(format!("presigning expiry {expiry:?}: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(Self::key(digest))
            .presigned(config)
            .await
            .map_err(|e| sdk_error("presigning GetObject", e))?;
        Ok(request.uri().to_string())
    }

    /// Starts a multipart upload to `key`; returns its upload id.
    pub async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", e))?;
        out.upload_id
            .ok_or_else(|| StoreError::backend("CreateMultipartUpload returned no upload id"))
    }

    /// Uploads part `number` (1..=10000; every part but the last at least 5 MiB).
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Bytes,
    ) -> StoreResult<UploadedPart> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error("UploadPart", e))?;
        let etag = out
            .e_tag
            .ok_or_else(|| StoreError::backend("UploadPart returned no ETag"))?;
        Ok(UploadedPart { number, etag })
    }

    /// Assembles the parts, in order, into the object `key`.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> StoreResult<()> {
        self.complete_multipart_upload(key, upload_id, parts)
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", e))
    }

    /// `CompleteMultipartUpload`, its error as S3 gave it.
    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), SdkError<CompleteMultipartUploadError, HttpResponse>> {
        let parts = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// Abandons an upload and its parts (the bucket's lifecycle rule catches forgotten ones);
    /// `Conflict` if it is gone (completed or aborted).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_upload()) => Err(
                StoreError::Conflict(format!("multipart upload {upload_id:?} of {key} is gone")),
            ),
            Err(e) => Err(sdk_error("AbortMultipartUpload", e)),
        }
    }

    /// Copies the object `from` to `to` within the bucket (up to 5 GB in one call).
    pub async fn copy(&self, from: &str, to: &str) -> StoreResult<()> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{from}", self.bucket))
            .key(to)
            .send()
            .await
            .map_err(|e| sdk_error("CopyObject", e))?;
        Ok(())
    }

    /// Deletes the object `key` (an assembled upload once copied into place).
    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteObject", e))?;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn size(&self, digest: &Digest) -> StoreResult<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(Self::key(digest))
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.content_length
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| StoreError::backend("HeadObject returned no length"))?,
            )),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_error("HeadObject", e)),
        }
    }

    async fn get(&self, digest: &Digest) -> StoreResult<Option<Bytes>> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(Self::key(digest))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error("GetObject", e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| broken_body("reading GetObject body", e))?;
        Ok(Some(body.into_bytes()))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> StoreResult<()> {
        if !digest.matches(&bytes) {
            return Err(StoreError::Mismatch(format!(
                "the bytes to store as {digest} do not hash to it: not stored"
            )));
        }
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(digest))
            .if_none_match("*")
            .content_type("application/octet-stream");
        // S3 checks a SHA-256 it is given: the bytes arrive intact or not at all.
        if digest.algorithm() == Algorithm::Sha256
            && let Ok(raw) = hex::decode(digest.hex())
        {
            put = put.checksum_sha256(base64::engine::general_purpose::STANDARD.encode(raw));
        }
        match put.body(ByteStream::from(bytes)).send().await {
            Ok(_) => Ok(()),
            // The blob is there already (the same digest, so the same bytes): it stands.
            Err(e) if is_precondition_failed(&e) => Ok(()),
            Err(e) => Err(sdk_error("PutObject", e)),
        }
    }

    /// A redirect to a presigned GET (no call to S3: the registry has checked the blob's
    /// link, and a client repeats its `Range` header to S3, which serves ranges itself).
    async fn fetch(
        &self,
        digest: &Digest,
        _range: Option<(u64, u64)>,
    ) -> StoreResult<Option<BlobBody>> {
        Ok(Some(BlobBody::Redirect(self.presigned_get(digest).await?)))
    }

    /// Parts of 8 MiB, buffered: over S3's 5 MiB least, and a bound on each request's memory
    /// (10000 parts make blobs of up to 78 GiB; `CopyObject` then takes 5 GiB at most).
    fn part_buffer(&self) -> Option<usize> {
        Some(8 * 1024 * 1024)
    }

    /// An S3 multipart upload to `uploads/<id>/blob`; its UploadId is the handle.
    async fn begin_parts(&self, id: &str) -> StoreResult<String> {
        self.create_multipart(&upload_key(id, "blob")?).await
    }

    /// `UploadPart`; the part's ETag is its tag.
    async fn put_part(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        bytes: Bytes,
    ) -> StoreResult<String> {
        let number = i32::try_from(number)
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                StoreError::backend(format!("S3 part number {number} is not 1..=10000"))
            })?;
        let result = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(upload_key(id, "blob")?)
            .upload_id(handle)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(out) => out
                .e_tag
                .ok_or_else(|| StoreError::backend("UploadPart returned no ETag")),
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload") => {
                Err(StoreError::Conflict(format!(
                    "the parts of upload {id:?} are gone (completed or aborted meanwhile)"
                )))
            }
            Err(e) => Err(sdk_error("UploadPart", e)),
        }
    }

    async fn put_pending(&self, id: &str, bytes: Bytes) -> StoreResult<String> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(pending_key(id, &key)?)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject pending", e))?;
        Ok(key)
    }

    async fn pending(&self, id: &str, key: &str) -> StoreResult<Bytes> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(pending_key(id, key)?)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .body
                .collect()
                .await
                .map_err(|e| broken_body("reading pending bytes", e))?
                .into_bytes()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Err(
                StoreError::Conflict(format!("the pending bytes of upload {id:?} are gone")),
            ),
            Err(e) => Err(sdk_error("GetObject pending", e)),
        }
    }

    async fn remove_pending(&self, id: &str, key: &str) -> StoreResult<()> {
        self.delete(&pending_key(id, key)?).await
    }

    /// One `CopyObject` within the bucket: no byte passes through the function again. The
    /// pending object was written once, under a key of its own, by the writer that hashed
    /// its bytes; S3 reports the copy's SHA-256, which must be the digest's (else the copy
    /// is removed, and nothing is stored).
    async fn adopt_pending(&self, id: &str, key: &str, digest: &Digest) -> StoreResult<()> {
        let target = Self::key(digest);
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, pending_key(id, key)?))
            .key(&target)
            .content_type("application/octet-stream")
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .send()
            .await;
        let out = match copied {
            Ok(out) => out,
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") => {
                return Err(StoreError::Conflict(format!(
                    "the pending bytes of upload {id:?} are gone"
                )));
            }
            Err(e) => return Err(sdk_error("CopyObject pending", e)),
        };
        let reported = out
            .copy_object_result()
            .and_then(|r| r.checksum_sha256())
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
        if digest.algorithm() == Algorithm::Sha256
            && let Some(raw) = reported
            && hex::encode(raw) != digest.hex()
        {
            self.delete(&target).await?;
            return Err(StoreError::Mismatch(format!(
                "the pending bytes of upload {id:?} do not hash to {digest}: not stored"
            )));
        }
        Ok(())
    }

    /// Completes the multipart upload, copies the result to the blob's key (one
    /// `CopyObject`: blobs up to 5 GB), then removes the upload's objects. The blob appears
    /// whole or not at all: S3 writes an object atomically.
    async fn complete_parts(
        &self,
        id: &str,
        handle: &str,
        parts: &[Part],
        digest: &Digest,
    ) -> StoreResult<()> {
        let assembled = upload_key(id, "blob")?;
        let parts: Vec<UploadedPart> = parts
            .iter()
            .map(|p| {
                i32::try_from(p.number)
                    .map(|number| UploadedPart {
                        number,
                        etag: p.tag.clone(),
                    })
                    .map_err(StoreError::backend)
            })
            .collect::<StoreResult<_>>()?;
        match self
            .complete_multipart_upload(&assembled, handle, &parts)
            .await
        {
            Ok(()) => {}
            // Aborted meanwhile (the upload was cancelled or purged), or completed by an
            // earlier try whose copy then failed: either way these parts are no more.
            Err(e) if is_no_such_upload(&e) => {
                return Err(StoreError::Conflict(format!(
                    "the parts of upload {id:?} are gone"
                )));
            }
            Err(e) => return Err(sdk_error("CompleteMultipartUpload", e)),
        }
        // A blob is never replaced: one stored under this digest stands.
        if self.size(digest).await?.is_none() {
            self.copy(&assembled, &Self::key(digest)).await?;
        }
        // The blob is stored: a leftover only wastes space (the lifecycle rule expires it).
        if let Err(e) = self.delete(&assembled).await {
            tracing::warn!(error = %e, key = assembled, "upload object not removed");
        }
        if let Err(e) = self.abort_unrecorded(id, Some(handle)).await {
            tracing::warn!(error = %e, upload = id, "unrecorded multipart uploads not aborted");
        }
        Ok(())
    }

    /// Objects under `uploads/` last written before `cutoff` (pending bytes, an assembled
    /// upload whose removal failed): what the bucket's `uploads/` expiration rule removes on
    /// AWS (at midnight UTC after the age), removed now (registry-local's purge). One
    /// `ListObjectsV2` and one `DeleteObjects` per 1000 objects.
    ///
    /// Multipart uploads are left to the bucket's `AbortIncompleteMultipartUpload` rule:
    /// a purged or cancelled upload's is aborted with it, and one no record names is left
    /// only by a crash between the two (`begin_parts` records its handle before any part).
    /// (moto answers every `Initiated` as 2010-11-10, so it could not test an age there.)
    async fn purge_stray(&self, cutoff: SystemTime) -> StoreResult<u64> {
        let cutoff = cutoff
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or(0);
        let before =
            |t: Option<&aws_sdk_s3::primitives::DateTime>| t.is_some_and(|t| t.secs() < cutoff);
        let mut removed = 0u64;

        let mut stale = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(UPLOADS_PREFIX)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ListObjectsV2 uploads", e))?;
            for object in page.contents() {
                if let Some(key) = object.key()
                    && before(object.last_modified())
                {
                    stale.push(key.to_string());
                }
            }
        }
        for batch in stale.chunks(1000) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::backend)?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .map_err(StoreError::backend)?,
                )
                .send()
                .await
                .map_err(|e| sdk_error("DeleteObjects uploads", e))?;
            if let Some(failed) = out.errors().first() {
                return Err(StoreError::backend(format!(
                    "DeleteObjects of {:?}: {}",
                    failed.key(),
                    failed.message().unwrap_or_default()
                )));
            }
            removed = removed.saturating_add(batch.len() as u64);
        }

        Ok(removed)
    }

    async fn abort_parts(
        &self,
        id: &str,
        handle: Option<&str>,
        _pending: Option<&str>,
    ) -> StoreResult<()> {
        if let Some(handle) = handle {
            self.abort_if_there(id, handle).await?;
        }
        // The pending bytes, and what no state names: one `ListMultipartUploads` and one
        // `ListObjectsV2` of the upload's own prefix (a cancel, a purge, a failed upload:
        // never a push's path), whose objects are the pending ones among others.
        self.abort_unrecorded(id, handle).await?;
        let prefix = upload_key(id, "")?;
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .send()
            .await
            .map_err(|e| sdk_error("ListObjectsV2 upload", e))?;
        for object in listed.contents() {
            if let Some(key) = object.key() {
                self.delete(key).await?;
            }
        }
        Ok(())
    }
}

impl S3Blobs {
    /// Aborts the upload's multipart upload `handle`; already completed or aborted is fine.
    async fn abort_if_there(&self, id: &str, handle: &str) -> StoreResult<()> {
        match self.abort_multipart(&upload_key(id, "blob")?, handle).await {
            Err(StoreError::Conflict(_)) => Ok(()),
            done => done,
        }
    }

    /// Aborts every multipart upload of the upload's key but `recorded`: those of a
    /// `CreateMultipartUpload` that took effect but whose answer was lost, so that the SDK
    /// tried again and the state recorded the second. The key is the upload's own, so no
    /// other upload's parts are touched.
    async fn abort_unrecorded(&self, id: &str, recorded: Option<&str>) -> StoreResult<()> {
        let key = upload_key(id, "blob")?;
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(|e| sdk_error("ListMultipartUploads", e))?;
        for upload in listed.uploads() {
            if let (Some(their_key), Some(handle)) = (upload.key(), upload.upload_id())
                && their_key == key
                && Some(handle) != recorded
            {
                self.abort_if_there(id, handle).await?;
            }
        }
        Ok(())
    }
}

/// Where uploads in progress keep their objects.
const UPLOADS_PREFIX: &str = "uploads/";

/// Whether S3 answered that a multipart upload does not exist (any more).
fn is_no_such_upload<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "NoSuchUpload")
}

/// The key of an upload's pending bytes written under `key` (a plain hex token of ours).
fn pending_key(id: &str, key: &str) -> StoreResult<String> {
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::backend(format!("{key:?} is not a pending key")));
    }
    upload_key(id, &format!("pending-{key}"))
}

/// Whether S3 refused a conditional write because its condition failed (`412`).
fn is_precondition_failed<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "PreconditionFailed")
}

/// The key of an upload's object: `uploads/<id>/<name>`. The id is the registry's UUID;
/// anything else is refused rather than put in a key.
fn upload_key(id: &str, name: &str) -> StoreResult<String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(StoreError::backend(format!("{id:?} is not an upload id")));
    }
    Ok(format!("{UPLOADS_PREFIX}{id}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_content_addressed() {
        let d = Digest::sha256(b"x");
        assert_eq!(S3Blobs::key(&d), format!("blobs/sha256/{}", d.hex()));
    }
}
