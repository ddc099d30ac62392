//! Repository names and references (a tag or a digest), validated as the seed (docs/seed.md)
//! and the spec define them.
//!
//! Pure domain: nothing of HTTP, storage or AWS.

use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError};
use std::fmt;

/// Longest repository name the registry accepts (distribution's limit).
const MAX_NAME_LEN: usize = 255;

/// A repository name: one or more components of the spec's grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`, at most 255 characters in all.
/// The first component is its namespace: who may create repositories there is decided by it.
/// Quay's names (`namespace/repo`) are the two-component case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    full: String,
}

impl RepositoryName {
    /// Parses `component[/component…]`.
    pub fn parse(name: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| {
            RegistryError::new(
                ErrorCode::NameInvalid,
                format!("invalid repository name {name:?}: {why}"),
            )
        };
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        if !name.split('/').all(is_component) {
            return Err(invalid(
                "each /-separated component must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
            ));
        }
        Ok(RepositoryName {
            full: name.to_string(),
        })
    }

    /// The first component: the namespace whose owner may create the repository.
    pub fn namespace(&self) -> &str {
        self.full.split('/').next().unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one component of a repository name (and a user's
/// name, which is the namespace the user owns).
pub fn is_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
}

/// A tag: the seed's `[\w][\w.-]{0,127}` (ASCII word characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(b[0])
            && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-');
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(RegistryError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag {s:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows `/manifests/`: a tag or a digest. API Gateway cannot tell them apart, so
/// every manifest function parses it here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if s.contains(':') {
            s.parse().map(Reference::Digest).map_err(|e| {
                RegistryError::new(
                    ErrorCode::DigestInvalid,
                    format!("invalid digest {s:?}: {e}"),
                )
            })
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        let n = RepositoryName::parse("library/ubuntu").unwrap();
        assert_eq!((n.namespace(), n.as_str()), ("library", "library/ubuntu"));
        let nested = RepositoryName::parse("org/team/app").unwrap();
        assert_eq!(nested.namespace(), "org");
        assert_eq!(RepositoryName::parse("myapp").unwrap().namespace(), "myapp");
        for ok in [
            "a/b",
            "a.b/c__d",
            "a-b--c/d_e",
            "0/9",
            "a",
            "a/b/c/d/e/f/g/h",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A/b", "a/", "/a", "a//b", "a../b", "a/-b", "a/b-", "a/b___c", "a/b.-c", "..%2f/x",
            "a/\u{fc}", "a/b/", "a/./b", "a/../b",
        ] {
            let e = RepositoryName::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::NameInvalid, "{bad}");
        }
        let longest = format!("a/{}", "b".repeat(253));
        assert!(RepositoryName::parse(&longest).is_ok());
        assert!(RepositoryName::parse(&format!("{longest}b")).is_err());
    }

    #[test]
    fn tags_follow_the_seed_pattern() {
        for ok in ["latest", "v1.0-rc_1", "_x", "A", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "a:b",
            &"a".repeat(129),
            "tag with space",
            "ü",
        ] {
            assert_eq!(
                Tag::parse(bad).unwrap_err().code,
                ErrorCode::TagInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let d = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(Reference::parse(&d), Ok(Reference::Digest(_))));
        assert_eq!(
            Reference::parse("sha256:xyz").unwrap_err().code,
            ErrorCode::DigestInvalid
        );
    }
}
