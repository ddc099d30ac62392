//! [`JsonLinesEvents`]: the [`EventSink`] port as a JSON-lines file, one event a line, and a
//! log line per event (target `quayside::events`).
//!
//! May call: `ports`, serde_json, tracing, the filesystem. Must not know HTTP or AWS.

use super::{OrBackend, blocking};
use crate::ports::{EventSink, RegistryEvent, StoreError, StoreResult};
use async_trait::async_trait;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Appends events to one file.
#[derive(Debug)]
pub struct JsonLinesEvents {
    path: PathBuf,
    /// The mutex serializes writers so that lines never interleave, even if a line is larger
    /// than what one `write` appends atomically.
    file: Arc<Mutex<File>>,
}

impl JsonLinesEvents {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> StoreResult<JsonLinesEvents> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StoreError::backend(format!("opening {}: {e}", path.display())))?;
        Ok(JsonLinesEvents {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl EventSink for JsonLinesEvents {
    async fn publish(&self, event: &RegistryEvent) -> StoreResult<()> {
        let mut line = serde_json::to_vec(event).or_backend()?;
        line.push(b'\n');
        event.log("registry event");
        let file = Arc::clone(&self.file);
        // A file write can block on the disk: off the async workers.
        blocking(move || {
            let mut file = file
                .lock()
                .map_err(|_| StoreError::backend("event file lock poisoned"))?;
            // One write_all of the whole line; append mode puts it at the end of the file.
            file.write_all(&line).or_backend()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, tag: &str) -> RegistryEvent {
        RegistryEvent {
            event: name.into(),
            repository: "library/app".into(),
            namespace: "library".into(),
            updated_tags: vec![tag.into()],
            digest: Some(format!("sha256:{}", "0".repeat(64))),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            time: "2024-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn two_events_two_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = JsonLinesEvents::open(&path).unwrap();
        let (first, second) = (event("repo_push", "latest"), event("repo_delete", "old"));
        sink.publish(&first).await.unwrap();
        sink.publish(&second).await.unwrap();

        // Reopening appends rather than truncating.
        drop(sink);
        let sink = JsonLinesEvents::open(&path).unwrap();
        sink.publish(&first).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<RegistryEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, vec![first.clone(), second, first]);
        assert!(text.ends_with('\n'));
    }
}
