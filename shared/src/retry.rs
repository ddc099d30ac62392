//! Waiting before another attempt, for every writer that retries: the registry replanning a
//! deletion other writers got in the way of, and the DynamoDB store retrying a transaction
//! it was refused for a conflict with another in flight.
//!
//! May call: tokio's timer. Nothing of the registry's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Waits before retry `attempt` (0-based): exponential from 25 ms, capped, with jitter so
/// that two conflicting writers do not retry in step.
pub async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(5);
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default(),
    ) % base;
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}
