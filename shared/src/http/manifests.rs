//! The three manifest functions: fetch (GET, HEAD), write (PUT), delete (DELETE) on
//! `/v2/{name}/manifests/{reference}`.
//!
//! May call: `registry`, domain types, `http` helpers. Nothing of storage.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use super::{
    DOCKER_CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG, answer, body_bytes, body_of, path_parameter,
    repository, response,
};
use crate::error::{ErrorCode, RegistryError};
use crate::manifest::accept::Accept;
use crate::names::{Reference, RepositoryName, Tag};
use crate::registry::Registry;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

fn manifest_route(req: &Request) -> Result<(RepositoryName, Reference), RegistryError> {
    let repo = repository(req)?;
    let reference = Reference::parse(&path_parameter(req, "reference")?)?;
    Ok((repo, reference))
}

#[cfg(feature = "blobs")]
/// GET and HEAD: the stored bytes unchanged (or the form `Accept` asks for), with
/// `Content-Type`, `Docker-Content-Digest` and `Content-Length`; HEAD without the body.
pub async fn fetch_manifest(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let method = req.method().clone();
        let (repo, reference) = manifest_route(&req).map_err(|e| {
            // No manifest can be found by a reference that is not a tag (nor a digest): the
            // spec's conformance suite and distribution answer `404`, not `400`.
            if e.code == ErrorCode::TagInvalid {
                RegistryError::new(ErrorCode::ManifestUnknown, e.message)
            } else {
                e
            }
        })?;
        let accept = Accept::from_headers(
            req.headers()
                .get_all(ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let manifest = registry.get_manifest(&repo, &reference, &accept).await?;
        let builder = response(StatusCode::OK)
            .header(CONTENT_TYPE, &manifest.media_type)
            .header(DOCKER_CONTENT_DIGEST, manifest.digest.to_string())
            .header(CONTENT_LENGTH, manifest.body.len());
        let body = if method == Method::HEAD {
            Body::Empty
        } else {
            body_of(manifest.body)
        };
        builder.body(body).map_err(RegistryError::internal)
    })
    .await
}

/// PUT: `201 Created` with `Location` and `Docker-Content-Digest` (and `OCI-Subject` when
/// the manifest has a subject). `?tag=` parameters (the OCI dev spec) tag the manifest too,
/// in the same write, each answered in an `OCI-Tag` header; an invalid one is
/// `TAG_INVALID` and nothing is stored.
pub async fn write_manifest(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let (repo, reference) = manifest_route(&req)?;
        let tag_parameters = req
            .uri()
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k == "tag")
                    .map(|(_, v)| Tag::parse(&v))
                    .collect::<Result<Vec<Tag>, RegistryError>>()
            })
            .transpose()?
            .unwrap_or_default();
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = body_bytes(req.into_body());
        let pushed = registry
            .put_manifest(
                &repo,
                &reference,
                &tag_parameters,
                content_type.as_deref(),
                body,
            )
            .await?;
        let mut builder = response(StatusCode::CREATED)
            .header(LOCATION, format!("/v2/{repo}/manifests/{}", pushed.digest))
            .header(DOCKER_CONTENT_DIGEST, pushed.digest.to_string())
            .header(CONTENT_LENGTH, 0);
        if let Some(subject) = &pushed.subject {
            builder = builder.header(OCI_SUBJECT, subject.to_string());
        }
        // One header per tag: a tag cannot hold a comma, but one value each is plainest.
        for tag in &pushed.tag_parameters {
            builder = builder.header(OCI_TAG, tag.as_str());
        }
        builder.body(Body::Empty).map_err(RegistryError::internal)
    })
    .await
}

/// DELETE by digest or by tag: `202 Accepted`.
pub async fn delete_manifest(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let (repo, reference) = manifest_route(&req)?;
        registry.delete_manifest(&repo, &reference).await?;
        super::accepted()
    })
    .await
}
