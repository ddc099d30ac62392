//! The unit tests of `embedded::blobs` (the folder blob store), in a file of their own.

use super::*;

const ID: &str = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";

fn open(dir: &tempfile::TempDir) -> FolderBlobs {
    FolderBlobs::open(&dir.path().join("blobs"), &dir.path().join("uploads")).unwrap()
}

/// The names in `folder`, sorted; empty if it does not exist.
fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => vec![],
        Err(e) => panic!("{e}"),
    };
    names.sort();
    names
}

/// Bytes `n..n + len` of a repeating pattern: parts that differ from each other.
fn pattern(n: usize, len: usize) -> Bytes {
    (n..n + len).map(|i| (i % 251) as u8).collect()
}

/// What only a folder has (the contract suite, run on this store too, checks put, get and
/// size): one file named by the digest, and no temporary file left by a second put.
#[tokio::test]
async fn a_blob_is_one_file_named_by_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let bytes = Bytes::from_static(b"hello blob");
    let digest = Digest::sha256(&bytes);
    blobs.put(&digest, bytes.clone()).await.unwrap();
    let on_disk = dir.path().join("blobs/sha256").join(digest.hex());
    assert_eq!(std::fs::read(on_disk).unwrap(), bytes.as_ref());

    blobs.put(&digest, bytes.clone()).await.unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(digest.hex())]);
}

#[tokio::test]
async fn fetch_all_or_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let bytes = Bytes::from_static(b"0123456789");
    let digest = Digest::sha256(&bytes);
    assert_eq!(blobs.fetch(&digest, None).await.unwrap(), None);
    assert_eq!(blobs.fetch(&digest, Some((0, 3))).await.unwrap(), None);

    blobs.put(&digest, bytes.clone()).await.unwrap();
    // The file, for the server to stream: never the bytes in memory.
    let served = |range| {
        let blobs = &blobs;
        let digest = &digest;
        async move {
            match blobs.fetch(digest, range).await.unwrap() {
                Some(BlobBody::File { path, offset, len }) => {
                    let all = std::fs::read(path).unwrap();
                    all[offset as usize..(offset + len) as usize].to_vec()
                }
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(served(None).await, b"0123456789");
    assert_eq!(served(Some((0, 9))).await, b"0123456789");
    assert_eq!(served(Some((2, 5))).await, b"2345");
    assert_eq!(served(Some((9, 9))).await, b"9");
    assert_eq!(served(Some((0, 0))).await, b"0");
    // Past the end or backwards: a fault of the caller, which clamps ranges.
    assert!(blobs.fetch(&digest, Some((5, 10))).await.is_err());
    assert!(blobs.fetch(&digest, Some((5, 4))).await.is_err());
}

#[tokio::test]
async fn parts_and_pending_bytes_make_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let uploads = dir.path().join("uploads");

    // A small chunk waits as pending bytes; each write has a key of its own, so a
    // later write never changes an earlier one.
    let first = blobs.put_pending(ID, pattern(0, 10)).await.unwrap();
    let second = blobs.put_pending(ID, pattern(0, 20)).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(blobs.pending(ID, &first).await.unwrap(), pattern(0, 10));
    assert_eq!(blobs.pending(ID, &second).await.unwrap(), pattern(0, 20));
    blobs.remove_pending(ID, &first).await.unwrap();
    blobs.remove_pending(ID, &first).await.unwrap();
    let gone = blobs.pending(ID, &first).await.unwrap_err();
    assert!(matches!(gone, StoreError::Conflict(_)), "{gone}");

    let handle = blobs.begin_parts(ID).await.unwrap();
    let chunks = [pattern(0, 300), pattern(300, 200), pattern(500, 7)];
    let mut parts = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let number = i as u32 + 1;
        let tag = blobs
            .put_part(ID, &handle, number, chunk.clone())
            .await
            .unwrap();
        parts.push(Part {
            number,
            tag,
            size: chunk.len() as u64,
        });
    }
    assert_ne!(parts[0].tag, parts[1].tag);
    let names: Vec<String> = parts
        .iter()
        .map(|p| format!("part-{}-{}", p.number, p.tag))
        .collect();
    assert_eq!(listing(&uploads.join(ID).join(&handle)), names);

    let whole = pattern(0, 507);
    let digest = Digest::sha256(&whole);
    blobs
        .complete_parts(ID, &handle, &parts, &digest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(blobs.path(&digest)).unwrap(), whole.as_ref());
    assert_eq!(
        blobs.path(&digest),
        dir.path().join("blobs/sha256").join(digest.hex())
    );
    assert_eq!(blobs.get(&digest).await.unwrap(), Some(whole));
    // No upload folder and no temporary file are left.
    assert!(listing(&uploads).is_empty());
    assert_eq!(listing(&dir.path().join("blobs/sha256")), [digest.hex()]);
    assert!(blobs.pending(ID, &second).await.is_err());
}

