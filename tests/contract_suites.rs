//! The ports' contract suites ([`quayside_tests::contract`]: metadata, access, blobs), run on
//! every adapter: the embedded one, and the AWS one at moto (`tests/run` starts it; without
//! it these fail, never skip). Then what only the embedded store promises: durability
//! across reopening, and a read cache that never answers stale.

use quayside::digest::Digest;
use quayside::embedded::{FolderBlobs, RedbMetadata};
use quayside::ports::{AccessStore, BlobStore, Lookup, MetadataStore};
use quayside::registry::image_chain;
use quayside_tests::aws_support::AwsEnv;
use quayside_tests::contract::metadata::*;
use std::any::Any;
use std::sync::Arc;

type Keep = Box<dyn Any + Send>;

/// Every suite over one backend's adapters, each from its opener below.
macro_rules! every_contract {
    ($metadata:ident, $access:ident, $blobs:ident) => {
        quayside_tests::metadata_contract!(super::$metadata);
        mod access {
            quayside_tests::access_contract!(super::super::$access);
        }
        mod blobs {
            quayside_tests::blob_contract!(super::super::$blobs);
        }
    };
}

mod embedded {
    every_contract!(open_embedded, open_embedded_access, open_folder_blobs);
}

mod aws {
    every_contract!(open_aws, open_aws_access, open_s3_blobs);
}

/// A fresh redb store in a folder of its own (kept as long as the store).
async fn open_embedded() -> (Arc<dyn MetadataStore>, Keep) {
    let dir = tempfile::tempdir().unwrap();
    (Arc::new(open(&dir)), Box::new(dir))
}

/// The DynamoDB store over a table of its own at moto.
async fn open_aws() -> (Arc<dyn MetadataStore>, Keep) {
    let env = AwsEnv::provision().await;
    (env.registry().metadata, Box::new(env))
}

/// A fresh redb access store, in the metadata's database file as registry-local keeps it.
async fn open_embedded_access() -> (Arc<dyn AccessStore>, Keep) {
    let dir = tempfile::tempdir().unwrap();
    let backend = quayside::embedded::EmbeddedBackend::open(dir.path()).unwrap();
    (backend.access, Box::new(dir))
}

/// The DynamoDB access store over a table of its own at moto.
async fn open_aws_access() -> (Arc<dyn AccessStore>, Keep) {
    let env = AwsEnv::provision().await;
    let access: Arc<dyn AccessStore> = quayside::backend::aws_access(&env.aws, &env.settings);
    (access, Box::new(env))
}

/// A fresh blob folder (and uploads folder) of its own.
async fn open_folder_blobs() -> (Arc<dyn BlobStore>, Keep) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FolderBlobs::open(&dir.path().join("blobs"), &dir.path().join("uploads"));
    (Arc::new(blobs.unwrap()), Box::new(dir))
}

/// The S3 blob store over a bucket of its own at moto.
async fn open_s3_blobs() -> (Arc<dyn BlobStore>, Keep) {
    let env = AwsEnv::provision().await;
    (env.registry().blobs, Box::new(env))
}

fn open(dir: &tempfile::TempDir) -> RedbMetadata {
    RedbMetadata::open(&dir.path().join("metadata.redb")).unwrap()
}
#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest("durable");
    let blob = Digest::sha256(b"layer");
    {
        let store = open(&dir);
        store
            .commit_push(&repo(), &schema1_push(&m, "v1"))
            .await
            .unwrap();
        store.link_blob(&repo(), &blob, 5).await.unwrap();
    }
    let store = open(&dir);
    assert!(store.repository_exists(&repo()).await.unwrap());
    let target = store.tag(&repo(), &tag("v1")).await.unwrap().unwrap();
    assert_eq!(target.manifest, Some(m));
    assert_eq!(image_chain(&store, &repo(), "leaf").await.unwrap().len(), 2);
    let found = store
        .lookup(
            &repo(),
            &Lookup {
                blobs: vec![blob.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(found.blobs.contains(&blob));
}

#[tokio::test]
async fn every_write_is_seen_by_the_next_read_though_reads_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (first, second) = (manifest("first"), manifest("second"));
    let latest = async |store: &RedbMetadata| {
        store
            .tag(&repo(), &tag("latest"))
            .await
            .unwrap()
            .map(|t| t.manifest)
    };
    store
        .commit_push(&repo(), &push(&first, Some("latest")))
        .await
        .unwrap();
    // The second of each read is answered from the cache.
    for _ in 0..2 {
        assert_eq!(latest(&store).await, Some(Some(first.clone())));
        assert_eq!(
            store.manifest(&repo(), &first.digest).await.unwrap(),
            Some(first.clone())
        );
    }
    store
        .commit_push(&repo(), &push(&second, Some("latest")))
        .await
        .unwrap();
    assert_eq!(latest(&store).await, Some(Some(second.clone())));
    assert!(
        store
            .delete_tag(&repo(), &tag("latest"), &event())
            .await
            .unwrap()
    );
    assert_eq!(latest(&store).await, None);
    delete(&store, &first, &[]).await;
    assert_eq!(store.manifest(&repo(), &first.digest).await.unwrap(), None);
    // A clone shares the cache, so a write through one is seen through the other.
    let clone = store.clone();
    assert_eq!(
        clone.manifest(&repo(), &second.digest).await.unwrap(),
        Some(second.clone())
    );
    delete(&store, &second, &[]).await;
    assert_eq!(clone.manifest(&repo(), &second.digest).await.unwrap(), None);
}

#[tokio::test]
async fn uploads_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
    open(&dir)
        .create_upload(&repo(), &upload(id, 3))
        .await
        .unwrap();
    assert_eq!(
        open(&dir).upload(&repo(), id).await.unwrap(),
        Some(upload(id, 3))
    );
}
