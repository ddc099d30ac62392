//! Docker image manifest v2, schema 2.
//!
//! Pure domain (see `manifest`).

use super::image::{self, MediaTypeField};
use crate::error::RegistryError;
use oci_spec::image::ImageManifest;

pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The config blob of a Docker image.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// Parses and checks a schema2 manifest: `schemaVersion` 2, its `mediaType` (required),
/// well-formed descriptors with supported digests.
pub fn parse(body: &[u8]) -> Result<ImageManifest, RegistryError> {
    image::parse_manifest(body, MEDIA_TYPE, MediaTypeField::Required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest::{Format, Manifest};

    const FIXTURE: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/docker-schema2-manifest.json");

    #[test]
    fn skopeo_fixture_parses_with_its_digest_and_blobs() {
        let m = Manifest::parse(Some(MEDIA_TYPE), FIXTURE.into(), Algorithm::Sha256).unwrap();
        assert_eq!(m.format, Format::Schema2);
        assert_eq!(
            m.digest.to_string(),
            "sha256:e44e781fea585a898b27801d15a7f93bde29d72afcf9a807e72a4c592d768a0e"
        );
        let blobs: Vec<String> = m.blobs().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            blobs,
            [
                "sha256:fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d",
                "sha256:24a863956fae3a40fb5b94126d87434c1f5fba66a4569ba3db6b9a37f26416c4",
                "sha256:f2e9a1681beca57f3d4744cc55ce690d3eb4ae9d90c58a607827a0f47fd50f0e"
            ]
        );
        assert!(m.subject().is_none());
    }

    #[test]
    fn refuses_a_missing_or_other_media_type() {
        let without = String::from_utf8_lossy(FIXTURE).replace(
            "\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",",
            "",
        );
        assert!(parse(without.as_bytes()).is_err());
        let err = Manifest::parse(
            Some(super::super::oci_manifest::MEDIA_TYPE),
            FIXTURE.into(),
            Algorithm::Sha256,
        )
        .unwrap_err();
        assert!(err.message.contains("does not match"), "{err}");
    }

    #[test]
    fn foreign_layers_need_not_be_pushed() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:fd490d954e1449d64ff54ac0603c9e6656cf1432c4da7facb7bb5ce45bb35f1d"},
          "layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":2,"digest":"sha256:24a863956fae3a40fb5b94126d87434c1f5fba66a4569ba3db6b9a37f26416c4","urls":["https://example.com/l"]}]}"#;
        let m =
            Manifest::parse(Some(MEDIA_TYPE), body.as_slice().into(), Algorithm::Sha256).unwrap();
        assert_eq!(m.blobs().len(), 1);
    }
}
