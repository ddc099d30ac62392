//! The registry: its operations over the storage ports, one file per concern. What a
//! client may do is decided here, once, whichever backend holds the data.
//!
//! | file | operations |
//! |---|---|
//! | `manifests.rs` | get, put and delete manifests and tags; schema1 checks, generation and conversion |
//! | `blobs.rs` | a blob's size and bytes, deleting a link, mounting |
//! | `uploads.rs` | monolithic pushes and upload sessions: start, append, finish, cancel, purge |
//! | `upload_body.rs` | a request body as uploads read it, hashed and counted: [`UploadBody`] |
//! | `lists.rs` | tags, the catalog, referrers |
//! | `tokens.rs` | the token service, upload capabilities, the catalog a caller may see |
//!
//! Each file keeps the operations that touch the blob store in an `impl` block of their own
//! under `#[cfg(feature = "blobs")]`: a build without a blob store (a Lambda function
//! without S3) has neither the store nor any operation that could reach it, and its route
//! table (`http::routes`) none of their routes.
//!
//! May call: the domain modules (`digest`, `names`, `manifest`, `error`), the `ports` traits
//! and `auth`'s rules. Must not know HTTP (the `http` module calls this), nor any backend's
//! item shapes, nor AWS.

mod blobs;
mod lists;
mod manifests;
mod tokens;
mod upload_body;
mod uploads;

pub use blobs::{ByteRange, FetchedBlob};
pub use lists::{MAX_PAGE, Page, PageRequest, page_request};
pub use manifests::{MAX_TAGS_PER_PUSH, PushedManifest, image_chain};
pub use upload_body::UploadBody;
pub use uploads::{Purged, UploadStatus, started_before};

use crate::error::{ErrorCode, RegistryError};
#[cfg(feature = "blobs")]
use crate::ports::BlobStore;
use crate::ports::{EventSink, MetadataStore, Signer, StoreError};
use std::sync::Arc;

/// The registry over its ports (the access store through `auth`). Cheap to share: build it once per process.
#[derive(Clone)]
pub struct Registry {
    pub metadata: Arc<dyn MetadataStore>,
    /// Only in a build with a blob store (feature `blobs`): a Lambda function that never
    /// reads blobs has none, so no operation of its can reach one.
    #[cfg(feature = "blobs")]
    pub blobs: Arc<dyn BlobStore>,
    pub signer: Arc<dyn Signer>,
    pub events: Arc<dyn EventSink>,
    pub limits: Limits,
    /// Token authentication (`crate::auth`); `None` serves every caller (registry-local
    /// without `--auth`, the handler tests). Every Lambda function has it on.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The upload service's URL (`https://host[:port]`), where the deployment has one: an
    /// upload session opened here is continued there (`QUAYSIDE_UPLOAD_SERVICE_URL`).
    pub upload_service: Option<String>,
    /// The URL clients reach this registry's API at (`http://host:port`), where it is
    /// fixed (registry-local); `None`: each request's, as API Gateway's event tells it.
    pub public_url: Option<String>,
}

/// What one request, and one blob, may carry where the registry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest blob chunk (PATCH, PUT or monolithic POST body), advertised as
    /// `OCI-Chunk-Max-Length`.
    pub max_chunk_bytes: u64,
    /// The largest blob: an upload is refused (`413 SIZE_INVALID`) from its first byte
    /// past it.
    pub max_blob_bytes: u64,
    /// How long a request's claim on an upload holds without recorded progress: a writer
    /// that died (a crashed process, a function that timed out) lets go after this. Too
    /// short costs only a request (a writer that outlives its claim finds the upload taken
    /// and answers `404`); too long makes a client's retry wait (`416`) for it.
    pub upload_lease: std::time::Duration,
    /// A blob the store would redirect to (S3) is answered with its bytes when it is no
    /// larger: a client gets `Docker-Content-Digest` on the answer it reads (the spec
    /// requires it; S3's answer to a redirect cannot carry it), and saves a round trip on
    /// configs and small layers. Larger blobs redirect: no layer byte passes through Lambda.
    pub inline_blob_bytes: u64,
    /// An upload older than this (from its start) is gone: every read of it answers
    /// `BLOB_UPLOAD_UNKNOWN`, whether or not its record and bytes were removed yet (a purge,
    /// DynamoDB's TTL and S3's lifecycle rules remove them later).
    pub upload_max_age: std::time::Duration,
}

impl Limits {
    /// Lambda takes at most 6 MB per request, and API Gateway base64-encodes a binary body
    /// inside it (4/3 larger): 4 MiB is what surely fits. An upload assembled in S3 is
    /// copied into place with one `CopyObject`, which takes at most 5 GiB. A function
    /// runs for 29 s at most (the template's `Timeout`): a claim a minute old is a dead one.
    pub const LAMBDA: Limits = Limits {
        max_chunk_bytes: 4 * 1024 * 1024,
        max_blob_bytes: 5 * 1024 * 1024 * 1024,
        upload_lease: std::time::Duration::from_secs(60),
        inline_blob_bytes: 1024 * 1024,
        upload_max_age: crate::ports::DEFAULT_UPLOAD_MAX_AGE,
    };
}

impl Registry {
    /// The registry over these ports, with Lambda's limits.
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        #[cfg(feature = "blobs")] blobs: Arc<dyn BlobStore>,
        signer: Arc<dyn Signer>,
        events: Arc<dyn EventSink>,
    ) -> Registry {
        Registry {
            metadata,
            #[cfg(feature = "blobs")]
            blobs,
            signer,
            events,
            limits: Limits::LAMBDA,
            auth: None,
            upload_service: None,
            public_url: None,
        }
    }

    /// The same registry, checking a bearer token on every route (see `crate::auth`).
    pub fn with_auth(mut self, auth: crate::auth::Auth) -> Registry {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// The same registry, handing the upload sessions it opens to the upload service at
    /// `url` (its trailing `/` dropped).
    pub fn with_upload_service(mut self, url: &str) -> Registry {
        self.upload_service = Some(url.trim_end_matches('/').to_string());
        self
    }
}

/// How long a client is asked to wait after a backend refused or failed to answer.
const BACKEND_RETRY_AFTER_SECONDS: u32 = 1;

impl From<StoreError> for RegistryError {
    /// A throttled backend is the client's `429`, an unavailable one `503`, both with
    /// `Retry-After` so that clients back off and retry; any other fault is `500`.
    fn from(e: StoreError) -> Self {
        let (code, message, cause) = match e {
            StoreError::Throttled(cause) => (
                ErrorCode::TooManyRequests,
                "the registry's storage is busy: retry shortly",
                cause,
            ),
            StoreError::Unavailable(cause) => (
                ErrorCode::Unavailable,
                "the registry's storage did not answer in time: retry shortly",
                cause,
            ),
            e => return RegistryError::internal(e),
        };
        tracing::warn!(error = %cause, code = ?code, "backend busy or unavailable");
        RegistryError::new(code, message).with_retry_after(BACKEND_RETRY_AFTER_SECONDS)
    }
}
