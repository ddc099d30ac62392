//! Deletes: what a manifest deletion reads, the deletion the registry planned from it (in as
//! few transactions as fit), and a tag, each with its outbox event.
//! May call: `items`, `transactions`, the store's lookup, the DynamoDB client. No HTTP.

use super::DynamoMetadata;
use super::items::{
    manifest_sk, n, optional_s, parse_digest, referrer_sk, required_n, required_s, s, tag_sk,
};
use super::transactions::{MAX_TRANSACTION_ITEMS, build_error};
use crate::aws::sdk_error;
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    ManifestDeletion, ManifestInUse, RegistryEvent, StoreError, StoreResult, TagOnManifest,
};
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use std::collections::HashMap;

impl DynamoMetadata {
    /// The body of `MetadataStore::manifest_in_use`: the manifest item, then the tags
    /// naming it (one `Query`, paged). The item's count of tag writes is the read's mark.
    pub(super) async fn read_manifest_in_use(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Option<ManifestInUse>> {
        let Some(manifest) = self
            .get_item(Self::key(repo, manifest_sk(digest)), "GetItem manifest")
            .await?
        else {
            return Ok(None);
        };
        let subject = optional_s(&manifest, "subject")
            .map(parse_digest)
            .transpose()?;
        Ok(Some(ManifestInUse {
            subject,
            tags: self.tags_pointing_at(repo, digest).await?,
            // Every write of a manifest item sets `tag_writes`; an item without it (written
            // by hand, say) is deleted only if it still has none.
            mark: required_n(&manifest, "tag_writes").ok(),
        }))
    }

    /// The body of `MetadataStore::commit_deletion`: the manifest item goes only if its
    /// count of tag writes is still the read's (no tag was pointed at it since), each tag
    /// changes only if it still names the manifest.
    pub(super) async fn transact_deletion(
        &self,
        repo: &RepositoryName,
        deletion: &ManifestDeletion,
    ) -> StoreResult<()> {
        let digest = &deletion.digest;
        let mut detach = Vec::new();
        for (tag, kept_image) in deletion.tag_fates() {
            detach.push(self.detach_tag(repo, tag, kept_image, digest)?);
        }
        let (event_item, id) = Self::event_item(repo, &deletion.event)?;

        let tw = ("#tw".to_string(), "tag_writes".to_string());
        let (condition, names, values) = match deletion.read.mark {
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
        if let Some(subject) = &deletion.read.subject {
            last.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(Self::key(repo, referrer_sk(subject, digest))))
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
            self.transact_retrying(chunk.to_vec(), &format!("{id}-t{i}"), "detaching tags")
                .await?;
        }
        rest.extend(last);
        self.transact_retrying(rest, &id, "deleting a manifest")
            .await
    }

    /// The tags of `repo` that point at `digest`, with their v1 images, in ASCII order: one
    /// `Query` (paged).
    async fn tags_pointing_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> StoreResult<Vec<TagOnManifest>> {
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
                tags.push(TagOnManifest {
                    tag,
                    v1_image: optional_s(item, "v1_image").map(str::to_string),
                });
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
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, tag_sk(tag))))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            // The event's id is fresh: only the tag's condition can fail.
            self.put(event_item, Some("attribute_not_exists(#pk)"))?,
        ];
        match self.transact_retrying(items, &id, "deleting a tag").await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
