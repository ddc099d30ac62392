//! [`FolderBlobs`]: the [`BlobStore`] port over a folder of content-addressed files, and a
//! second folder for the bytes of uploads in progress.
//!
//! May call: `ports`, `digest`, the filesystem. Must not know HTTP or AWS.
//!
//! # Layout
//!
//! | path                               | what                                              |
//! |------------------------------------|---------------------------------------------------|
//! | `<root>/<algorithm>/<hex>`         | a blob's bytes                                    |
//! | `<uploads>/<id>/pending-<key>`     | an upload's bytes not yet in a part, one file per write |
//! | `<uploads>/<id>/<handle>/part-<n>-<tag>` | part `n` of the parts begun with `handle`, by its tag |
//!
//! `EmbeddedBackend` opens `<data>/blobs` and `<data>/uploads`: uploads stay out of the
//! content-addressed tree, so no half-received blob is ever at a blob's path.
//!
//! A [`Digest`] is validated lowercase hex of a known algorithm, so it is safe as a path; an
//! upload id or handle is used only if it is a plain token (`[0-9a-f-]`), so it cannot name
//! anything outside `<uploads>`.
//!
//! Every file appears whole or not at all: it is written under a dot-prefixed temporary name
//! in its final folder, synced, then renamed (atomic within one folder). Part handles are
//! random, as S3's multipart UploadIds are, so two writers that both begin the parts of one
//! upload never write the same files; a part's tag is the hex SHA-256 of its bytes and is in
//! its file name, and pending bytes get a random key per write, so a writer that loses a
//! race for an upload cannot change a file the winner recorded.
//!
//! An upload's folder is removed by renaming it out of the way first (to a dot-prefixed
//! `.tmp` name in `<uploads>`), so a writer still holding the upload finds its folder gone
//! instead of adding a file to a folder being removed. [`BlobStore::purge_stray`] removes
//! upload folders and temporary files nothing has changed for the uploads' greatest age:
//! what a crash left.
//!
//! A blob file is created only from bytes hashed on the way to it, and only if they hash to
//! its digest; it is linked into place without replacing anything (`link`, which fails if
//! the name exists), so a stored blob is never replaced.

use super::{OrBackend, blocking_on};
use crate::digest::{Digest, Hasher};
use crate::ports::{BlobBody, BlobStore, Part, PartSource, StoreError, StoreResult};
use async_trait::async_trait;
use bytes::Bytes;
use sha2::Sha256;
use sha2::digest::Digest as _;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The longest upload id or handle accepted (a UUID has 36 characters).
const MAX_TOKEN_LEN: usize = 64;
/// The copy buffer of [`BlobStore::complete_parts`].
const COPY_BUFFER: usize = 1024 * 1024;
/// A streamed part's writes: this much at a time.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Body reads (at most 256 KiB each) waiting for the part's writer thread.
const WRITE_QUEUE: usize = 8;

/// Blobs as files under one folder, uploads' bytes under another.
#[derive(Debug)]
pub struct FolderBlobs {
    inner: Arc<Inner>,
}

/// What the blocking tasks share.
#[derive(Debug)]
struct Inner {
    root: PathBuf,
    uploads: PathBuf,
    /// Makes temporary file names unique within the process (with the pid, across processes).
    next_temp: AtomicU64,
}

impl FolderBlobs {
    /// Blobs under `root` and uploads' bytes under `uploads`, both created if needed. The two
    /// may be on different filesystems: completing an upload copies its parts into `root`.
    pub fn open(root: &Path, uploads: &Path) -> StoreResult<FolderBlobs> {
        for folder in [root, uploads] {
            std::fs::create_dir_all(folder)
                .map_err(|e| StoreError::backend(format!("creating {}: {e}", folder.display())))?;
        }
        Ok(FolderBlobs {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                uploads: uploads.to_path_buf(),
                next_temp: AtomicU64::new(0),
            }),
        })
    }

    /// Where `digest`'s bytes live.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.inner.path(digest)
    }
}

