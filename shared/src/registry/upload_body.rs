//! A request body as the upload operations read it ([`UploadBody`]), and as a part's
//! source ([`Hashing`]): every byte hashed into the upload's state and counted against the
//! request's and the blob's limits on its way to the store, never held whole.
//!
//! May call: `digest`, `error`, the `ports` traits. Must not know HTTP or any backend.

// Read by the upload operations only, compiled out without a blob store (feature `blobs`).
#![cfg_attr(not(feature = "blobs"), allow(dead_code))]

use crate::digest::{Algorithm, Hasher};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::ports::PartSource;
use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a body is read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// A request body as the upload operations read it: the bytes as they arrive, from a
/// socket (registry-local) or from a buffered Lambda event. One upload logic serves both.
pub struct UploadBody {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    /// `Content-Length`, when the client declared one.
    pub(super) declared: Option<u64>,
}

impl UploadBody {
    /// A body already in memory (a Lambda event).
    pub fn from_bytes(bytes: Bytes) -> UploadBody {
        UploadBody {
            declared: Some(bytes.len() as u64),
            reader: Box::pin(std::io::Cursor::new(bytes)),
        }
    }

    /// A body read as it arrives, of `declared` bytes if the client said so.
    pub fn from_reader(
        reader: impl AsyncRead + Send + 'static,
        declared: Option<u64>,
    ) -> UploadBody {
        UploadBody {
            reader: Box::pin(reader),
            declared,
        }
    }

    /// `Content-Length`, if declared.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// The next bytes, at most `max` (and [`READ_CHUNK`]); `None` at the end.
    pub(super) async fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Bytes>> {
        let mut buf = BytesMut::with_capacity(max.clamp(1, READ_CHUNK));
        // One read: a short one hands on what came rather than wait for more.
        match self.reader.read_buf(&mut buf).await? {
            0 => Ok(None),
            _ => Ok(Some(buf.freeze())),
        }
    }

    /// The whole body, at most `max` bytes (`413` past it).
    pub(super) async fn read_all(&mut self, max: u64) -> Result<Bytes> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.next_chunk(READ_CHUNK).await.map_err(body_error)? {
            if all.len() as u64 + chunk.len() as u64 > max {
                return Err(chunk_too_large(all.len() as u64 + chunk.len() as u64, max));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }
}

/// What is left of one request's and one blob's size limits.
#[derive(Clone, Copy)]
pub(super) struct Budget {
    pub(super) chunk_left: u64,
    pub(super) blob_left: u64,
    pub(super) max_chunk: u64,
    pub(super) max_blob: u64,
}

impl Budget {
    /// Takes `n` bytes out, or refuses them: from the first byte past a limit.
    pub(super) fn take(&mut self, n: u64) -> Result<()> {
        self.chunk_left = self
            .chunk_left
            .checked_sub(n)
            .ok_or_else(|| chunk_too_large(self.max_chunk.saturating_add(1), self.max_chunk))?;
        self.blob_left = self
            .blob_left
            .checked_sub(n)
            .ok_or_else(|| blob_too_large(self.max_blob))?;
        Ok(())
    }
}

/// A request body as a streamed part's source: every byte hashed into the upload's state
/// and counted against the limits on its way to the store.
pub(super) struct Hashing<'a> {
    pub(super) body: &'a mut UploadBody,
    pub(super) hasher: Hasher,
    pub(super) budget: Budget,
    pub(super) taken: u64,
    pub(super) failure: Option<RegistryError>,
    /// Whether the hash covers this part's bytes only (it starts the upload).
    pub(super) whole_part: bool,
}

impl Hashing<'_> {
    /// Why the source stopped the store, if it did (a limit, a body that broke off).
    pub(super) fn error(&mut self) -> Option<RegistryError> {
        self.failure.take()
    }
}

#[async_trait::async_trait]
impl PartSource for Hashing<'_> {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        let chunk = match self.body.next_chunk(READ_CHUNK).await {
            Ok(chunk) => chunk,
            Err(e) => {
                self.failure = Some(body_error(std::io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        if let Err(e) = self.budget.take(chunk.len() as u64) {
            let message = e.message.clone();
            self.failure = Some(e);
            return Err(std::io::Error::other(message));
        }
        self.hasher.update(&chunk);
        self.taken = self.taken.saturating_add(chunk.len() as u64);
        Ok(Some(chunk))
    }

    fn knows_part_sha256(&self) -> bool {
        self.whole_part && self.hasher.algorithm() == Algorithm::Sha256
    }

    fn part_sha256(&self) -> Option<String> {
        self.knows_part_sha256()
            .then(|| self.hasher.clone().finish().hex().to_string())
    }
}

pub(super) fn body_error(e: std::io::Error) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadInvalid,
        format!("the request body broke off: {e}"),
    )
}

pub(super) fn chunk_too_large(size: u64, max: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::SizeInvalid,
        format!(
            "the request carries {size} bytes or more; one request may carry at most {max} \
             here (OCI-Chunk-Max-Length): send the blob in chunks of at most that. A Lambda \
             deployment takes whole layers through its upload service (README, Large layers)"
        ),
    )
    .with_status(413)
}

pub(super) fn blob_too_large(max: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::SizeInvalid,
        format!("a blob may have at most {max} bytes here"),
    )
    .with_status(413)
}
