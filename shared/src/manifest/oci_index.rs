//! OCI image index (image-spec 1.1: with `subject`, `artifactType`, `annotations`).
//!
//! Pure domain (see `manifest`).

use super::image::{self, MediaTypeField};
use crate::error::RegistryError;
use oci_spec::image::ImageIndex;

pub const MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Parses and checks an OCI index: `schemaVersion` 2, `mediaType` optional but matching,
/// well-formed descriptors.
pub fn parse(body: &[u8]) -> Result<ImageIndex, RegistryError> {
    image::parse_index(body, MEDIA_TYPE, MediaTypeField::Optional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest::{Format, Manifest};

    #[test]
    fn skopeo_fixture_parses_with_its_children() {
        let body = include_bytes!("../../../tests/fixtures/manifests/oci-image-index.json");
        let m =
            Manifest::parse(Some(MEDIA_TYPE), body.as_slice().into(), Algorithm::Sha256).unwrap();
        assert_eq!(m.format, Format::OciIndex);
        assert_eq!(
            m.digest.to_string(),
            "sha256:bcbefb32c41df96c152d82a06d8fa9421bf644a5e1fae556cb8ec923e68d3a68"
        );
        let children: Vec<String> = m.child_manifests().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            children,
            [
                "sha256:e703e7f8fe22c87a51d90837eaf8a5efdb85028093011980f1ec5abf6b4b1d06",
                "sha256:58590908be5a39b3ca7399ce189ea400f6931d4fb49f80c459d04e938c2e3ca7"
            ]
        );
    }
}
