//! [`RedbAccess`]: the [`AccessStore`] port in registry-local's `metadata.redb`, beside
//! the metadata (one database file, tables of their own).
//!
//! May call: `ports`, `names`, redb, serde_json. Must not know HTTP or AWS, nor the rules
//! of `auth`: it keeps principals, grants and visibility, and decides nothing.
//!
//! # Tables
//!
//! | table                         | key                  | value                                        |
//! |-------------------------------|----------------------|----------------------------------------------|
//! | `access_principals`           | `name`               | [`PrincipalRecord`] as JSON (argon2id hash, never the secret) |
//! | `access_repositories`         | `repo`               | `{"public", "creator"}` as JSON              |
//! | `access_grants`               | `repo\0principal`    | `read`, `write` or `admin`                   |
//! | `access_grants_by_principal`  | `principal\0repo`    | the same, so a principal's grants go with it |
//!
//! Every write is one redb write transaction: a grant and its mirror, a claim and its
//! grant, a principal and its grants are written or removed together.

use super::{OrBackend, blocking_on};
use crate::names::RepositoryName;
use crate::ports::{AccessStore, Permission, PrincipalRecord, RepositoryAccess, StoreResult};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_principals");
const REPOSITORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("access_repositories");
const GRANTS: TableDefinition<&str, &str> = TableDefinition::new("access_grants");
const GRANTS_BY_PRINCIPAL: TableDefinition<&str, &str> =
    TableDefinition::new("access_grants_by_principal");

/// A repository's visibility and creator.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RepositoryRow {
    public: bool,
    creator: Option<String>,
}

/// Who may do what, in the registry's redb database.
#[derive(Clone)]
pub struct RedbAccess {
    db: Arc<Database>,
}

impl std::fmt::Debug for RedbAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbAccess").finish_non_exhaustive()
    }
}

fn key(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).or_backend()
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).or_backend()
}

/// The rows under `prefix\0`, each as (the rest of its key, its value).
fn rows_under(
    table: &impl ReadableTable<&'static str, &'static str>,
    prefix: &str,
) -> StoreResult<Vec<(String, String)>> {
    let low = format!("{prefix}\0");
    let high = format!("{prefix}\u{1}");
    let mut out = Vec::new();
    for row in table.range(low.as_str()..high.as_str()).or_backend()? {
        let (k, v) = row.or_backend()?;
        if let Some(rest) = k.value().strip_prefix(low.as_str()) {
            out.push((rest.to_string(), v.value().to_string()));
        }
    }
    Ok(out)
}

fn read_access(
    repositories: &impl ReadableTable<&'static str, &'static [u8]>,
    grants: &impl ReadableTable<&'static str, &'static str>,
    repo: &str,
    principal: Option<&str>,
) -> StoreResult<RepositoryAccess> {
    let row: RepositoryRow = match repositories.get(repo).or_backend()? {
        Some(v) => decode(v.value())?,
        None => RepositoryRow::default(),
    };
    let permission = match principal {
        Some(p) => match grants.get(key(repo, p).as_str()).or_backend()? {
            Some(v) => Some(Permission::from_stored(v.value())?),
            None => None,
        },
        None => None,
    };
    Ok(RepositoryAccess {
        public: row.public,
        creator: row.creator,
        permission,
    })
}

impl RedbAccess {
    /// The access tables of `db`, created if needed.
    pub fn open(db: Arc<Database>) -> StoreResult<RedbAccess> {
        let txn = db.begin_write().or_backend()?;
        txn.open_table(PRINCIPALS).or_backend()?;
        txn.open_table(REPOSITORIES).or_backend()?;
        txn.open_table(GRANTS).or_backend()?;
        txn.open_table(GRANTS_BY_PRINCIPAL).or_backend()?;
        txn.commit().or_backend()?;
        Ok(RedbAccess { db })
    }

