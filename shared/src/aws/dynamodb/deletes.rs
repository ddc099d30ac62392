//! Deletes: a manifest with its tags (in as few transactions as fit, again while tags move)
//! and a tag, each with its outbox event.
//! May call: `items`, `transactions`, the store's lookup, the DynamoDB client. No HTTP.

use super::DynamoMetadata;
use super::items::{manifest_sk, n, optional_s, referrer_sk, required_n, required_s, s, tag_sk};
use super::transactions::{
    ATTEMPTS, MAX_TRANSACTION_ITEMS, TxFailure, backoff, build_error, condition_failed, transient,
};
use crate::aws::sdk_error;
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    DeletedManifest, Lookup, MetadataStore, RegistryEvent, StoreError, StoreResult,
    tag_outlives_its_manifest,
};
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use std::collections::HashMap;

impl DynamoMetadata {
    /// The body of `MetadataStore::delete_manifest`:
    /// [`Self::try_delete_manifest`] until no tag moves meanwhile.
    pub(super) async fn delete_manifest_retrying(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        event: &RegistryEvent,
    ) -> StoreResult<Option<DeletedManifest>> {
        for attempt in 0..ATTEMPTS {
            match self.try_delete_manifest(repo, digest, event).await? {
                Ok(outcome) => return Ok(outcome),
                // A tag moved or was added meanwhile: read again.
                Err(()) => backoff(attempt).await,
            }
        }
        Err(StoreError::Conflict(format!(
            "deleting {digest} from {repo} kept conflicting with other writers"
        )))
    }

