//! OCI image manifest (image-spec 1.1: with `subject`, `artifactType`, `annotations`).
//!
//! Pure domain (see `manifest`).

use super::image::{self, MediaTypeField};
use crate::error::RegistryError;
use oci_spec::image::ImageManifest;

pub const MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config of an artifact that has none (image-spec 1.1).
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Parses and checks an OCI image manifest: `schemaVersion` 2, `mediaType` optional but
/// matching, well-formed descriptors, and the image-spec's rule that an empty config needs
/// an `artifactType`.
pub fn parse(body: &[u8]) -> Result<ImageManifest, RegistryError> {
    let manifest = image::parse_manifest(body, MEDIA_TYPE, MediaTypeField::Optional)?;
    if manifest.config().media_type().to_string() == EMPTY_CONFIG_MEDIA_TYPE
        && manifest.artifact_type().is_none()
    {
        return Err(super::invalid(
            "a manifest with an empty config must set artifactType",
        ));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest::{Format, Manifest};

    const FIXTURE: &[u8] =
        include_bytes!("../../../tests/fixtures/manifests/oci-image-manifest.json");

    #[test]
    fn skopeo_fixture_parses_with_its_digest() {
        let m = Manifest::parse(Some(MEDIA_TYPE), FIXTURE.into(), Algorithm::Sha256).unwrap();
        assert_eq!(m.format, Format::OciManifest);
        assert_eq!(
            m.digest.to_string(),
            "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4"
        );
        assert_eq!(m.blobs().len(), 3);
        // Without Content-Type the body's mediaType decides.
        let sniffed = Manifest::parse(None, FIXTURE.into(), Algorithm::Sha256).unwrap();
        assert_eq!(sniffed.format, Format::OciManifest);
    }

    #[test]
    fn artifact_with_subject() {
        let subject = "sha256:2ec2eb59508e4e49066740b26802363fb7015236660a8ab943fdb48ed75da2a4";
        let empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE}","artifactType":"application/vnd.example.sbom",
            "config":{{"mediaType":"{EMPTY_CONFIG_MEDIA_TYPE}","digest":"{empty}","size":2}},"layers":[],
            "subject":{{"mediaType":"{MEDIA_TYPE}","digest":"{subject}","size":557}},
            "annotations":{{"org.example":"x"}}}}"#
        );
        let m = Manifest::parse(Some(MEDIA_TYPE), body.clone().into(), Algorithm::Sha256).unwrap();
        let s = m.subject().unwrap();
        assert_eq!(s.digest.to_string(), subject);
        assert_eq!(
            s.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
        assert_eq!(s.annotations.unwrap()["org.example"], "x");

        let no_type = body.replace(r#""artifactType":"application/vnd.example.sbom","#, "");
        assert!(parse(no_type.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_manifest_invalid() {
        for body in [
            &b"{"[..],
            b"[]",
            b"null",
            b"{\"schemaVersion\":3}",
            b"{\"schemaVersion\":2,\"config\":5}",
        ] {
            let e = Manifest::parse(Some(MEDIA_TYPE), body.into(), Algorithm::Sha256).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::ManifestInvalid);
        }
    }
}