    /// Changes one principal's record in a write transaction; false when it is unknown.
    async fn update_principal(
        &self,
        name: &str,
        change: impl FnOnce(&mut PrincipalRecord) + Send + 'static,
    ) -> StoreResult<bool> {
        let name = name.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_write().or_backend()?;
            let found = {
                let mut table = txn.open_table(PRINCIPALS).or_backend()?;
                let current = table
                    .get(name.as_str())
                    .or_backend()?
                    .map(|v| decode::<PrincipalRecord>(v.value()))
                    .transpose()?;
                match current {
                    Some(mut record) => {
                        change(&mut record);
                        table
                            .insert(name.as_str(), encode(&record)?.as_slice())
                            .or_backend()?;
                        true
                    }
                    None => false,
                }
            };
            txn.commit().or_backend()?;
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl AccessStore for RedbAccess {
    async fn principal(&self, name: &str) -> StoreResult<Option<PrincipalRecord>> {
        let name = name.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(PRINCIPALS).or_backend()?;
            table
                .get(name.as_str())
                .or_backend()?
                .map(|v| decode(v.value()))
                .transpose()
        })
        .await
    }

    async fn principals(&self) -> StoreResult<Vec<PrincipalRecord>> {
        blocking_on(&self.db, |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(PRINCIPALS).or_backend()?;
            let mut out = Vec::new();
            for row in table.iter().or_backend()? {
                let (_, v) = row.or_backend()?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn create_principal(&self, record: &PrincipalRecord) -> StoreResult<bool> {
        let record = record.clone();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_write().or_backend()?;
            let created = {
                let mut table = txn.open_table(PRINCIPALS).or_backend()?;
                if table.get(record.name.as_str()).or_backend()?.is_some() {
                    false
                } else {
                    table
                        .insert(record.name.as_str(), encode(&record)?.as_slice())
                        .or_backend()?;
                    true
                }
            };
            txn.commit().or_backend()?;
            Ok(created)
        })
        .await
    }

    async fn set_secret(&self, name: &str, secret_hash: &str) -> StoreResult<bool> {
        let hash = secret_hash.to_string();
        self.update_principal(name, move |r| r.secret_hash = hash)
            .await
    }

    async fn delete_principal(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_write().or_backend()?;
            let existed = {
                let mut principals = txn.open_table(PRINCIPALS).or_backend()?;
                let existed = principals.remove(name.as_str()).or_backend()?.is_some();
                let mut by_principal = txn.open_table(GRANTS_BY_PRINCIPAL).or_backend()?;
                let mut grants = txn.open_table(GRANTS).or_backend()?;
                for (repo, _) in rows_under(&by_principal, &name)? {
                    grants.remove(key(&repo, &name).as_str()).or_backend()?;
                    by_principal
                        .remove(key(&name, &repo).as_str())
                        .or_backend()?;
                }
                existed
            };
            txn.commit().or_backend()?;
            Ok(existed)
        })
        .await
    }

    async fn set_namespace_create(
        &self,
        name: &str,
        namespace: &str,
        allowed: bool,
    ) -> StoreResult<bool> {
        let namespace = namespace.to_string();
        self.update_principal(name, move |r| {
            if allowed {
                r.create_namespaces.insert(namespace);
            } else {
                r.create_namespaces.remove(&namespace);
            }
        })
        .await
    }

    async fn repositories_access(
        &self,
        repos: &[RepositoryName],
        principal: Option<&str>,
    ) -> StoreResult<Vec<RepositoryAccess>> {
        let repos: Vec<String> = repos.iter().map(|r| r.as_str().to_string()).collect();
        let principal = principal.map(str::to_string);
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let repositories = txn.open_table(REPOSITORIES).or_backend()?;
            let grants = txn.open_table(GRANTS).or_backend()?;
            repos
                .iter()
                .map(|repo| read_access(&repositories, &grants, repo, principal.as_deref()))
                .collect()
        })
        .await
    }

    async fn set_permission(
        &self,
        repo: &RepositoryName,
        principal: &str,
        permission: Option<Permission>,
    ) -> StoreResult<Option<Permission>> {
        let repo = repo.as_str().to_string();
        let principal = principal.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_write().or_backend()?;
            let before = {
                let mut grants = txn.open_table(GRANTS).or_backend()?;
                let mut by_principal = txn.open_table(GRANTS_BY_PRINCIPAL).or_backend()?;
                let grant_key = key(&repo, &principal);
                let mirror_key = key(&principal, &repo);
                match permission {
                    Some(p) => {
                        by_principal
                            .insert(mirror_key.as_str(), p.as_str())
                            .or_backend()?;
                        grants
                            .insert(grant_key.as_str(), p.as_str())
                            .or_backend()?
                            .map(|v| Permission::from_stored(v.value()))
                            .transpose()?
                    }
                    None => {
                        by_principal.remove(mirror_key.as_str()).or_backend()?;
                        grants
                            .remove(grant_key.as_str())
                            .or_backend()?
                            .map(|v| Permission::from_stored(v.value()))
                            .transpose()?
                    }
                }
            };
            txn.commit().or_backend()?;
            Ok(before)
        })
        .await
    }

    async fn grants(&self, repo: &RepositoryName) -> StoreResult<Vec<(String, Permission)>> {
        let repo = repo.as_str().to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let grants = txn.open_table(GRANTS).or_backend()?;
            rows_under(&grants, &repo)?
                .into_iter()
                .map(|(p, v)| Ok((p, Permission::from_stored(&v)?)))
                .collect()
        })
        .await
    }

    async fn grants_of(&self, principal: &str) -> StoreResult<Vec<(String, Permission)>> {
        let principal = principal.to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_read().or_backend()?;
            let table = txn.open_table(GRANTS_BY_PRINCIPAL).or_backend()?;
            rows_under(&table, &principal)?
                .into_iter()
                .map(|(r, v)| Ok((r, Permission::from_stored(&v)?)))
                .collect()
        })
        .await
    }

    async fn set_public(&self, repo: &RepositoryName, public: bool) -> StoreResult<()> {
        let repo = repo.as_str().to_string();
        blocking_on(&self.db, move |db| {
            let txn = db.begin_write().or_backend()?;
            {
                let mut table = txn.open_table(REPOSITORIES).or_backend()?;
                let mut row: RepositoryRow = match table.get(repo.as_str()).or_backend()? {
                    Some(v) => decode(v.value())?,
                    None => RepositoryRow::default(),
                };
                row.public = public;
                table
                    .insert(repo.as_str(), encode(&row)?.as_slice())
                    .or_backend()?;
            }
            txn.commit().or_backend()
        })
        .await
    }

    async fn claim_repository(&self, repo: &RepositoryName, principal: &str) -> StoreResult<bool> {
        let repo = repo.as_str().to_string();
        let principal = principal.to_string();
        blocking_on(&self.db, move |db| {
            // One write transaction at a time: the check and the claim cannot interleave
            // with another claim.
            let txn = db.begin_write().or_backend()?;
            let won = {
                let mut table = txn.open_table(REPOSITORIES).or_backend()?;
                let mut row: RepositoryRow = match table.get(repo.as_str()).or_backend()? {
                    Some(v) => decode(v.value())?,
                    None => RepositoryRow::default(),
                };
                match &row.creator {
                    Some(creator) => *creator == principal,
                    None => {
                        row.creator = Some(principal.clone());
                        table
                            .insert(repo.as_str(), encode(&row)?.as_slice())
                            .or_backend()?;
                        let admin = Permission::Admin.as_str();
                        txn.open_table(GRANTS)
                            .or_backend()?
                            .insert(key(&repo, &principal).as_str(), admin)
                            .or_backend()?;
                        txn.open_table(GRANTS_BY_PRINCIPAL)
                            .or_backend()?
                            .insert(key(&principal, &repo).as_str(), admin)
                            .or_backend()?;
                        true
                    }
                }
            };
            txn.commit().or_backend()?;
            Ok(won)
        })
        .await
    }
}
