//! The seed's (docs/seed.md) `SignedManifestBuilder`: schema1 manifests built and signed by
//! the registry.
//!
//! The output is laid out byte for byte as distribution writes it (Go's `encoding/json`
//! with a three-space indent, then libtrust's pretty signature), so that a manifest built
//! here from an image config has the same payload, and so the same digest, as distribution's
//! conversion of that image.
//!
//! Pure domain: may call `digest`, `error`, `manifest::schema1`, `ports::Signer` (the only
//! port: it signs) and format/crypto crates; nothing of HTTP or storage.

use super::schema1::{BASE64URL, SignedManifest};
use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError};
use crate::ports::Signer;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256, Sha384};
use std::collections::BTreeMap;
use std::io;
use std::time::SystemTime;

/// The gzipped empty tar distribution uses as the blob of a history entry without a layer.
pub const EMPTY_LAYER_DIGEST: &str =
    "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

/// The only algorithm the registry signs with.
const ALGORITHM: &str = "RS256";

/// The gzipped empty tar itself (32 bytes), for a registry that must serve
/// [`EMPTY_LAYER_DIGEST`] after a conversion that used it.
pub const EMPTY_LAYER_BLOB: [u8; 32] = [
    31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255,
    46, 175, 181, 239, 0, 4, 0, 0,
];

