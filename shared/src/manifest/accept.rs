//! What a client's `Accept` headers allow, as clients really send them: several headers
//! (skopeo sends six), comma lists, parameters such as `q=`, and wildcards.
//!
//! Pure domain (see `manifest`).

use super::{Format, schema1};

/// The media types a request accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    types: Vec<String>,
    /// No `Accept` at all, or a wildcard: the stored form is acceptable, whatever it is.
    any: bool,
}

impl Accept {
    /// Merges the values of every `Accept` header of a request.
    pub fn from_headers<'a>(values: impl IntoIterator<Item = &'a str>) -> Accept {
        let mut accept = Accept::default();
        let mut seen_header = false;
        for value in values {
            seen_header = true;
            for item in value.split(',') {
                let essence = item
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                match essence.as_str() {
                    "" => {}
                    "*/*" | "application/*" => accept.any = true,
                    _ => accept.types.push(essence),
                }
            }
        }
        if !seen_header {
            accept.any = true;
        }
        accept
    }

    /// Anything goes: what a request without `Accept` gets.
    pub fn any() -> Accept {
        Accept::from_headers([])
    }

    pub fn allows(&self, media_type: &str) -> bool {
        self.any
            || self
                .types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(media_type))
    }

    pub fn allows_format(&self, format: Format) -> bool {
        match format {
            // Both schema1 types name the same signed manifest.
            Format::Schema1 => {
                self.allows(schema1::MEDIA_TYPE_SIGNED) || self.allows(schema1::MEDIA_TYPE_UNSIGNED)
            }
            other => self.allows(other.media_type()),
        }
    }

    /// A client that names schema1 explicitly, so that a conversion is worth making.
    pub fn names_schema1(&self) -> bool {
        self.types
            .iter()
            .any(|t| Format::from_media_type(t) == Some(Format::Schema1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{oci_manifest, schema2};

    #[test]
    fn merges_headers_lists_and_parameters() {
        let a = Accept::from_headers([
            "application/vnd.oci.image.manifest.v1+json; q=0.5",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws",
        ]);
        assert!(a.allows(oci_manifest::MEDIA_TYPE));
        assert!(a.allows(schema2::MEDIA_TYPE));
        assert!(a.allows_format(Format::Schema1));
        assert!(a.names_schema1());
        assert!(!a.allows_format(Format::OciIndex));
    }

    #[test]
    fn no_header_or_wildcard_allows_everything() {
        assert!(Accept::any().allows_format(Format::OciIndex));
        assert!(!Accept::any().names_schema1());
        assert!(Accept::from_headers(["text/plain, */*"]).allows(schema2::MEDIA_TYPE));
        assert!(!Accept::from_headers(["text/plain"]).allows(schema2::MEDIA_TYPE));
    }
}
