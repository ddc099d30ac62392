//! Docker image manifest schema 1, signed (`v1+prettyjws`, and `v1+json`).
//!
//! A schema1 manifest is a JSON document with a libtrust "pretty signature": the signed
//! payload is the document without its `signatures`, rebuilt from the first `formatLength`
//! bytes and the base64url `formatTail` of the protected header. Everything the registry
//! needs (name, tag, layers, the digest) is read from that payload, never from the outer
//! document, so that what is verified is what is stored and named by the digest
//! (distribution does the same).
//!
//! The JWS side (base64url, the protected header, verifying a signature with its JWK) is in
//! `schema1_jws`.
//!
//! Pure domain: may call `digest`, `error`, `manifest::schema1_jws` and format crates;
//! nothing of HTTP or storage.

use super::invalid;
use super::schema1_jws::{BASE64URL, JwsSignature, decode_protected, verify_signature};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

pub const MEDIA_TYPE_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const MEDIA_TYPE_UNSIGNED: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// Clients sign once; a bound keeps a 4 MiB manifest from asking for thousands of
/// verifications, each hashing the whole payload.
const MAX_SIGNATURES: usize = 16;

/// A parsed schema1 manifest with at least one signature (not yet verified: call
/// [`SignedManifest::verify`]).
#[derive(Clone, Debug)]
pub struct SignedManifest {
    bytes: Vec<u8>,
    payload: Vec<u8>,
    digest: Digest,
    name: String,
    tag: String,
    architecture: String,
    layers: Vec<Layer>,
    signatures: Vec<JwsSignature>,
}

/// One `fsLayers` entry with its `history` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub blob_sum: Digest,
    pub v1: V1Compatibility,
    /// The `v1Compatibility` string exactly as in the manifest.
    pub v1_json: String,
}

/// What the registry keeps of a `v1Compatibility` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Compatibility {
    pub id: String,
    pub parent: Option<String>,
    pub created: Option<String>,
    pub comment: Option<String>,
    /// `container_config.Cmd` as compact JSON, when it is a non-empty list.
    pub command: Option<String>,
}

impl V1Compatibility {
    /// Reads a `v1Compatibility` string: a JSON object with a string `id`.
    pub fn parse(v1_json: &str) -> Result<V1Compatibility, RegistryError> {
        parse_v1(v1_json).map_err(|e| invalid(format!("v1Compatibility: {e}")))
    }
}

