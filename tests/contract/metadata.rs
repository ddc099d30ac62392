//! The contract of [`MetadataStore`]: what every adapter promises, run unchanged against
//! each (the embedded redb store, DynamoDB at moto) by `tests/contract.rs`, as CNCF
//! distribution runs one storage test suite on every driver. A case takes a fresh, empty
//! store; the repository names and ids it uses are its own.
//!
//! May call: the port and its value types. Must not know an adapter.

use bytes::Bytes;
use quayside::digest::Digest;
use quayside::names::{RepositoryName, Tag};
use quayside::ports::{
    GeneratedManifest, Lookup, ManifestDeletion, MetadataStore, Push, Referrer, RegistryEvent,
    StoreError, StoredManifest, TagTarget, Upload, V1Image,
};
use quayside::registry::image_chain;
use std::collections::{HashMap, HashSet};

/// One `#[tokio::test]` per case of this suite, each on a store from `$open` (an async
/// function returning the store and whatever must live as long as it): see
/// [`contract_cases`](crate::contract_cases).
#[macro_export]
macro_rules! metadata_contract {
    ($open:path) => { $crate::contract_cases!(metadata, $open;
        push_then_read_by_tag_and_digest,
        lookup_finds_only_what_the_repository_has,
        a_deletion_reads_the_tags_naming_a_manifest,
        a_deletion_keeps_the_planned_tags_and_removes_the_others,
        a_deletion_removes_the_referrer_entry,
        a_deletion_conflicts_without_writing_when_its_read_no_longer_holds,
        a_deletion_of_more_tags_than_one_transaction_holds_removes_them_all,
        attach_generated_manifest_succeeds_once_then_conflicts_without_writing,
        image_chain_is_leaf_first_and_survives_cycles,
        existing_images_are_not_overwritten,
        pushing_a_tag_again_overwrites_it,
        delete_tag_removes_only_the_tag,
        prefixes_do_not_leak_between_similar_repositories,
        tags_are_paged_in_ascii_order,
        tags_of_empty_unknown_and_similarly_named_repositories,
        a_schema1_tag_kept_without_its_manifest_is_listed,
        repositories_are_paged_in_ascii_order,
        blob_link_and_unlink,
        uploads_are_created_read_updated_and_deleted,
        every_upload_is_listed_across_repositories,
        update_upload_conflicts_without_writing
    ); };
}

pub fn repo() -> RepositoryName {
    RepositoryName::parse("library/app").unwrap()
}

pub fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

pub fn manifest(body: &str) -> StoredManifest {
    StoredManifest {
        digest: Digest::sha256(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: Bytes::from(body.to_string()),
    }
}

pub fn image(id: &str, parent: Option<&str>) -> V1Image {
    V1Image {
        docker_id: id.into(),
        parent: parent.map(str::to_string),
        blob: Digest::sha256(id.as_bytes()),
        created: None,
        comment: None,
        command: None,
        v1_json: format!(r#"{{"id":"{id}"}}"#),
    }
}

pub fn push(m: &StoredManifest, t: Option<&str>) -> Push {
    Push {
        manifest: m.clone(),
        tags: t.map(tag).into_iter().collect(),
        tag_v1_image: None,
        images: vec![],
        referrer: None,
        event: event(),
    }
}

/// What the registry hands a store to attach a built manifest to `tag`.
pub fn generated_for<'a>(
    tag: &'a Tag,
    v1_image: &'a str,
    manifest: &'a StoredManifest,
) -> GeneratedManifest<'a> {
    GeneratedManifest {
        tag,
        v1_image,
        manifest,
    }
}

pub fn event() -> RegistryEvent {
    RegistryEvent {
        event: "test".into(),
        repository: "acme/app".into(),
        namespace: "acme".into(),
        updated_tags: vec![],
        digest: None,
        media_type: None,
        time: "2026-01-01T00:00:00Z".into(),
    }
}

/// A schema1 push by tag: images `base` <- `leaf`, the tag naming `leaf`.
pub fn schema1_push(m: &StoredManifest, t: &str) -> Push {
    Push {
        tag_v1_image: Some("leaf".into()),
        images: vec![image("base", None), image("leaf", Some("base"))],
        ..push(m, Some(t))
    }
}