impl Inner {
    fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.algorithm().name()).join(digest.hex())
    }

    /// Creates the blob `digest` from what `write` writes to a new file and the digest it
    /// computed over exactly those bytes: written beside the blob under a dot-prefixed name
    /// (never a valid hex, so no digest names it), synced, checked, then linked into place
    /// without replacing an existing blob. Readers see no blob or the whole blob.
    fn create_blob(
        &self,
        digest: &Digest,
        write: impl FnOnce(&mut std::fs::File) -> StoreResult<Digest>,
    ) -> StoreResult<()> {
        let target = self.path(digest);
        let folder = target
            .parent()
            .ok_or_else(|| StoreError::backend(format!("no folder for {}", target.display())))?;
        std::fs::create_dir_all(folder).or_backend()?;
        let temp = folder.join(self.temp_name(digest.hex()));
        let created = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .or_backend()?;
            let actual = write(&mut file)?;
            if actual != *digest {
                return Err(StoreError::Mismatch(format!(
                    "the bytes to store as {digest} hash to {actual}: not stored"
                )));
            }
            file.sync_all().or_backend()?;
            match std::fs::hard_link(&temp, &target) {
                // The same digest over the same bytes: the stored blob stands.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                other => other.map_err(|e| StoreError::backend(format!("storing {digest}: {e}"))),
            }
        })();
        // The temporary name goes whatever happened: linked, it is a second name of the blob.
        let _ = std::fs::remove_file(&temp);
        created
    }

    /// Links the file at `from` into place as the blob `digest`, without replacing one.
    fn link_blob(&self, from: &Path, digest: &Digest) -> StoreResult<()> {
        let target = self.path(digest);
        let folder = target
            .parent()
            .ok_or_else(|| StoreError::backend(format!("no folder for {}", target.display())))?;
        std::fs::create_dir_all(folder).or_backend()?;
        match std::fs::hard_link(from, &target) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Conflict(format!(
                "the part to store as {digest} is gone"
            ))),
            other => other.map_err(|e| StoreError::backend(format!("storing {digest}: {e}"))),
        }
    }

    /// A fresh temporary name for a file that will be renamed to `stem` in the same folder.
    /// The leading dot keeps it apart from every final name (hex digests, `pending`, parts).
    fn temp_name(&self, stem: &str) -> String {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        format!(".{stem}.{}.{n}.tmp", std::process::id())
    }

    /// Removes an upload's folder. It is first renamed out of the way (atomically): a
    /// writer that still holds the upload then finds its folder gone, and cannot add a file
    /// to it while it is being removed (which made the removal fail with "directory not
    /// empty"). A crash before the end leaves a dot-prefixed `.tmp` folder, which
    /// [`BlobStore::purge_stray`] takes.
    fn remove_upload_dir(&self, folder: &Path) -> std::io::Result<()> {
        let stem = folder
            .file_name()
            .map_or_else(|| "upload".into(), |n| n.to_string_lossy().into_owned());
        let removed = self
            .uploads
            .join(self.temp_name(&format!("{stem}.removed")));
        match std::fs::rename(folder, &removed) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(()) => remove_folder(&removed),
        }
    }

    /// See [`BlobStore::purge_stray`].
    fn purge_stray(&self, cutoff: SystemTime) -> StoreResult<u64> {
        let mut removed = 0u64;
        // Upload folders, and the removed ones a crash left.
        for entry in read_dir_or_empty(&self.uploads)? {
            let path = entry.path();
            if last_changed(&path)?.is_some_and(|t| t < cutoff) {
                removed += removed_count(
                    &path,
                    remove_folder(&path).or_else(|_| std::fs::remove_file(&path)),
                )?;
            }
        }
        // Temporary files of blobs: `<root>/<algorithm>/.<hex>.<pid>.<n>.tmp`.
        for folder in read_dir_or_empty(&self.root)? {
            for entry in read_dir_or_empty(&folder.path())? {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let path = entry.path();
                if name.starts_with('.')
                    && name.ends_with(".tmp")
                    && last_changed(&path)?.is_some_and(|t| t < cutoff)
                {
                    removed += removed_count(&path, std::fs::remove_file(&path))?;
                }
            }
        }
        Ok(removed)
    }

    /// The folder of upload `id`.
    fn upload_dir(&self, id: &str) -> StoreResult<PathBuf> {
        Ok(self.uploads.join(token(id, "upload id")?))
    }

    /// The folder of the parts begun with `handle` for upload `id`.
    fn parts_dir(&self, id: &str, handle: &str) -> StoreResult<PathBuf> {
        Ok(self.upload_dir(id)?.join(token(handle, "parts handle")?))
    }
}

/// `s` if it is a plain token, safe as one path component: non-empty, short, `[0-9a-f-]`
/// only (so never `.`, `..`, a separator or an absolute path).
fn token<'a>(s: &'a str, what: &str) -> StoreResult<&'a str> {
    let plain = !s.is_empty()
        && s.len() <= MAX_TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    if plain {
        Ok(s)
    } else {
        Err(StoreError::backend(format!(
            "{what} {s:?} is not a plain token"
        )))
    }
}