/// A schema1 manifest being built: layers are added leaf first (`fsLayers` order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema1Builder {
    name: String,
    tag: String,
    architecture: String,
    layers: Vec<(Digest, String)>,
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

    /// Distribution's conversion of a schema2/OCI image to schema1 (`configManifestBuilder`
    /// in `manifest/schema1/config_builder.go`): one schema1 layer per config history entry,
    /// empty-layer entries pointing at [`EMPTY_LAYER_DIGEST`], v1 ids chained by hashing.
    /// `config` is the image config blob, `layers` the manifest's layer digests in order.
    /// A config that distribution could not convert → `MANIFEST_INVALID`.
    pub fn from_image_config(
        name: &str,
        tag: &str,
        config: &[u8],
        layers: &[Digest],
    ) -> Result<Schema1Builder, RegistryError> {
        // Only what distribution reads of the config, with Go's tolerance of nulls.
        #[derive(Deserialize)]
        struct ImageConfig {
            rootfs: Option<RootFs>,
            history: Option<Vec<Option<HistoryEntry>>>,
            architecture: Option<String>,
        }
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(rename = "type")]
            _type: Option<String>,
            diff_ids: Option<Vec<Option<String>>>,
            base_layer: Option<String>,
        }
        #[derive(Default, Deserialize)]
        struct HistoryEntry {
            // Raw: Go reads the time from the JSON text between the quotes.
            created: Option<Box<RawValue>>,
            author: Option<String>,
            created_by: Option<String>,
            comment: Option<String>,
            empty_layer: Option<bool>,
        }
        // distribution's fake v1 image of a non-leaf entry, fields in its order.
        #[derive(Serialize)]
        struct V1<'a> {
            id: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            parent: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            comment: &'a str,
            created: &'a str,
            container_config: ContainerConfig<'a>,
            #[serde(skip_serializing_if = "str::is_empty")]
            author: &'a str,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            throwaway: bool,
        }
        #[derive(Serialize)]
        struct ContainerConfig<'a> {
            #[serde(rename = "Cmd")]
            cmd: [&'a str; 1],
        }

        let image: ImageConfig = serde_json::from_slice(config)
            .map_err(|e| invalid(format!("image config is malformed: {e}")))?;
        let history: Vec<HistoryEntry> = image
            .history
            .unwrap_or_default()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        // Go decodes every history time, the top one's included, before converting anything.
        let created = history
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                go_time(entry.created.as_deref())
                    .map_err(|e| invalid(format!("image config history[{i}].created: {e}")))
            })
            .collect::<Result<Vec<String>, RegistryError>>()?;
        let Some((top, lower)) = history.split_last() else {
            return Err(invalid(
                "image config has no history; a schema1 manifest cannot be made from it",
            ));
        };
        let rootfs = image
            .rootfs
            .ok_or_else(|| invalid("image config has no rootfs"))?;
        let diff_ids = rootfs.diff_ids.map_or(0, |ids| ids.len());
        if diff_ids != layers.len() {
            return Err(invalid(format!(
                "image config has {diff_ids} rootfs.diff_ids but the manifest has {} layers",
                layers.len()
            )));
        }
        let empty_layer: Digest = EMPTY_LAYER_DIGEST
            .parse()
            .map_err(|e| RegistryError::internal(format!("EMPTY_LAYER_DIGEST: {e}")))?;
        let mut next_layer = layers.iter();
        let mut blob_of = |entry: &HistoryEntry| -> Result<Digest, RegistryError> {
            if entry.empty_layer.unwrap_or(false) {
                Ok(empty_layer.clone())
            } else {
                next_layer.next().cloned().ok_or_else(|| {
                    invalid("image config has more non-empty layers in history than in rootfs")
                })
            }
        };

        // Base first, as distribution walks the history.
        let mut entries: Vec<(Digest, String)> = Vec::with_capacity(history.len());
        let mut parent = String::new();
        for (i, entry) in lower.iter().enumerate() {
            let blob = blob_of(entry)?;
            let id = sha256_hex(format!("{} {parent}", blob.hex()).as_bytes());
            // Windows base layers: the first layer's parent is derived from it.
            if let Some(base_layer) = rootfs
                .base_layer
                .as_deref()
                .filter(|b| i == 0 && !b.is_empty())
            {
                parent = hex::encode(&Sha384::digest(base_layer.as_bytes())[..32]);
            }
            let v1 = go_json_compact(&V1 {
                id: &id,
                parent: &parent,
                comment: entry.comment.as_deref().unwrap_or_default(),
                created: &created[i],
                container_config: ContainerConfig {
                    cmd: [entry.created_by.as_deref().unwrap_or_default()],
                },
                author: entry.author.as_deref().unwrap_or_default(),
                throwaway: entry.empty_layer.unwrap_or(false),
            });
            entries.push((blob, String::from_utf8_lossy(&v1).into_owned()));
            parent = id;
        }

        // The leaf: the config itself, without what v1 did not have, plus id and parent.
        let blob = blob_of(top)?;
        let mut hasher = Sha256::new();
        hasher.update(format!("{} {parent} ", blob.hex()).as_bytes());
        hasher.update(config);
        let id = hex::encode(hasher.finalize());
        let leaf = leaf_v1(config, &id, &parent, top.empty_layer.unwrap_or(false))?;

        let mut builder =
            Schema1Builder::new(name, tag, image.architecture.as_deref().unwrap_or(""));
        builder.add_layer(blob, leaf);
        for (blob, v1) in entries.into_iter().rev() {
            builder.add_layer(blob, v1);
        }
        Ok(builder)
    }
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// distribution's `MakeV1ConfigFromConfig`: the config as a Go map (keys sorted, values
/// compacted as Go does) without `rootfs` and `history`, with `id`, `parent` and
/// `throwaway`.
fn leaf_v1(
    config: &[u8],
    id: &str,
    parent: &str,
    throwaway: bool,
) -> Result<String, RegistryError> {
    let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(config)
        .map_err(|e| invalid(format!("image config is not a JSON object: {e}")))?;
    let mut fields: BTreeMap<String, String> = fields
        .into_iter()
        .filter(|(key, _)| key != "rootfs" && key != "history")
        .map(|(key, value)| (key, go_compact(value.get())))
        .collect();
    fields.insert("id".into(), go_string(id));
    if !parent.is_empty() {
        fields.insert("parent".into(), go_string(parent));
    }
    if throwaway {
        fields.insert("throwaway".into(), "true".into());
    }
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&go_string(key));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    Ok(out)
}

/// A Go `time.Time` read from JSON and written back, as distribution round-trips history
/// times: RFC 3339 strictly (Go 1.20+), fraction cut to nanoseconds without trailing zeros,
/// a zero offset written `Z`; absent or null is Go's zero time.
fn go_time(raw: Option<&RawValue>) -> Result<String, String> {
    const ZERO: &str = "0001-01-01T00:00:00Z";
    let Some(raw) = raw.map(RawValue::get) else {
        return Ok(ZERO.to_string());
    };
    if raw == "null" {
        return Ok(ZERO.to_string());
    }
    let text = raw
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("{raw} is not a JSON string"))?;
    go_rfc3339(text).ok_or_else(|| format!("{raw} is not an RFC 3339 time"))
}

