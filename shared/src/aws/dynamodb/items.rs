//! The item codecs: the sort keys, attribute values, and each kind of item built from the
//! port's types and read back into them. No DynamoDB call is made here.
//! May call: `transactions` (for ids), the port's types. Knows nothing of HTTP.

use super::transactions::random_id;
use super::{DynamoMetadata, INLINE_LIMIT, TTL_ATTRIBUTE};
use crate::aws::EVENT_PREFIX;
use crate::digest::Digest;
use crate::names::{RepositoryName, Tag};
use crate::ports::{
    Referrer, RegistryEvent, StoreError, StoreResult, StoredManifest, Upload, V1Image,
};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) type Item = HashMap<String, AttributeValue>;

/// How long an outbox item stays: the stream keeps records 24 hours, so the item is
/// only a trace after that.
const EVENT_TTL: Duration = Duration::from_secs(24 * 3600);

impl DynamoMetadata {
    pub(super) fn key(repo: &RepositoryName, sk: impl Into<String>) -> Item {
        HashMap::from([
            ("pk".to_string(), s(repo.as_str())),
            ("sk".to_string(), s(sk)),
        ])
    }

    /// The whole `TAG#` item pointing at `manifest`.
    pub(super) fn tag_item(
        repo: &RepositoryName,
        tag: &Tag,
        manifest: &StoredManifest,
        v1_image: Option<&str>,
    ) -> Item {
        let mut item = Self::key(repo, tag_sk(tag));
        item.insert("digest".into(), s(manifest.digest.to_string()));
        item.insert("media_type".into(), s(&manifest.media_type));
        item.insert("length".into(), n(manifest.body.len() as u64));
        if is_spilled(manifest) {
            item.insert("spilled".into(), AttributeValue::Bool(true));
        } else {
            item.insert("body".into(), b(&manifest.body));
        }
        if let Some(v1) = v1_image {
            item.insert("v1_image".into(), s(v1));
        }
        item
    }

    pub(super) fn image_item(repo: &RepositoryName, image: &V1Image) -> Item {
        let mut item = Self::key(repo, image_sk(&image.docker_id));
        item.insert("docker_id".into(), s(&image.docker_id));
        item.insert("blob".into(), s(image.blob.to_string()));
        item.insert("v1_json".into(), s(&image.v1_json));
        for (name, value) in [
            ("parent", &image.parent),
            ("created", &image.created),
            ("comment", &image.comment),
            ("command", &image.command),
        ] {
            if let Some(value) = value {
                item.insert(name.into(), s(value));
            }
        }
        item
    }

    pub(super) fn referrer_item(repo: &RepositoryName, r: &Referrer) -> Item {
        let mut item = Self::key(repo, referrer_sk(&r.subject, &r.digest));
        item.insert("subject".into(), s(r.subject.to_string()));
        item.insert("digest".into(), s(r.digest.to_string()));
        item.insert("media_type".into(), s(&r.media_type));
        item.insert("length".into(), n(r.size));
        if let Some(t) = &r.artifact_type {
            item.insert("artifact_type".into(), s(t));
        }
        if let Some(a) = &r.annotations {
            let map = a.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            item.insert("annotations".into(), AttributeValue::M(map));
        }
        item
    }

    /// The outbox item of `event` and a token for the transaction that carries it.
    pub(super) fn event_item(
        repo: &RepositoryName,
        event: &RegistryEvent,
    ) -> StoreResult<(Item, String)> {
        let json = serde_json::to_string(event).map_err(StoreError::backend)?;
        let id = random_id()?;
        let now = SystemTime::now();
        let expires = (now + EVENT_TTL)
            .duration_since(UNIX_EPOCH)
            .map_err(StoreError::backend)?
            .as_secs();
        let sk = format!(
            "{EVENT_PREFIX}{}#{id}",
            humantime::format_rfc3339_nanos(now)
        );
        let mut item = Self::key(repo, sk);
        item.insert("kind".into(), s(&event.event));
        item.insert("event".into(), s(json));
        item.insert(TTL_ATTRIBUTE.into(), n(expires));
        Ok((item, id))
    }

    /// The `UPLOAD#` item: the state as JSON, its version apart for the update's condition,
    /// and a TTL: the upload's start plus the greatest age (its bytes expire in the bucket
    /// as many days after each was written, so never before it).
    pub(super) fn upload_item(&self, repo: &RepositoryName, upload: &Upload) -> StoreResult<Item> {
        let mut item = Self::key(repo, upload_sk(&upload.id));
        let state = serde_json::to_string(upload).map_err(StoreError::backend)?;
        // A start that does not parse (never written so) counts from now.
        let started =
            humantime::parse_rfc3339_weak(&upload.started).unwrap_or_else(|_| SystemTime::now());
        let expires = started
            .checked_add(self.upload_max_age)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        item.insert("state".into(), s(state));
        item.insert("version".into(), n(upload.version));
        item.insert(TTL_ATTRIBUTE.into(), n(expires));
        Ok(item)
    }
}

/// The sort key of each kind of item (the table in the module doc).
pub(super) fn tag_sk(tag: &Tag) -> String {
    format!("TAG#{tag}")
}

