//! The storage ports: what the registry needs from a metadata store, a blob store, a signer,
//! an event sink and an access store (users, robots, grants). Each has an embedded adapter
//! (`crate::embedded`) and an AWS adapter; `tests/contract/` holds the promises both keep.
//!
//! The records here are the domain's, not any backend's item shapes. Each method is shaped so
//! that a DynamoDB/S3 adapter answers it in one round trip where the hot path needs it
//! (manifest GET/HEAD: one read; manifest PUT: one batched lookup, one transaction).
//!
//! A store decides nothing: it reads, and commits what the registry decided atomically, only
//! if what it was decided from still holds, else `StoreError::Conflict` with nothing written
//! (a deletion's read, a generated manifest's tag, an upload's version; a push's images are
//! inserted only where absent). What each conflict means is the registry's to handle.
//!
//! May call: `digest`, `names`. Must not know HTTP or any backend.
//!
//! | file | port |
//! |---|---|
//! | `metadata.rs` | [`MetadataStore`] and the records it keeps (uploads among them) |
//! | `blobs.rs` | [`BlobStore`] |
//! | `signer.rs` | [`Signer`] |
//! | `events.rs` | [`EventSink`] |
//! | `access.rs` | [`AccessStore`] |

mod access;
mod blobs;
mod events;
mod metadata;
mod signer;

pub use access::*;
pub use blobs::*;
pub use events::*;
pub use metadata::*;
pub use signer::*;

/// A failure of a backend. Never caused by what a client sent: the caller answers 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of a write failed because another writer got there first.
    #[error("write conflict: {0}")]
    Conflict(String),
    #[error("backend failure: {0}")]
    Backend(String),
    /// The backend refused the call for its rate (throttling): the client may retry soon.
    #[error("backend throttled: {0}")]
    Throttled(String),
    /// The backend did not answer in time or said it cannot now: the client may retry.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// What was to be stored under a digest does not hash to it: nothing was stored.
    #[error("digest mismatch: {0}")]
    Mismatch(String),
}

impl StoreError {
    pub fn backend(cause: impl std::fmt::Display) -> Self {
        StoreError::Backend(cause.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn not_implemented(method: &str) -> StoreError {
    StoreError::Backend(format!("{method} is not available in this store"))
}
