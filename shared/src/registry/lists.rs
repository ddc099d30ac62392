//! Content discovery: tags of a repository, the catalog of repositories, and the referrers
//! of a manifest (OCI 1.1).
//!
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::manifest::oci_index;
use crate::names::RepositoryName;
use crate::ports::{Page, PageRequest};
use crate::registry::Registry;
use serde_json::{Value, json};

/// The page size when the client gives no `n`, and the largest it may ask for.
pub const MAX_PAGE: usize = 1000;

impl Registry {
    /// A page of the repository's tags; `NAME_UNKNOWN` if it does not exist.
    pub async fn list_tags(&self, repo: &RepositoryName, page: &PageRequest) -> Result<Page> {
        if page.limit == 0 {
            // The spec: n=0 is an empty list, not a lookup (but the name must exist).
            return match self.metadata.repository_exists(repo).await? {
                true => Ok(Page::default()),
                false => Err(name_unknown(repo)),
            };
        }
        self.metadata
            .tags(repo, page)
            .await?
            .ok_or_else(|| name_unknown(repo))
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
        Ok(self.metadata.repositories(page).await?)
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
