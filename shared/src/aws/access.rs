//! [`DynamoAccess`]: the [`AccessStore`] port in the registry's single DynamoDB table,
//! beside the metadata of [`super::dynamodb`].
//!
//! May call: `ports`, `names`, the DynamoDB SDK. Must not know HTTP, nor the rules of
//! `auth`: it keeps principals, grants and visibility, and decides nothing.
//!
//! # Items
//!
//! | `pk`        | `sk`                               | attributes                                                   |
//! |-------------|------------------------------------|--------------------------------------------------------------|
//! | `_users`    | `USER#<name>` / `ROBOT#<ns+name>`  | `name`, `secret_hash` (S: argon2id PHC, never the secret), `created` (S), `create_namespaces` (SS, when any) |
//! | `_users`    | `GRANTED#<principal>#<ns/repo>`    | `permission` (S): the mirror of a grant, so a principal's grants are one `Query` |
//! | `<ns/repo>` | `ACCESS`                           | `public` (BOOL), `creator` (S, once claimed)                 |
//! | `<ns/repo>` | `GRANT#<principal>`                | `permission` (S: `read`, `write`, `admin`)                   |
//!
//! `_users` is never a repository name (those have a `/` and start with `[a-z0-9]`), and
//! `ACCESS` and `GRANT#` sort keys meet no prefix the metadata queries (`TAG#`, `BLOB#`,
//! `REFERRER#`, `UPLOAD#`, `EVENT#`…). None carries `catalog`, so the catalog index never
//! sees them, and none is an `EVENT#` item, so notify-push's stream filter ignores them.
//!
//! A token request reads one `BatchGetItem` per scope (`ACCESS` and the caller's `GRANT#`)
//! and one `GetItem` (the principal); the catalog reads 50 repositories per batch. A grant
//! and its mirror, and a claim and its grant, are written in one `TransactWriteItems`.

use super::dynamodb::{get_item, query_prefix};
use super::sdk_error;
use crate::names::RepositoryName;
use crate::ports::{
    AccessStore, Permission, PrincipalRecord, RepositoryAccess, StoreError, StoreResult,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The partition of principals and their grants' mirrors.
pub const USERS_PK: &str = "_users";
/// Repositories per `BatchGetItem` (two keys each; DynamoDB takes 100 keys).
const BATCH_REPOSITORIES: usize = 50;

/// Who may do what, in the registry's table.
#[derive(Clone)]
pub struct DynamoAccess {
    client: Client,
    table: String,
}

impl std::fmt::Debug for DynamoAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoAccess")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(pk: &str, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn principal_sk(name: &str) -> String {
    if name.contains('+') {
        format!("ROBOT#{name}")
    } else {
        format!("USER#{name}")
    }
}

fn grant_sk(principal: &str) -> String {
    format!("GRANT#{principal}")
}

fn mirror_sk(principal: &str, repo: &str) -> String {
    format!("GRANTED#{principal}#{repo}")
}

fn permission_of(item: &Item) -> StoreResult<Permission> {
    let stored = item.get("permission").and_then(|v| v.as_s().ok());
    Permission::from_stored(stored.map_or("", String::as_str))
}

fn string_of<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::backend(format!("item without {name}")))
}

fn record_of(item: &Item) -> StoreResult<PrincipalRecord> {
    Ok(PrincipalRecord {
        name: string_of(item, "name")?.to_string(),
        secret_hash: string_of(item, "secret_hash")?.to_string(),
        created: string_of(item, "created")?.to_string(),
        create_namespaces: item
            .get("create_namespaces")
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().cloned().collect())
            .unwrap_or_default(),
    })
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("building a DynamoDB request: {e}"))
}

impl DynamoAccess {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAccess {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, key: Item) -> StoreResult<Option<Item>> {
        get_item(&self.client, &self.table, key, "GetItem").await
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, all pages.
    async fn query_prefix(&self, pk: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        query_prefix(&self.client, &self.table, pk, prefix, "Query").await
    }

