//! [`KmsSigner`]: the [`Signer`] port over an asymmetric KMS key (`RSA_2048`,
//! `SIGN_VERIFY`), signing with `RSASSA_PKCS1_V1_5_SHA_256`, which is JWS's RS256 as is.
//!
//! May call: `ports`, `signing` (the libtrust JWK of the public key), sha2, the KMS SDK.
//! Must not know HTTP.
//!
//! KMS takes a `RAW` message of at most 4096 bytes and hashes it itself; a schema1 payload is
//! often larger, so a longer message is hashed here and sent as `MessageType=DIGEST`. Both
//! give the same signature for the same message. The public key is fetched once per
//! container (`GetPublicKey`, DER SubjectPublicKeyInfo), on first use.

use super::sdk_error;
use crate::ports::{PublicJwk, Signer, StoreError, StoreResult};
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The largest message KMS signs `RAW`.
pub const MAX_RAW_MESSAGE: usize = 4096;

/// Signs with one KMS key.
#[derive(Debug)]
pub struct KmsSigner {
    client: Client,
    key_id: String,
    jwk: OnceCell<Arc<PublicJwk>>,
}

impl KmsSigner {
    /// The signer of `key_id` (key id, key ARN, alias name or alias ARN).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsSigner {
            client,
            key_id: key_id.into(),
            jwk: OnceCell::new(),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn fetch_jwk(&self) -> StoreResult<Arc<PublicJwk>> {
        let out = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| sdk_error("GetPublicKey", e))?;
        // A key that cannot make RS256 signatures is a configuration error: say so now
        // rather than with every Sign call.
        if !out
            .signing_algorithms()
            .contains(&SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
        {
            return Err(StoreError::backend(format!(
                "KMS key {} cannot sign RSASSA_PKCS1_V1_5_SHA_256 (key spec {:?}): it must be \
                 an RSA SIGN_VERIFY key",
                self.key_id, out.key_spec
            )));
        }
        let der = out
            .public_key
            .ok_or_else(|| StoreError::backend("GetPublicKey returned no key"))?;
        let jwk = crate::signing::rsa_public_jwk_from_spki_der(der.as_ref())
            .map_err(StoreError::backend)?;
        tracing::info!(key = %self.key_id, kid = %jwk.kid, "fetched the signing key's public half");
        Ok(Arc::new(jwk))
    }
}

#[async_trait]
impl Signer for KmsSigner {
    async fn sign_rs256(&self, message: &[u8]) -> StoreResult<Vec<u8>> {
        let (message, kind) = if message.len() <= MAX_RAW_MESSAGE {
            (message.to_vec(), MessageType::Raw)
        } else {
            (Sha256::digest(message).to_vec(), MessageType::Digest)
        };
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
            .send()
            .await
            .map_err(|e| sdk_error("Sign", e))?;
        out.signature
            .map(Blob::into_inner)
            .ok_or_else(|| StoreError::backend("Sign returned no signature"))
    }

    async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>> {
        self.jwk
            .get_or_try_init(|| self.fetch_jwk())
            .await
            .map(Arc::clone)
    }
}
