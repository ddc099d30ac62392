//! The DynamoDB calls every concern shares: transactions and why they fail, single-item
//! reads and conditional writes, a conditioned transaction retried, random ids.
//! May call: `items`, `crate::retry`, the SDK's DynamoDB client. Knows nothing of HTTP.

use super::DynamoMetadata;
use super::items::{Item, n, s};
use crate::aws::sdk_error;
use crate::ports::{StoreError, StoreResult};
use crate::retry::backoff;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

/// DynamoDB's limit of actions in one `TransactWriteItems`.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;
/// Below DynamoDB's 4 MB per transaction, with room for keys and attribute names.
pub(super) const TRANSACTION_BYTES: usize = 3 * 1024 * 1024;
/// Attempts of one write when it meets a conflict or a throttled item.
pub(super) const ATTEMPTS: u32 = 8;

/// Why a transaction did not commit.
pub(super) enum TxFailure {
    /// Cancelled: one reason code per action, in order (`None` where the action was fine).
    Cancelled(Vec<String>),
    Other(StoreError),
}

impl TxFailure {
    pub(super) fn into_store_error(self, what: &str) -> StoreError {
        match self {
            TxFailure::Cancelled(codes) => {
                StoreError::backend(format!("{what}: transaction cancelled: {codes:?}"))
            }
            TxFailure::Other(e) => e,
        }
    }
}

/// Whether a cancellation is worth retrying as it is: another transaction held an item, or
/// the partition was throttled.
pub(super) fn transient(codes: &[String]) -> bool {
    codes.iter().any(|c| {
        matches!(
            c.as_str(),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    })
}

/// A write DynamoDB cancelled at every attempt for other transactions in flight or for
/// throttling: the table is busy (`429` with `Retry-After`), which is no `Conflict`: no
/// condition failed, and callers read `Conflict` as "what the write was decided from is gone".
pub(super) fn kept_cancelled(what: &str) -> StoreError {
    StoreError::Throttled(format!(
        "{what}: cancelled {ATTEMPTS} times for other transactions in flight or throttling"
    ))
}

pub(super) fn condition_failed(code: &str) -> bool {
    code == "ConditionalCheckFailed"
}

/// One strongly consistent `GetItem` of `table` (the metadata and the access store alike).
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    key: Item,
    what: &str,
) -> StoreResult<Option<Item>> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| sdk_error(what, e))?;
    Ok(out.item)
}

/// Every item of partition `pk` whose sort key starts with `prefix`, all pages, strongly
/// consistent.
pub(crate) async fn query_prefix(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
    what: &str,
) -> StoreResult<Vec<Item>> {
    let mut pages = client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":pk", s(pk))
        .expression_attribute_values(":prefix", s(prefix))
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(what, e))?;
        items.extend(page.items().iter().cloned());
    }
    Ok(items)
}

impl DynamoMetadata {
    pub(super) async fn get_item(&self, key: Item, what: &str) -> StoreResult<Option<Item>> {
        get_item(&self.client, &self.table, key, what).await
    }

    /// Runs one transaction. `token` makes the SDK's own retries of it idempotent.
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
    ) -> Result<(), TxFailure> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Err(TxFailure::Cancelled(
                        c.cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_string())
                            .collect(),
                    ))
                }
                // The same token still running (an SDK retry overtook it): try again.
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Err(TxFailure::Cancelled(vec!["TransactionConflict".into()]))
                }
                _ => Err(TxFailure::Other(sdk_error("TransactWriteItems", e))),
            },
        }
    }

    /// Runs one transaction, again while DynamoDB cancels it for another in flight (or
    /// throttles it); a failed condition is `Conflict`, nothing written. `token` makes each
    /// attempt idempotent; `what` names the write in errors.
    pub(super) async fn transact_retrying(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
        what: &str,
    ) -> StoreResult<()> {
        for attempt in 0..ATTEMPTS {
            match self
                .transact(items.clone(), &format!("{token}-{attempt}"))
                .await
            {
                Ok(()) => return Ok(()),
                Err(TxFailure::Cancelled(codes)) if codes.iter().any(|c| condition_failed(c)) => {
                    return Err(StoreError::Conflict(format!(
                        "{what}: another writer changed it first"
                    )));
                }
                Err(TxFailure::Cancelled(codes)) if transient(&codes) => backoff(attempt).await,
                Err(f) => return Err(f.into_store_error(what)),
            }
        }
        Err(kept_cancelled(what))
    }

    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition)
                .expression_attribute_names("#pk", "pk");
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build())
    }

    /// Deletes an item if it exists: one `DeleteItem`; false when it did not.
    pub(super) async fn delete_if_exists(&self, key: Item, what: &str) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(what, e)),
        }
    }

    /// Puts an item under `condition` (which may name `#pk`, `#version` and `:expected`);
    /// false when the condition failed and nothing was written.
    ///
    /// Safe to retry: when the SDK retries a put whose first try took effect but whose
    /// answer was lost, the retry finds its own write and the condition fails. So a failed
    /// condition reads the item back (consistently, only on this rare path), and if its
    /// `state` is this put's own (every upload state names its version and writer, so no
    /// other write has it) the put took effect: the answer the first try earned.
    pub(super) async fn put_conditionally(
        &self,
        item: Item,
        condition: &str,
        expected: Option<u64>,
    ) -> StoreResult<bool> {
        let key: Item = item
            .iter()
            .filter(|(name, _)| *name == "pk" || *name == "sk")
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let state = item.get("state").cloned();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", "pk");
        if let Some(expected) = expected {
            put = put
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(expected));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let Some(state) = state else {
                    return Ok(false);
                };
                let stored = self
                    .get_item(key, "GetItem after a failed condition")
                    .await?;
                Ok(stored.and_then(|item| item.get("state").cloned()) == Some(state))
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }
}

pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::backend(format!("building a DynamoDB request: {e}"))
}

/// 16 hex characters from the OS's random source: outbox ids and transaction tokens.
pub(super) fn random_id() -> StoreResult<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::backend(format!("random id: {e}")))?;
    Ok(hex::encode(bytes))
}
