//! [`KeyFileSigner`]: the [`Signer`] port over an RSA key kept in a PKCS#8 PEM file.
//!
//! May call: `ports`, `signing` (the libtrust JWK of the public key), rsa, the filesystem.
//! Must not know HTTP or AWS.

use super::{OrBackend, blocking};
use crate::ports::{PublicJwk, Signer, StoreError, StoreResult};
use async_trait::async_trait;
use rsa::PrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::Arc;

/// Size of a generated key: what Docker's libtrust tooling uses, and well supported by clients.
const KEY_BITS: usize = 2048;

/// Signs with the RSA key of one PEM file, created at first start.
pub struct KeyFileSigner {
    key: Arc<PrivateKey>,
    jwk: Arc<PublicJwk>,
}

impl std::fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("KeyFileSigner")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl KeyFileSigner {
    /// Loads the PKCS#8 PEM key at `path`, or creates an RSA-2048 key there (mode 0600) when
    /// the file does not exist. A file that exists but does not parse is an error: replacing
    /// it would silently change the registry's identity.
    pub fn open(path: &Path) -> StoreResult<KeyFileSigner> {
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => PrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| StoreError::backend(format!("reading key {}: {e}", path.display())))?,
            Err(e) if e.kind() == ErrorKind::NotFound => create_key(path)?,
            Err(e) => {
                return Err(StoreError::backend(format!(
                    "reading key {}: {e}",
                    path.display()
                )));
            }
        };
        let spki = key.to_public_key().to_public_key_der().or_backend()?;
        let jwk = crate::signing::rsa_public_jwk_from_spki_der(spki.as_bytes()).or_backend()?;
        Ok(KeyFileSigner {
            key: Arc::new(key),
            jwk: Arc::new(jwk),
        })
    }
}

/// Generates a key and saves it at `path`.
fn create_key(path: &Path) -> StoreResult<PrivateKey> {
    let key = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS).or_backend()?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).or_backend()?;
    let folder = path.parent().unwrap_or(Path::new("."));
    // Write a temporary file and rename it: a crash mid-write must not leave a truncated key
    // that would stop every later start.
    let temp = folder.join(format!(".signing-key.{}.tmp", std::process::id()));
    let saved = write_private(&temp, pem.as_bytes()).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&temp);
        return Err(StoreError::backend(format!(
            "saving key {}: {e}",
            path.display()
        )));
    }
    tracing::info!(path = %path.display(), "created a new RSA-{KEY_BITS} signing key");
    Ok(key)
}

/// Creates `path` readable by its owner only, writes `bytes` and syncs.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[async_trait]
impl Signer for KeyFileSigner {
    async fn sign_rs256(&self, message: &[u8]) -> StoreResult<Vec<u8>> {
        // An RSA-2048 private operation costs about a millisecond of CPU: off the async
        // workers.
        let key = Arc::clone(&self.key);
        let message = message.to_vec();
        blocking(move || key.pkcs1v15_sign::<Sha256>(&message).or_backend()).await
    }

    async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>> {
        Ok(Arc::clone(&self.jwk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_persists_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        let signer = KeyFileSigner::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let jwk = signer.public_jwk().await.unwrap();
        assert_eq!(jwk.kty, "RSA");

        let again = KeyFileSigner::open(&path).unwrap();
        assert_eq!(again.public_jwk().await.unwrap(), jwk);

        let message = b"header.payload";
        let signature = again.sign_rs256(message).await.unwrap();
        assert_eq!(signature.len(), KEY_BITS / 8);
        let public = signer.key.to_public_key();
        public
            .pkcs1v15_verify::<Sha256>(message, &signature)
            .unwrap();
        assert!(
            public
                .pkcs1v15_verify::<Sha256>(b"tampered", &signature)
                .is_err()
        );
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(KeyFileSigner::open(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