    /// One attempt at deleting a manifest. `Ok(Err(()))` means "a condition failed: read
    /// again and retry".
    async fn try_delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        event: &RegistryEvent,
    ) -> StoreResult<Result<Option<DeletedManifest>, ()>> {
        let Some(manifest) = self
            .get_item(Self::key(repo, manifest_sk(digest)), "GetItem manifest")
            .await?
        else {
            return Ok(Ok(None));
        };
        // Every write of a manifest item sets `tag_writes`; an item without it (written by
        // hand, say) is deleted only if it still has none.
        let tag_writes = required_n(&manifest, "tag_writes").ok();
        let subject = optional_s(&manifest, "subject").map(str::to_string);
        let pointing = self.tags_pointing_at(repo, digest).await?;
        // Images are never deleted: one read of theirs holds for the transaction below.
        let v1_images: Vec<String> = pointing.iter().filter_map(|(_, v1)| v1.clone()).collect();
        let stored = match v1_images.is_empty() {
            true => HashMap::new(),
            false => {
                let lookup = Lookup {
                    images: v1_images,
                    ..Lookup::default()
                };
                self.lookup(repo, &lookup).await?.images
            }
        };

        let mut deleted = DeletedManifest::default();
        let mut detach = Vec::new();
        for (tag, v1) in &pointing {
            let v1 = v1.as_deref();
            let kept = tag_outlives_its_manifest(v1, v1.is_some_and(|id| stored.contains_key(id)));
            detach.push(self.detach_tag(repo, tag, v1.filter(|_| kept), digest)?);
            if kept {
                deleted.kept_tags.push(tag.clone());
            } else {
                deleted.removed_tags.push(tag.clone());
            }
        }
        let mut event = event.clone();
        event.updated_tags = deleted.removed_tags.iter().map(|t| t.to_string()).collect();
        let (event_item, id) = Self::event_item(repo, &event)?;

        // The manifest goes only if no tag was pointed at it since it was read.
        let tw = ("#tw".to_string(), "tag_writes".to_string());
        let (condition, names, values) = match tag_writes {
            Some(count) => (
                "#tw = :tw",
                HashMap::from([tw]),
                Some(HashMap::from([(":tw".to_string(), n(count))])),
            ),
            None => (
                "attribute_exists(#pk) AND attribute_not_exists(#tw)",
                HashMap::from([tw, ("#pk".to_string(), "pk".to_string())]),
                None,
            ),
        };
        let mut last = vec![
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(Self::key(repo, manifest_sk(digest))))
                        .condition_expression(condition)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            self.put(event_item, Some("attribute_not_exists(#pk)"))?,
        ];
        if let Some(subject) = subject {
            let subject: Digest = subject
                .parse()
                .map_err(|e| StoreError::backend(format!("stored subject {subject:?}: {e}")))?;
            last.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(Self::key(repo, referrer_sk(&subject, digest))))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            );
        }
        // Tags beyond one transaction's room are detached first, in transactions of their
        // own: each stays a valid tag or goes, so no tag ever names a missing manifest.
        let room = MAX_TRANSACTION_ITEMS - last.len();
        let early = detach.len().saturating_sub(room);
        let mut rest = detach.split_off(early);
        for (i, chunk) in detach.chunks(MAX_TRANSACTION_ITEMS).enumerate() {
            match self.transact(chunk.to_vec(), &format!("{id}-t{i}")).await {
                Ok(()) => {}
                Err(TxFailure::Cancelled(codes))
                    if transient(&codes) || codes.iter().any(|c| condition_failed(c)) =>
                {
                    return Ok(Err(()));
                }
                Err(f) => return Err(f.into_store_error("detaching tags")),
            }
        }
        rest.extend(last);
        match self.transact(rest, &id).await {
            Ok(()) => Ok(Ok(Some(deleted))),
            Err(TxFailure::Cancelled(codes))
                if transient(&codes) || codes.iter().any(|c| condition_failed(c)) =>
            {
                Ok(Err(()))
            }
            Err(f) => Err(f.into_store_error("deleting a manifest")),
        }
    }

    /// The tags of `repo` that point at `digest`, with their v1 images: one `Query` (paged).
    async fn tags_pointing_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Vec<(Tag, Option<String>)>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .filter_expression("#digest = :digest")
            .projection_expression("#sk, #v1")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#digest", "digest")
            .expression_attribute_names("#v1", "v1_image")
            .expression_attribute_values(":pk", s(repo.as_str()))
            .expression_attribute_values(":prefix", s("TAG#"))
            .expression_attribute_values(":digest", s(digest.to_string()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut tags = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Query tags", e))?;
            for item in page.items() {
                let sk = required_s(item, "sk")?;
                let name = sk.strip_prefix("TAG#").unwrap_or(sk);
                let tag = Tag::parse(name)
                    .map_err(|e| StoreError::backend(format!("stored tag {sk:?}: {e}")))?;
                tags.push((tag, optional_s(item, "v1_image").map(str::to_string)));
            }
        }
        Ok(tags)
    }

    /// The change to one tag of a manifest being deleted: delete it, or (schema1) keep it
    /// with its v1 image only. Conditioned on the tag still naming `digest`.
    fn detach_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        v1_image: Option<&str>,
        digest: &Digest,
    ) -> StoreResult<TransactWriteItem> {
        let key = Self::key(repo, tag_sk(tag));
        let condition = "#digest = :digest";
        Ok(match v1_image {
            // A tag that outlives its manifest: served from its image chain from now on.
            Some(_) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .update_expression("REMOVE #digest, #mt, #len, #body, #spilled")
                        .condition_expression(condition)
                        .expression_attribute_names("#digest", "digest")
                        .expression_attribute_names("#mt", "media_type")
                        .expression_attribute_names("#len", "length")
                        .expression_attribute_names("#body", "body")
                        .expression_attribute_names("#spilled", "spilled")
                        .expression_attribute_values(":digest", s(digest.to_string()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .condition_expression(condition)
                        .expression_attribute_names("#digest", "digest")
                        .expression_attribute_values(":digest", s(digest.to_string()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        })
    }

    /// The body of `MetadataStore::delete_tag`.
    pub(super) async fn transact_tag_delete(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        event: &RegistryEvent,
    ) -> StoreResult<bool> {
        let (event_item, id) = Self::event_item(repo, event)?;
        for attempt in 0..ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(repo, tag_sk(tag))))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.put(event_item.clone(), Some("attribute_not_exists(#pk)"))?,
            ];
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Cancelled(codes))
                    if codes.first().is_some_and(|c| condition_failed(c)) =>
                {
                    return Ok(false);
                }
                Err(TxFailure::Cancelled(codes)) if transient(&codes) => backoff(attempt).await,
                Err(f) => return Err(f.into_store_error("deleting a tag")),
            }
        }
        Err(StoreError::Conflict(format!(
            "deleting {repo}:{tag} kept conflicting with other writers"
        )))
    }
}
