//! The list functions: tags of a repository, the catalog, and referrers of a manifest.
//!
//! May call: `registry` (its list operations), domain types, `http` helpers. Nothing of
//! storage.

use super::{answer, digest, path_parameter, query, repository, response};
use crate::error::RegistryError;
use crate::manifest::oci_index;
use crate::registry::Page;
use crate::registry::Registry;
use crate::registry::page_request;
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, LINK};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// `GET /v2/{name}/tags/list?n=&last=`, with `Link` to the next page.
pub async fn list_tags(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let page = page_request(query(&req, "n").as_deref(), query(&req, "last").as_deref())?;
        let tags = registry.list_tags(&repo, &page).await?;
        paged(
            &format!("/v2/{repo}/tags/list"),
            page.limit,
            json!({ "name": repo.as_str(), "tags": tags.names }),
            &tags,
        )
    })
    .await
}

/// `GET /v2/_catalog?n=&last=`, with `Link` to the next page. With auth on, only the
/// repositories the caller may pull (see `crate::auth`).
pub async fn catalog(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let page = page_request(query(&req, "n").as_deref(), query(&req, "last").as_deref())?;
        let caller = req.extensions().get::<super::Caller>();
        let repositories = registry
            .catalog_for(&page, caller.map(|c| c.subject.as_deref()))
            .await?;
        paged(
            "/v2/_catalog",
            page.limit,
            json!({ "repositories": repositories.names }),
            &repositories,
        )
    })
    .await
}

/// `GET /v2/{name}/referrers/{digest}?artifactType=`: an OCI index.
pub async fn list_referrers(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let subject = digest(&path_parameter(&req, "digest")?)?;
        let artifact_type = query(&req, "artifactType").filter(|t| !t.is_empty());
        let index = registry
            .referrers(&repo, &subject, artifact_type.as_deref())
            .await?;
        let body = index.to_string();
        let mut builder = response(StatusCode::OK)
            .header(CONTENT_TYPE, oci_index::MEDIA_TYPE)
            .header(CONTENT_LENGTH, body.len());
        if artifact_type.is_some() {
            builder = builder.header(OCI_FILTERS_APPLIED, "artifactType");
        }
        builder
            .body(Body::Text(body))
            .map_err(RegistryError::internal)
    })
    .await
}

/// A JSON page, with RFC 5988 `Link: <…?n=&last=>; rel="next"` when more follow.
fn paged(
    path: &str,
    limit: usize,
    body: Value,
    page: &Page,
) -> Result<Response<Body>, RegistryError> {
    let body = body.to_string();
    let mut builder = response(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    if let (true, Some(last)) = (page.more, page.names.last()) {
        let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
        builder = builder.header(
            LINK,
            format!("<{path}?n={limit}&last={last}>; rel=\"next\""),
        );
    }
    builder
        .body(Body::Text(body))
        .map_err(RegistryError::internal)
}
