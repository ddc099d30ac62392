//! libtrust keys: the JWK and `kid` of an RSA public key, as schema1 JWS headers carry them.
//!
//! Pure domain: may call `ports::PublicJwk` and crypto crates; nothing of storage, HTTP or AWS.

use crate::ports::PublicJwk;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::PublicKey as RsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest as _, Sha256};

/// Why a public key could not be turned into a JWK.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid RSA public key: {0}")]
pub struct KeyError(String);

/// The libtrust JWK (`kty`, `n`, `e`, `kid`) of an RSA key given as a DER
/// SubjectPublicKeyInfo (what `openssl rsa -pubout -outform der` and `to_public_key_der`
/// write).
pub fn rsa_public_jwk_from_spki_der(der: &[u8]) -> Result<PublicJwk, KeyError> {
    let key = RsaPublicKey::from_public_key_der(der).map_err(|e| KeyError(e.to_string()))?;
    Ok(jwk_of(&key, der))
}

/// The libtrust JWK of an RSA public key.
pub fn rsa_public_jwk(key: &RsaPublicKey) -> Result<PublicJwk, KeyError> {
    // The kid is defined over the DER form, so encode it first.
    let der = key
        .to_public_key_der()
        .map_err(|e| KeyError(e.to_string()))?;
    Ok(jwk_of(key, der.as_bytes()))
}

fn jwk_of(key: &RsaPublicKey, spki_der: &[u8]) -> PublicJwk {
    PublicJwk {
        kty: "RSA".to_string(),
        kid: libtrust_kid(spki_der),
        // JWK integers are unsigned big-endian without leading zeros (RFC 7518 §6.3.1).
        n: URL_SAFE_NO_PAD.encode(key.n_bytes()),
        e: URL_SAFE_NO_PAD.encode(key.e_bytes()),
    }
}

/// An RSA public key from its big-endian modulus and exponent (a JWK's `n` and `e`).
/// `rsa` refuses moduli outside 1024..=8192 bits and huge exponents: cheap to check,
/// expensive to verify with.
pub fn rsa_public_key(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let n = rsa::BoxedUint::from_be_slice_vartime(n);
    let e = rsa::BoxedUint::from_be_slice_vartime(e);
    RsaPublicKey::new(n, e).map_err(|e| KeyError(e.to_string()))
}

/// The libtrust key id of a public key (RSA or EC) given as a DER SubjectPublicKeyInfo:
/// SHA-256 of the DER, truncated to 240 bits, base32 without padding (48 characters) in
/// twelve groups of four joined by `:` (libtrust's `keyIDFromCryptoKey`).
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    let hash = Sha256::digest(spki_der);
    let encoded = base32(&hash[..30]);
    let groups: Vec<&str> = encoded
        .as_bytes()
        .chunks(4)
        // base32 output is ASCII, so every chunk is valid UTF-8.
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    groups.join(":")
}

/// RFC 4648 base32 (standard alphabet), without padding. Only the kid needs it, over a
/// fixed 30 bytes, which does not justify another dependency.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BoxedUint;

    const RS256_FIXTURE: &str =
        include_str!("../../tests/fixtures/manifests/docker-schema1-rs256-distribution.json");
    const ES256_FIXTURE: &str =
        include_str!("../../tests/fixtures/manifests/docker-schema1-es256-skopeo.json");

    fn fixture_jwk(fixture: &str) -> serde_json::Value {
        let manifest: serde_json::Value = serde_json::from_str(fixture).unwrap();
        manifest["signatures"][0]["header"]["jwk"].clone()
    }

    fn b64(field: &serde_json::Value) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(field.as_str().unwrap()).unwrap()
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn rsa_jwk_and_kid_match_distributions_fixture() {
        let jwk = fixture_jwk(RS256_FIXTURE);
        let n = BoxedUint::from_be_slice_vartime(&b64(&jwk["n"]));
        let e = BoxedUint::from_be_slice_vartime(&b64(&jwk["e"]));
        let key = RsaPublicKey::new(n, e).unwrap();
        let der = key.to_public_key_der().unwrap();

        let ours = rsa_public_jwk_from_spki_der(der.as_bytes()).unwrap();
        assert_eq!(
            ours.kid,
            "PA5W:TI6F:NL6C:ECUT:Z2QU:XAE2:6OL7:JMHL:72GQ:5IGU:MZYM:7U6W"
        );
        assert_eq!(ours.kid, jwk["kid"].as_str().unwrap());
        assert_eq!(ours.kty, "RSA");
        assert_eq!(ours.n, jwk["n"].as_str().unwrap());
        assert_eq!(ours.e, "AQAB");
        assert_eq!(rsa_public_jwk(&key).unwrap(), ours);
    }

    #[test]
    fn ec_kid_matches_skopeos_fixture() {
        let jwk = fixture_jwk(ES256_FIXTURE);
        // The fixed DER prefix of a P-256 SubjectPublicKeyInfo, then the uncompressed point.
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.push(0x04);
        der.extend(b64(&jwk["x"]));
        der.extend(b64(&jwk["y"]));
        assert_eq!(libtrust_kid(&der), jwk["kid"].as_str().unwrap());
        assert_eq!(libtrust_kid(&der).len(), 12 * 4 + 11);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(rsa_public_jwk_from_spki_der(b"").is_err());
        assert!(rsa_public_jwk_from_spki_der(b"\x30\x03\x02\x01\x01").is_err());
        // A P-256 SPKI is not an RSA key.
        let ec = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        assert!(rsa_public_jwk_from_spki_der(&ec).is_err());
    }
}
