//! Distribution 2.x's conversion of a schema2/OCI image to schema1, for clients that ask
//! for schema1: [`Schema1Builder::from_image_config`] lays the image config's history out as
//! schema1 layers with v1 JSON exactly as distribution writes it, so the converted payload
//! (and so its digest) is distribution's. Also the empty layer blob such a conversion may
//! reference.
//!
//! Pure domain: may call `digest`, `error`, `manifest::schema1_builder` (the builder it
//! fills), `manifest::go_format` and format/hash crates; nothing of HTTP, storage or AWS.

use super::go_format::{go_compact, go_json_compact, go_string, go_time};
use super::invalid;
use super::schema1_builder::Schema1Builder;
use crate::digest::Digest;
use crate::error::RegistryError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256, Sha384};
use std::collections::BTreeMap;

/// The gzipped empty tar distribution uses as the blob of a history entry without a layer.
pub const EMPTY_LAYER_DIGEST: &str =
    "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

/// The gzipped empty tar itself (32 bytes), for a registry that must serve
/// [`EMPTY_LAYER_DIGEST`] after a conversion that used it.
pub const EMPTY_LAYER_BLOB: [u8; 32] = [
    31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255,
    46, 175, 181, 239, 0, 4, 0, 0,
];

impl Schema1Builder {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::manifest::schema1::SignedManifest;
    use serde_json::Value;

    // The fixture is distribution's conversion of the schema2 fixture, signed: the builder's
    // tests (`schema1_builder`) sign the same conversion, so these are shared with them.
    pub(crate) const RS256: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema1-rs256-distribution.json");
    const SCHEMA2: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema2-manifest.json");
    const CONFIG: &[u8] = include_bytes!(
        "../../../tests/fixtures/oci-layout/blobs/sha256/fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d"
    );
    pub(crate) const RS256_DIGEST: &str =
        "sha256:533e7bbd24f82a13d3c2fbc62762ce9c85848ace676188fc82b4c86dff1bda87";

    fn schema2_layers() -> Vec<Digest> {
        let manifest: Value = serde_json::from_slice(SCHEMA2).unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    pub(crate) fn fixture_builder() -> Schema1Builder {
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
}
