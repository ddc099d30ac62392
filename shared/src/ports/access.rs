//! The access port: users, robots, grants and visibility, as a store keeps them (the rules
//! that read them are `crate::auth`'s).

use super::*;
use crate::names::RepositoryName;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A permission on a repository, weakest first: `read` pulls; `write` also pushes and
/// deletes; `admin` is `write` and owns the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Write,
    Admin,
}

impl Permission {
    /// The name both stores keep a grant under.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    /// A grant as a store kept it ([`Permission::as_str`]); anything else is a fault of
    /// the store, not of a client.
    pub fn from_stored(text: &str) -> StoreResult<Permission> {
        match text {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            other => Err(StoreError::backend(format!("stored permission {other:?}"))),
        }
    }
}

/// A user (`name`) or a robot account (`namespace+name`) as the access store keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub name: String,
    /// The argon2id hash of the password or robot secret (a PHC string), never the secret.
    pub secret_hash: String,
    /// Namespaces where it may create repositories by pushing (a user's own needs no entry).
    pub create_namespaces: std::collections::BTreeSet<String>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl std::fmt::Debug for PrincipalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalRecord")
            .field("name", &self.name)
            .field("create_namespaces", &self.create_namespaces)
            .finish_non_exhaustive()
    }
}

/// What the access store knows of one repository, for one principal (or none: anonymous).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryAccess {
    pub public: bool,
    /// The principal that created it through a namespace create right, once claimed.
    pub creator: Option<String>,
    /// The principal's own grant on it.
    pub permission: Option<Permission>,
}

/// Who may do what: principals with their secrets' hashes, grants per repository,
/// visibility. The rules that read these live in `auth`; a store only keeps them.
#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn principal(&self, name: &str) -> StoreResult<Option<PrincipalRecord>>;
    /// Every principal, by name.
    async fn principals(&self) -> StoreResult<Vec<PrincipalRecord>>;
    /// Adds a principal; false (nothing written) when the name is taken.
    async fn create_principal(&self, record: &PrincipalRecord) -> StoreResult<bool>;
    /// Replaces a principal's secret hash; false when it is unknown.
    async fn set_secret(&self, name: &str, secret_hash: &str) -> StoreResult<bool>;
    /// Removes a principal and every grant it holds; false when it is unknown.
    async fn delete_principal(&self, name: &str) -> StoreResult<bool>;
    /// Allows or forbids creating repositories in `namespace`; false when unknown.
    async fn set_namespace_create(
        &self,
        name: &str,
        namespace: &str,
        allowed: bool,
    ) -> StoreResult<bool>;
    /// One read (or one batch): visibility, creator, and `principal`'s grant.
    async fn repository_access(
        &self,
        repo: &RepositoryName,
        principal: Option<&str>,
    ) -> StoreResult<RepositoryAccess> {
        let mut all = self
            .repositories_access(std::slice::from_ref(repo), principal)
            .await?;
        all.pop()
            .ok_or_else(|| StoreError::backend("the store answered no access for a repository"))
    }
    /// [`AccessStore::repository_access`] of many repositories at once, in order.
    async fn repositories_access(
        &self,
        repos: &[RepositoryName],
        principal: Option<&str>,
    ) -> StoreResult<Vec<RepositoryAccess>>;
    /// Grants (`Some`) or revokes (`None`) a permission; returns the one it replaced.
    async fn set_permission(
        &self,
        repo: &RepositoryName,
        principal: &str,
        permission: Option<Permission>,
    ) -> StoreResult<Option<Permission>>;
    /// The grants on a repository, by principal name.
    async fn grants(&self, repo: &RepositoryName) -> StoreResult<Vec<(String, Permission)>>;
    /// The grants a principal holds, by repository name.
    async fn grants_of(&self, principal: &str) -> StoreResult<Vec<(String, Permission)>>;
    async fn set_public(&self, repo: &RepositoryName, public: bool) -> StoreResult<()>;
    /// Records `principal` as the creator and admin of `repo`, only if no one claimed it
    /// before (atomically); true when `principal` holds the claim afterwards.
    async fn claim_repository(&self, repo: &RepositoryName, principal: &str) -> StoreResult<bool>;
}