/// The deletion of manifest `m` of [`repo`] (which must be there) as read now, keeping
/// `kept` of the tags naming it.
pub async fn deletion(
    store: &dyn MetadataStore,
    m: &StoredManifest,
    kept: &[&str],
) -> ManifestDeletion {
    let read = store
        .manifest_in_use(&repo(), &m.digest)
        .await
        .unwrap()
        .unwrap();
    ManifestDeletion {
        digest: m.digest.clone(),
        read,
        kept_tags: kept.iter().map(|t| tag(t)).collect(),
        event: event(),
    }
}

/// Deletes manifest `m` of [`repo`], which must be there, keeping `kept` of its tags.
pub async fn delete(store: &dyn MetadataStore, m: &StoredManifest, kept: &[&str]) {
    let planned = deletion(store, m, kept).await;
    store.commit_deletion(&repo(), &planned).await.unwrap();
}

/// The tags naming manifest `m` of [`repo`] with their v1 images; `None` if it is unknown.
pub async fn tags_naming(
    store: &dyn MetadataStore,
    m: &StoredManifest,
) -> Option<Vec<(String, Option<String>)>> {
    let read = store.manifest_in_use(&repo(), &m.digest).await.unwrap()?;
    Some(
        read.tags
            .into_iter()
            .map(|t| (t.tag.to_string(), t.v1_image))
            .collect(),
    )
}

/// `refused` is a conflict, and upload `id` of [`repo`] is as it was: `kept` (`None`: not
/// there).
pub async fn assert_conflict_kept(
    store: &dyn MetadataStore,
    refused: quayside::ports::StoreResult<()>,
    id: &str,
    kept: Option<Upload>,
) {
    let err = refused.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.upload(&repo(), id).await.unwrap(), kept);
}

/// Commits `p` to [`repo`]; it must succeed.
pub async fn commit(store: &dyn MetadataStore, p: &Push) {
    store.commit_push(&repo(), p).await.unwrap();
}

pub fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Every tag of `repo`, or `None` if the repository does not exist.
pub async fn all_tags(store: &dyn MetadataStore, repo: &RepositoryName) -> Option<Vec<String>> {
    let tags = store.tags(repo, None, usize::MAX).await.unwrap();
    match tags.is_empty() && !store.repository_exists(repo).await.unwrap() {
        true => None,
        false => Some(tags),
    }
}

pub fn upload(id: &str, offset: u64) -> Upload {
    Upload {
        id: id.into(),
        offset,
        hash_state: vec![1, 2, 3],
        pending: offset,
        pending_key: None,
        handle: None,
        parts: vec![],
        started: "2026-01-01T00:00:00Z".into(),
        // The tests read as if writers conditioned on the offset.
        version: offset,
        writer: None,
        lease_until: 0,
    }
}

