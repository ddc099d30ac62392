//! Docker manifest list (multi-platform image), schema 2.
//!
//! Pure domain (see `manifest`).

use super::image::{self, MediaTypeField};
use crate::error::RegistryError;
use oci_spec::image::ImageIndex;

pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Parses and checks a manifest list: `schemaVersion` 2, its `mediaType` (required),
/// well-formed child descriptors.
pub fn parse(body: &[u8]) -> Result<ImageIndex, RegistryError> {
    image::parse_index(body, MEDIA_TYPE, MediaTypeField::Required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest::{Format, Manifest};

    #[test]
    fn skopeo_fixture_parses_with_its_children() {
        let body = include_bytes!("../../../tests/fixtures/manifests/docker-manifest-list.json");
        let m =
            Manifest::parse(Some(MEDIA_TYPE), body.as_slice().into(), Algorithm::Sha256).unwrap();
        assert_eq!(m.format, Format::ManifestList);
        assert_eq!(
            m.digest.to_string(),
            "sha256:c03597d44131a7663b801bc2eda4510910004a84ad318a4713c4f5c07ad97d73"
        );
        assert_eq!(m.child_manifests().len(), 2);
        assert!(m.blobs().is_empty());
    }
}
