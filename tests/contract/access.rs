//! The contract of [`AccessStore`]: principals, grants, visibility and claims as every
//! adapter keeps them, run unchanged on each by `tests/contract_suites.rs`. A case takes a
//! fresh, empty store. (Who may do what with these is `quayside::auth`'s rule, tested in
//! `tests/auth.rs`; a store only keeps them.)
//!
//! May call: the port and its value types. Must not know an adapter.

use quayside::names::RepositoryName;
use quayside::ports::{AccessStore, Permission, PrincipalRecord, RepositoryAccess};
use std::collections::BTreeSet;

/// One `#[tokio::test]` per case of this suite, each on a store from `$open` (an async
/// function returning the store and whatever must live as long as it): see
/// [`contract_cases`](crate::contract_cases).
#[macro_export]
macro_rules! access_contract {
    ($open:path) => { $crate::contract_cases!(access, $open;
        principals_are_created_once_read_changed_and_deleted,
        grants_are_set_replaced_revoked_and_listed_both_ways,
        deleting_a_principal_removes_its_grants,
        repository_access_tells_visibility_creator_and_the_principals_grant,
        a_repository_is_claimed_once,
        namespace_create_rights_are_set_and_cleared,
    ); };
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn principal(name: &str) -> PrincipalRecord {
    PrincipalRecord {
        name: name.into(),
        secret_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}"),
        create_namespaces: BTreeSet::new(),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

fn names(records: &[PrincipalRecord]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

fn grants(pairs: &[(&str, Permission)]) -> Vec<(String, Permission)> {
    pairs.iter().map(|(n, p)| (n.to_string(), *p)).collect()
}

pub async fn principals_are_created_once_read_changed_and_deleted(store: &dyn AccessStore) {
    assert_eq!(store.principal("alice").await.unwrap(), None);
    assert!(store.principals().await.unwrap().is_empty());
    let alice = principal("alice");
    assert!(store.create_principal(&alice).await.unwrap());
    // The name is taken: refused, and the first record stays.
    let again = PrincipalRecord {
        secret_hash: "other".into(),
        ..principal("alice")
    };
    assert!(!store.create_principal(&again).await.unwrap());
    assert_eq!(store.principal("alice").await.unwrap(), Some(alice.clone()));
    assert!(store.create_principal(&principal("acme+ci")).await.unwrap());
    assert!(store.create_principal(&principal("bob")).await.unwrap());
    assert_eq!(
        names(&store.principals().await.unwrap()),
        ["acme+ci", "alice", "bob"]
    );

    assert!(store.set_secret("alice", "new-hash").await.unwrap());
    let changed = store.principal("alice").await.unwrap().unwrap();
    assert_eq!(changed.secret_hash, "new-hash");
    assert!(!store.set_secret("nobody", "x").await.unwrap());
    assert_eq!(store.principal("nobody").await.unwrap(), None);

    assert!(store.delete_principal("alice").await.unwrap());
    assert!(!store.delete_principal("alice").await.unwrap());
    assert_eq!(store.principal("alice").await.unwrap(), None);
    assert_eq!(
        names(&store.principals().await.unwrap()),
        ["acme+ci", "bob"]
    );
}

pub async fn grants_are_set_replaced_revoked_and_listed_both_ways(store: &dyn AccessStore) {
    let (app, web) = (repo("acme/app"), repo("acme/web"));
    for name in ["alice", "bob"] {
        assert!(store.create_principal(&principal(name)).await.unwrap());
    }
    assert!(store.grants(&app).await.unwrap().is_empty());
    let set = |r: &RepositoryName, p: &str, perm: Option<Permission>| {
        let (r, p) = (r.clone(), p.to_string());
        async move { store.set_permission(&r, &p, perm).await.unwrap() }
    };
    assert_eq!(set(&app, "alice", Some(Permission::Read)).await, None);
    assert_eq!(
        set(&app, "alice", Some(Permission::Write)).await,
        Some(Permission::Read)
    );
    assert_eq!(set(&app, "bob", Some(Permission::Read)).await, None);
    assert_eq!(set(&web, "alice", Some(Permission::Admin)).await, None);

    assert_eq!(
        store.grants(&app).await.unwrap(),
        grants(&[("alice", Permission::Write), ("bob", Permission::Read)])
    );
    assert_eq!(
        store.grants_of("alice").await.unwrap(),
        grants(&[
            ("acme/app", Permission::Write),
            ("acme/web", Permission::Admin)
        ])
    );
    // Revoking answers what it removed, once.
    assert_eq!(set(&app, "alice", None).await, Some(Permission::Write));
    assert_eq!(set(&app, "alice", None).await, None);
    assert_eq!(
        store.grants(&app).await.unwrap(),
        grants(&[("bob", Permission::Read)])
    );
    assert_eq!(
        store.grants_of("alice").await.unwrap(),
        grants(&[("acme/web", Permission::Admin)])
    );
}

pub async fn deleting_a_principal_removes_its_grants(store: &dyn AccessStore) {
    let app = repo("acme/app");
    for name in ["alice", "bob"] {
        assert!(store.create_principal(&principal(name)).await.unwrap());
        store
            .set_permission(&app, name, Some(Permission::Write))
            .await
            .unwrap();
    }
    assert!(store.delete_principal("alice").await.unwrap());
    assert_eq!(
        store.grants(&app).await.unwrap(),
        grants(&[("bob", Permission::Write)])
    );
    assert!(store.grants_of("alice").await.unwrap().is_empty());
    let access = store.repository_access(&app, Some("alice")).await.unwrap();
    assert_eq!(access.permission, None);
}

pub async fn repository_access_tells_visibility_creator_and_the_principals_grant(
    store: &dyn AccessStore,
) {
    let (app, web, unknown) = (repo("acme/app"), repo("acme/web"), repo("acme/none"));
    assert_eq!(
        store
            .repository_access(&unknown, Some("alice"))
            .await
            .unwrap(),
        RepositoryAccess::default()
    );
    assert!(store.create_principal(&principal("alice")).await.unwrap());
    store
        .set_permission(&app, "alice", Some(Permission::Read))
        .await
        .unwrap();
    store.set_public(&web, true).await.unwrap();

    let read = RepositoryAccess {
        permission: Some(Permission::Read),
        ..RepositoryAccess::default()
    };
    let public = RepositoryAccess {
        public: true,
        ..RepositoryAccess::default()
    };
    assert_eq!(
        store.repository_access(&app, Some("alice")).await.unwrap(),
        read
    );
    // Another principal's grant is not anonymous's, nor bob's.
    assert_eq!(
        store.repository_access(&app, None).await.unwrap(),
        RepositoryAccess::default()
    );
    assert_eq!(
        store.repository_access(&app, Some("bob")).await.unwrap(),
        RepositoryAccess::default()
    );
    // Many at once, in the order asked.
    assert_eq!(
        store
            .repositories_access(&[web.clone(), unknown.clone(), app.clone()], Some("alice"))
            .await
            .unwrap(),
        vec![public.clone(), RepositoryAccess::default(), read]
    );
    assert!(
        store
            .repositories_access(&[], None)
            .await
            .unwrap()
            .is_empty()
    );
    // Private again.
    store.set_public(&web, false).await.unwrap();
    assert_eq!(
        store.repository_access(&web, None).await.unwrap(),
        RepositoryAccess::default()
    );
}

pub async fn a_repository_is_claimed_once(store: &dyn AccessStore) {
    let app = repo("team/app");
    for name in ["alice", "bob"] {
        assert!(store.create_principal(&principal(name)).await.unwrap());
    }
    assert!(store.claim_repository(&app, "alice").await.unwrap());
    assert!(!store.claim_repository(&app, "bob").await.unwrap());
    // The holder asking again still holds it.
    assert!(store.claim_repository(&app, "alice").await.unwrap());
    let alice = store.repository_access(&app, Some("alice")).await.unwrap();
    assert_eq!(alice.creator.as_deref(), Some("alice"));
    assert_eq!(alice.permission, Some(Permission::Admin));
    let bob = store.repository_access(&app, Some("bob")).await.unwrap();
    assert_eq!(bob.creator.as_deref(), Some("alice"));
    assert_eq!(bob.permission, None);
}

pub async fn namespace_create_rights_are_set_and_cleared(store: &dyn AccessStore) {
    assert!(
        !store
            .set_namespace_create("nobody", "team", true)
            .await
            .unwrap()
    );
    assert!(store.create_principal(&principal("alice")).await.unwrap());
    let namespaces = async || {
        store
            .principal("alice")
            .await
            .unwrap()
            .unwrap()
            .create_namespaces
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert!(
        store
            .set_namespace_create("alice", "team", true)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_namespace_create("alice", "ops", true)
            .await
            .unwrap()
    );
    assert_eq!(namespaces().await, ["ops", "team"]);
    assert!(
        store
            .set_namespace_create("alice", "team", false)
            .await
            .unwrap()
    );
    assert_eq!(namespaces().await, ["ops"]);
}
