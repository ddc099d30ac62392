//! libtrust's JWS as schema1 uses it: the base64url it writes and reads, the protected
//! header's `formatLength`/`formatTail` (how the signed payload is rebuilt), and the
//! verification of one signature with the JWK in its header (RS256/384/512 and
//! ES256/384/512, with libtrust's rules on curves and algorithms).
//!
//! Pure domain: may call `signing` (an RSA key from its JWK numbers), crypto crates (rsa,
//! sha2, p256/p384/p521), base64 and serde_json; nothing of HTTP, storage or AWS.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::{Map, Value};

/// JOSE base64url: written without padding; read with or without it, as libtrust does.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One entry of `signatures`. The header is interpreted only when verifying.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct JwsSignature {
    pub(super) header: Map<String, Value>,
    pub(super) signature: String,
    pub(super) protected: String,
}

/// `formatLength` and the decoded `formatTail` of a protected header.
pub(super) fn decode_protected(protected: &str) -> Result<(usize, Vec<u8>), String> {
    #[derive(Deserialize)]
    struct Protected {
        #[serde(rename = "formatLength")]
        format_length: Option<Value>,
        #[serde(rename = "formatTail")]
        format_tail: Option<String>,
    }
    let json = BASE64URL
        .decode(protected)
        .map_err(|e| format!("not base64url: {e}"))?;
    let header: Protected =
        serde_json::from_slice(&json).map_err(|e| format!("not a JSON header: {e}"))?;
    let length = match header.format_length {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            // Go decodes JSON numbers as float64, so libtrust also takes `940.0`.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        }),
        Some(_) => None,
        None => return Err("no formatLength".to_string()),
    }
    .and_then(|n| usize::try_from(n).ok())
    .ok_or("formatLength is not a non-negative integer")?;
    let tail = header.format_tail.ok_or("no formatTail")?;
    let tail = BASE64URL
        .decode(tail)
        .map_err(|e| format!("formatTail is not base64url: {e}"))?;
    Ok((length, tail))
}

pub(super) fn verify_signature(signature: &JwsSignature, payload_b64: &str) -> Result<(), String> {
    let header = &signature.header;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err("the header has no \"alg\"".to_string()),
    };
    let jwk = match header.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        Some(_) => return Err("the header's \"jwk\" is not an object".to_string()),
        None if header.contains_key("x5c") => {
            return Err("x5c certificate chains are not supported; sign with a JWK".to_string());
        }
        None => return Err("the header has no public key (\"jwk\")".to_string()),
    };
    let sig = BASE64URL
        .decode(&signature.signature)
        .map_err(|e| format!("the signature is not base64url: {e}"))?;
    let input = format!("{}.{payload_b64}", signature.protected);
    match jwk_str(jwk, "kty")? {
        "RSA" => verify_rsa(jwk, alg, input.as_bytes(), &sig),
        "EC" => verify_ec(jwk, alg, input.as_bytes(), &sig),
        other => Err(format!("unsupported JWK key type {other:?}")),
    }
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match jwk.get(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(format!("the JWK has no string {key:?}")),
    }
}

fn jwk_bytes(jwk: &Map<String, Value>, key: &str) -> Result<Vec<u8>, String> {
    BASE64URL
        .decode(jwk_str(jwk, key)?)
        .map_err(|e| format!("the JWK's {key:?} is not base64url: {e}"))
}

fn verify_rsa(jwk: &Map<String, Value>, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), String> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier as _;
    use sha2::{Sha256, Sha384, Sha512};

    if !matches!(alg, "RS256" | "RS384" | "RS512") {
        return Err(if alg.starts_with("ES") {
            format!("an RSA key cannot verify an {alg} signature")
        } else {
            format!("unsupported signature algorithm {alg:?}")
        });
    }
    let key = crate::signing::rsa_public_key(&jwk_bytes(jwk, "n")?, &jwk_bytes(jwk, "e")?)
        .map_err(|e| format!("unusable RSA key: {e}"))?;
    let sig = Signature::try_from(sig).map_err(|_| "malformed RSA signature".to_string())?;
    let verified = match alg {
        "RS256" => VerifyingKey::<Sha256>::new(key).verify(input, &sig),
        "RS384" => VerifyingKey::<Sha384>::new(key).verify(input, &sig),
        _ => VerifyingKey::<Sha512>::new(key).verify(input, &sig),
    };
    verified.map_err(|_| format!("the {alg} signature does not match the payload"))
}

fn verify_ec(jwk: &Map<String, Value>, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), String> {
    // libtrust: each curve has exactly one algorithm, and coordinates are fixed-length.
    let crv = jwk_str(jwk, "crv")?;
    let (expected_alg, octets) = match crv {
        "P-256" => ("ES256", 32),
        "P-384" => ("ES384", 48),
        "P-521" => ("ES512", 66),
        other => return Err(format!("unsupported EC curve {other:?}")),
    };
    if alg != expected_alg {
        return Err(
            if matches!(
                alg,
                "ES256" | "ES384" | "ES512" | "RS256" | "RS384" | "RS512"
            ) {
                format!("an EC key on curve {crv} cannot verify an {alg} signature")
            } else {
                format!("unsupported signature algorithm {alg:?}")
            },
        );
    }
    let (x, y) = (jwk_bytes(jwk, "x")?, jwk_bytes(jwk, "y")?);
    if x.len() != octets || y.len() != octets {
        return Err(format!("{crv} coordinates must be {octets} bytes each"));
    }
    if sig.len() != 2 * octets {
        return Err(format!(
            "an {alg} signature is {} bytes (r||s), not {}",
            2 * octets,
            sig.len()
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * octets);
    point.push(0x04); // SEC1 uncompressed point
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);

    macro_rules! verify_with {
        ($curve:ident) => {{
            use $curve::ecdsa::signature::Verifier as _;
            let key = $curve::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| format!("the JWK is not a point on {crv}"))?;
            let sig = $curve::ecdsa::Signature::from_slice(sig)
                .map_err(|_| "malformed ECDSA signature".to_string())?;
            key.verify(input, &sig)
                .map_err(|_| format!("the {alg} signature does not match the payload"))
        }};
    }
    match crv {
        "P-256" => verify_with!(p256),
        "P-384" => verify_with!(p384),
        _ => verify_with!(p521),
    }
}