pub(super) fn manifest_sk(digest: &Digest) -> String {
    format!("MANIFEST#{digest}")
}

pub(super) fn image_sk(id: &str) -> String {
    format!("IMAGE#{id}")
}

pub(super) fn blob_sk(digest: &Digest) -> String {
    format!("BLOB#{digest}")
}

pub(super) fn upload_sk(id: &str) -> String {
    format!("UPLOAD#{id}")
}

pub(super) fn referrer_sk(subject: &Digest, digest: &Digest) -> String {
    format!("REFERRER#{subject}#{digest}")
}

pub(super) fn is_spilled(manifest: &StoredManifest) -> bool {
    manifest.body.len() > INLINE_LIMIT
}

/// Roughly the bytes an image item takes in a transaction.
pub(super) fn approximate_size(image: &V1Image) -> usize {
    let optional = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    256 + image.docker_id.len()
        + image.v1_json.len()
        + optional(&image.parent)
        + optional(&image.created)
        + optional(&image.comment)
        + optional(&image.command)
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn b(bytes: &Bytes) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.to_vec()))
}

pub(super) fn optional_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn required_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    optional_s(item, name)
        .ok_or_else(|| StoreError::backend(format!("a stored item lacks the string {name}")))
}

pub(super) fn required_n(item: &Item, name: &str) -> StoreResult<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|e| StoreError::backend(format!("stored number {name}={v:?}: {e}"))),
        _ => Err(StoreError::backend(format!(
            "a stored item lacks the number {name}"
        ))),
    }
}

pub(super) fn parse_digest(s: &str) -> StoreResult<Digest> {
    s.parse()
        .map_err(|e| StoreError::backend(format!("stored digest {s:?}: {e}")))
}

pub(super) fn referrer_of(item: &Item) -> StoreResult<Referrer> {
    let annotations = match item.get("annotations") {
        Some(AttributeValue::M(map)) => Some(
            map.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect(),
        ),
        _ => None,
    };
    Ok(Referrer {
        subject: parse_digest(required_s(item, "subject")?)?,
        digest: parse_digest(required_s(item, "digest")?)?,
        media_type: required_s(item, "media_type")?.to_string(),
        size: required_n(item, "length")?,
        artifact_type: optional_s(item, "artifact_type").map(str::to_string),
        annotations,
    })
}

pub(super) fn image_of(item: &Item) -> StoreResult<V1Image> {
    let text = |name: &str| optional_s(item, name).map(str::to_string);
    Ok(V1Image {
        docker_id: required_s(item, "docker_id")?.to_string(),
        parent: text("parent"),
        blob: parse_digest(required_s(item, "blob")?)?,
        created: text("created"),
        comment: text("comment"),
        command: text("command"),
        v1_json: required_s(item, "v1_json")?.to_string(),
    })
}

/// The upload state of an `UPLOAD#` item.
pub(super) fn upload_of(item: &Item) -> StoreResult<Upload> {
    serde_json::from_str(required_s(item, "state")?)
        .map_err(|e| StoreError::backend(format!("a stored upload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_keep_kinds_apart() {
        let d = Digest::sha256(b"x");
        let tag = Tag::parse("v1").unwrap();
        assert_eq!(tag_sk(&tag), "TAG#v1");
        assert_eq!(manifest_sk(&d), format!("MANIFEST#{d}"));
        assert_eq!(blob_sk(&d), format!("BLOB#{d}"));
        assert_eq!(referrer_sk(&d, &d), format!("REFERRER#{d}#{d}"));
        // `REFERRER#` must not select `REPOSITORY` in a begins_with query.
        assert!(!"REPOSITORY".starts_with("REFERRER#"));
    }

    #[test]
    fn outbox_items_carry_the_event_and_a_ttl() {
        let repo = RepositoryName::parse("library/app").unwrap();
        let event = RegistryEvent {
            event: "repo_push".into(),
            repository: "library/app".into(),
            namespace: "library".into(),
            updated_tags: vec!["latest".into()],
            digest: None,
            media_type: None,
            time: "2024-01-01T00:00:00Z".into(),
        };
        let (item, id) = DynamoMetadata::event_item(&repo, &event).unwrap();
        assert_eq!(id.len(), 16);
        let sk = required_s(&item, "sk").unwrap();
        assert!(sk.starts_with(EVENT_PREFIX) && sk.ends_with(&id), "{sk}");
        let json: RegistryEvent =
            serde_json::from_str(required_s(&item, "event").unwrap()).unwrap();
        assert_eq!(json, event);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expires = required_n(&item, TTL_ATTRIBUTE).unwrap();
        assert!(expires > now && expires <= now + EVENT_TTL.as_secs() + 1);
    }

    #[test]
    fn large_manifests_spill() {
        let small = StoredManifest {
            digest: Digest::sha256(b"s"),
            media_type: "m".into(),
            body: Bytes::from(vec![b'a'; INLINE_LIMIT]),
        };
        assert!(!is_spilled(&small));
        let large = StoredManifest {
            body: Bytes::from(vec![b'a'; INLINE_LIMIT + 1]),
            ..small
        };
        assert!(is_spilled(&large));
    }
}