pub async fn push_then_read_by_tag_and_digest(store: &dyn MetadataStore) {
    let m = manifest("one");
    assert!(!store.repository_exists(&repo()).await.unwrap());
    commit(store, &push(&m, Some("latest"))).await;

    assert!(store.repository_exists(&repo()).await.unwrap());
    let target = store.tag(&repo(), &tag("latest")).await.unwrap().unwrap();
    assert_eq!(
        target,
        TagTarget {
            manifest: Some(m.clone()),
            v1_image: None
        }
    );
    assert_eq!(
        store.manifest(&repo(), &m.digest).await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(store.tag(&repo(), &tag("other")).await.unwrap(), None);
    let elsewhere = RepositoryName::parse("library/app2").unwrap();
    assert_eq!(store.manifest(&elsewhere, &m.digest).await.unwrap(), None);
    assert_eq!(all_tags(store, &repo()).await, Some(names(&["latest"])));
    assert_eq!(all_tags(store, &elsewhere).await, None);
}

pub async fn lookup_finds_only_what_the_repository_has(store: &dyn MetadataStore) {
    let other = RepositoryName::parse("library/other").unwrap();
    let (b1, b2, b3) = (
        Digest::sha256(b"b1"),
        Digest::sha256(b"b2"),
        Digest::sha256(b"b3"),
    );
    store.link_blob(&repo(), &b1, 2).await.unwrap();
    store.link_blob(&other, &b2, 2).await.unwrap();
    let m = manifest("m");
    commit(store, &schema1_push(&m, "v1")).await;

    let found = store
        .lookup(
            &repo(),
            &Lookup {
                blobs: vec![b1.clone(), b2.clone(), b3],
                manifests: vec![m.digest.clone(), manifest("nope").digest],
                images: vec!["leaf".into(), "ghost".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(found.blobs, HashSet::from([b1]));
    assert_eq!(found.manifests, HashSet::from([m.digest.clone()]));
    assert_eq!(
        found.images,
        HashMap::from([("leaf".to_string(), image("leaf", Some("base")))])
    );
    let found = store
        .lookup(
            &other,
            &Lookup {
                blobs: vec![b2.clone()],
                images: vec!["leaf".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.blobs, HashSet::from([b2]));
    assert!(found.images.is_empty());
}

pub async fn a_deletion_reads_the_tags_naming_a_manifest(store: &dyn MetadataStore) {
    let m = manifest("schema1");
    assert_eq!(tags_naming(store, &m).await, None, "unknown");
    commit(store, &push(&m, None)).await;
    assert_eq!(
        tags_naming(store, &m).await,
        Some(vec![]),
        "pushed by digest"
    );
    commit(store, &schema1_push(&m, "old")).await;
    commit(store, &push(&m, Some("plain"))).await;
    commit(store, &push(&manifest("other"), Some("elsewhere"))).await;
    assert_eq!(
        tags_naming(store, &m).await,
        Some(vec![
            ("old".to_string(), Some("leaf".to_string())),
            ("plain".to_string(), None)
        ]),
        "in ASCII order, only the manifest's"
    );
    let read = store
        .manifest_in_use(&repo(), &m.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.subject, None);
}

pub async fn a_deletion_keeps_the_planned_tags_and_removes_the_others(store: &dyn MetadataStore) {
    let m = manifest("schema1");
    commit(store, &schema1_push(&m, "old")).await;
    commit(store, &push(&m, Some("plain"))).await;
    let untouched = manifest("other");
    commit(store, &push(&untouched, Some("keepme"))).await;

    delete(store, &m, &["old"]).await;
    assert_eq!(store.manifest(&repo(), &m.digest).await.unwrap(), None);
    assert_eq!(tags_naming(store, &m).await, None);
    let kept = store.tag(&repo(), &tag("old")).await.unwrap().unwrap();
    assert_eq!(
        kept,
        TagTarget {
            manifest: None,
            v1_image: Some("leaf".into())
        }
    );
    assert_eq!(store.tag(&repo(), &tag("plain")).await.unwrap(), None);
    assert!(store.tag(&repo(), &tag("keepme")).await.unwrap().is_some());
    assert_eq!(
        all_tags(store, &repo()).await,
        Some(names(&["keepme", "old"]))
    );
}

pub async fn a_deletion_removes_the_referrer_entry(store: &dyn MetadataStore) {
    let subject = manifest("subject");
    commit(store, &push(&subject, Some("latest"))).await;
    let sig = manifest("signature");
    let referrer = Referrer {
        subject: subject.digest.clone(),
        digest: sig.digest.clone(),
        media_type: sig.media_type.clone(),
        size: sig.body.len() as u64,
        artifact_type: Some("application/example".into()),
        annotations: None,
    };
    let p = Push {
        referrer: Some(referrer.clone()),
        ..push(&sig, None)
    };
    commit(store, &p).await;
    assert_eq!(
        store.referrers(&repo(), &subject.digest).await.unwrap(),
        vec![referrer]
    );
    let planned = deletion(store, &sig, &[]).await;
    assert_eq!(planned.read.subject.as_ref(), Some(&subject.digest));

    store.commit_deletion(&repo(), &planned).await.unwrap();
    assert!(
        store
            .referrers(&repo(), &subject.digest)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.tag(&repo(), &tag("latest")).await.unwrap().is_some(),
        "the subject's tag stays"
    );
}

/// A tag pointed at the manifest, a tag moved away from it, the manifest deleted by another
/// writer: each since the read, each a `Conflict` that writes nothing.
pub async fn a_deletion_conflicts_without_writing_when_its_read_no_longer_holds(
    store: &dyn MetadataStore,
) {
    let m = manifest("m");
    let other = manifest("other");
    commit(store, &push(&m, Some("a"))).await;
    commit(store, &push(&m, Some("b"))).await;
    let assert_refused = |refused: quayside::ports::StoreResult<()>| {
        let err = refused.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    };

    let stale = deletion(store, &m, &[]).await;
    commit(store, &push(&m, Some("c"))).await;
    assert_refused(store.commit_deletion(&repo(), &stale).await);
    assert_eq!(
        store.manifest(&repo(), &m.digest).await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(
        all_tags(store, &repo()).await,
        Some(names(&["a", "b", "c"]))
    );

    let stale = deletion(store, &m, &[]).await;
    commit(store, &push(&other, Some("a"))).await;
    assert_refused(store.commit_deletion(&repo(), &stale).await);
    assert_eq!(
        store.manifest(&repo(), &m.digest).await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(
        tags_naming(store, &m).await,
        Some(vec![("b".to_string(), None), ("c".to_string(), None)])
    );

    let stale = deletion(store, &m, &[]).await;
    delete(store, &m, &[]).await;
    assert_refused(store.commit_deletion(&repo(), &stale).await);
    assert_eq!(all_tags(store, &repo()).await, Some(names(&["a"])));
    assert_eq!(
        store
            .tag(&repo(), &tag("a"))
            .await
            .unwrap()
            .unwrap()
            .manifest,
        Some(other)
    );
}

/// 150 tags: more than a DynamoDB transaction's 100 items, so that store detaches some in
/// transactions of their own before the last one deletes the manifest.
pub async fn a_deletion_of_more_tags_than_one_transaction_holds_removes_them_all(
    store: &dyn MetadataStore,
) {
    let m = manifest("popular");
    let names_: Vec<String> = (0..150).map(|i| format!("t{i:03}")).collect();
    for batch in names_.chunks(30) {
        let p = Push {
            tags: batch.iter().map(|t| tag(t)).collect(),
            ..push(&m, None)
        };
        commit(store, &p).await;
    }
    let planned = deletion(store, &m, &[]).await;
    assert_eq!(planned.read.tags.len(), 150);
    store.commit_deletion(&repo(), &planned).await.unwrap();
    assert_eq!(store.manifest(&repo(), &m.digest).await.unwrap(), None);
    assert_eq!(all_tags(store, &repo()).await, Some(names(&[])));
}

pub async fn attach_generated_manifest_succeeds_once_then_conflicts_without_writing(
    store: &dyn MetadataStore,
) {
    let m = manifest("pushed");
    commit(store, &schema1_push(&m, "old")).await;
    delete(store, &m, &["old"]).await;

    // Wrong v1 image: conflict, nothing written.
    let wrong = manifest("generated-wrong");
    let err = store
        .attach_generated_manifest(&repo(), generated_for(&tag("old"), "base", &wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.manifest(&repo(), &wrong.digest).await.unwrap(), None);

    // Unknown tag: conflict too.
    let err = store
        .attach_generated_manifest(&repo(), generated_for(&tag("nope"), "leaf", &wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(store.tag(&repo(), &tag("nope")).await.unwrap(), None);

    let generated = manifest("generated");
    store
        .attach_generated_manifest(&repo(), generated_for(&tag("old"), "leaf", &generated))
        .await
        .unwrap();
    let target = store.tag(&repo(), &tag("old")).await.unwrap().unwrap();
    assert_eq!(
        target,
        TagTarget {
            manifest: Some(generated.clone()),
            v1_image: Some("leaf".into())
        }
    );

    // The tag has a manifest now: a second attach conflicts and changes nothing.
    let again = manifest("generated-again");
    let err = store
        .attach_generated_manifest(&repo(), generated_for(&tag("old"), "leaf", &again))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(store.manifest(&repo(), &again.digest).await.unwrap(), None);
    assert_eq!(
        store.tag(&repo(), &tag("old")).await.unwrap().unwrap(),
        target
    );
}

pub async fn image_chain_is_leaf_first_and_survives_cycles(store: &dyn MetadataStore) {
    let p = Push {
        images: vec![
            image("a", None),
            image("b", Some("a")),
            image("c", Some("b")),
        ],
        ..push(&manifest("chain"), None)
    };
    commit(store, &p).await;
    let ids = |chain: Vec<V1Image>| chain.into_iter().map(|i| i.docker_id).collect::<Vec<_>>();
    assert_eq!(
        ids(image_chain(store, &repo(), "c").await.unwrap()),
        ["c", "b", "a"]
    );
    assert!(image_chain(store, &repo(), "zz").await.unwrap().is_empty());

    // A missing parent ends the chain.
    let p = Push {
        images: vec![image("orphan", Some("gone"))],
        ..push(&manifest("o"), None)
    };
    commit(store, &p).await;
    assert_eq!(
        ids(image_chain(store, &repo(), "orphan").await.unwrap()),
        ["orphan"]
    );

    // x -> y -> x: each image once, then stop.
    let p = Push {
        images: vec![image("x", Some("y")), image("y", Some("x"))],
        ..push(&manifest("cycle"), None)
    };
    commit(store, &p).await;
    assert_eq!(
        ids(image_chain(store, &repo(), "x").await.unwrap()),
        ["x", "y"]
    );
}

pub async fn existing_images_are_not_overwritten(store: &dyn MetadataStore) {
    let first = image("a", None);
    let p = Push {
        images: vec![first.clone()],
        ..push(&manifest("1"), None)
    };
    commit(store, &p).await;
    let changed = V1Image {
        comment: Some("changed".into()),
        ..first.clone()
    };
    let p = Push {
        images: vec![changed],
        ..push(&manifest("2"), None)
    };
    commit(store, &p).await;
    assert_eq!(image_chain(store, &repo(), "a").await.unwrap(), vec![first]);
}

pub async fn pushing_a_tag_again_overwrites_it(store: &dyn MetadataStore) {
    let (first, second) = (manifest("first"), manifest("second"));
    commit(store, &schema1_push(&first, "latest")).await;
    commit(store, &push(&second, Some("latest"))).await;
    let target = store.tag(&repo(), &tag("latest")).await.unwrap().unwrap();
    assert_eq!(
        target,
        TagTarget {
            manifest: Some(second),
            v1_image: None
        }
    );
    // The first manifest stays reachable by digest.
    assert_eq!(
        store.manifest(&repo(), &first.digest).await.unwrap(),
        Some(first)
    );
}

pub async fn delete_tag_removes_only_the_tag(store: &dyn MetadataStore) {
    let m = manifest("m");
    commit(store, &push(&m, Some("a"))).await;
    commit(store, &push(&m, Some("b"))).await;
    assert!(
        store
            .delete_tag(&repo(), &tag("a"), &event())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_tag(&repo(), &tag("a"), &event())
            .await
            .unwrap()
    );
    assert_eq!(all_tags(store, &repo()).await, Some(names(&["b"])));
    assert_eq!(store.manifest(&repo(), &m.digest).await.unwrap(), Some(m));
}

pub async fn prefixes_do_not_leak_between_similar_repositories(store: &dyn MetadataStore) {
    let longer = RepositoryName::parse("library/app-x").unwrap();
    let m = manifest("m");
    commit(store, &push(&m, Some("mine"))).await;
    store
        .commit_push(&longer, &push(&m, Some("theirs")))
        .await
        .unwrap();
    assert_eq!(all_tags(store, &repo()).await, Some(names(&["mine"])));
    assert_eq!(
        tags_naming(store, &m).await,
        Some(vec![("mine".to_string(), None)])
    );
    delete(store, &m, &[]).await;
    assert!(store.tag(&longer, &tag("theirs")).await.unwrap().is_some());
}

pub async fn tags_are_paged_in_ascii_order(store: &dyn MetadataStore) {
    let m = manifest("m");
    // Pushed out of order; `B` sorts before `a` in ASCII.
    for t in ["c", "a", "B", "b", "a.1", "d"] {
        commit(store, &push(&m, Some(t))).await;
    }
    let tags = |after, count| async move { store.tags(&repo(), after, count).await.unwrap() };
    assert_eq!(tags(None, 2).await, names(&["B", "a"]));
    assert_eq!(tags(Some("a"), 2).await, names(&["a.1", "b"]));
    assert_eq!(tags(Some("b"), 3).await, names(&["c", "d"]));
    assert_eq!(
        tags(None, 10).await,
        names(&["B", "a", "a.1", "b", "c", "d"])
    );
    assert_eq!(tags(Some("a.1"), 3).await, names(&["b", "c", "d"]));
    // `after` need not be a tag: the names start after where it would sort.
    assert_eq!(tags(Some("a0"), 2).await, names(&["b", "c"]));
    assert_eq!(tags(Some("d"), 2).await, names(&[]));
    assert_eq!(tags(Some("zzz"), 2).await, names(&[]));
    assert_eq!(tags(Some("c"), 0).await, names(&[]));
}

pub async fn tags_of_empty_unknown_and_similarly_named_repositories(store: &dyn MetadataStore) {
    let unknown = RepositoryName::parse("library/nope").unwrap();
    assert_eq!(store.tags(&unknown, None, 10).await.unwrap(), names(&[]));
    assert_eq!(all_tags(store, &unknown).await, None);

    // A repository with a blob but no tag exists, with no tags.
    store
        .link_blob(&repo(), &Digest::sha256(b"x"), 1)
        .await
        .unwrap();
    assert_eq!(all_tags(store, &repo()).await, Some(names(&[])));

    // Names that share a prefix with `library/app` (or it with them) are not it.
    let m = manifest("m");
    for (name, t) in [
        ("library/app-x", "x"),
        ("library/app_x", "under"),
        ("library/app0", "zero"),
        ("library/ap", "ap"),
    ] {
        let other = RepositoryName::parse(name).unwrap();
        store.commit_push(&other, &push(&m, Some(t))).await.unwrap();
    }
    assert_eq!(all_tags(store, &repo()).await, Some(names(&[])));
    commit(store, &push(&m, Some("mine"))).await;
    assert_eq!(
        store.tags(&repo(), None, 2).await.unwrap(),
        names(&["mine"])
    );
    assert_eq!(
        all_tags(store, &RepositoryName::parse("library/app-x").unwrap()).await,
        Some(names(&["x"]))
    );
}

pub async fn a_schema1_tag_kept_without_its_manifest_is_listed(store: &dyn MetadataStore) {
    let m = manifest("s1");
    commit(store, &schema1_push(&m, "old")).await;
    delete(store, &m, &["old"]).await;
    assert_eq!(all_tags(store, &repo()).await, Some(names(&["old"])));
}

pub async fn repositories_are_paged_in_ascii_order(store: &dyn MetadataStore) {
    let repos = |after, count| async move { store.repositories(after, count).await.unwrap() };
    assert_eq!(repos(None, 10).await, names(&[]));
    for name in ["library/app-x", "library/app", "acme/b", "library/app_x"] {
        let name = RepositoryName::parse(name).unwrap();
        store
            .link_blob(&name, &Digest::sha256(b"x"), 1)
            .await
            .unwrap();
    }
    assert_eq!(
        repos(None, 10).await,
        names(&["acme/b", "library/app", "library/app-x", "library/app_x"])
    );
    assert_eq!(repos(None, 2).await, names(&["acme/b", "library/app"]));
    assert_eq!(
        repos(Some("library/app"), 3).await,
        names(&["library/app-x", "library/app_x"])
    );
    assert_eq!(
        repos(Some("library/app-x"), 1).await,
        names(&["library/app_x"])
    );
    assert_eq!(repos(Some("library/app_x"), 5).await, names(&[]));
    assert_eq!(repos(Some("a"), 1).await, names(&["acme/b"]));
    assert_eq!(repos(None, 0).await, names(&[]));
}

pub async fn blob_link_and_unlink(store: &dyn MetadataStore) {
    let other = RepositoryName::parse("library/app-x").unwrap();
    let blob = Digest::sha256(b"layer");
    assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), None);
    assert!(!store.unlink_blob(&repo(), &blob).await.unwrap());

    store.link_blob(&repo(), &blob, 5).await.unwrap();
    store.link_blob(&other, &blob, 5).await.unwrap();
    assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), Some(5));

    assert!(store.unlink_blob(&repo(), &blob).await.unwrap());
    assert_eq!(store.blob_link(&repo(), &blob).await.unwrap(), None);
    assert!(!store.unlink_blob(&repo(), &blob).await.unwrap());
    // Only this repository's link went; the repository itself stays.
    assert_eq!(store.blob_link(&other, &blob).await.unwrap(), Some(5));
    assert!(store.repository_exists(&repo()).await.unwrap());
}

pub async fn uploads_are_created_read_updated_and_deleted(store: &dyn MetadataStore) {
    let other = RepositoryName::parse("library/other").unwrap();
    let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
    assert_eq!(store.upload(&repo(), id).await.unwrap(), None);

    let first = upload(id, 0);
    store.create_upload(&repo(), &first).await.unwrap();
    assert_eq!(
        store.upload(&repo(), id).await.unwrap(),
        Some(first.clone())
    );
    // An upload belongs to its repository.
    assert_eq!(store.upload(&other, id).await.unwrap(), None);
    // The same id again is refused and changes nothing.
    let refused = store.create_upload(&repo(), &upload(id, 9)).await;
    assert_conflict_kept(store, refused, id, Some(first.clone())).await;

    let second = Upload {
        handle: Some("h".into()),
        parts: vec![quayside::ports::Part {
            number: 1,
            tag: "t".into(),
            size: 10,
        }],
        ..upload(id, 10)
    };
    store.update_upload(&repo(), &second, 0).await.unwrap();
    assert_eq!(
        store.upload(&repo(), id).await.unwrap(),
        Some(second.clone())
    );

    // Deleting answers the state deleted (what names the bytes to remove), once.
    assert_eq!(
        store.delete_upload(&repo(), id).await.unwrap(),
        Some(second)
    );
    assert_eq!(store.upload(&repo(), id).await.unwrap(), None);
    assert_eq!(store.delete_upload(&repo(), id).await.unwrap(), None);
}

pub async fn every_upload_is_listed_across_repositories(store: &dyn MetadataStore) {
    assert_eq!(store.uploads().await.unwrap(), vec![]);
    let other = RepositoryName::parse("library/other").unwrap();
    let at = |id: &str, started: &str| Upload {
        started: started.into(),
        ..upload(id, 0)
    };
    let old = at(
        "00000000-0000-4000-8000-000000000001",
        "2026-01-01T00:00:00Z",
    );
    let fresh = at(
        "00000000-0000-4000-8000-000000000002",
        "2026-01-02T00:00:01Z",
    );
    // A start that does not parse is kept as stored: the registry decides what it means.
    let unreadable = at("00000000-0000-4000-8000-000000000003", "yesterday");
    store.create_upload(&repo(), &old).await.unwrap();
    store.create_upload(&other, &fresh).await.unwrap();
    store.create_upload(&other, &unreadable).await.unwrap();

    let mut all = store.uploads().await.unwrap();
    all.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    assert_eq!(
        all,
        vec![(repo(), old), (other.clone(), fresh), (other, unreadable)]
    );
}

pub async fn update_upload_conflicts_without_writing(store: &dyn MetadataStore) {
    let id = "0b8c2a3e-9d5f-4c1e-8a7b-123456789abc";
    let stored = upload(id, 10);
    store.create_upload(&repo(), &stored).await.unwrap();

    // Another writer advanced it from 0 first: this one expected 0 but it is at 10.
    let refused = store.update_upload(&repo(), &upload(id, 20), 0).await;
    assert_conflict_kept(store, refused, id, Some(stored.clone())).await;

    // An unknown upload is a conflict too, and is not created.
    let gone = "ffffffff-9d5f-4c1e-8a7b-123456789abc";
    let refused = store.update_upload(&repo(), &upload(gone, 5), 0).await;
    assert_conflict_kept(store, refused, gone, None).await;

    // The right expectation succeeds, once.
    store
        .update_upload(&repo(), &upload(id, 20), 10)
        .await
        .unwrap();
    let refused = store.update_upload(&repo(), &upload(id, 30), 10).await;
    assert_conflict_kept(store, refused, id, Some(upload(id, 20))).await;
}
