//! What the four descriptor-based formats share (Docker schema2 and manifest list, OCI
//! manifest and index): parsing into oci-spec's types and the checks all of them make.

use super::invalid;
use crate::digest::Digest;
use crate::error::RegistryError;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

/// Layers that live outside the registry (Docker foreign layers, OCI non-distributable
/// ones): clients fetch them from their `urls`, so they need not be pushed.
const FOREIGN_LAYER_PREFIXES: [&str; 2] = [
    "application/vnd.docker.image.rootfs.foreign.",
    "application/vnd.oci.image.layer.nondistributable.",
];

/// Whether the body's own `mediaType` must be present: Docker's formats require it, OCI's
/// make it optional.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaTypeField {
    Required,
    Optional,
}

pub(super) fn parse_manifest(
    body: &[u8],
    media_type: &str,
    field: MediaTypeField,
) -> Result<ImageManifest, RegistryError> {
    let manifest: ImageManifest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid {media_type} manifest: {e}")))?;
    check_header(
        manifest.schema_version(),
        manifest.media_type().as_ref(),
        media_type,
        field,
    )?;
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .chain(manifest.subject())
        .try_for_each(|d| digest_of(d).map(drop))?;
    Ok(manifest)
}

pub(super) fn parse_index(
    body: &[u8],
    media_type: &str,
    field: MediaTypeField,
) -> Result<ImageIndex, RegistryError> {
    let index: ImageIndex = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid {media_type} manifest: {e}")))?;
    check_header(
        index.schema_version(),
        index.media_type().as_ref(),
        media_type,
        field,
    )?;
    index
        .manifests()
        .iter()
        .chain(index.subject())
        .try_for_each(|d| digest_of(d).map(drop))?;
    Ok(index)
}

fn check_header(
    schema_version: u32,
    body_media_type: Option<&MediaType>,
    media_type: &str,
    field: MediaTypeField,
) -> Result<(), RegistryError> {
    if schema_version != 2 {
        return Err(invalid(format!(
            "schemaVersion is {schema_version}; {media_type} requires 2"
        )));
    }
    match body_media_type {
        Some(found) if found.to_string() != media_type => Err(invalid(format!(
            "the manifest's mediaType {found} does not match its Content-Type {media_type}"
        ))),
        None if field == MediaTypeField::Required => Err(invalid(format!(
            "a {media_type} manifest must give its mediaType"
        ))),
        _ => Ok(()),
    }
}

/// A descriptor's digest, in the algorithms the registry supports.
pub(super) fn digest_of(descriptor: &Descriptor) -> Result<Digest, RegistryError> {
    let digest = descriptor.digest().to_string();
    digest
        .parse()
        .map_err(|e| invalid(format!("descriptor digest {digest:?}: {e}")))
}

/// The config and every layer the registry must hold, foreign layers left out.
pub(super) fn required_blobs(manifest: &ImageManifest) -> Vec<Digest> {
    let foreign = |d: &Descriptor| {
        let media_type = d.media_type().to_string();
        d.urls().as_ref().is_some_and(|urls| !urls.is_empty())
            && FOREIGN_LAYER_PREFIXES
                .iter()
                .any(|p| media_type.starts_with(p))
    };
    std::iter::once(manifest.config())
        .chain(manifest.layers().iter().filter(|d| !foreign(d)))
        .filter_map(|d| digest_of(d).ok())
        .collect()
}
