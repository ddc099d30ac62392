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
        .try_for_each(check_descriptor)?;
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
        .try_for_each(check_descriptor)?;
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

/// The largest descriptor `size`: the image-spec makes it an int64, so a client in Go (or
/// any other that reads it as signed) cannot hold more. oci-spec reads it as u64.
const MAX_DESCRIPTOR_SIZE: u64 = i64::MAX as u64;

/// A descriptor's digest is one the registry supports, its size an int64.
fn check_descriptor(descriptor: &Descriptor) -> Result<(), RegistryError> {
    digest_of(descriptor)?;
    let size = descriptor.size();
    if size > MAX_DESCRIPTOR_SIZE {
        return Err(invalid(format!(
            "descriptor {} has size {size}, over the largest the spec allows (2^63-1)",
            descriptor.digest()
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use crate::digest::Algorithm;
    use crate::error::ErrorCode;
    use crate::manifest::{Manifest, manifest_list, oci_index, oci_manifest, schema2};

    const DIGEST: &str = "sha256:fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d";

    fn descriptor(media_type: &str, size: &str) -> String {
        format!(r#"{{"mediaType":"{media_type}","digest":"{DIGEST}","size":{size}}}"#)
    }

    /// Manifests of each descriptor-based format, each with one descriptor of `size` (a
    /// config, a layer, a subject or a child), with their Content-Type.
    fn bodies(size: &str) -> Vec<(&'static str, String)> {
        let ok = descriptor(schema2::CONFIG_MEDIA_TYPE, "1");
        let layer = |s: &str| descriptor("application/vnd.oci.image.layer.v1.tar", s);
        let child = |s: &str| descriptor(oci_manifest::MEDIA_TYPE, s);
        let image = |media: &str, config: &str, layer: &str, subject: Option<&str>| {
            let subject = subject
                .map(|s| format!(r#","subject":{s}"#))
                .unwrap_or_default();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{media}","config":{config},"layers":[{layer}]{subject}}}"#
            )
        };
        let index = |media: &str, manifest: &str, subject: Option<&str>| {
            let subject = subject
                .map(|s| format!(r#","subject":{s}"#))
                .unwrap_or_default();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{media}","manifests":[{manifest}]{subject}}}"#
            )
        };
        let big_config = descriptor(schema2::CONFIG_MEDIA_TYPE, size);
        vec![
            (
                schema2::MEDIA_TYPE,
                image(schema2::MEDIA_TYPE, &big_config, &layer("1"), None),
            ),
            (
                schema2::MEDIA_TYPE,
                image(schema2::MEDIA_TYPE, &ok, &layer(size), None),
            ),
            (
                oci_manifest::MEDIA_TYPE,
                image(oci_manifest::MEDIA_TYPE, &ok, &layer(size), None),
            ),
            (
                oci_manifest::MEDIA_TYPE,
                image(
                    oci_manifest::MEDIA_TYPE,
                    &ok,
                    &layer("1"),
                    Some(&child(size)),
                ),
            ),
            (
                manifest_list::MEDIA_TYPE,
                index(manifest_list::MEDIA_TYPE, &child(size), None),
            ),
            (
                oci_index::MEDIA_TYPE,
                index(oci_index::MEDIA_TYPE, &child(size), None),
            ),
            (
                oci_index::MEDIA_TYPE,
                index(oci_index::MEDIA_TYPE, &child("1"), Some(&child(size))),
            ),
        ]
    }

    #[test]
    fn descriptor_sizes_are_int64() {
        // The largest int64 is a size; one more, u64's largest, or beyond are not, in every
        // place a descriptor may stand; nor is a negative or fractional size.
        for (content_type, body) in bodies("9223372036854775807") {
            Manifest::parse(Some(content_type), body.clone().into(), Algorithm::Sha256)
                .unwrap_or_else(|e| panic!("{body}: {e}"));
        }
        for size in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "1.5",
        ] {
            for (content_type, body) in bodies(size) {
                let e = Manifest::parse(Some(content_type), body.clone().into(), Algorithm::Sha256)
                    .unwrap_err();
                assert_eq!(e.code, ErrorCode::ManifestInvalid, "{body}");
                assert_eq!(e.status(), 400, "{body}");
            }
        }
    }
}