fn go_rfc3339(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize, min: u32, max: u32| -> Option<u32> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        (min..=max).contains(&n).then_some(n)
    };
    let year = number(0, 4, 0, 9999)?;
    let month = number(5, 7, 1, 12)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    number(8, 10, 1, days)?;
    number(11, 13, 0, 23)?;
    number(14, 16, 0, 59)?;
    number(17, 19, 0, 59)?;
    if [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
        .iter()
        .any(|&(at, c)| b.get(at) != Some(&c))
    {
        return None;
    }
    let mut rest = &text[19..];

    let mut fraction = String::new();
    if rest.len() >= 2 && rest.starts_with('.') && rest.as_bytes()[1].is_ascii_digit() {
        let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
        // Go keeps nanoseconds and writes them without trailing zeros.
        let kept = rest[1..1 + digits.min(9)].trim_end_matches('0');
        if !kept.is_empty() {
            fraction = format!(".{kept}");
        }
        rest = &rest[1 + digits..];
    }

    let zone = if rest == "Z" {
        "Z"
    } else {
        let z = rest.as_bytes();
        let (sign, colon) = (z.first()?, z.get(3)?);
        let hours = rest
            .get(1..3)
            .filter(|h| h.bytes().all(|d| d.is_ascii_digit()))?;
        let minutes = rest
            .get(4..6)
            .filter(|m| m.bytes().all(|d| d.is_ascii_digit()))?;
        if rest.len() != 6 || !matches!(sign, b'+' | b'-') || *colon != b':' {
            return None;
        }
        if hours > "23" || minutes > "59" {
            return None;
        }
        if hours == "00" && minutes == "00" {
            "Z"
        } else {
            rest
        }
    };
    Some(format!("{}{fraction}{zone}", &text[..19]))
}

/// serde_json's formatting with Go's string escaping on top: `encoding/json` also escapes
/// `<`, `>`, `&`, U+2028 and U+2029. Control characters are escaped alike (`\b`, `\f`,
/// `\n`, `\r`, `\t`, else `\u00xx`, as Go 1.22+ does).
struct GoFormatter<F>(F);

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escaped.as_bytes())?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // The layout is the inner formatter's.
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn go_json<T: Serialize + ?Sized, F: Formatter>(value: &T, formatter: F) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter(formatter));
    // Only this module's structs of strings and numbers are serialized, into memory: that
    // cannot fail (serde_json fails only on non-string map keys or a failing writer).
    value
        .serialize(&mut serializer)
        .expect("serializing plain structs to memory cannot fail");
    out
}

/// Go's `json.MarshalIndent(v, "", "   ")`.
fn go_json_pretty<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    go_json(value, PrettyFormatter::with_indent(b"   "))
}

/// Go's `json.Marshal(v)`.
fn go_json_compact<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    go_json(value, CompactFormatter)
}

/// A string as Go's `json.Marshal` writes it.
fn go_string(s: &str) -> String {
    String::from_utf8_lossy(&go_json_compact(s)).into_owned()
}

