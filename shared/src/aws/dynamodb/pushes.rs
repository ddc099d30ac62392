//! Writes of a push: its transaction, a generated manifest attached to a schema1 tag, a blob's
//! link; and manifests too large for an item, spilled to the blob store and read back.
//! May call: `items`, `transactions`, the DynamoDB client, the `BlobStore` port. No HTTP.

use super::DynamoMetadata;
use super::items::{Item, approximate_size, b, blob_sk, is_spilled, manifest_sk, n, required_s, s};
use super::transactions::{
    ATTEMPTS, MAX_TRANSACTION_ITEMS, TRANSACTION_BYTES, TxFailure, build_error, condition_failed,
    kept_cancelled, random_id, transient,
};
use crate::aws::sdk_error;
use crate::digest::Digest;
use crate::names::RepositoryName;
use crate::ports::{GeneratedManifest, Push, StoreError, StoreResult, StoredManifest, V1Image};
use crate::retry::backoff;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use bytes::Bytes;
use std::collections::HashSet;
use std::time::SystemTime;

impl DynamoMetadata {
    /// The body of `MetadataStore::commit_push`.
    pub(super) async fn transact_push(
        &self,
        repo: &RepositoryName,
        push: &Push,
    ) -> StoreResult<()> {
        self.spill_if_large(&push.manifest).await?;
        let (event_item, id) = Self::event_item(repo, &push.event)?;
        let mut images: Vec<&V1Image> = push.images.iter().collect();

        let fixed = 3 + push.tags.len() + usize::from(push.referrer.is_some());
        if fixed > MAX_TRANSACTION_ITEMS {
            // The registry caps a push's tags far below this.
            return Err(StoreError::backend(format!(
                "a push of {} with {} tags does not fit one transaction",
                push.manifest.digest,
                push.tags.len()
            )));
        }
        // The manifest item and each tag item carry the manifest's bytes (unless spilled):
        // when many tags of a large manifest would not fit the transaction, the tag items
        // point at its S3 copy instead, as a spilled manifest's do.
        let mut inline = if is_spilled(&push.manifest) {
            0
        } else {
            (1 + push.tags.len()).saturating_mul(push.manifest.body.len())
        };
        let spill_tags = inline > TRANSACTION_BYTES;
        if spill_tags {
            self.spill()?
                .put(&push.manifest.digest, push.manifest.body.clone())
                .await?;
            inline = push.manifest.body.len();
        }
        let image_bytes: usize = images.iter().map(|i| approximate_size(i)).sum();
        if fixed + images.len() > MAX_TRANSACTION_ITEMS || inline + image_bytes > TRANSACTION_BYTES
        {
            // Parents first, as given: an interrupted push leaves complete chains only.
            for image in &images {
                self.put_image_if_absent(repo, image).await?;
            }
            images.clear();
        }

        for attempt in 0..ATTEMPTS {
            let mut items = vec![
                self.repository_update(repo)?,
                self.manifest_update(
                    repo,
                    &push.manifest,
                    push.referrer.as_ref().map(|r| &r.subject),
                    !push.tags.is_empty(),
                )?,
                self.put(event_item.clone(), Some("attribute_not_exists(#pk)"))?,
            ];
            for tag in &push.tags {
                let mut item =
                    Self::tag_item(repo, tag, &push.manifest, push.tag_v1_image.as_deref());
                if spill_tags {
                    item.remove("body");
                    item.insert("spilled".into(), AttributeValue::Bool(true));
                }
                items.push(self.put(item, None)?);
            }
            if let Some(referrer) = &push.referrer {
                items.push(self.put(Self::referrer_item(repo, referrer), None)?);
            }
            let first_image = items.len();
            for image in &images {
                items.push(self.put(
                    Self::image_item(repo, image),
                    Some("attribute_not_exists(#pk)"),
                )?);
            }
            match self.transact(items, &format!("{id}-{attempt}")).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Cancelled(codes)) => {
                    let failed: HashSet<usize> = codes
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| condition_failed(c))
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() && failed.iter().all(|i| *i >= first_image) {
                        // Images stored since the caller's lookup: keep them as they are.
                        let mut index = first_image;
                        images.retain(|_| {
                            let keep = !failed.contains(&index);
                            index += 1;
                            keep
                        });
                        continue;
                    }
                    if failed.is_empty() && transient(&codes) {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(TxFailure::Cancelled(codes).into_store_error("push"));
                }
                Err(TxFailure::Other(e)) => return Err(e),
            }
        }
        Err(kept_cancelled(&format!(
            "push of {} to {repo}",
            push.manifest.digest
        )))
    }

    /// The body of `MetadataStore::attach_generated_manifest`.
    pub(super) async fn transact_generated_manifest(
        &self,
        repo: &RepositoryName,
        generated: GeneratedManifest<'_>,
    ) -> StoreResult<()> {
        let GeneratedManifest {
            tag,
            v1_image,
            manifest,
        } = generated;
        self.spill_if_large(manifest).await?;
        let tag_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::tag_item(repo, tag, manifest, Some(v1_image))))
            .condition_expression(
                "attribute_exists(#pk) AND attribute_not_exists(#digest) AND #v1 = :v1",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#digest", "digest")
            .expression_attribute_names("#v1", "v1_image")
            .expression_attribute_values(":v1", s(v1_image))
            .build()
            .map_err(build_error)?;
        let items = vec![
            self.manifest_update(repo, manifest, None, true)?,
            TransactWriteItem::builder().put(tag_put).build(),
        ];
        let what = format!("attaching a manifest to {repo}:{tag}");
        self.transact_retrying(items, &random_id()?, &what).await
    }

    /// The body of `MetadataStore::link_blob`.
    pub(super) async fn transact_blob_link(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> StoreResult<()> {
        let mut link = Self::key(repo, blob_sk(digest));
        link.insert("length".into(), n(size));
        // One transaction: a link never exists without its repository.
        let items = vec![self.repository_update(repo)?, self.put(link, None)?];
        self.transact_retrying(items, &random_id()?, "linking a blob")
            .await
    }

    /// The `REPOSITORY` item, created if absent (and left as it is otherwise).
    fn repository_update(&self, repo: &RepositoryName) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, "REPOSITORY")))
            .update_expression("SET #created = if_not_exists(#created, :now), #catalog = :catalog")
            .expression_attribute_names("#created", "created")
            .expression_attribute_names("#catalog", "catalog")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":catalog", s("repository"))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes the `MANIFEST#` item; `tagged` bumps `tag_writes`, which a concurrent delete
    /// of the manifest conditions on.
    fn manifest_update(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        subject: Option<&Digest>,
        tagged: bool,
    ) -> StoreResult<TransactWriteItem> {
        let spilled = is_spilled(manifest);
        let mut set = vec!["#mt = :mt", "#len = :len"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, manifest_sk(&manifest.digest))))
            .expression_attribute_names("#mt", "media_type")
            .expression_attribute_names("#len", "length")
            .expression_attribute_names("#tw", "tag_writes")
            .expression_attribute_values(":mt", s(&manifest.media_type))
            .expression_attribute_values(":len", n(manifest.body.len() as u64))
            .expression_attribute_values(":inc", n(u64::from(tagged)));
        if spilled {
            set.push("#spilled = :true");
            update = update
                .expression_attribute_names("#spilled", "spilled")
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        } else {
            set.push("#body = :body");
            update = update
                .expression_attribute_names("#body", "body")
                .expression_attribute_values(":body", b(&manifest.body));
        }
        if let Some(subject) = subject {
            set.push("#subject = :subject");
            update = update
                .expression_attribute_names("#subject", "subject")
                .expression_attribute_values(":subject", s(subject.to_string()));
        }
        let update = update
            .update_expression(format!("SET {} ADD #tw :inc", set.join(", ")))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes an image unless its id is already stored: for pushes too large for one
    /// transaction. Idempotent, so a push that fails later leaves only unreferenced images.
    async fn put_image_if_absent(&self, repo: &RepositoryName, image: &V1Image) -> StoreResult<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::image_item(repo, image)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("PutItem image", e)),
        }
    }

    /// Stores a large manifest's bytes in the blob store, before any item names them.
    async fn spill_if_large(&self, manifest: &StoredManifest) -> StoreResult<()> {
        if is_spilled(manifest) {
            self.spill()?
                .put(&manifest.digest, manifest.body.clone())
                .await?;
        }
        Ok(())
    }

    /// The manifest an item (`MANIFEST#` or `TAG#`) carries or points at.
    pub(super) async fn manifest_of(
        &self,
        item: &Item,
        digest: Digest,
    ) -> StoreResult<StoredManifest> {
        let media_type = required_s(item, "media_type")?.to_string();
        let body = match item.get("body") {
            Some(AttributeValue::B(body)) => Bytes::copy_from_slice(body.as_ref()),
            _ if matches!(item.get("spilled"), Some(AttributeValue::Bool(true))) => {
                self.spill()?.get(&digest).await?.ok_or_else(|| {
                    StoreError::backend(format!("the spilled bytes of {digest} are missing"))
                })?
            }
            _ => {
                return Err(StoreError::backend(format!(
                    "the item of {digest} has no manifest bytes"
                )));
            }
        };
        Ok(StoredManifest {
            digest,
            media_type,
            body,
        })
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
