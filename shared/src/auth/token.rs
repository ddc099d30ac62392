//! Bearer tokens: distribution's JWT (`docs/spec/auth/jwt.md`), RS256, signed through the
//! [`Signer`] port (KMS on AWS, the key file in registry-local) and verified with the
//! public half of the same key (`jsonwebtoken`, RS256 only, over the [`rs256`] provider).
//!
//! Pure domain over the `Signer` port: nothing of HTTP, storage or AWS.
//!
//! The key also signs schema1 manifests. A manifest's signature can never pass for a
//! token: a libtrust JWS signs `protected.payload` where `protected` holds no `alg` (the
//! header check fails first) and the payload has none of `exp`, `iss`, `aud`.

use super::scope::ResourceActions;
use crate::ports::{PublicJwk, Signer, StoreResult};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A token's claims: the registered ones distribution reads, and `access`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The principal's name; empty for an anonymous caller (as distribution's tokens).
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh token id: 128 random bits.
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // The OS's generator; it fails only on a broken system, where a uuid still differs.
    if getrandom::fill(&mut bytes).is_err() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` as a compact JWT: header `{"alg":"RS256","typ":"JWT","kid":…}` with the
/// libtrust `kid` of the signer's key.
pub async fn sign(signer: &dyn Signer, claims: &Claims) -> StoreResult<String> {
    let jwk = signer.public_jwk().await?;
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": jwk.kid });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(claims).map_err(crate::ports::StoreError::backend)?)
    );
    let signature = signer.sign_rs256(input.as_bytes()).await?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Why a token was refused. The gate answers every one of them `401` with
/// `error="invalid_token"`; the reason goes to the log only.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid token: {0}")]
pub struct InvalidToken(pub String);

/// What a verifier accepts: the issuer, the audience (the service), the clock's leeway.
#[derive(Clone, Debug)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
}

/// Verifies tokens with one RSA public key. Build it once per process (the key is
/// fetched once: [`Signer::public_jwk`] caches it) and share it.
pub struct Verifier {
    key: DecodingKey,
    kid: String,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(jwk: &PublicJwk, expect: &Expectations) -> Result<Verifier, InvalidToken> {
        // Ours is the only provider in the build; installing it twice is harmless.
        let _ = rs256::PROVIDER.install_default();
        if jwk.kty != "RSA" {
            return Err(InvalidToken(format!(
                "the signing key is {}, not RSA",
                jwk.kty
            )));
        }
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
            .map_err(|e| InvalidToken(format!("the signing key: {e}")))?;
        // RS256 and nothing else: no `none`, no HMAC keyed with the public key.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.set_issuer(&[&expect.issuer]);
        validation.set_audience(&[&expect.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = expect.leeway_seconds;
        Ok(Verifier {
            key,
            kid: jwk.kid.clone(),
            validation,
        })
    }

    /// The claims of `token` if its signature, algorithm, `kid`, issuer, audience and
    /// validity period all check out.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| InvalidToken(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(InvalidToken(format!("algorithm {:?}", header.alg)));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != self.kid) {
            return Err(InvalidToken("signed by another key".into()));
        }
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| InvalidToken(e.to_string()))
    }
}

/// jsonwebtoken's cryptography, RS256 verification only, with the `rsa` crate that checks
/// schema1 signatures. The crate's own `rust_crypto` backend reaches every algorithm from
/// `decode` (Ed25519, P-256, P-384, HMAC and a second `rsa`), so every Lambda function
/// linked them all (BENCHMARKS.md, binary sizes); nothing here signs.
mod rs256 {
    use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::signature;
    use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use sha2::Sha256;

    pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        verifier_factory,
        key_utils: KeyUtils::new_unimplemented(),
    };

    fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        match (algorithm, key.kind()) {
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                let key = crate::signing::rsa_public_key(n, e)
                    .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
                Ok(Box::new(Rs256(VerifyingKey::new(key))))
            }
            _ => Err(ErrorKind::InvalidAlgorithm.into()),
        }
    }

    struct Rs256(VerifyingKey<Sha256>);

    impl signature::Verifier<Vec<u8>> for Rs256 {
        fn verify(
            &self,
            message: &[u8],
            sig: &Vec<u8>,
        ) -> std::result::Result<(), signature::Error> {
            use rsa::signature::Verifier as _;
            let sig = Signature::try_from(sig.as_slice()).map_err(|_| signature::Error::new())?;
            self.0
                .verify(message, &sig)
                .map_err(|_| signature::Error::new())
        }
    }

    impl JwtVerifier for Rs256 {
        fn algorithm(&self) -> Algorithm {
            Algorithm::RS256
        }
    }
}
