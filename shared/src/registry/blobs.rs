//! Blob operations: a blob's size, its bytes (whole or a range), deleting a repository's
//! link to it, and mounting it from another repository. Every read goes through the
//! repository's link: a blob is readable in a repository only if linked there.
//!
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::manifest::schema1_builder::{EMPTY_LAYER_BLOB, EMPTY_LAYER_DIGEST};
use crate::names::RepositoryName;
use crate::ports::BlobBody;
use crate::registry::Registry;
use bytes::Bytes;
use serde_json::json;

/// The bytes of a blob a GET asks for (HTTP's `Range: bytes=…`, one range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// From `start` to `end` (inclusive), or to the end of the blob.
    From { start: u64, end: Option<u64> },
    /// The last this many bytes (`bytes=-500`).
    Last(u64),
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

    /// Removes the blob from the repository (the link; bytes may serve other repositories).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.metadata.unlink_blob(repo, digest).await? {
            tracing::info!(target: "quayside::audit", action = "blob_delete", repository = %repo, %digest);
            Ok(())
        } else {
            Err(blob_unknown(repo, digest))
        }
    }
}

// What reads or writes the blob store: only in a build that has one (see the module `registry`).
#[cfg(feature = "blobs")]
impl Registry {
    /// A blob's bytes, or where to fetch them, all or `range` of them.
    pub async fn fetch_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<FetchedBlob> {
        let size = self.blob_size(repo, digest).await?;
        let range = match range {
            None => None,
            Some(range) => {
                let (start, end) = match range {
                    ByteRange::From { start, end } => (start, end),
                    // The last `n` bytes; none is a range no blob satisfies.
                    ByteRange::Last(n) => {
                        (if n == 0 { size } else { size.saturating_sub(n) }, None)
                    }
                };
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
            Some(BlobBody::Redirect(_)) if size <= self.limits.inline_blob_bytes => {
                let bytes = self.blobs.get(digest).await?.ok_or_else(|| {
                    RegistryError::internal(format!("blob {digest} is linked but not stored"))
                })?;
                let body = match range {
                    Some((start, end)) => bytes.slice(
                        usize::try_from(start)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len())
                            ..usize::try_from(end.saturating_add(1))
                                .unwrap_or(usize::MAX)
                                .min(bytes.len()),
                    ),
                    None => bytes,
                };
                Ok(FetchedBlob {
                    size,
                    body: BlobBody::Bytes(body),
                    range,
                })
            }
            Some(body) => Ok(FetchedBlob { size, body, range }),
            None => Err(RegistryError::internal(format!(
                "blob {digest} is linked to {repo} but not stored"
            ))),
        }
    }

    /// Links a blob of `from` into `repo` without copying a byte. False when `from` does not
    /// have it (the client then uploads it).
    ///
    /// Without `from` (the spec lets a registry treat it as optional), a blob the registry
    /// stores is mounted only when there is no auth: then every repository is anyone's to
    /// read. With auth, a client must name a source its token lets it read, or upload the
    /// bytes: knowing a digest is no right to a private repository's blob.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<bool> {
        let Some(from) = from else {
            if self.auth.is_some() {
                return Ok(false);
            }
            return match self.blobs.size(digest).await? {
                Some(size) => {
                    self.metadata.link_blob(repo, digest, size).await?;
                    Ok(true)
                }
                None => Ok(false),
            };
        };
        match self.metadata.blob_link(from, digest).await? {
            Some(size) => {
                self.metadata.link_blob(repo, digest, size).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn blob_unknown(repo: &RepositoryName, digest: &Digest) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} is not in {repo}"),
    )
    .with_detail(json!({ "digest": digest.to_string() }))
}

fn is_empty_layer(digest: &Digest) -> bool {
    digest.to_string() == EMPTY_LAYER_DIGEST
}
