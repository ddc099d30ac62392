//! The signer port: the registry's RSA key, for schema1 manifests and tokens.

use super::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The public half of the signing key as a libtrust JWK (RSA: `n`, `e`, `kid`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// Signs with the registry's RSA key: RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The RS256 signature of `message`.
    async fn sign_rs256(&self, message: &[u8]) -> StoreResult<Vec<u8>>;
    /// The public key, fetched once and kept.
    async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>>;
}