/// Go's compaction of a `json.RawMessage` when marshalled: insignificant whitespace dropped,
/// and `<`, `>`, `&`, U+2028, U+2029 escaped. `raw` is valid JSON (serde_json checked it), so
/// a simple string-state scan is exact.
fn go_compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaping) = (false, false);
    for c in raw.chars() {
        if !in_string {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
            continue;
        }
        if escaping {
            escaping = false;
            out.push(c);
            continue;
        }
        match c {
            '\\' => {
                escaping = true;
                out.push(c);
            }
            '"' => {
                in_string = false;
                out.push(c);
            }
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{PublicJwk, StoreError, StoreResult};
    use crate::signing::rsa_public_jwk_from_spki_der;
    use async_trait::async_trait;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{SignatureEncoding, Signer as _};
    use serde_json::Value;
    use std::sync::Arc;
    use std::time::Duration;

    const RS256: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema1-rs256-distribution.json");
    const SCHEMA2: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema2-manifest.json");
    const CONFIG: &[u8] = include_bytes!(
        "../../../tests/fixtures/oci-layout/blobs/sha256/fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d"
    );
    const RS256_DIGEST: &str =
        "sha256:533e7bbd24f82a13d3c2fbc62762ce9c85848ace676188fc82b4c86dff1bda87";
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

    fn schema2_layers() -> Vec<Digest> {
        let manifest: Value = serde_json::from_slice(SCHEMA2).unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    fn fixture_builder() -> Schema1Builder {
        Schema1Builder::from_image_config("fixtures/schema2", "tiny", CONFIG, &schema2_layers())
            .unwrap()
    }

    fn v1_of(builder: &Schema1Builder) -> Vec<Value> {
        builder
            .layers
            .iter()
            .map(|(_, v1)| serde_json::from_str(v1).unwrap())
            .collect()
    }

    #[test]
    fn conversion_matches_distributions_payload_byte_for_byte() {
        let payload = fixture_builder().payload();
        let fixture = SignedManifest::parse(RS256).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&payload),
            String::from_utf8_lossy(fixture.payload())
        );
        assert_eq!(Digest::sha256(&payload).to_string(), RS256_DIGEST);
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

    #[test]
    fn empty_layers_and_chained_ids() {
        let layers = [Digest::sha256(b"one"), Digest::sha256(b"two")];
        let config = br#"{
            "architecture": "arm64",
            "os": "linux",
            "config": {"Cmd": ["sh", "-c", "a && b"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2"]},
            "history": [
                {"created": "2020-01-01T00:00:00.000Z", "created_by": "ADD one", "author": "me"},
                {"created": "2020-01-02T00:00:00.120+00:00", "created_by": "ENV a=<b>", "empty_layer": true, "comment": "c"},
                {"created": "2020-01-03T00:00:00+02:00", "created_by": "ADD two"},
                {"created_by": "CMD x", "empty_layer": true}
            ]
        }"#;
        let builder = Schema1Builder::from_image_config("a/b", "t", config, &layers).unwrap();
        assert_eq!(builder.architecture, "arm64");
        let blobs: Vec<String> = builder.layers.iter().map(|(d, _)| d.to_string()).collect();
        assert_eq!(
            blobs,
            [
                EMPTY_LAYER_DIGEST,
                &layers[1].to_string(),
                EMPTY_LAYER_DIGEST,
                &layers[0].to_string()
            ]
        );
        let v1 = v1_of(&builder);
        // Leaf first; each parent is the next layer's id, ids hash blob and parent.
        for i in 0..3 {
            assert_eq!(v1[i]["parent"], v1[i + 1]["id"]);
        }
        assert!(v1[3].get("parent").is_none());
        assert_eq!(
            v1[3]["id"],
            sha256_hex(format!("{} ", layers[0].hex()).as_bytes())
        );
        assert_eq!(
            v1[2]["id"],
            sha256_hex(
                format!(
                    "{} {}",
                    &EMPTY_LAYER_DIGEST[7..],
                    v1[3]["id"].as_str().unwrap()
                )
                .as_bytes()
            )
        );
        // The leaf is the config: no rootfs/history, plus id, parent, throwaway.
        assert_eq!(v1[0]["throwaway"], true);
        assert_eq!(v1[0]["os"], "linux");
        assert!(v1[0].get("history").is_none() && v1[0].get("rootfs").is_none());
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "{} {} ",
            &EMPTY_LAYER_DIGEST[7..],
            v1[1]["id"].as_str().unwrap()
        ));
        hasher.update(config);
        assert_eq!(v1[0]["id"], hex::encode(hasher.finalize()));
        // Exact strings: key order, omitempty, Go's escaping and times.
        assert_eq!(
            builder.layers[3].1,
            format!(
                r#"{{"id":"{}","created":"2020-01-01T00:00:00Z","container_config":{{"Cmd":["ADD one"]}},"author":"me"}}"#,
                v1[3]["id"].as_str().unwrap()
            )
        );
        assert_eq!(
            builder.layers[2].1,
            format!(
                r#"{{"id":"{}","parent":"{}","comment":"c","created":"2020-01-02T00:00:00.12Z","container_config":{{"Cmd":["ENV a=\u003cb\u003e"]}},"throwaway":true}}"#,
                v1[2]["id"].as_str().unwrap(),
                v1[3]["id"].as_str().unwrap()
            )
        );
        assert!(
            builder.layers[1]
                .1
                .contains(r#""created":"2020-01-03T00:00:00+02:00""#)
        );
        assert!(builder.layers[0].1.starts_with(
            r#"{"architecture":"arm64","config":{"Cmd":["sh","-c","a \u0026\u0026 b"]},"id":""#
        ));
        let tail = format!(
            r#","os":"linux","parent":"{}","throwaway":true}}"#,
            v1[1]["id"].as_str().unwrap()
        );
        assert!(
            builder.layers[0].1.ends_with(&tail),
            "{}",
            builder.layers[0].1
        );
    }

    #[test]
    fn missing_created_is_gos_zero_time_and_base_layer_sets_the_first_parent() {
        let config =
            br#"{"rootfs":{"type":"layers","diff_ids":["sha256:1","sha256:2"],"base_layer":"base"},
            "history":[{"created_by":"one"},{"created_by":"two"}]}"#;
        let layers = [Digest::sha256(b"one"), Digest::sha256(b"two")];
        let builder = Schema1Builder::from_image_config("a/b", "t", config, &layers).unwrap();
        let v1 = v1_of(&builder);
        assert_eq!(v1[1]["created"], "0001-01-01T00:00:00Z");
        assert_eq!(v1[1]["parent"], hex::encode(&Sha384::digest(b"base")[..32]));
        assert_eq!(builder.architecture, "");
    }

    #[test]
    fn unconvertible_configs_are_invalid() {
        let one = [Digest::sha256(b"one")];
        let cases: [(&[u8], &[Digest]); 12] = [
            (b"not json", &one),
            (b"[]", &one),
            (b"null", &one),
            (br#"{"rootfs":{"diff_ids":["x"]}}"#, &one),
            (br#"{"rootfs":{"diff_ids":["x"]},"history":[]}"#, &one),
            (br#"{"history":[{}]}"#, &one),
            (br#"{"rootfs":{"diff_ids":["x"]},"history":[{}]}"#, &[]),
            (br#"{"rootfs":{"diff_ids":[]},"history":[{},{}]}"#, &[]),
            (
                br#"{"rootfs":{"diff_ids":["x"]},"history":[{"created":"yesterday"}]}"#,
                &one,
            ),
            (
                br#"{"rootfs":{"diff_ids":["x"]},"history":[{"created":5},{}]}"#,
                &one,
            ),
            (
                br#"{"rootfs":{"diff_ids":["x"]},"history":[{"empty_layer":"yes"}]}"#,
                &one,
            ),
            (
                br#"{"rootfs":{"type":5,"diff_ids":["x"]},"history":[{}]}"#,
                &one,
            ),
        ];
        for (config, layers) in cases {
            let err = Schema1Builder::from_image_config("a/b", "t", config, layers).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::ManifestInvalid,
                "{}: {}",
                String::from_utf8_lossy(config),
                err.message
            );
        }
        // Nulls are Go's zero values, as distribution reads them.
        let nulls = br#"{"rootfs":{"diff_ids":["x"]},"history":[null,{"created":null,"empty_layer":true,"author":null}],"architecture":null}"#;
        Schema1Builder::from_image_config("a/b", "t", nulls, &one).unwrap();
    }

    #[test]
    fn times_round_trip_as_go_does() {
        let ok = [
            ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:00Z"),
            (
                "2026-01-01T00:00:00.1234567891234Z",
                "2026-01-01T00:00:00.123456789Z",
            ),
            ("2026-01-01T00:00:00.5-00:00", "2026-01-01T00:00:00.5Z"),
            ("2026-01-01T23:59:59+05:30", "2026-01-01T23:59:59+05:30"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ];
        for (input, output) in ok {
            assert_eq!(go_rfc3339(input).as_deref(), Some(output), "{input}");
        }
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01t00:00:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01 00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00,5Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+0530",
            "2026-01-01T00:00:00+05:30:00",
            "+2026-01-01T00:00:00Z",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zé",
        ] {
            assert_eq!(go_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            go_string("a<b>&c\u{2028}\u{2029}\"\\\n\t\u{8}\u{c}\u{1}\u{7f}é"),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\\"\\\\\\n\\t\\b\\f\\u0001\u{7f}é\""
        );
        assert_eq!(
            go_compact(" { \"k\" : [ 1 , \"a <b> & \\\" c\" ,\n true ] } "),
            r#"{"k":[1,"a \u003cb\u003e \u0026 \" c",true]}"#
        );
    }
}