#[tokio::test]
async fn a_blob_is_stored_only_under_the_digest_of_its_bytes_and_never_replaced() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let (good, bad) = (pattern(0, 100), pattern(1, 100));
    let digest = Digest::sha256(&good);

    // Bytes that do not hash to the digest are refused, whole or from parts.
    let err = blobs.put(&digest, bad.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err}");
    let handle = blobs.begin_parts(ID).await.unwrap();
    let tag = blobs.put_part(ID, &handle, 1, bad.clone()).await.unwrap();
    let parts = [Part {
        number: 1,
        tag,
        size: 100,
    }];
    let err = blobs
        .complete_parts(ID, &handle, &parts, &digest)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err}");
    assert!(listing(&dir.path().join("blobs/sha256")).is_empty());

    // Stored once; storing it again (whole or from parts) keeps the very same file.
    blobs.put(&digest, good.clone()).await.unwrap();
    let inode = std::fs::metadata(blobs.path(&digest)).unwrap().ino();
    blobs.put(&digest, good.clone()).await.unwrap();
    let tag = blobs.put_part(ID, &handle, 2, good.clone()).await.unwrap();
    let parts = [Part {
        number: 2,
        tag,
        size: 100,
    }];
    blobs
        .complete_parts(ID, &handle, &parts, &digest)
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(blobs.path(&digest)).unwrap().ino(), inode);
    assert_eq!(blobs.get(&digest).await.unwrap(), Some(good));
    // No temporary file is left, whatever happened.
    assert_eq!(listing(&dir.path().join("blobs/sha256")), [digest.hex()]);
}

#[tokio::test]
async fn a_part_written_again_leaves_the_recorded_one_and_a_missing_part_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let handle = blobs.begin_parts(ID).await.unwrap();
    let first = blobs
        .put_part(ID, &handle, 1, pattern(0, 100))
        .await
        .unwrap();
    let recorded = vec![Part {
        number: 1,
        tag: first.clone(),
        size: 100,
    }];
    // Another writer (one that then loses its race for the upload) writes part 1
    // again with other bytes: they get another tag and a file of their own.
    let second = blobs
        .put_part(ID, &handle, 1, pattern(1, 100))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(
        listing(&dir.path().join("uploads").join(ID).join(&handle)).len(),
        2
    );

    // A part that is missing is refused: no blob, not even a half-written one.
    let digest = Digest::sha256(&pattern(0, 100));
    let missing = vec![
        Part {
            number: 1,
            tag: second,
            size: 100,
        },
        Part {
            number: 2,
            tag: first,
            size: 100,
        },
    ];
    let err = blobs
        .complete_parts(ID, &handle, &missing, &digest)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(listing(&dir.path().join("blobs/sha256")).is_empty());

    // The recorded part is the blob.
    blobs
        .complete_parts(ID, &handle, &recorded, &digest)
        .await
        .unwrap();
    assert_eq!(blobs.get(&digest).await.unwrap(), Some(pattern(0, 100)));
}

#[tokio::test]
async fn abort_removes_every_byte_of_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let uploads = dir.path().join("uploads");
    // Nothing to remove is fine.
    blobs.abort_parts(ID, None, None).await.unwrap();

    let key = blobs.put_pending(ID, pattern(0, 10)).await.unwrap();
    blobs.abort_parts(ID, None, Some(&key)).await.unwrap();
    assert!(listing(&uploads).is_empty());
    assert!(blobs.pending(ID, &key).await.is_err());

    let handle = blobs.begin_parts(ID).await.unwrap();
    blobs
        .put_part(ID, &handle, 1, pattern(0, 10))
        .await
        .unwrap();
    let key = blobs.put_pending(ID, pattern(10, 3)).await.unwrap();
    blobs
        .abort_parts(ID, Some(&handle), Some(&key))
        .await
        .unwrap();
    assert!(listing(&uploads).is_empty());
    blobs.abort_parts(ID, Some(&handle), None).await.unwrap();

    // A part written after the abort does not bring the upload back.
    let err = blobs
        .put_part(ID, &handle, 2, pattern(0, 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(listing(&uploads).is_empty());
}

#[tokio::test]
async fn ids_and_handles_that_are_not_plain_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open(&dir);
    let handle = blobs.begin_parts(ID).await.unwrap();
    let digest = Digest::sha256(b"x");
    for bad in [
        "", ".", "..", "../blobs", "a/b", "/tmp", "ABC", "a\0b", "x y",
    ] {
        assert!(blobs.begin_parts(bad).await.is_err(), "{bad:?}");
        assert!(
            blobs.put_pending(bad, pattern(0, 1)).await.is_err(),
            "{bad:?}"
        );
        assert!(blobs.pending(bad, "0a").await.is_err(), "{bad:?}");
        assert!(blobs.pending(ID, bad).await.is_err(), "{bad:?}");
        assert!(blobs.remove_pending(ID, bad).await.is_err(), "{bad:?}");
        assert!(blobs.abort_parts(bad, None, None).await.is_err(), "{bad:?}");
        assert!(
            blobs.abort_parts(ID, None, Some(bad)).await.is_err(),
            "{bad:?}"
        );
        assert!(
            blobs
                .put_part(bad, &handle, 1, pattern(0, 1))
                .await
                .is_err(),
            "{bad:?}"
        );
        assert!(
            blobs.put_part(ID, bad, 1, pattern(0, 1)).await.is_err(),
            "{bad:?}"
        );
        assert!(
            blobs
                .complete_parts(bad, &handle, &[], &digest)
                .await
                .is_err(),
            "{bad:?}"
        );
        assert!(
            blobs.abort_parts(ID, Some(bad), None).await.is_err(),
            "{bad:?}"
        );
    }
    assert!(blobs.begin_parts(&"a".repeat(65)).await.is_err());
    // Nothing was written outside the uploads folder.
    assert_eq!(listing(dir.path()), ["blobs", "uploads"]);
    assert!(listing(&dir.path().join("blobs")).is_empty());
    assert_eq!(listing(&dir.path().join("uploads")), [ID]);
}
