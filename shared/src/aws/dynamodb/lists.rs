//! Reads of many items: the paged lists of tags and repositories, a manifest's referrers, and
//! the batch lookup of blobs, manifests and images.
//! May call: `items`, `transactions`, `repository_exists`, the DynamoDB client. No HTTP.

use super::items::{blob_sk, image_of, image_sk, manifest_sk, referrer_of, required_s, s};
use super::transactions::{ATTEMPTS, build_error, query_prefix};
use super::{CATALOG_INDEX, DynamoMetadata};
use crate::aws::sdk_error;
use crate::digest::Digest;
use crate::names::RepositoryName;
use crate::ports::{Found, Lookup, Referrer, StoreError, StoreResult};
use crate::retry::backoff;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use std::collections::{BTreeMap, HashMap};

impl DynamoMetadata {
    /// Up to `count` names from a `Query` (whose items each carry `attribute`, named after
    /// `prefix`): one request, more only past DynamoDB's 1 MB page.
    async fn names(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        prefix: &str,
        attribute: &str,
        count: usize,
    ) -> StoreResult<Vec<String>> {
        let mut names = Vec::new();
        let mut start = None;
        let mut first = true;
        while names.len() < count {
            let wanted = count - names.len();
            let mut request = query
                .clone()
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX).min(1000));
            if !first {
                request = request.set_exclusive_start_key(start.take());
            }
            first = false;
            let result = request.send().await.map_err(|e| sdk_error("Query", e))?;
            for item in result.items().iter().take(wanted) {
                let value = required_s(item, attribute)?;
                names.push(value.strip_prefix(prefix).unwrap_or(value).to_string());
            }
            match result.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(names)
    }

    /// The body of `MetadataStore::tags`.
    pub(super) async fn query_tags(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<String>> {
        let start = after.map(|last| {
            HashMap::from([
                ("pk".to_string(), s(repo.as_str())),
                ("sk".to_string(), s(format!("TAG#{last}"))),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .projection_expression("#sk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(repo.as_str()))
            .expression_attribute_values(":prefix", s("TAG#"))
            .consistent_read(true)
            .set_exclusive_start_key(start);
        self.names(query, "TAG#", "sk", count).await
    }

    /// The body of `MetadataStore::repositories`.
    pub(super) async fn query_catalog(
        &self,
        after: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<String>> {
        let start = after.map(|last| {
            HashMap::from([
                ("catalog".to_string(), s("repository")),
                ("pk".to_string(), s(last)),
                ("sk".to_string(), s("REPOSITORY")),
            ])
        });
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CATALOG_INDEX)
            .key_condition_expression("#catalog = :catalog")
            .expression_attribute_names("#catalog", "catalog")
            .expression_attribute_values(":catalog", s("repository"))
            .set_exclusive_start_key(start);
        self.names(query, "", "pk", count).await
    }

    /// The body of `MetadataStore::referrers`.
    pub(super) async fn query_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> StoreResult<Vec<Referrer>> {
        let prefix = format!("REFERRER#{subject}#");
        query_prefix(
            &self.client,
            &self.table,
            repo.as_str(),
            &prefix,
            "Query referrers",
        )
        .await?
        .iter()
        .map(referrer_of)
        .collect()
    }

    /// The body of `MetadataStore::lookup`: `BatchGetItem`s.
    pub(super) async fn batch_get_lookup(
        &self,
        repo: &RepositoryName,
        lookup: &Lookup,
    ) -> StoreResult<Found> {
        enum Asked<'a> {
            Blob(&'a Digest),
            Manifest(&'a Digest),
            Image,
        }
        // BatchGetItem refuses duplicate keys: one entry per sort key.
        let mut asked: BTreeMap<String, Asked> = BTreeMap::new();
        for d in &lookup.blobs {
            asked.insert(blob_sk(d), Asked::Blob(d));
        }
        for d in &lookup.manifests {
            asked.insert(manifest_sk(d), Asked::Manifest(d));
        }
        for id in &lookup.images {
            asked.insert(image_sk(id), Asked::Image);
        }
        let sks: Vec<&String> = asked.keys().collect();
        let mut found = Found::default();
        // At most 100 keys per request; a manifest PUT of a usual image needs one request.
        for chunk in sks.chunks(100) {
            let names = [
                "pk",
                "sk",
                "docker_id",
                "parent",
                "blob",
                "created",
                "comment",
                "command",
                "v1_json",
            ];
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk
                        .iter()
                        .map(|sk| Self::key(repo, sk.as_str()))
                        .collect(),
                ))
                .consistent_read(true)
                .projection_expression(
                    names
                        .iter()
                        .map(|n| format!("#{n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            for name in names {
                request = request.expression_attribute_names(format!("#{name}"), name);
            }
            let mut pending = request.build().map_err(build_error)?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                let items = out
                    .responses
                    .as_ref()
                    .and_then(|r| r.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for item in items {
                    let sk = required_s(item, "sk")?;
                    match asked.get(sk) {
                        Some(Asked::Blob(d)) => {
                            found.blobs.insert((*d).clone());
                        }
                        Some(Asked::Manifest(d)) => {
                            found.manifests.insert((*d).clone());
                        }
                        Some(Asked::Image) => {
                            let image = image_of(item)?;
                            found.images.insert(image.docker_id.clone(), image);
                        }
                        None => {}
                    }
                }
                // DynamoDB may leave keys unprocessed under load: ask again for those.
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt + 1 >= ATTEMPTS {
                            return Err(StoreError::backend(
                                "BatchGetItem left keys unprocessed after every retry",
                            ));
                        }
                        backoff(attempt).await;
                        pending = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}
