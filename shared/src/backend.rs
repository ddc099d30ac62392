//! Builds a [`Registry`] over the adapters the configuration names. The one module that
//! knows every adapter; handlers and the registry know only the ports.

use crate::ports::StoreError;
use crate::registry::Registry;
use std::path::Path;

/// The registry over embedded storage in `data_dir` (created if needed).
#[cfg(feature = "embedded")]
pub fn open_embedded(data_dir: &Path) -> Result<Registry, StoreError> {
    let backend = crate::embedded::EmbeddedBackend::open(data_dir)?;
    Ok(Registry {
        metadata: backend.metadata,
        blobs: backend.blobs,
        signer: backend.signer,
        events: backend.events,
    })
}

/// The registry a Lambda function serves, from its environment: embedded storage in
/// `QUAYSIDE_DATA_DIR` (default `/tmp/quayside`) until the AWS adapters land.
#[cfg(feature = "embedded")]
pub fn from_env() -> Result<Registry, StoreError> {
    let dir = std::env::var_os("QUAYSIDE_DATA_DIR").unwrap_or_else(|| "/tmp/quayside".into());
    open_embedded(Path::new(&dir))
}
