//! The seed's (docs/seed.md) `SignedManifestBuilder`: schema1 manifests built and signed by
//! the registry.
//!
//! The output is laid out byte for byte as distribution writes it (Go's `encoding/json`
//! with a three-space indent, then libtrust's pretty signature), so that a manifest built
//! here from an image config has the same payload, and so the same digest, as distribution's
//! conversion of that image.
//!
//! The conversion from a schema2/OCI image (`Schema1Builder::from_image_config`) is in
//! `schema1_conversion`, Go's JSON in `go_format`.
//!
//! Pure domain: may call `digest`, `error`, `manifest::schema1`, `manifest::schema1_jws`
//! (base64url), `manifest::go_format`, `ports::Signer` (the only port: it signs) and
//! format/crypto crates; nothing of HTTP or storage.

use super::go_format::{go_json_compact, go_json_pretty};
use super::schema1::SignedManifest;
use super::schema1_jws::BASE64URL;
use crate::digest::Digest;
use crate::error::RegistryError;
use crate::ports::Signer;
use base64::Engine as _;
use serde::Serialize;
use std::time::SystemTime;

// Defined with the conversion that uses them; `blobs` reads them at this path.
pub use super::schema1_conversion::{EMPTY_LAYER_BLOB, EMPTY_LAYER_DIGEST};

/// The only algorithm the registry signs with.
const ALGORITHM: &str = "RS256";

/// A schema1 manifest being built: layers are added leaf first (`fsLayers` order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema1Builder {
    name: String,
    tag: String,
    // Visible to `schema1_conversion`, whose tests read what the conversion built.
    pub(super) architecture: String,
    pub(super) layers: Vec<(Digest, String)>,
}

impl Schema1Builder {
    pub fn new(name: &str, tag: &str, architecture: &str) -> Schema1Builder {
        Schema1Builder {
            name: name.to_string(),
            tag: tag.to_string(),
            architecture: architecture.to_string(),
            layers: Vec::new(),
        }
    }

    /// Appends a layer; call it leaf first, base last.
    pub fn add_layer(&mut self, blob_sum: Digest, v1_compatibility: String) {
        self.layers.push((blob_sum, v1_compatibility));
    }