/// A part's file: its number and tag, so that a part written again with other bytes (by a
/// writer that then loses its race) is another file, and the recorded one stays.
fn part_name(number: u32, tag: &str) -> String {
    format!("part-{number}-{tag}")
}

fn pending_name(key: &str) -> String {
    format!("pending-{key}")
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
        let digest = digest.clone();
        blocking_on(&self.inner, move |inner| {
            let mut hasher = Hasher::new(digest.algorithm());
            inner.create_blob(&digest, |file| {
                hasher.update(&bytes);
                file.write_all(&bytes).or_backend()?;
                Ok(hasher.finish())
            })
        })
        .await
    }

    /// The file itself, for the HTTP server to stream (registry-local has no URL to redirect
    /// to, and a blob is never read into memory).
    async fn fetch(
        &self,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> StoreResult<Option<BlobBody>> {
        let path = self.path(digest);
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::backend(format!("stat {digest}: {e}"))),
        };
        let (offset, len) = match range {
            None => (0, size),
            Some((start, end)) => {
                // The caller clamped the range to the blob's size: past it is a fault.
                let len = end
                    .checked_sub(start)
                    .and_then(|n| n.checked_add(1))
                    .filter(|n| start.checked_add(*n).is_some_and(|stop| stop <= size))
                    .ok_or_else(|| {
                        StoreError::backend(format!("bad range {start}-{end} of {digest}"))
                    })?;
                (start, len)
            }
        };
        Ok(Some(BlobBody::File { path, offset, len }))
    }

    /// Parts of any size, streamed to their file: no pending bytes, no buffer.
    fn part_buffer(&self) -> Option<usize> {
        None
    }

    async fn put_part_from(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        source: &mut dyn PartSource,
    ) -> StoreResult<(String, u64)> {
        if number == 0 {
            return Err(StoreError::backend("parts are numbered from 1"));
        }
        let folder = self.inner.parts_dir(id, handle)?;
        let gone =
            || StoreError::Conflict(format!("the parts {handle:?} of upload {id:?} are gone"));
        // Never create the folder: if it is gone, the upload was cancelled or finished.
        let temp = folder.join(self.inner.temp_name("part"));
        // The file is written, and its tag hashed, on a thread of its own while this task
        // reads the body (and the registry hashes it for the upload): two cores for the two
        // hashes, and writes of a megabyte rather than one hop to a blocking thread per
        // network read. What waits between them is bounded by the channel.
        // The tag is the part's SHA-256: the registry's own hash when it covers exactly
        // this part (an upload's first part, the usual one-request layer), else hashed here.
        let (chunks, mut next) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let path = temp.clone();
        let hash_here = !source.knows_part_sha256();
        let writer =
            tokio::task::spawn_blocking(move || -> std::io::Result<(Option<String>, u64)> {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
                let mut hasher = hash_here.then(Sha256::new);
                let mut size = 0u64;
                while let Some(chunk) = next.blocking_recv() {
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&chunk);
                    }
                    out.write_all(&chunk)?;
                    size = size.saturating_add(chunk.len() as u64);
                }
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                Ok((hasher.map(|h| hex::encode(h.finalize())), size))
            });
        let read = async {
            while let Some(chunk) = source.next_chunk().await? {
                if chunks.send(chunk).await.is_err() {
                    // The writer stopped: its error says why.
                    break;
                }
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        drop(chunks);
        let written = match writer.await {
            Ok(written) => written,
            Err(e) => Err(std::io::Error::other(e)),
        };
        let (tag, size) = match (read, written) {
            (Ok(()), Ok((tag, size))) => match tag.or_else(|| source.part_sha256()) {
                Some(tag) => (tag, size),
                None => {
                    let _ = tokio::fs::remove_file(&temp).await;
                    return Err(StoreError::backend(format!(
                        "part {number} of upload {id:?} has no SHA-256"
                    )));
                }
            },
            (_, Err(e)) if e.kind() == ErrorKind::NotFound => return Err(gone()),
            (Err(e), _) | (_, Err(e)) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(StoreError::backend(format!(
                    "writing part {number} of upload {id:?}: {e}"
                )));
            }
        };
        if size == 0 {
            let _ = tokio::fs::remove_file(&temp).await;
            return Ok((String::new(), 0));
        }
        match tokio::fs::rename(&temp, folder.join(part_name(number, &tag))).await {
            Ok(()) => Ok((tag, size)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                if e.kind() == ErrorKind::NotFound {
                    Err(gone())
                } else {
                    Err(StoreError::backend(format!(
                        "storing part {number} of upload {id:?}: {e}"
                    )))
                }
            }
        }
    }

    async fn begin_parts(&self, id: &str) -> StoreResult<String> {
        let handle = uuid::Uuid::new_v4().simple().to_string();
        let folder = self.inner.parts_dir(id, &handle)?;
        match tokio::fs::create_dir_all(&folder).await {
            Ok(()) => Ok(handle),
            // The upload's folder was being removed (a cancel or purge renamed it away
            // between the two levels): this writer's upload is gone.
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Conflict(format!(
                "upload {id:?} was removed while its parts began"
            ))),
            Err(e) => Err(StoreError::backend(format!(
                "creating {}: {e}",
                folder.display()
            ))),
        }
    }

    async fn put_part(
        &self,
        id: &str,
        handle: &str,
        number: u32,
        bytes: Bytes,
    ) -> StoreResult<String> {
        if number == 0 {
            return Err(StoreError::backend("parts are numbered from 1"));
        }
        let folder = self.inner.parts_dir(id, handle)?;
        let (id, handle) = (id.to_string(), handle.to_string());
        blocking_on(&self.inner, move |inner| {
            let tag = hex::encode(Sha256::digest(&bytes));
            let name = part_name(number, &tag);
            match replace_file(&folder, &name, &inner.temp_name(&name), &bytes) {
                Ok(()) => Ok(tag),
                // The folder went with the upload (aborted or completed meanwhile): this
                // writer lost to another, and must not bring the folder back.
                Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Conflict(format!(
                    "the parts {handle:?} of upload {id:?} are gone"
                ))),
                Err(e) => Err(StoreError::backend(format!(
                    "writing part {number} of upload {id:?}: {e}"
                ))),
            }
        })
        .await
    }

    async fn put_pending(&self, id: &str, bytes: Bytes) -> StoreResult<String> {
        let folder = self.inner.upload_dir(id)?;
        let key = uuid::Uuid::new_v4().simple().to_string();
        let name = pending_name(&key);
        let id = id.to_string();
        blocking_on(&self.inner, move |inner| {
            // Pending bytes come before any part, so this may be the upload's first file.
            std::fs::create_dir_all(&folder)
                .and_then(|()| replace_file(&folder, &name, &inner.temp_name(&name), &bytes))
                .map_err(|e| StoreError::backend(format!("writing pending bytes of {id:?}: {e}")))
        })
        .await?;
        Ok(key)
    }

    async fn pending(&self, id: &str, key: &str) -> StoreResult<Bytes> {
        let path = self
            .inner
            .upload_dir(id)?
            .join(pending_name(token(key, "pending key")?));
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Conflict(format!(
                "the pending bytes of upload {id:?} are gone"
            ))),
            Err(e) => Err(StoreError::backend(format!(
                "reading pending bytes of {id:?}: {e}"
            ))),
        }
    }

    async fn remove_pending(&self, id: &str, key: &str) -> StoreResult<()> {
        let path = self
            .inner
            .upload_dir(id)?
            .join(pending_name(token(key, "pending key")?));
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(StoreError::backend(format!(
                "removing pending bytes of {id:?}: {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// `join_parts` hashes every byte it joins with the digest's algorithm.
    fn checks_joined_parts(&self) -> bool {
        true
    }

    async fn complete_parts(
        &self,
        id: &str,
        handle: &str,
        parts: &[Part],
        digest: &Digest,
    ) -> StoreResult<()> {
        let upload = self.inner.upload_dir(id)?;
        let folder = self.inner.parts_dir(id, handle)?;
        let parts = parts.to_vec();
        let digest = digest.clone();
        let id = id.to_string();
        blocking_on(&self.inner, move |inner| {
            match single_part(&folder, &parts, &digest) {
                // One part whose tag, computed over its bytes as they were written, is the
                // digest: it is the blob, linked into place without a copy.
                Some(part) => inner.link_blob(&part, &digest)?,
                None => {
                    inner.create_blob(&digest, |file| join_parts(&folder, &parts, &digest, file))?
                }
            }
            // The blob is stored: a folder left behind only wastes space, so failing the
            // upload for it would be worse than logging it.
            if let Err(e) = inner.remove_upload_dir(&upload) {
                tracing::warn!(error = %e, upload = id, "upload folder not removed");
            }
            Ok(())
        })
        .await
    }

    async fn abort_parts(
        &self,
        id: &str,
        handle: Option<&str>,
        pending: Option<&str>,
    ) -> StoreResult<()> {
        let upload = self.inner.upload_dir(id)?;
        // Checked though unused: every file there is goes with the upload's folder.
        if let Some(handle) = handle {
            token(handle, "parts handle")?;
        }
        if let Some(pending) = pending {
            token(pending, "pending key")?;
        }
        blocking_on(&self.inner, move |inner| {
            inner
                .remove_upload_dir(&upload)
                .map_err(|e| StoreError::backend(format!("removing {}: {e}", upload.display())))
        })
        .await
    }

    /// Upload folders not changed since `cutoff` (a folder is made after its upload
    /// started, and each part or pending file it takes changes it or its parts folder),
    /// folders of removed uploads a crash left, and temporary files (dot-prefixed `.tmp`
    /// names) of blobs and uploads not written to since `cutoff`.
    async fn purge_stray(&self, cutoff: SystemTime) -> StoreResult<u64> {
        blocking_on(&self.inner, move |inner| inner.purge_stray(cutoff)).await
    }
}

/// Replaces `folder/name` with `bytes` atomically: written and synced as `folder/temp`, then
/// renamed over it. The temporary file is removed if anything fails.
fn replace_file(folder: &Path, name: &str, temp: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = folder.join(temp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, folder.join(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Writes the parts, in order, to `out`, checking each against its record (a part missing,
/// of another size or with another tag is a `Conflict`: the blob would not be the bytes the
/// client sent), and returns the digest of everything written.
fn join_parts(
    folder: &Path,
    parts: &[Part],
    digest: &Digest,
    out: &mut std::fs::File,
) -> StoreResult<Digest> {
    if parts.is_empty() {
        return Err(StoreError::backend("an upload's parts cannot be empty"));
    }
    if parts.windows(2).any(|w| w[0].number >= w[1].number) {
        // As S3's InvalidPartOrder: the parts must be listed in ascending order.
        return Err(StoreError::backend("parts are not in ascending order"));
    }
    let mut whole = Hasher::new(digest.algorithm());
    let mut buffer = vec![0; COPY_BUFFER];
    for part in parts {
        let path = folder.join(part_name(part.number, token(&part.tag, "part tag")?));
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::Conflict(format!(
                    "part {} is gone",
                    part.number
                )));
            }
            Err(e) => {
                return Err(StoreError::backend(format!(
                    "opening {}: {e}",
                    path.display()
                )));
            }
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer).or_backend()?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            whole.update(&buffer[..n]);
            out.write_all(&buffer[..n]).or_backend()?;
            size += n as u64;
        }
        let tag = hex::encode(hasher.finalize());
        if tag != part.tag || size != part.size {
            return Err(StoreError::Conflict(format!(
                "part {} changed: {size} bytes tagged {tag}, recorded {} bytes tagged {}",
                part.number, part.size, part.tag
            )));
        }
    }
    Ok(whole.finish())
}

/// The file of the only part, if it alone is the blob: its tag (the SHA-256 of its bytes,
/// computed as they were written) is the digest, and its size the one recorded.
fn single_part(folder: &Path, parts: &[Part], digest: &Digest) -> Option<PathBuf> {
    let [part] = parts else {
        return None;
    };
    if digest.algorithm() != crate::digest::Algorithm::Sha256 || part.tag != digest.hex() {
        return None;
    }
    let path = folder.join(part_name(part.number, token(&part.tag, "part tag").ok()?));
    let size = std::fs::metadata(&path).ok()?.len();
    (size == part.size).then_some(path)
}

/// The entries of `folder`; none if it does not exist (or is not a folder).
/// 1 when `result` removed `path`, 0 when it was gone already; a fault otherwise.
fn removed_count(path: &Path, result: std::io::Result<()>) -> StoreResult<u64> {
    match result {
        Ok(()) => Ok(1),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StoreError::backend(format!(
            "removing {}: {e}",
            path.display()
        ))),
    }
}

fn read_dir_or_empty(folder: &Path) -> StoreResult<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(folder) {
        Ok(entries) => entries.collect::<std::io::Result<_>>().or_backend(),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            Ok(Vec::new())
        }
        Err(e) => Err(StoreError::backend(format!(
            "listing {}: {e}",
            folder.display()
        ))),
    }
}

/// When `path` last changed: the latest modification of it or, for a folder, of anything
/// in it and its sub-folders (an upload's parts are a level down). `None` if it is gone.
fn last_changed(path: &Path) -> StoreResult<Option<SystemTime>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::backend(format!("stat {}: {e}", path.display()))),
    };
    let mut latest = meta.modified().or_backend()?;
    if meta.is_dir() {
        for entry in read_dir_or_empty(path)? {
            if let Some(t) = last_changed(&entry.path())? {
                latest = latest.max(t);
            }
        }
    }
    Ok(Some(latest))
}

/// Removes `folder` and everything in it; a folder already gone is fine.
fn remove_folder(folder: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(folder) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
