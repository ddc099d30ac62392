//! [`S3Blobs`]: the [`BlobStore`] port over one S3 bucket, plus what the blob and upload
//! routes need beyond the port: presigned GET URLs (pulls are redirected to S3, so no layer
//! byte passes through Lambda) and the multipart and copy calls that assemble an upload.
//!
//! May call: `ports`, `digest`, the S3 SDK. Must not know HTTP or the metadata store.
//!
//! Keys: a blob is `blobs/<algorithm>/<hex>` (content-addressed, as the embedded folder);
//! the upload API is expected to assemble uploads under keys of its own (e.g.
//! `uploads/<id>`) and copy or complete them into place. A [`Digest`] is validated
//! lowercase hex of a known algorithm, so it is safe in a key.

use super::sdk_error;
use crate::digest::{Algorithm, Digest};
use crate::ports::{BlobStore, StoreError, StoreResult};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use bytes::Bytes;
use std::time::Duration;

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
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// Abandons an upload and its parts (the bucket's lifecycle rule catches forgotten ones).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| sdk_error("AbortMultipartUpload", e))?;
        Ok(())
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
            .map_err(|e| sdk_error("reading GetObject body", e))?;
        Ok(Some(body.into_bytes()))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> StoreResult<()> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(digest))
            .content_type("application/octet-stream");
        // S3 checks a SHA-256 it is given: the bytes arrive intact or not at all.
        if digest.algorithm() == Algorithm::Sha256
            && let Ok(raw) = hex::decode(digest.hex())
        {
            put = put.checksum_sha256(base64::engine::general_purpose::STANDARD.encode(raw));
        }
        put.body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", e))?;
        Ok(())
    }
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