    /// The manifest without signatures, as distribution writes it: Go's JSON with a
    /// three-space indent and fields in the order of distribution's `Manifest` struct.
    pub fn payload(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Payload<'a> {
            #[serde(rename = "schemaVersion")]
            schema_version: u8,
            name: &'a str,
            tag: &'a str,
            architecture: &'a str,
            #[serde(rename = "fsLayers")]
            fs_layers: Vec<FsLayer<'a>>,
            history: Vec<History<'a>>,
        }
        #[derive(Serialize)]
        struct FsLayer<'a> {
            #[serde(rename = "blobSum")]
            blob_sum: &'a Digest,
        }
        #[derive(Serialize)]
        struct History<'a> {
            #[serde(rename = "v1Compatibility")]
            v1_compatibility: &'a str,
        }
        go_json_pretty(&Payload {
            schema_version: 1,
            name: &self.name,
            tag: &self.tag,
            architecture: &self.architecture,
            fs_layers: self
                .layers
                .iter()
                .map(|(blob_sum, _)| FsLayer { blob_sum })
                .collect(),
            history: self
                .layers
                .iter()
                .map(|(_, v1)| History {
                    v1_compatibility: v1,
                })
                .collect(),
        })
    }

    /// Signs the manifest with the registry's key (RS256), timestamped now.
    pub async fn build(&self, signer: &dyn Signer) -> Result<SignedManifest, RegistryError> {
        self.build_at(signer, SystemTime::now()).await
    }

    /// [`Schema1Builder::build`] with the signature's `time` given, for reproducible output.
    pub async fn build_at(
        &self,
        signer: &dyn Signer,
        time: SystemTime,
    ) -> Result<SignedManifest, RegistryError> {
        #[derive(Serialize)]
        struct Protected<'a> {
            #[serde(rename = "formatLength")]
            format_length: usize,
            #[serde(rename = "formatTail")]
            format_tail: &'a str,
            time: &'a str,
        }
        #[derive(Serialize)]
        struct Block<'a> {
            header: Header<'a>,
            signature: &'a str,
            protected: &'a str,
        }
        #[derive(Serialize)]
        struct Header<'a> {
            jwk: Jwk<'a>,
            alg: &'a str,
        }
        // libtrust writes the JWK as a Go map: keys sorted.
        #[derive(Serialize)]
        struct Jwk<'a> {
            e: &'a str,
            kid: &'a str,
            kty: &'a str,
            n: &'a str,
        }

        let payload = self.payload();
        // libtrust signs the payload up to the final "\n}" and keeps that tail in the header.
        let split = payload
            .windows(2)
            .rposition(|w| w == b"\n}")
            .ok_or_else(|| RegistryError::internal("schema1 payload does not end with \"\\n}\""))?;
        let time = humantime::format_rfc3339_seconds(time).to_string();
        let protected = go_json_compact(&Protected {
            format_length: split,
            format_tail: &BASE64URL.encode(&payload[split..]),
            time: &time,
        });
        let protected = BASE64URL.encode(protected);
        let signing_input = format!("{protected}.{}", BASE64URL.encode(&payload));

        let signature = signer
            .sign_rs256(signing_input.as_bytes())
            .await
            .map_err(RegistryError::internal)?;
        let jwk = signer.public_jwk().await.map_err(RegistryError::internal)?;
        let block = Block {
            header: Header {
                jwk: Jwk {
                    e: &jwk.e,
                    kid: &jwk.kid,
                    kty: &jwk.kty,
                    n: &jwk.n,
                },
                alg: ALGORITHM,
            },
            signature: &BASE64URL.encode(signature),
            protected: &protected,
        };
        // libtrust's PrettySignature: the signatures indented one level (JSON text has no raw
        // newlines inside strings, so indenting after each newline is exact), spliced in
        // before the payload's closing brace.
        let signatures = go_json_pretty(&[block]);
        let mut bytes = Vec::with_capacity(split + signatures.len() + 64);
        bytes.extend_from_slice(&payload[..split]);
        bytes.extend_from_slice(b",\n   \"signatures\": ");
        for &byte in &signatures {
            bytes.push(byte);
            if byte == b'\n' {
                bytes.extend_from_slice(b"   ");
            }
        }
        bytes.extend_from_slice(b"\n}");

        SignedManifest::parse(&bytes).map_err(|e| {
            RegistryError::internal(format!("built schema1 manifest does not parse: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::manifest::schema1_conversion::tests::{RS256, RS256_DIGEST, fixture_builder};
    use crate::ports::{PublicJwk, StoreError, StoreResult};
    use crate::signing::rsa_public_jwk_from_spki_der;
    use async_trait::async_trait;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{SignatureEncoding, Signer as _};
    use serde_json::Value;
    use sha2::Sha256;
    use std::sync::Arc;
    use std::time::Duration;

    /// The `time` of the fixture's protected header: 2026-11-28T03:17:08Z.
    const FIXTURE_TIME: u64 = 1_795_835_828;

    /// A fixed RSA-2048 key for tests only (generating one is slow).
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDiLzPTWmLpmEtN
2EwzpLCco+whIlW/jwVVST7NoLpERRJ1NjWPaCA0Q4GJDbdrH/wv14tHjKqSVthS
qRUdA3fcOlIJpUoaJ2VvF+rPhh/3SdHzdm11pQK4EKRxk7JsOU6qoHYYkEUa0APM
jtgpfFVdsdubdJ94xJzlVw+NLhdkUSr4cks05V6hHr9xIaZO4Bko1RqKEMZtsm0e
vF+WA8kw0Q2l54gGz29zPlzwrK0eHiVui2M1L6KSyiYP6qSt9sxYKBIiFnsVwzPj
5GOq0ZWGdk+wYwm5i+h7MQzM0dPgSW6YHDW/p8aPAfHhOnp+0YOwhyAj+bLEvGud
95niAQKbAgMBAAECggEAGUFyX4C3DQ9TepiS1ay83cNoq+skuP7ey773KMhwKWGv
EHB3pZDXu7jn9LuX208sfn5qZRheDs4XWeTbCyzRIZb6LxffljEHoKfX28lFtiaY
2hRuCitdNNwC3f3DIqt5ebrwxN24dv3QLB4CdrYVOsuP0nlrZHWhG/NPNLv3TQeU
xT2ft0AlwYUsJd4sTahyKTBLNyq4q1IYAocFCbJnuIp6COp3AiDPU6KB92uc65DK
Kpr4l5ULCXxds+dqxvM2nmFkWBASvt1XmncxMR5M+iYtriEgodyVUZvKort61w5b
7VWq1qYafTsJTHzBBpQDaJYL3OAgTXF8gKNLlOgMjQKBgQDyTxmUpcd3F/SNDbf0
Plf6VDL2INvkm4ctJW6qpQZQ+9NGEbAY4dMrsW5UcreLgWqgDoieW/ggyf22isN0
Iocwp5nWRYLIQCjBVhpQX4o5anI34o0kxcGULvhEhYNhb/vZSzCSyxHZ33OnBU/a
kykcgen6H1kgPaU4U8QkKn45VQKBgQDu9t3mn9H2PYQ7P9FtCYy6HxQvN10hR1pX
zgFTLHgWhM3VLHN3usQK7dg1t0fBUKiFuoHSBgl6DtUI7EXl/SMRl0My9EZniRwe
eRkkpvsvziBsbcvc0DR/GT3pFINKzTkCCFm0YKf1lUVhg/wcI7YAEO0vhkfTazXw
z9le75KMLwKBgQDVL3rWKbUAtvbWU0eRgHhvKj1cBzTwQVYBBnoDcQXJooYTk+RX
P/hG7OihK/0IpGhnQeI5UblRP+YVAKlOOEKxMARNXQLfpHM3BsZICIbYVSsAuDZu
L/9MnLaZss4QoDH40AqAXGHsSoi6XhYPvIHjLvnoskP79cCzeh+LokdDsQKBgQDF
lUEs64CDhaHMC5xx969wRTo/QBu05HaCm0blKqOwmuZGGJbwrHBkSPy4jW67HKH6
0Jd+vJchYRosYo/49jEE3nklrGx6NxgU6jQr5hVTFbAhdzdUwKJnZMuX6OoV81Hr
qFPjnPfDS0UuuB7AdZaKv3QeE31YBhF3p6QnpxcY6QKBgQDAj6JQO8H9Ep/jlFSb
yd8jVjSULIrmb8ya69O+ZAxokMBu+NMzzOLpX7jIre1FwWIo8YWVzinPsCOy0dm2
TK7Gh+9pjURPFzkpqHjJKuOMIlq76EQJFdlb0j5E8juMvn0VHUQP6QZn25LMo6hW
0mISUBvOTFusRQjiz7/ynCTbqw==
-----END PRIVATE KEY-----
";

    struct TestSigner {
        key: SigningKey<Sha256>,
        jwk: Arc<PublicJwk>,
    }

    impl TestSigner {
        fn new() -> TestSigner {
            let key = rsa::PrivateKey::from_pkcs8_pem(TEST_KEY).unwrap();
            let spki = key.to_public_key().to_public_key_der().unwrap();
            let jwk = rsa_public_jwk_from_spki_der(spki.as_bytes()).unwrap();
            TestSigner {
                key: SigningKey::new(key),
                jwk: Arc::new(jwk),
            }
        }
    }

    #[async_trait]
    impl Signer for TestSigner {
        async fn sign_rs256(&self, message: &[u8]) -> StoreResult<Vec<u8>> {
            Ok(self.key.sign(message).to_vec())
        }
        async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>> {
            Ok(Arc::clone(&self.jwk))
        }
    }

    struct BrokenSigner;

    #[async_trait]
    impl Signer for BrokenSigner {
        async fn sign_rs256(&self, _: &[u8]) -> StoreResult<Vec<u8>> {
            Err(StoreError::backend("KMS is down"))
        }
        async fn public_jwk(&self) -> StoreResult<Arc<PublicJwk>> {
            Err(StoreError::backend("KMS is down"))
        }
    }

    #[tokio::test]
    async fn built_manifests_verify_and_are_laid_out_as_distributions() {
        let signer = TestSigner::new();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_TIME);
        let builder = fixture_builder();
        let built = builder.build_at(&signer, time).await.unwrap();
        built.verify().unwrap();
        assert_eq!(built.payload(), builder.payload().as_slice());
        assert_eq!(built.digest().to_string(), RS256_DIGEST);
        assert_eq!(
            built.layers(),
            SignedManifest::parse(RS256).unwrap().layers()
        );

        // Same time, so the same protected header; only the key and the signature differ.
        // Putting the fixture's in their place must give the fixture byte for byte.
        let ours: Value = serde_json::from_slice(built.bytes()).unwrap();
        let theirs: Value = serde_json::from_slice(RS256).unwrap();
        let (ours, theirs) = (&ours["signatures"][0], &theirs["signatures"][0]);
        assert_eq!(ours["protected"], theirs["protected"]);
        let mut text = String::from_utf8(built.bytes().to_vec()).unwrap();
        for pointer in ["/signature", "/header/jwk/n", "/header/jwk/kid"] {
            let from = ours.pointer(pointer).unwrap().as_str().unwrap();
            let to = theirs.pointer(pointer).unwrap().as_str().unwrap();
            text = text.replacen(from, to, 1);
        }
        assert_eq!(text, String::from_utf8_lossy(RS256));

        // The protected header keeps "\n}" as the tail, as libtrust does.
        let protected = BASE64URL
            .decode(ours["protected"].as_str().unwrap())
            .unwrap();
        let protected: Value = serde_json::from_slice(&protected).unwrap();
        assert_eq!(
            BASE64URL
                .decode(protected["formatTail"].as_str().unwrap())
                .unwrap(),
            b"\n}"
        );
        assert_eq!(protected["time"], "2026-11-28T03:17:08Z");

        // And the signature covers the payload.
        let tampered =
            String::from_utf8_lossy(built.bytes()).replacen("add layer0", "add layer9", 1);
        let err = SignedManifest::parse(tampered.as_bytes())
            .unwrap()
            .verify()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestUnverified);
    }

    #[tokio::test]
    async fn build_signs_now_and_handles_any_layers() {
        let signer = TestSigner::new();
        let mut builder = Schema1Builder::new("ns/repo", "latest", "arm64");
        let blob = Digest::sha256(b"layer");
        // v1 ids are 64 lowercase hex digits: the built manifest is parsed as any other.
        let (leaf, base) = ("1".repeat(64), "2".repeat(64));
        builder.add_layer(
            blob.clone(),
            format!(r#"{{"id":"{leaf}","parent":"{base}","created":"x <&> y"}}"#),
        );
        builder.add_layer(
            blob.clone(),
            format!(r#"{{"id":"{base}","container_config":{{"Cmd":["a","b"]}}}}"#),
        );
        let built = builder.build(&signer).await.unwrap();
        built.verify().unwrap();
        assert_eq!(built.name(), "ns/repo");
        assert_eq!(built.tag(), "latest");
        assert_eq!(built.architecture(), "arm64");
        assert_eq!(built.digest(), &Digest::sha256(&builder.payload()));
        let layers = built.layers();
        assert_eq!(layers[0].v1.id, leaf);
        assert_eq!(layers[0].v1.created.as_deref(), Some("x <&> y"));
        assert_eq!(layers[1].v1.command.as_deref(), Some(r#"["a","b"]"#));
        // Go escapes HTML characters inside strings.
        let payload = String::from_utf8(builder.payload()).unwrap();
        assert!(payload.contains(r#"x \u003c\u0026\u003e y"#), "{payload}");
        assert!(payload.starts_with("{\n   \"schemaVersion\": 1,\n   \"name\": \"ns/repo\",\n"));
        assert!(payload.ends_with("\n      }\n   ]\n}"));
    }

    #[tokio::test]
    async fn signer_failures_are_internal_errors() {
        let err = fixture_builder().build(&BrokenSigner).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unknown);
        assert!(!err.message.contains("KMS"));
    }
}
