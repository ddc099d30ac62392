//! The uploads' items: create one, read, update at a version, delete, and scan for those
//! started before a time.
//! May call: `items`, `transactions`, the SDK's DynamoDB client. Knows nothing of HTTP.

use super::DynamoMetadata;
use super::items::{required_s, s, upload_of, upload_sk};
use crate::aws::sdk_error;
use crate::names::RepositoryName;
use crate::ports::{StoreError, StoreResult, Upload};
use aws_sdk_dynamodb::types::ReturnValue;

impl DynamoMetadata {
    /// The body of `MetadataStore::create_upload`.
    pub(super) async fn put_new_upload(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
    ) -> StoreResult<()> {
        let item = self.upload_item(repo, upload)?;
        match self
            .put_conditionally(item, "attribute_not_exists(#pk)", None)
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!(
                "upload {} of {repo} exists",
                upload.id
            ))),
        }
    }

    /// The body of `MetadataStore::upload`.
    pub(super) async fn get_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> StoreResult<Option<Upload>> {
        match self
            .get_item(Self::key(repo, upload_sk(id)), "GetItem upload")
            .await?
        {
            Some(item) => upload_of(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The body of `MetadataStore::update_upload`.
    pub(super) async fn put_upload_at_version(
        &self,
        repo: &RepositoryName,
        upload: &Upload,
        expected_version: u64,
    ) -> StoreResult<()> {
        let item = self.upload_item(repo, upload)?;
        match self
            .put_conditionally(
                item,
                "attribute_exists(#pk) AND #version = :expected",
                Some(expected_version),
            )
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!(
                "upload {} of {repo} is gone or no longer at version {expected_version}",
                upload.id
            ))),
        }
    }

    /// The body of `MetadataStore::delete_upload`.
    pub(super) async fn delete_upload_item(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> StoreResult<Option<Upload>> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(repo, upload_sk(id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem upload", e))?;
        result.attributes.as_ref().map(upload_of).transpose()
    }

    /// The body of `MetadataStore::uploads`: a `Scan` of the upload items.
    pub(super) async fn scan_uploads(&self) -> StoreResult<Vec<(RepositoryName, Upload)>> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#sk, :prefix)")
            .projection_expression("#pk, #sk, #state")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":prefix", s("UPLOAD#"))
            .into_paginator()
            .send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("Scan uploads", e))?;
            for item in page.items() {
                let repo =
                    RepositoryName::parse(required_s(item, "pk")?).map_err(StoreError::backend)?;
                all.push((repo, upload_of(item)?));
            }
        }
        Ok(all)
    }
}
