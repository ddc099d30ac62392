//! Bearer tokens: distribution's JWT (`docs/spec/auth/jwt.md`), RS256, signed through the
//! [`Signer`] port (KMS on AWS, the key file in registry-local) and verified with the
//! public half of the same key (`jsonwebtoken`, RS256 only, over the `rs256` provider).
//!
//! Pure domain over the `Signer` port: nothing of HTTP, storage or AWS.
//!
//! # Refresh tokens
//!
//! The token service's OAuth2 form (`POST /v2/auth`, distribution's
//! `docs/spec/auth/oauth.md`) hands out refresh tokens on `access_type=offline`. They are
//! JWTs too, signed by the same key, so that nothing needs storing and any function
//! container can check them: [`RefreshClaims`] name the principal and a fingerprint of its
//! stored secret hash, and carry no `access`. A refresh token can never pass for a bearer
//! token nor the other way round, twice over: its header's `typ` is [`REFRESH_TYP`] (a
//! bearer token's is `JWT`, and each verifier takes only its own), and its `aud` is
//! [`refresh_audience`] of the service, which is never the service itself (the bearer
//! verifier's only audience).
//!
//! # Upload capabilities
//!
//! A session handed to the upload service (see `http::uploads`) carries an [`UploadClaims`]
//! JWT in its URL: typ [`UPLOAD_TYP`], aud [`upload_audience`], bound to one repository and
//! one session id, alive as long as an upload may be. Neither a bearer nor a refresh token
//! passes for one, nor it for them, by the same two checks.
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

/// The `typ` of a refresh token's header.
pub const REFRESH_TYP: &str = "quayside-refresh+jwt";

/// The `typ` of a bearer token's header.
pub const BEARER_TYP: &str = "JWT";

/// A refresh token's `aud`: the token service of `service`, never `service` itself.
pub fn refresh_audience(service: &str) -> String {
    format!("{service}#refresh")
}

/// A refresh token's claims: who it stands for, no access of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    /// The principal's name; never empty (anonymous callers get no refresh token).
    pub sub: String,
    /// [`refresh_audience`] of the service.
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// [`secret_fingerprint`] of the principal's stored hash when the token was issued: a
    /// new password, or a rotated robot secret, makes every earlier refresh token void.
    pub sfp: String,
}

/// The `typ` of an upload capability's header.
pub const UPLOAD_TYP: &str = "quayside-upload+jwt";

/// An upload capability's `aud`: the upload sessions of `service`, never `service` itself.
pub fn upload_audience(service: &str) -> String {
    format!("{service}#upload")
}

/// An upload capability's claims: one session of one repository, for the principal that
/// opened it. It travels in the session's URL, so that a client that drops
/// `Authorization` when the host changes (docker, containerd, crane, on their way to the
/// upload service) still carries its right to that session, and to nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadClaims {
    pub iss: String,
    /// The principal that opened the session; empty for an anonymous caller.
    pub sub: String,
    /// [`upload_audience`] of the service.
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// The repository of the session.
    pub repository: String,
    /// The session's id.
    pub upload: String,
    /// The URL of the registry's API that opened the session (`https://host[/stage]`):
    /// where the service sends the client once the blob is stored.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
}

/// A fingerprint of a stored argon2id hash (which holds a random salt: every new secret
/// gives a new one). It says nothing of the secret.
pub fn secret_fingerprint(secret_hash: &str) -> String {
    use sha2::Digest as _;
    URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(secret_hash.as_bytes())[..16])
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
    sign_typed(signer, BEARER_TYP, claims).await
}

/// Signs `claims` as a refresh token: header `typ` [`REFRESH_TYP`].
pub async fn sign_refresh(signer: &dyn Signer, claims: &RefreshClaims) -> StoreResult<String> {
    sign_typed(signer, REFRESH_TYP, claims).await
}

/// Signs `claims` as an upload capability: header `typ` [`UPLOAD_TYP`].
pub async fn sign_upload(signer: &dyn Signer, claims: &UploadClaims) -> StoreResult<String> {
    sign_typed(signer, UPLOAD_TYP, claims).await
}

async fn sign_typed(
    signer: &dyn Signer,
    typ: &str,
    claims: &impl Serialize,
) -> StoreResult<String> {
    let jwk = signer.public_jwk().await?;
    let header = serde_json::json!({ "typ": typ, "alg": "RS256", "kid": jwk.kid });
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

/// Verifies tokens of one kind (bearer or refresh) with one RSA public key. Build it once
/// per process (the key is fetched once: [`Signer::public_jwk`] caches it) and share it.
pub struct Verifier {
    key: DecodingKey,
    kid: String,
    validation: Validation,
    /// The header `typ` this verifier takes (a bearer token may also omit it, as
    /// distribution's do).
    typ: &'static str,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of bearer tokens: audience the service.
    pub fn new(jwk: &PublicJwk, expect: &Expectations) -> Result<Verifier, InvalidToken> {
        Self::of_kind(jwk, expect, &expect.audience, BEARER_TYP)
    }

    /// A verifier of refresh tokens: audience [`refresh_audience`] of the service.
    pub fn for_refresh(jwk: &PublicJwk, expect: &Expectations) -> Result<Verifier, InvalidToken> {
        Self::of_kind(
            jwk,
            expect,
            &refresh_audience(&expect.audience),
            REFRESH_TYP,
        )
    }

    /// A verifier of upload capabilities: audience [`upload_audience`] of the service.
    pub fn for_upload(jwk: &PublicJwk, expect: &Expectations) -> Result<Verifier, InvalidToken> {
        Self::of_kind(jwk, expect, &upload_audience(&expect.audience), UPLOAD_TYP)
    }

    fn of_kind(
        jwk: &PublicJwk,
        expect: &Expectations,
        audience: &str,
        typ: &'static str,
    ) -> Result<Verifier, InvalidToken> {
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
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = expect.leeway_seconds;
        Ok(Verifier {
            key,
            kid: jwk.kid.clone(),
            validation,
            typ,
        })
    }

    /// The claims of a bearer `token` if its signature, algorithm, `kid`, `typ`, issuer,
    /// audience and validity period all check out.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        self.verify_as(token)
    }

    /// The claims of a refresh `token`, checked as [`Verifier::verify`] checks a bearer
    /// token (on a verifier made by [`Verifier::for_refresh`]).
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, InvalidToken> {
        let claims: RefreshClaims = self.verify_as(token)?;
        if claims.sub.is_empty() {
            return Err(InvalidToken("a refresh token for no one".into()));
        }
        Ok(claims)
    }

    /// The claims of an upload capability (on a verifier made by [`Verifier::for_upload`]),
    /// checked as [`Verifier::verify`] checks a bearer token.
    pub fn verify_upload(&self, token: &str) -> Result<UploadClaims, InvalidToken> {
        self.verify_as(token)
    }

    fn verify_as<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| InvalidToken(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(InvalidToken(format!("algorithm {:?}", header.alg)));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != self.kid) {
            return Err(InvalidToken("signed by another key".into()));
        }
        // A refresh token must say so; a bearer token may say nothing (distribution's).
        let typ_ok = match header.typ.as_deref() {
            Some(typ) => typ == self.typ,
            None => self.typ == BEARER_TYP,
        };
        if !typ_ok {
            return Err(InvalidToken(format!("a token of type {:?}", header.typ)));
        }
        jsonwebtoken::decode::<T>(token, &self.key, &self.validation)
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