    /// Runs one transaction; `Ok(false)` when a condition failed.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<bool> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                    && c.cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    return Ok(false);
                }
                Err(sdk_error("TransactWriteItems", e))
            }
        }
    }

    fn put(&self, item: Item) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: Item) -> StoreResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An update of principal `name` that must exist; false when it does not.
    async fn update_principal(
        &self,
        name: &str,
        expression: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(USERS_PK, principal_sk(name))))
            .update_expression(expression)
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        for (k, v) in names {
            update = update.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sdk_error("UpdateItem", e)),
            },
        }
    }
}

#[async_trait]
impl AccessStore for DynamoAccess {
    async fn principal(&self, name: &str) -> StoreResult<Option<PrincipalRecord>> {
        self.get(key(USERS_PK, principal_sk(name)))
            .await?
            .map(|item| record_of(&item))
            .transpose()
    }

    async fn principals(&self) -> StoreResult<Vec<PrincipalRecord>> {
        let mut out = Vec::new();
        for prefix in ["ROBOT#", "USER#"] {
            for item in self.query_prefix(USERS_PK, prefix).await? {
                out.push(record_of(&item)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create_principal(&self, record: &PrincipalRecord) -> StoreResult<bool> {
        let mut item = key(USERS_PK, principal_sk(&record.name));
        item.insert("name".into(), s(&record.name));
        item.insert("secret_hash".into(), s(&record.secret_hash));
        item.insert("created".into(), s(&record.created));
        if !record.create_namespaces.is_empty() {
            item.insert(
                "create_namespaces".into(),
                AttributeValue::Ss(record.create_namespaces.iter().cloned().collect()),
            );
        }
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sdk_error("PutItem", e)),
            },
        }
    }

    async fn set_secret(&self, name: &str, secret_hash: &str) -> StoreResult<bool> {
        self.update_principal(
            name,
            "SET #hash = :hash",
            &[("#hash", "secret_hash")],
            vec![(":hash", s(secret_hash))],
        )
        .await
    }

    async fn delete_principal(&self, name: &str) -> StoreResult<bool> {
        // The principal first: from here on it cannot sign in, whatever its grants.
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(USERS_PK, principal_sk(name))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        let existed = out.attributes.is_some_and(|a| !a.is_empty());
        let prefix = format!("GRANTED#{name}#");
        for mirror in self.query_prefix(USERS_PK, &prefix).await? {
            let sk = string_of(&mirror, "sk")?;
            let Some(repo) = sk.strip_prefix(prefix.as_str()) else {
                continue;
            };
            self.transact(vec![
                self.delete(key(repo, grant_sk(name)))?,
                self.delete(key(USERS_PK, sk))?,
            ])
            .await?;
        }
        Ok(existed)
    }

    async fn set_namespace_create(
        &self,
        name: &str,
        namespace: &str,
        allowed: bool,
    ) -> StoreResult<bool> {
        let expression = if allowed {
            "ADD #ns :ns"
        } else {
            "DELETE #ns :ns"
        };
        self.update_principal(
            name,
            expression,
            &[("#ns", "create_namespaces")],
            vec![(":ns", AttributeValue::Ss(vec![namespace.to_string()]))],
        )
        .await
    }

    async fn repositories_access(
        &self,
        repos: &[RepositoryName],
        principal: Option<&str>,
    ) -> StoreResult<Vec<RepositoryAccess>> {
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        for chunk in repos.chunks(BATCH_REPOSITORIES) {
            let mut keys = Vec::new();
            for repo in chunk {
                keys.push(key(repo.as_str(), "ACCESS"));
                if let Some(p) = principal {
                    keys.push(key(repo.as_str(), grant_sk(p)));
                }
            }
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            for attempt in 0..8u32 {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                for item in out
                    .responses
                    .as_ref()
                    .and_then(|r| r.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let pk = string_of(item, "pk")?.to_string();
                    let sk = string_of(item, "sk")?.to_string();
                    found.insert((pk, sk), item.clone());
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt == 7 {
                            return Err(StoreError::backend(
                                "BatchGetItem left keys unprocessed after every retry",
                            ));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(6)))
                            .await;
                        pending = rest;
                    }
                    _ => break,
                }
            }
        }
        repos
            .iter()
            .map(|repo| {
                let access = found.get(&(repo.as_str().to_string(), "ACCESS".to_string()));
                let grant =
                    principal.and_then(|p| found.get(&(repo.as_str().to_string(), grant_sk(p))));
                Ok(RepositoryAccess {
                    public: access
                        .and_then(|a| a.get("public"))
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                    creator: access
                        .and_then(|a| a.get("creator"))
                        .and_then(|v| v.as_s().ok())
                        .cloned(),
                    permission: grant.map(permission_of).transpose()?,
                })
            })
            .collect()
    }

    async fn set_permission(
        &self,
        repo: &RepositoryName,
        principal: &str,
        permission: Option<Permission>,
    ) -> StoreResult<Option<Permission>> {
        let grant_key = key(repo.as_str(), grant_sk(principal));
        let before = self
            .get(grant_key.clone())
            .await?
            .map(|item| permission_of(&item))
            .transpose()?;
        let mirror_key = key(USERS_PK, mirror_sk(principal, repo.as_str()));
        let items = match permission {
            Some(p) => {
                let mut grant = grant_key;
                grant.insert("permission".into(), s(p.as_str()));
                let mut mirror = mirror_key;
                mirror.insert("permission".into(), s(p.as_str()));
                vec![self.put(grant)?, self.put(mirror)?]
            }
            None => vec![self.delete(grant_key)?, self.delete(mirror_key)?],
        };
        self.transact(items).await?;
        Ok(before)
    }

    async fn grants(&self, repo: &RepositoryName) -> StoreResult<Vec<(String, Permission)>> {
        self.query_prefix(repo.as_str(), "GRANT#")
            .await?
            .iter()
            .map(|item| {
                let sk = string_of(item, "sk")?;
                let principal = sk.strip_prefix("GRANT#").unwrap_or(sk).to_string();
                Ok((principal, permission_of(item)?))
            })
            .collect()
    }

    async fn grants_of(&self, principal: &str) -> StoreResult<Vec<(String, Permission)>> {
        let prefix = format!("GRANTED#{principal}#");
        self.query_prefix(USERS_PK, &prefix)
            .await?
            .iter()
            .map(|item| {
                let sk = string_of(item, "sk")?;
                let repo = sk.strip_prefix(prefix.as_str()).unwrap_or(sk).to_string();
                Ok((repo, permission_of(item)?))
            })
            .collect()
    }

    async fn set_public(&self, repo: &RepositoryName, public: bool) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(repo.as_str(), "ACCESS")))
            .update_expression("SET #public = :public")
            .expression_attribute_names("#public", "public")
            .expression_attribute_values(":public", AttributeValue::Bool(public))
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem", e))?;
        Ok(())
    }

    async fn claim_repository(&self, repo: &RepositoryName, principal: &str) -> StoreResult<bool> {
        let claim = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(repo.as_str(), "ACCESS")))
            .update_expression("SET #creator = :creator")
            .condition_expression("attribute_not_exists(#creator)")
            .expression_attribute_names("#creator", "creator")
            .expression_attribute_values(":creator", s(principal))
            .build()
            .map_err(build_error)?;
        let admin = Permission::Admin.as_str();
        let mut grant = key(repo.as_str(), grant_sk(principal));
        grant.insert("permission".into(), s(admin));
        let mut mirror = key(USERS_PK, mirror_sk(principal, repo.as_str()));
        mirror.insert("permission".into(), s(admin));
        let won = self
            .transact(vec![
                TransactWriteItem::builder().update(claim).build(),
                self.put(grant)?,
                self.put(mirror)?,
            ])
            .await?;
        if won {
            return Ok(true);
        }
        // Claimed already: by this principal (a repeated request) or by another.
        let current = self.get(key(repo.as_str(), "ACCESS")).await?;
        Ok(current
            .as_ref()
            .and_then(|a| a.get("creator"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|c| c == principal))
    }
}
