//! Embedded adapters: registry-local's storage, no AWS account needed.
//!
//! One data folder holds everything:
//!
//! - `metadata.redb`: repositories, tags, manifests, v1 images, blob links, referrers and
//!   the state of uploads ([`RedbMetadata`], one redb file, one write transaction per write);
//! - `blobs/<algorithm>/<hex>`: blob bytes ([`FolderBlobs`], written atomically);
//! - `uploads/<id>/`: the bytes of an upload in progress, its pending bytes and parts
//!   ([`FolderBlobs`] too, kept out of `blobs/` so that only whole blobs are ever there);
//! - `signing-key.pem`: the RSA-2048 key that signs schema1 manifests ([`KeyFileSigner`],
//!   PKCS#8 PEM, mode 0600, created at first start and reused after);
//! - `events.jsonl`: the registry's events, one JSON object a line ([`JsonLinesEvents`]);
//! - users, robots, grants and visibility live in `metadata.redb` too ([`RedbAccess`]).
//!
//! May call: `ports`, the domain types (`digest`, `names`, `signing`), redb, rsa and the
//! filesystem. Must not know HTTP or AWS.

mod access;
mod blobs;
mod cache;
mod events;
mod metadata;
mod signer;

pub use access::RedbAccess;
pub use blobs::FolderBlobs;
pub use events::JsonLinesEvents;
pub use metadata::RedbMetadata;
pub use signer::KeyFileSigner;

use crate::ports::{StoreError, StoreResult};
use std::path::Path;
use std::sync::Arc;

/// The four embedded adapters over one data folder.
#[derive(Clone, Debug)]
pub struct EmbeddedBackend {
    pub metadata: Arc<RedbMetadata>,
    pub blobs: Arc<FolderBlobs>,
    pub signer: Arc<KeyFileSigner>,
    pub events: Arc<JsonLinesEvents>,
    pub access: Arc<RedbAccess>,
}

impl EmbeddedBackend {
    /// Opens (creating where needed) the data folder `data_dir` and its files. Blocking: call
    /// it at startup. The first start generates the signing key, which takes a moment.
    pub fn open(data_dir: &Path) -> StoreResult<EmbeddedBackend> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::backend(format!("creating {}: {e}", data_dir.display())))?;
        let metadata = RedbMetadata::open(&data_dir.join("metadata.redb"))?;
        let access = RedbAccess::open(metadata.database())?;
        Ok(EmbeddedBackend {
            metadata: Arc::new(metadata),
            access: Arc::new(access),
            blobs: Arc::new(FolderBlobs::open(
                &data_dir.join("blobs"),
                &data_dir.join("uploads"),
            )?),
            signer: Arc::new(KeyFileSigner::open(&data_dir.join("signing-key.pem"))?),
            events: Arc::new(JsonLinesEvents::open(&data_dir.join("events.jsonl"))?),
        })
    }
}

/// Maps any displayable failure of a library call to [`StoreError::Backend`].
trait OrBackend<T> {
    fn or_backend(self) -> StoreResult<T>;
}

impl<T, E: std::fmt::Display> OrBackend<T> for Result<T, E> {
    fn or_backend(self) -> StoreResult<T> {
        self.map_err(StoreError::backend)
    }
}

/// Runs synchronous work (redb, a file write, an RSA operation) on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend(format!("blocking task failed: {e}")))?
}

/// Runs `f` over `shared` (a database, a folder) on the blocking pool: redb and `std::fs`
/// block, and a store's multi-step work is simpler as one task than as many hops.
async fn blocking_on<S, T, F>(shared: &Arc<S>, f: F) -> StoreResult<T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&S) -> StoreResult<T> + Send + 'static,
{
    let shared = Arc::clone(shared);
    blocking(move || f(&shared)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Signer;

    #[tokio::test]
    async fn open_creates_the_layout_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let kid = {
            let backend = EmbeddedBackend::open(&data).unwrap();
            backend.signer.public_jwk().await.unwrap().kid.clone()
        };
        for name in [
            "metadata.redb",
            "blobs",
            "uploads",
            "signing-key.pem",
            "events.jsonl",
        ] {
            assert!(data.join(name).exists(), "{name}");
        }
        let backend = EmbeddedBackend::open(&data).unwrap();
        assert_eq!(backend.signer.public_jwk().await.unwrap().kid, kid);
    }
}
