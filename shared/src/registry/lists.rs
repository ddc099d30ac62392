//! Content discovery: tags of a repository, the catalog of repositories, and the referrers
//! of a manifest (OCI 1.1).
//!
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::manifest::oci_index;
use crate::names::RepositoryName;
use crate::registry::Registry;
use serde_json::{Value, json};

/// The page size when the client gives no `n`, and the largest it may ask for.
pub const MAX_PAGE: usize = 1000;

/// What a client asks of a list: at most `limit` names after `last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub last: Option<String>,
}

/// A page of names, and whether more follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    pub more: bool,
}

impl PageRequest {
    /// How many names to read for this page: one more than it holds, the extra only saying
    /// that more follow ([`PageRequest::page`]).
    fn names_to_read(&self) -> usize {
        self.limit.saturating_add(1)
    }

    /// The page of `names`, read as [`PageRequest::names_to_read`] says.
    fn page(&self, mut names: Vec<String>) -> Page {
        let more = names.len() > self.limit;
        names.truncate(self.limit);
        Page { names, more }
    }
}

impl Registry {
    /// A page of the repository's tags; `NAME_UNKNOWN` if it does not exist. `n=0` is an
    /// empty page (the spec), but the name must still exist.
    pub async fn list_tags(&self, repo: &RepositoryName, page: &PageRequest) -> Result<Page> {
        let names = match page.limit {
            0 => Vec::new(),
            _ => {
                let after = page.last.as_deref();
                self.metadata
                    .tags(repo, after, page.names_to_read())
                    .await?
            }
        };
        // A repository without tags (one with blobs only) lists none; one that does not
        // exist is an error.
        if names.is_empty() && !self.metadata.repository_exists(repo).await? {
            return Err(name_unknown(repo));
        }
        Ok(page.page(names))
    }

    /// The catalog as the caller may see it: every repository where tokens are off; with
    /// tokens, only those the caller may pull ([`Registry::visible_catalog`]). `checked` is
    /// what the token gate found: the caller's subject (`None`: anonymous), or `None` when
    /// no gate ran, which with tokens on is refused rather than list all.
    pub async fn catalog_for(
        &self,
        page: &PageRequest,
        checked: Option<Option<&str>>,
    ) -> Result<Page> {
        match (&self.auth, checked) {
            (None, _) => self.catalog(page).await,
            (Some(_), Some(subject)) => self.visible_catalog(page, subject).await,
            (Some(_), None) => Err(ErrorCode::Denied.into()),
        }
    }

    /// A page of every repository's name.
    pub async fn catalog(&self, page: &PageRequest) -> Result<Page> {
        if page.limit == 0 {
            return Ok(Page::default());
        }
        let after = page.last.as_deref();
        let names = self
            .metadata
            .repositories(after, page.names_to_read())
            .await?;
        Ok(page.page(names))
    }

    /// The referrers index of `subject`: every manifest of the repository whose `subject` is
    /// it, optionally only those of `artifact_type`. Never 404 (the spec): an unknown
    /// repository or subject has an empty index.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Value> {
        let referrers = self.metadata.referrers(repo, subject).await?;
        let manifests: Vec<Value> = referrers
            .iter()
            .filter(|r| artifact_type.is_none_or(|t| r.artifact_type.as_deref() == Some(t)))
            .map(|r| {
                let mut descriptor = json!({
                    "mediaType": r.media_type,
                    "digest": r.digest.to_string(),
                    "size": r.size,
                });
                if let Some(t) = &r.artifact_type {
                    descriptor["artifactType"] = json!(t);
                }
                if let Some(a) = &r.annotations {
                    descriptor["annotations"] = json!(a);
                }
                descriptor
            })
            .collect();
        Ok(json!({
            "schemaVersion": 2,
            "mediaType": oci_index::MEDIA_TYPE,
            "manifests": manifests,
        }))
    }
}

/// Reads `n` and `last` of a list request.
pub fn page_request(n: Option<&str>, last: Option<&str>) -> Result<PageRequest> {
    let limit = match n {
        None => MAX_PAGE,
        Some(n) => n.parse::<usize>().map_err(|_| {
            RegistryError::new(
                ErrorCode::PaginationNumberInvalid,
                format!("n={n:?} is not a number of entries"),
            )
        })?,
    };
    Ok(PageRequest {
        limit: limit.min(MAX_PAGE),
        last: last.filter(|l| !l.is_empty()).map(str::to_string),
    })
}

fn name_unknown(repo: &RepositoryName) -> RegistryError {
    RegistryError::new(
        ErrorCode::NameUnknown,
        format!("repository {repo} is not known to the registry"),
    )
    .with_detail(json!({ "name": repo.as_str() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_read_one_name_longer_than_it_holds() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let request = PageRequest {
            limit: 2,
            last: None,
        };
        assert_eq!(request.names_to_read(), 3);
        let page = |n: &[&str]| request.page(names(n));
        assert_eq!(
            page(&["a", "b", "c"]),
            Page {
                names: names(&["a", "b"]),
                more: true
            }
        );
        assert_eq!(
            page(&["a", "b"]),
            Page {
                names: names(&["a", "b"]),
                more: false
            }
        );
        assert_eq!(
            page(&["a"]),
            Page {
                names: names(&["a"]),
                more: false
            }
        );
        assert_eq!(page(&[]), Page::default());
        let largest = PageRequest {
            limit: usize::MAX,
            last: None,
        };
        assert_eq!(largest.names_to_read(), usize::MAX, "no overflow");
    }
}
