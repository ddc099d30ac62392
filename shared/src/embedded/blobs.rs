//! [`FolderBlobs`]: the [`BlobStore`] port over a folder of content-addressed files,
//! `<root>/<algorithm>/<hex>`.
//!
//! May call: `ports`, `digest`, the filesystem (through tokio). Must not know HTTP or AWS.
//! A [`Digest`] is validated lowercase hex of a known algorithm, so it is safe as a path.

use super::OrBackend;
use crate::digest::Digest;
use crate::ports::{BlobStore, StoreError, StoreResult};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// Blobs as files under one folder.
#[derive(Debug)]
pub struct FolderBlobs {
    root: PathBuf,
    /// Makes temporary file names unique within the process (with the pid, across processes).
    next_temp: AtomicU64,
}

impl FolderBlobs {
    /// Blobs under `root`, created if needed.
    pub fn open(root: &Path) -> StoreResult<FolderBlobs> {
        std::fs::create_dir_all(root)
            .map_err(|e| StoreError::backend(format!("creating {}: {e}", root.display())))?;
        Ok(FolderBlobs {
            root: root.to_path_buf(),
            next_temp: AtomicU64::new(0),
        })
    }

    /// Where `digest`'s bytes live.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.algorithm().name()).join(digest.hex())
    }
}

#[async_trait]
impl BlobStore for FolderBlobs {
    async fn size(&self, digest: &Digest) -> StoreResult<Option<u64>> {
        match tokio::fs::metadata(self.path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(format!("stat {digest}: {e}"))),
        }
    }

    async fn get(&self, digest: &Digest) -> StoreResult<Option<Bytes>> {
        match tokio::fs::read(self.path(digest)).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::backend(format!("reading {digest}: {e}"))),
        }
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> StoreResult<()> {
        let target = self.path(digest);
        let Some(folder) = target.parent() else {
            return Err(StoreError::backend(format!(
                "no folder for {}",
                target.display()
            )));
        };
        tokio::fs::create_dir_all(folder).await.or_backend()?;
        // Write beside the target, then rename: a rename within one folder is atomic, so
        // readers see no blob or the whole blob, never a partial one. The dot-prefixed name
        // is never a valid hex, so no digest can name a temporary file.
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = folder.join(format!(".{}.{}.{n}.tmp", digest.hex(), std::process::id()));
        let written = write_synced(&temp, &bytes).await;
        let renamed = match written {
            Ok(()) => tokio::fs::rename(&temp, &target).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            // Best effort: a leftover temp file is invisible to readers, only wasted space.
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(StoreError::backend(format!("storing {digest}: {e}")));
        }
        Ok(())
    }
}

/// Writes `bytes` to a new file at `path` and syncs it, so the rename that follows cannot
/// publish a file whose contents a crash could still lose.
async fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_size() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FolderBlobs::open(&dir.path().join("blobs")).unwrap();
        let bytes = Bytes::from_static(b"hello blob");
        let digest = Digest::sha256(&bytes);

        assert_eq!(blobs.get(&digest).await.unwrap(), None);
        assert_eq!(blobs.size(&digest).await.unwrap(), None);

        blobs.put(&digest, bytes.clone()).await.unwrap();
        assert_eq!(blobs.get(&digest).await.unwrap(), Some(bytes.clone()));
        assert_eq!(blobs.size(&digest).await.unwrap(), Some(bytes.len() as u64));
        let on_disk = dir.path().join("blobs/sha256").join(digest.hex());
        assert_eq!(std::fs::read(on_disk).unwrap(), bytes.as_ref());

        // Putting again is harmless, and no temporary file is left behind.
        blobs.put(&digest, bytes.clone()).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(digest.hex())]);

        let missing = Digest::sha256(b"missing");
        assert_eq!(blobs.get(&missing).await.unwrap(), None);
        assert_eq!(blobs.size(&missing).await.unwrap(), None);
    }
}
