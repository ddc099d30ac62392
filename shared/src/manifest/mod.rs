//! Manifest formats, one module each, and what they have in common: the media type that
//! selects a format, the parsed manifest, the blobs and manifests it references.
//!
//! Pure domain: may call `digest`, `error`, `ports::Signer` (schema1 signing) and format
//! crates (serde_json, oci-spec); nothing of HTTP, storage adapters or AWS.

pub mod accept;
mod go_format;
mod image;
pub mod manifest_list;
pub mod oci_index;
pub mod oci_manifest;
pub mod schema1;
pub mod schema1_builder;
mod schema1_conversion;
mod schema1_jws;
pub mod schema2;

use crate::digest::{Algorithm, Digest};
use crate::error::{ErrorCode, RegistryError};
use bytes::Bytes;
use oci_spec::image::{ImageIndex, ImageManifest};
use std::collections::HashMap;

/// The largest manifest the registry takes: what the spec says clients and registries
/// should support, and what a DynamoDB item plus an S3 spill can hold.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The five manifest formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Schema1,
    Schema2,
    ManifestList,
    OciManifest,
    OciIndex,
}

impl Format {
    /// The format a media type names, ignoring parameters and case.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        let is = |known: &str| essence.eq_ignore_ascii_case(known);
        if is(schema1::MEDIA_TYPE_SIGNED) || is(schema1::MEDIA_TYPE_UNSIGNED) {
            Some(Format::Schema1)
        } else if is(schema2::MEDIA_TYPE) {
            Some(Format::Schema2)
        } else if is(manifest_list::MEDIA_TYPE) {
            Some(Format::ManifestList)
        } else if is(oci_manifest::MEDIA_TYPE) {
            Some(Format::OciManifest)
        } else if is(oci_index::MEDIA_TYPE) {
            Some(Format::OciIndex)
        } else {
            None
        }
    }

    /// The media type the registry stores and serves for this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Schema1 => schema1::MEDIA_TYPE_SIGNED,
            Format::Schema2 => schema2::MEDIA_TYPE,
            Format::ManifestList => manifest_list::MEDIA_TYPE,
            Format::OciManifest => oci_manifest::MEDIA_TYPE,
            Format::OciIndex => oci_index::MEDIA_TYPE,
        }
    }
}

/// The parsed content of a manifest, by kind.
#[derive(Debug)]
pub enum Content {
    Schema1(schema1::SignedManifest),
    /// Docker schema2 or OCI image manifest.
    Image(Box<ImageManifest>),
    /// Docker manifest list or OCI image index.
    Index(Box<ImageIndex>),
}

/// A manifest as pushed, parsed and checked for its own consistency (not yet against the
/// repository: that is the registry's job).
#[derive(Debug)]
pub struct Manifest {
    pub format: Format,
    /// The bytes exactly as pushed; they are stored and served unchanged.
    pub body: Bytes,
    /// For schema1 the digest of the JWS payload, for the others of the body.
    pub digest: Digest,
    pub content: Content,
}

impl Manifest {
    /// Parses a pushed manifest. The `Content-Type` decides the format; without a known one,
    /// the body's `mediaType` does, then its shape (`schemaVersion: 1` is schema1).
    /// `algorithm` is the digest algorithm to name it by (the reference's, when pushed by digest).
    pub fn parse(
        content_type: Option<&str>,
        body: Bytes,
        algorithm: Algorithm,
    ) -> Result<Manifest, RegistryError> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(too_large(body.len()));
        }
        let format = match content_type.and_then(Format::from_media_type) {
            Some(format) => format,
            None => sniff(&body)?,
        };
        let (content, digest) = match format {
            Format::Schema1 => {
                let signed = schema1::SignedManifest::parse(&body)?;
                let digest = algorithm.digest(signed.payload());
                (Content::Schema1(signed), digest)
            }
            Format::Schema2 => (
                Content::Image(Box::new(schema2::parse(&body)?)),
                algorithm.digest(&body),
            ),
            Format::OciManifest => (
                Content::Image(Box::new(oci_manifest::parse(&body)?)),
                algorithm.digest(&body),
            ),
            Format::ManifestList => (
                Content::Index(Box::new(manifest_list::parse(&body)?)),
                algorithm.digest(&body),
            ),
            Format::OciIndex => (
                Content::Index(Box::new(oci_index::parse(&body)?)),
                algorithm.digest(&body),
            ),
        };
        Ok(Manifest {
            format,
            body,
            digest,
            content,
        })
    }

    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }

    /// Blobs that must be linked to the repository before this manifest may be pushed.
    pub fn blobs(&self) -> Vec<Digest> {
        match &self.content {
            Content::Schema1(m) => m.layers().iter().map(|l| l.blob_sum.clone()).collect(),
            Content::Image(m) => image::required_blobs(m),
            Content::Index(_) => Vec::new(),
        }
    }

    /// Manifests that must already be in the repository (an index's children).
    pub fn child_manifests(&self) -> Vec<Digest> {
        match &self.content {
            Content::Index(index) => index
                .manifests()
                .iter()
                .filter_map(|d| image::digest_of(d).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The manifest named in `subject` (OCI 1.1), with what the referrers API lists for it.
    pub fn subject(&self) -> Option<Subject> {
        let (subject, artifact_type, annotations) = match &self.content {
            Content::Schema1(_) => return None,
            Content::Image(m) => (
                m.subject().as_ref()?,
                // The spec: a manifest without artifactType is listed by its config's type.
                Some(
                    m.artifact_type()
                        .as_ref()
                        .unwrap_or(m.config().media_type())
                        .to_string(),
                ),
                m.annotations().clone(),
            ),
            Content::Index(i) => (
                i.subject().as_ref()?,
                i.artifact_type().as_ref().map(|t| t.to_string()),
                i.annotations().clone(),
            ),
        };
        Some(Subject {
            digest: image::digest_of(subject).ok()?,
            artifact_type,
            annotations,
        })
    }
}

/// What a manifest with a `subject` tells the referrers API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub digest: Digest,
    pub artifact_type: Option<String>,
    pub annotations: Option<HashMap<String, String>>,
}

pub(crate) fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

/// The spec's answer to an oversized manifest: 413.
pub fn too_large(len: usize) -> RegistryError {
    invalid(format!(
        "manifest is {len} bytes; the limit is {MAX_MANIFEST_BYTES} bytes (4 MiB)"
    ))
    .with_status(413)
}

/// The format of a body pushed without a known `Content-Type`.
fn sniff(body: &[u8]) -> Result<Format, RegistryError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        schema_version: Option<serde_json::Value>,
        media_type: Option<String>,
        config: Option<serde::de::IgnoredAny>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let shape: Shape = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("manifest is not a JSON object: {e}")))?;
    if let Some(media_type) = &shape.media_type {
        return Format::from_media_type(media_type)
            .ok_or_else(|| invalid(format!("unsupported manifest media type {media_type:?}")));
    }
    match shape.schema_version.as_ref().and_then(|v| v.as_u64()) {
        Some(1) => Ok(Format::Schema1),
        Some(2) if shape.config.is_some() => Ok(Format::OciManifest),
        Some(2) if shape.manifests.is_some() => Ok(Format::OciIndex),
        _ => Err(invalid(
            "cannot tell the manifest's format: send its media type as Content-Type",
        )),
    }
}