impl SignedManifest {
    /// Parses a schema1 manifest. Malformed → `MANIFEST_INVALID`; well formed but unsigned →
    /// `MANIFEST_UNVERIFIED`. Does not verify the signatures.
    pub fn parse(bytes: &[u8]) -> Result<SignedManifest, RegistryError> {
        #[derive(Deserialize)]
        struct Envelope {
            signatures: Option<Vec<JwsSignature>>,
        }
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("schema1 manifest is malformed: {e}")))?;
        let signatures = envelope.signatures.unwrap_or_default();
        if signatures.is_empty() {
            // Unsigned, the document is its own payload: report a malformed one as such.
            Body::parse(bytes)?;
            return Err(RegistryError::new(
                ErrorCode::ManifestUnverified,
                "schema1 manifest has no signatures",
            ));
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(invalid(format!(
                "schema1 manifest has {} signatures; at most {MAX_SIGNATURES} are accepted",
                signatures.len()
            )));
        }

        // Every signature must describe the same payload (libtrust refuses a mismatch).
        let mut format: Option<(usize, Vec<u8>)> = None;
        for (i, signature) in signatures.iter().enumerate() {
            let this = decode_protected(&signature.protected)
                .map_err(|e| invalid(format!("signatures[{i}].protected: {e}")))?;
            match &format {
                None => format = Some(this),
                Some(first) if *first == this => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "signatures[{i}] has another formatLength or formatTail than signatures[0]"
                    )));
                }
            }
        }
        let Some((format_length, format_tail)) = format else {
            return Err(invalid("schema1 manifest has no signatures"));
        };
        let Some(head) = bytes.get(..format_length) else {
            return Err(invalid(format!(
                "formatLength {format_length} is past the end of the {}-byte manifest",
                bytes.len()
            )));
        };
        let mut payload = Vec::with_capacity(head.len() + format_tail.len());
        payload.extend_from_slice(head);
        payload.extend_from_slice(&format_tail);

        let body = Body::parse(&payload)?;
        Ok(SignedManifest {
            bytes: bytes.to_vec(),
            digest: Digest::sha256(&payload),
            payload,
            name: body.name,
            tag: body.tag,
            architecture: body.architecture,
            layers: body.layers,
            signatures,
        })
    }

    /// The manifest exactly as pushed, signatures included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signed payload: the manifest without its signatures.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// SHA-256 of the payload: the manifest's `Docker-Content-Digest`.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The `architecture` field; empty when absent (distribution reads it the same way).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The layers in `fsLayers` order: the leaf first, the base last.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Verifies every signature over the payload, as libtrust does: the key is the
    /// header's `jwk`, the signing input `protected + "." + base64url(payload)`.
    /// Any failure → `MANIFEST_UNVERIFIED`.
    pub fn verify(&self) -> Result<(), RegistryError> {
        let payload_b64 = BASE64URL.encode(&self.payload);
        for (i, signature) in self.signatures.iter().enumerate() {
            verify_signature(signature, &payload_b64).map_err(|e| {
                RegistryError::new(
                    ErrorCode::ManifestUnverified,
                    format!("schema1 signature {i} does not verify: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// The fields of a payload, checked.
struct Body {
    name: String,
    tag: String,
    architecture: String,
    layers: Vec<Layer>,
}

impl Body {
    fn parse(payload: &[u8]) -> Result<Body, RegistryError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<Value>,
            name: Option<String>,
            tag: Option<String>,
            architecture: Option<String>,
            #[serde(rename = "fsLayers")]
            fs_layers: Option<Vec<FsLayer>>,
            history: Option<Vec<History>>,
        }
        #[derive(Deserialize)]
        struct FsLayer {
            #[serde(rename = "blobSum")]
            blob_sum: String,
        }
        #[derive(Deserialize)]
        struct History {
            #[serde(rename = "v1Compatibility")]
            v1_compatibility: String,
        }

        let wire: Wire = serde_json::from_slice(payload)
            .map_err(|e| invalid(format!("schema1 manifest payload is malformed: {e}")))?;
        match &wire.schema_version {
            Some(v) if v.as_u64() == Some(1) => {}
            Some(v) => return Err(invalid(format!("schemaVersion must be 1, not {v}"))),
            None => return Err(invalid("schema1 manifest has no schemaVersion")),
        }
        let name = wire
            .name
            .ok_or_else(|| invalid("schema1 manifest has no name"))?;
        let tag = wire
            .tag
            .ok_or_else(|| invalid("schema1 manifest has no tag"))?;
        let fs_layers = wire
            .fs_layers
            .ok_or_else(|| invalid("schema1 manifest has no fsLayers"))?;
        let history = wire
            .history
            .ok_or_else(|| invalid("schema1 manifest has no history"))?;
        if fs_layers.len() != history.len() {
            return Err(invalid(format!(
                "schema1 manifest has {} fsLayers but {} history entries",
                fs_layers.len(),
                history.len()
            )));
        }
        // The leaf names the image a tag points at: without one there is no image.
        if fs_layers.is_empty() {
            return Err(invalid("schema1 manifest has no layers"));
        }
        let layers = fs_layers
            .into_iter()
            .zip(history)
            .enumerate()
            .map(|(i, (fs_layer, history))| {
                let blob_sum = fs_layer.blob_sum.parse::<Digest>().map_err(|e| {
                    invalid(format!(
                        "fsLayers[{i}].blobSum {:?} is not a digest: {e}",
                        fs_layer.blob_sum
                    ))
                })?;
                let v1 = parse_v1(&history.v1_compatibility)
                    .map_err(|e| invalid(format!("history[{i}].v1Compatibility: {e}")))?;
                Ok(Layer {
                    blob_sum,
                    v1,
                    v1_json: history.v1_compatibility,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(Body {
            name,
            tag,
            architecture: wire.architecture.unwrap_or_default(),
            layers,
        })
    }
}

fn parse_v1(v1_json: &str) -> Result<V1Compatibility, String> {
    let object: Map<String, Value> =
        serde_json::from_str(v1_json).map_err(|e| format!("not a JSON object: {e}"))?;
    let optional = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key:?} is not a string")),
    };
    let id = match optional("id")? {
        Some(id) if !id.is_empty() => id,
        _ => return Err("no \"id\"".to_string()),
    };
    check_v1_id("id", &id)?;
    // An empty parent names no image: the layer is a base.
    let parent = optional("parent")?.filter(|p| !p.is_empty());
    if let Some(parent) = &parent {
        check_v1_id("parent", parent)?;
    }
    let command = match object.get("container_config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(config)) => match config.get("Cmd") {
            // The seed keeps a non-empty command list as JSON text.
            Some(cmd @ Value::Array(list)) if !list.is_empty() => Some(cmd.to_string()),
            _ => None,
        },
        Some(_) => return Err("\"container_config\" is not an object".to_string()),
    };
    Ok(V1Compatibility {
        id,
        parent,
        created: optional("created")?,
        comment: optional("comment")?,
        command,
    })
}

/// A v1 image id is 64 lowercase hex digits: docker's rule (`image/v1.ValidateID`, which
/// refuses any other id when it pulls a schema1 image), so an id the registry keeps is one
/// every client takes; the ids also key the registry's stored v1 images.
fn check_v1_id(field: &str, id: &str) -> Result<(), String> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "{field:?} {:?} is not a v1 image id (64 lowercase hex digits)",
            id.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES256: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema1-es256-skopeo.json");
    const RS256: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema1-rs256-distribution.json");
    const ES256_DIGEST: &str =
        "sha256:fc8270262395733bcbece2cc6c202bf29922ab192196c157039fbb295ef60b1a";
    const RS256_DIGEST: &str =
        "sha256:533e7bbd24f82a13d3c2fbc62762ce9c85848ace676188fc82b4c86dff1bda87";

    fn code(result: Result<SignedManifest, RegistryError>) -> ErrorCode {
        result.expect_err("should fail").code
    }

    fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
        text.replacen(from, to, 1).into_bytes()
    }

    /// `body` with a structurally valid (not cryptographically valid) signature whose
    /// payload is exactly `body`.
    fn signed(body: &str) -> Vec<u8> {
        let cut = body.rfind('}').unwrap();
        let protected = serde_json::json!({
            "formatLength": cut,
            "formatTail": BASE64URL.encode(&body[cut..]),
        });
        let protected = BASE64URL.encode(protected.to_string());
        format!(
            r#"{},"signatures":[{{"header":{{"alg":"ES256"}},"signature":"AA","protected":"{protected}"}}]}}"#,
            &body[..cut]
        )
        .into_bytes()
    }

    const V1_LEAF: &str = r#"{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"parent\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}"#;
    const V1_BASE: &str =
        r#"{\"id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}"#;
    const BLOB: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn body_with(fs_layers: &str, history: &str) -> String {
        format!(
            r#"{{"schemaVersion":1,"name":"a/b","tag":"t","fsLayers":{fs_layers},"history":{history}}}"#
        )
    }

    #[test]
    fn fixtures_parse_verify_and_have_their_digests() {
        for (bytes, digest, name) in [
            (ES256, ES256_DIGEST, "fixtures/schema1"),
            (RS256, RS256_DIGEST, "fixtures/schema2"),
        ] {
            let m = SignedManifest::parse(bytes).unwrap();
            m.verify().unwrap();
            assert_eq!(m.digest().to_string(), digest);
            assert_eq!(m.bytes(), bytes);
            assert_eq!(m.name(), name);
            assert_eq!(m.tag(), "tiny");
            assert_eq!(m.architecture(), "amd64");
            assert!(!m.payload().windows(10).any(|w| w == b"signatures"));
        }
    }

    #[test]
    fn layers_are_leaf_first_with_their_v1_fields() {
        for bytes in [ES256, RS256] {
            let m = SignedManifest::parse(bytes).unwrap();
            let layers = m.layers();
            assert_eq!(layers.len(), 2);
            let (leaf, base) = (&layers[0], &layers[1]);
            assert_eq!(
                leaf.blob_sum.to_string(),
                "sha256:f2e9a1681beca57f3d4744cc55ce690d3eb4ae9d90c58a607827a0f47fd50f0e"
            );
            assert_eq!(
                base.blob_sum.to_string(),
                "sha256:24a863956fae3a40fb5b94126d87434c1f5fba66a4569ba3db6b9a37f26416c4"
            );
            let base_id = "3f1bfe01fd29e475ed7cc3e3ae3e546abe34fe951d09bd372223f83fc2fd3445";
            assert_eq!(
                leaf.v1,
                V1Compatibility {
                    id: "6bd1a52e6ec3dd47e1fe902fa7a94082643c00a68229ab92c568e0cbfa8e7d34".into(),
                    parent: Some(base_id.into()),
                    created: Some("2026-01-01T00:00:00Z".into()),
                    comment: None,
                    // The leaf has `config`, not `container_config`.
                    command: None,
                }
            );
            assert_eq!(
                base.v1,
                V1Compatibility {
                    id: base_id.into(),
                    parent: None,
                    created: Some("2026-01-01T00:00:00Z".into()),
                    comment: None,
                    command: Some(r#"["/bin/sh -c add layer0"]"#.into()),
                }
            );
            assert!(
                leaf.v1_json
                    .starts_with(r#"{"architecture":"amd64","config":"#)
            );
            assert_eq!(V1Compatibility::parse(&base.v1_json).unwrap(), base.v1);
        }
    }

    #[test]
    fn one_changed_payload_byte_fails_verification() {
        for bytes in [ES256, RS256] {
            let tampered = replace(bytes, "add layer0", "add layer9");
            let m = SignedManifest::parse(&tampered).unwrap();
            assert_eq!(m.verify().unwrap_err().code, ErrorCode::ManifestUnverified);
        }
    }

    #[test]
    fn a_changed_signature_fails_verification() {
        for bytes in [ES256, RS256] {
            let original = SignedManifest::parse(bytes).unwrap();
            let sig = original.signatures[0].signature.clone();
            // Flip the first character: it carries six full bits of the signature.
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            let tampered = replace(bytes, &sig, &format!("{flipped}{}", &sig[1..]));
            let err = SignedManifest::parse(&tampered)
                .unwrap()
                .verify()
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::ManifestUnverified);
            assert!(err.message.contains("does not match"), "{}", err.message);
        }
    }

    #[test]
    fn header_problems_fail_verification() {
        let unverified = |bytes: Vec<u8>, expect: &str| {
            let err = SignedManifest::parse(&bytes).unwrap().verify().unwrap_err();
            assert_eq!(err.code, ErrorCode::ManifestUnverified);
            assert!(
                err.message.contains(expect),
                "{} lacks {expect:?}",
                err.message
            );
        };
        // The header is not signed, so each of these still parses.
        unverified(
            replace(ES256, r#""alg":"ES256""#, r#""alg":"ES384""#),
            "cannot verify",
        );
        unverified(
            replace(RS256, r#""alg": "RS256""#, r#""alg": "ES256""#),
            "cannot verify",
        );
        unverified(
            replace(RS256, r#""alg": "RS256""#, r#""alg": "RS384""#),
            "does not match",
        );
        unverified(
            replace(RS256, r#""alg": "RS256""#, r#""alg": "HS256""#),
            "unsupported",
        );
        unverified(
            replace(ES256, r#""alg":"ES256""#, r#""alg":"none""#),
            "unsupported",
        );
        unverified(
            replace(ES256, r#""jwk":"#, r#""x5c":["AAAA"],"jwk0":"#),
            "x5c",
        );
        unverified(replace(ES256, r#""jwk":"#, r#""jwk0":"#), "no public key");
        unverified(
            replace(ES256, r#""crv":"P-256""#, r#""crv":"P-999""#),
            "curve",
        );
        unverified(
            replace(ES256, r#""kty":"EC""#, r#""kty":"oct""#),
            "key type",
        );
        unverified(
            replace(RS256, r#""e": "AQAB""#, r#""e": "AQAB!""#),
            "base64url",
        );
        unverified(
            replace(RS256, r#""e": "AQAB""#, r#""e": "Aw""#),
            "does not match",
        );
        unverified(
            replace(ES256, "u19xhKHzQ0U1", "u19xhKHzQ0U2"),
            "not a point",
        );
        // Structurally valid, cryptographically garbage: never a panic.
        unverified(
            signed(&body_with(
                &format!(r#"[{{"blobSum":"{BLOB}"}}]"#),
                &format!(r#"[{{"v1Compatibility":"{V1_BASE}"}}]"#),
            )),
            "public key",
        );
    }

    #[test]
    fn unsigned_manifests_are_unverified() {
        let body = body_with(
            &format!(r#"[{{"blobSum":"{BLOB}"}}]"#),
            &format!(r#"[{{"v1Compatibility":"{V1_BASE}"}}]"#),
        );
        let err = SignedManifest::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestUnverified);
        assert_eq!(err.message, "schema1 manifest has no signatures");
        let empty = format!("{},\"signatures\":[]}}", &body[..body.len() - 1]);
        assert_eq!(
            code(SignedManifest::parse(empty.as_bytes())),
            ErrorCode::ManifestUnverified
        );
        // A malformed unsigned manifest is reported as malformed.
        assert_eq!(
            code(SignedManifest::parse(br#"{"schemaVersion":1}"#)),
            ErrorCode::ManifestInvalid
        );
    }

    #[test]
    fn malformed_manifests_are_invalid() {
        let one_layer = |v1: &str| {
            body_with(
                &format!(r#"[{{"blobSum":"{BLOB}"}}]"#),
                &format!(r#"[{{"v1Compatibility":"{v1}"}}]"#),
            )
        };
        // The helper's own output parses.
        let good = body_with(
            &format!(r#"[{{"blobSum":"{BLOB}"}},{{"blobSum":"{BLOB}"}}]"#),
            &format!(r#"[{{"v1Compatibility":"{V1_LEAF}"}},{{"v1Compatibility":"{V1_BASE}"}}]"#),
        );
        let m = SignedManifest::parse(&signed(&good)).unwrap();
        assert_eq!(m.payload(), good.as_bytes());
        assert_eq!(
            m.layers()[0].v1.parent.as_deref(),
            Some("b".repeat(64).as_str())
        );

        let bodies = [
            body_with(&format!(r#"[{{"blobSum":"{BLOB}"}}]"#), "[]"),
            body_with("[]", "[]"),
            body_with(
                r#"[{"blobSum":"sha256:abc"}]"#,
                &format!(r#"[{{"v1Compatibility":"{V1_BASE}"}}]"#),
            ),
            body_with(
                r#"[{"blobSum":5}]"#,
                &format!(r#"[{{"v1Compatibility":"{V1_BASE}"}}]"#),
            ),
            body_with(
                r#"[{}]"#,
                &format!(r#"[{{"v1Compatibility":"{V1_BASE}"}}]"#),
            ),
            body_with(
                &format!(r#"[{{"blobSum":"{BLOB}"}}]"#),
                r#"[{"v1Compatibility":{}}]"#,
            ),
            one_layer("not json"),
            one_layer("[]"),
            one_layer(r#"{}"#),
            one_layer(r#"{\"id\":5}"#),
            one_layer(r#"{\"id\":\"\"}"#),
            one_layer(r#"{\"id\":\"a\",\"parent\":[]}"#),
            one_layer(r#"{\"id\":\"a\",\"container_config\":\"x\"}"#),
            // v1 ids: 64 lowercase hex digits, the id and a parent alike (docker's rule).
            one_layer(r#"{\"id\":\"a\"}"#),
            one_layer(&format!(r#"{{\"id\":\"{}\"}}"#, "a".repeat(63))),
            one_layer(&format!(r#"{{\"id\":\"{}\"}}"#, "a".repeat(65))),
            one_layer(&format!(r#"{{\"id\":\"{}\"}}"#, "A".repeat(64))),
            one_layer(&format!(r#"{{\"id\":\"{}\"}}"#, "g".repeat(64))),
            one_layer(&format!(r#"{{\"id\":\"sha256:{}\"}}"#, "a".repeat(64))),
            one_layer(&format!(r#"{{\"id\":\"../{}\"}}"#, "a".repeat(61))),
            one_layer(&format!(
                r#"{{\"id\":\"{}\",\"parent\":\"base\"}}"#,
                "a".repeat(64)
            )),
            one_layer(&format!(
                r#"{{\"id\":\"{}\",\"parent\":\"{}\"}}"#,
                "a".repeat(64),
                "B".repeat(64)
            )),
            r#"{"schemaVersion":2,"name":"a","tag":"t","fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":"1","name":"a","tag":"t","fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":1e400,"name":"a","tag":"t","fsLayers":[],"history":[]}"#
                .to_string(),
            r#"{"name":"a","tag":"t","fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":1,"tag":"t","fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":1,"name":"a","fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":1,"name":"a","tag":"t","history":[]}"#.to_string(),
            r#"{"schemaVersion":1,"name":"a","tag":5,"fsLayers":[],"history":[]}"#.to_string(),
            r#"{"schemaVersion":1,"name":"a","tag":"t","fsLayers":{},"history":[]}"#.to_string(),
        ];
        for body in &bodies {
            let err = SignedManifest::parse(&signed(body)).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::ManifestInvalid,
                "{body}: {}",
                err.message
            );
        }

        let protected = |header: &str| {
            let p = BASE64URL.encode(header);
            format!(
                r#"{{"schemaVersion":1,"signatures":[{{"header":{{}},"signature":"","protected":"{p}"}}]}}"#
            )
        };
        let raw: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            b"[]".to_vec(),
            b"null".to_vec(),
            br#"{"signatures":5}"#.to_vec(),
            br#"{"signatures":[5]}"#.to_vec(),
            br#"{"signatures":[{"header":{},"signature":""}]}"#.to_vec(),
            br#"{"signatures":[{"header":[],"signature":"","protected":""}]}"#.to_vec(),
            br#"{"signatures":[{"header":{},"signature":"","protected":"!!!"}]}"#.to_vec(),
            protected("not json").into_bytes(),
            protected(r#"{"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":10}"#).into_bytes(),
            protected(r#"{"formatLength":100000,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":-1,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":1.5,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":"5","formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":1e300,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":1e400,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":99999999999999999999999999,"formatTail":"fQ"}"#)
                .into_bytes(),
            protected(r#"{"formatLength":18446744073709551615,"formatTail":"fQ"}"#).into_bytes(),
            protected(r#"{"formatLength":5,"formatTail":"!"}"#).into_bytes(),
            // Cuts the document in the middle: the payload is not JSON.
            protected(r#"{"formatLength":5,"formatTail":"fQ"}"#).into_bytes(),
        ];
        for bytes in &raw {
            let err = SignedManifest::parse(bytes).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::ManifestInvalid,
                "{}: {}",
                String::from_utf8_lossy(bytes),
                err.message
            );
        }
    }

    #[test]
    fn signatures_must_agree_on_the_payload() {
        let text = std::str::from_utf8(RS256).unwrap();
        let manifest: Value = serde_json::from_slice(RS256).unwrap();
        let block = manifest["signatures"][0].clone();
        let mut other = block.clone();
        other["protected"] = Value::String(
            BASE64URL
                .encode(r#"{"formatLength":939,"formatTail":"Cn0","time":"2026-11-28T03:17:08Z"}"#),
        );
        let two = text.replacen("\n   ]\n}", &format!(",\n{other}\n   ]\n}}"), 1);
        let err = SignedManifest::parse(two.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
        assert!(err.message.contains("formatLength"), "{}", err.message);

        // Two agreeing signatures: both are verified.
        let twice = text.replacen("\n   ]\n}", &format!(",\n{block}\n   ]\n}}"), 1);
        SignedManifest::parse(twice.as_bytes())
            .unwrap()
            .verify()
            .unwrap();
        let mut bad = block.clone();
        bad["header"]["alg"] = Value::String("RS512".into());
        let second_bad = text.replacen("\n   ]\n}", &format!(",\n{bad}\n   ]\n}}"), 1);
        let err = SignedManifest::parse(second_bad.as_bytes())
            .unwrap()
            .verify()
            .unwrap_err();
        assert!(
            err.message.starts_with("schema1 signature 1 "),
            "{}",
            err.message
        );
    }

    #[test]
    fn no_prefix_or_flipped_byte_panics() {
        for bytes in [ES256, RS256] {
            for end in 0..bytes.len() {
                if let Ok(m) = SignedManifest::parse(&bytes[..end]) {
                    let _ = m.verify();
                }
            }
            for i in 0..bytes.len() {
                let mut copy = bytes.to_vec();
                copy[i] ^= 0x01;
                if let Ok(m) = SignedManifest::parse(&copy) {
                    let _ = m.verify();
                }
            }
        }
    }
}
