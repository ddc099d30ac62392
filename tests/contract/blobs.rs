//! The contract of [`BlobStore`]: content-addressed bytes stored only under the digest they
//! hash to and never replaced, and an upload's bytes as parts and pending bytes, run
//! unchanged on every adapter by `tests/contract_suites.rs` (the folder, S3 at moto). A
//! case takes a fresh, empty store. Parts are of the store's part size
//! ([`BlobStore::part_buffer`]; S3 takes no part under 5 MiB but the last), or small where
//! a store streams parts of any size.
//!
//! May call: the port and its value types. Must not know an adapter.

use bytes::Bytes;
use quayside::digest::Digest;
use quayside::ports::{BlobBody, BlobStore, Part, StoreError};

/// One `#[tokio::test]` per case of this suite, each on a store from `$open` (an async
/// function returning the store and whatever must live as long as it): see
/// [`contract_cases`](crate::contract_cases).
#[macro_export]
macro_rules! blob_contract {
    ($open:path) => { $crate::contract_cases!(blobs, $open;
        a_blob_is_stored_read_and_measured,
        bytes_that_do_not_hash_to_the_digest_are_refused_and_a_blob_is_never_replaced,
        pending_bytes_get_a_key_per_write_and_go_when_removed,
        parts_and_pending_bytes_make_the_blob,
        abort_removes_every_byte_of_an_upload,
    ); };
}

const ID: &str = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";

/// Bytes `n..n + len` of a repeating pattern: parts that differ from each other.
fn pattern(n: usize, len: usize) -> Bytes {
    (n..n + len).map(|i| (i % 251) as u8).collect()
}

/// The size of a part that is not the last.
fn part_size(store: &dyn BlobStore) -> usize {
    store.part_buffer().unwrap_or(64 * 1024)
}

pub async fn a_blob_is_stored_read_and_measured(store: &dyn BlobStore) {
    let bytes = Bytes::from_static(b"hello blob");
    let digest = Digest::sha256(&bytes);
    assert_eq!(store.get(&digest).await.unwrap(), None);
    assert_eq!(store.size(&digest).await.unwrap(), None);
    store.put(&digest, bytes.clone()).await.unwrap();
    assert_eq!(store.get(&digest).await.unwrap(), Some(bytes.clone()));
    assert_eq!(store.size(&digest).await.unwrap(), Some(bytes.len() as u64));
    // Putting the same bytes again is harmless.
    store.put(&digest, bytes.clone()).await.unwrap();
    assert_eq!(store.get(&digest).await.unwrap(), Some(bytes));
    let missing = Digest::sha256(b"missing");
    assert_eq!(store.get(&missing).await.unwrap(), None);
    assert_eq!(store.size(&missing).await.unwrap(), None);
    // A store that redirects may do so without asking whether the blob is there (S3
    // presigns without a call): the registry reads a blob only through its link.
    let fetched = store.fetch(&missing, None).await.unwrap();
    assert!(
        matches!(fetched, None | Some(BlobBody::Redirect(_))),
        "{fetched:?}"
    );
}

pub async fn bytes_that_do_not_hash_to_the_digest_are_refused_and_a_blob_is_never_replaced(
    store: &dyn BlobStore,
) {
    let (good, bad) = (pattern(0, 100), pattern(1, 100));
    let digest = Digest::sha256(&good);
    let err = store.put(&digest, bad.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err}");
    assert_eq!(store.size(&digest).await.unwrap(), None);
    store.put(&digest, good.clone()).await.unwrap();
    // Other bytes under a stored digest: refused, and the blob stays.
    assert!(store.put(&digest, bad).await.is_err());
    assert_eq!(store.get(&digest).await.unwrap(), Some(good));
}

pub async fn pending_bytes_get_a_key_per_write_and_go_when_removed(store: &dyn BlobStore) {
    let first = store.put_pending(ID, pattern(0, 10)).await.unwrap();
    let second = store.put_pending(ID, pattern(0, 20)).await.unwrap();
    // Each write has a key of its own: a later write never changes an earlier one.
    assert_ne!(first, second);
    assert_eq!(store.pending(ID, &first).await.unwrap(), pattern(0, 10));
    assert_eq!(store.pending(ID, &second).await.unwrap(), pattern(0, 20));
    store.remove_pending(ID, &first).await.unwrap();
    // Already gone is fine.
    store.remove_pending(ID, &first).await.unwrap();
    let gone = store.pending(ID, &first).await.unwrap_err();
    assert!(matches!(gone, StoreError::Conflict(_)), "{gone}");
    assert_eq!(store.pending(ID, &second).await.unwrap(), pattern(0, 20));
}

pub async fn parts_and_pending_bytes_make_the_blob(store: &dyn BlobStore) {
    let size = part_size(store);
    let handle = store.begin_parts(ID).await.unwrap();
    let chunks = [pattern(0, size), pattern(size, size), pattern(2 * size, 7)];
    let mut parts = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let number = u32::try_from(i).unwrap() + 1;
        let tag = store
            .put_part(ID, &handle, number, chunk.clone())
            .await
            .unwrap();
        parts.push(Part {
            number,
            tag,
            size: chunk.len() as u64,
        });
    }
    let whole = pattern(0, 2 * size + 7);
    let digest = Digest::sha256(&whole);
    store
        .complete_parts(ID, &handle, &parts, &digest)
        .await
        .unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), Some(whole.len() as u64));
    assert!(store.get(&digest).await.unwrap() == Some(whole));

    // All of a small upload as pending bytes, adopted as the blob.
    let small = pattern(5, 300);
    let small_digest = Digest::sha256(&small);
    let key = store.put_pending(ID, small.clone()).await.unwrap();
    store.adopt_pending(ID, &key, &small_digest).await.unwrap();
    assert_eq!(store.get(&small_digest).await.unwrap(), Some(small));
}

pub async fn abort_removes_every_byte_of_an_upload(store: &dyn BlobStore) {
    // Nothing to remove is fine.
    store.abort_parts(ID, None, None).await.unwrap();
    let handle = store.begin_parts(ID).await.unwrap();
    store
        .put_part(ID, &handle, 1, pattern(0, part_size(store)))
        .await
        .unwrap();
    let key = store.put_pending(ID, pattern(10, 3)).await.unwrap();
    store
        .abort_parts(ID, Some(&handle), Some(&key))
        .await
        .unwrap();
    let gone = store.pending(ID, &key).await.unwrap_err();
    assert!(matches!(gone, StoreError::Conflict(_)), "{gone}");
    // Aborting again is fine.
    store.abort_parts(ID, Some(&handle), None).await.unwrap();
}
