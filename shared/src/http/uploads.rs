//! The upload functions on `/v2/{name}/blobs/uploads/`: start (POST: a session,
//! a monolithic upload with `?digest=`, or a cross-repository mount with `?mount=&from=`),
//! then per session: PATCH a chunk, PUT to finish, GET its status, DELETE to cancel.
//!
//! May call: `registry` (its blob operations), domain types, `http` helpers. Nothing of
//! storage.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use super::auth::{Caller, RegistryOrigin, UPLOAD_CAPABILITY, api_base};
use super::{
    DOCKER_CONTENT_DIGEST, StreamedBody, answer, body_bytes, digest, header, path_parameter, query,
    repository, response,
};
use crate::digest::Algorithm;
use crate::error::{ErrorCode, RegistryError};
use crate::names::RepositoryName;
use crate::registry::Registry;
use crate::registry::{UploadBody, UploadStatus};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderName, LOCATION, RANGE};
use http::{StatusCode, response::Builder};
use lambda_http::{Body, Request, Response};

const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_CHUNK_MAX_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-max-length");

#[cfg(feature = "blobs")]
/// POST: `?mount=&from=` links a blob the source repository has (201; `from` may be left
/// out where the registry allows, see [`Registry::mount_blob`]), else opens a session; `?digest=` takes the whole blob in the body (201); otherwise a session (202),
/// hashed with `?digest-algorithm=` (sha256 unless it says sha512).
pub async fn start_upload(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        // A mount the gate refused is no mount (see `auth::MountRefused`).
        let refused = req
            .extensions()
            .get::<super::auth::MountRefused>()
            .is_some();
        if let Some(mount) = query(&req, "mount").filter(|_| !refused) {
            let digest = digest(&mount)?;
            let from = query(&req, "from")
                .map(|from| RepositoryName::parse(&from))
                .transpose()?;
            if registry.mount_blob(&repo, &digest, from.as_ref()).await? {
                return blob_created("", &repo, &digest);
            }
            // Not mounted: the spec's fallback is a session for a normal upload.
        } else if let Some(value) = query(&req, "digest") {
            let digest = digest(&value)?;
            registry.put_blob(&repo, &digest, upload_body(req)).await?;
            return blob_created("", &repo, &digest);
        } else if has_body(&req) {
            return Err(RegistryError::new(
                ErrorCode::BlobUploadInvalid,
                "a POST carries blob bytes only with ?digest=; PATCH them to the upload instead",
            ));
        }
        let algorithm = match query(&req, "digest-algorithm") {
            None => Algorithm::Sha256,
            Some(name) => Algorithm::parse(&name).ok_or_else(|| {
                RegistryError::new(
                    ErrorCode::DigestInvalid,
                    format!("digest-algorithm {name:?} is not supported: sha256 or sha512"),
                )
            })?,
        };
        let status = registry.start_upload(&repo, algorithm).await?;
        let location = opened_at(registry, &req, &repo, &status.id).await?;
        session(registry, location, &status, StatusCode::ACCEPTED)
    })
    .await
}

#[cfg(feature = "blobs")]
/// PATCH: one chunk, with or without `Content-Range`; out of order is `416`.
pub async fn patch_upload(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let id = path_parameter(&req, "uuid")?;
        let start = content_range(&req)?;
        let location = continued_at(&req, &repo, &id);
        let body = upload_body(req);
        check_range_length(start, &body)?;
        let status = registry
            .append_upload(&repo, &id, start.map(|(s, _)| s), body)
            .await?;
        session(registry, location, &status, StatusCode::ACCEPTED)
    })
    .await
}

#[cfg(feature = "blobs")]
/// PUT `?digest=`: the last chunk, if any, then the blob is checked and stored (201).
pub async fn finish_upload(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let id = path_parameter(&req, "uuid")?;
        let Some(digest) = query(&req, "digest") else {
            // An unknown upload is the clearer answer, when it is one.
            registry.upload_status(&repo, &id).await?;
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                "finishing an upload needs ?digest= of the whole blob",
            ));
        };
        let digest = super::digest(&digest)?;
        let start = content_range(&req)?;
        // On the upload service, the blob's URL is the registry's own.
        let origin = req
            .extensions()
            .get::<RegistryOrigin>()
            .map(|o| o.0.clone());
        let body = upload_body(req);
        check_range_length(start, &body)?;
        registry
            .finish_upload(&repo, &id, &digest, start.map(|(s, _)| s), body)
            .await?;
        blob_created(origin.as_deref().unwrap_or_default(), &repo, &digest)
    })
    .await
}

/// GET: where the upload stands (204 with `Range`).
pub async fn upload_status(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let id = path_parameter(&req, "uuid")?;
        let status = registry.upload_status(&repo, &id).await?;
        session(
            registry,
            continued_at(&req, &repo, &id),
            &status,
            StatusCode::NO_CONTENT,
        )
    })
    .await
}

#[cfg(feature = "blobs")]
/// DELETE: cancels the upload and removes its bytes (204).
pub async fn cancel_upload(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let id = path_parameter(&req, "uuid")?;
        registry.cancel_upload(&repo, &id).await?;
        response(StatusCode::NO_CONTENT)
            .body(Body::Empty)
            .map_err(RegistryError::internal)
    })
    .await
}

/// The request's body as the upload operations read it: the stream registry-local put in
/// the request's extensions (read as it arrives, only once the route's checks passed), or
/// the bytes of the Lambda event.
fn upload_body(mut req: Request) -> UploadBody {
    if let Some(stream) = req.extensions_mut().remove::<StreamedBody>()
        && let Some(body) = stream.take()
    {
        return body;
    }
    UploadBody::from_bytes(body_bytes(req.into_body()))
}

/// Whether the request carries a body (declared, streamed, or in the event).
fn has_body(req: &Request) -> bool {
    match req.extensions().get::<StreamedBody>() {
        Some(stream) => stream.declared() != Some(0),
        None => !matches!(req.body(), Body::Empty) && !req.body().as_ref().is_empty(),
    }
}

/// `Content-Range: <start>-<end>` (inclusive; "bytes " tolerated), if sent.
fn content_range(req: &Request) -> Result<Option<(u64, u64)>, RegistryError> {
    let Some(value) = header(req, CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            format!("Content-Range {value:?} is not <start>-<end>"),
        )
    };
    let range = value.trim().trim_start_matches("bytes").trim();
    let (start, end) = range.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.parse().map_err(|_| invalid())?;
    let end: u64 = end.parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    Ok(Some((start, end)))
}

/// A `Content-Range` must span exactly the bytes sent (when their number is declared).
fn check_range_length(range: Option<(u64, u64)>, body: &UploadBody) -> Result<(), RegistryError> {
    let (Some((start, end)), Some(sent)) = (range, body.declared()) else {
        return Ok(());
    };
    // `end >= start` was checked; a span of 2^64 bytes cannot be sent.
    let span = (end - start).checked_add(1);
    if sent == 0 || span == Some(sent) {
        return Ok(());
    }
    Err(RegistryError::new(
        ErrorCode::SizeInvalid,
        format!(
            "Content-Range {start}-{end} spans {} bytes, but {sent} were sent",
            span.map_or_else(|| "2^64".to_string(), |n| n.to_string())
        ),
    ))
}

/// A session's path, with its capability if it has one.
fn session_path(repo: &RepositoryName, id: &str, capability: Option<&str>) -> String {
    let path = format!("/v2/{repo}/blobs/uploads/{id}");
    match capability {
        Some(capability) => {
            let capability: String =
                form_urlencoded::byte_serialize(capability.as_bytes()).collect();
            format!("{path}?{UPLOAD_CAPABILITY}={capability}")
        }
        None => path,
    }
}

/// Where a session just opened continues: on the upload service where the deployment has
/// one, with a capability for it that names the caller and this API (where the service
/// sends the client once the blob is stored); else on this host.
async fn opened_at(
    registry: &Registry,
    req: &Request,
    repo: &RepositoryName,
    id: &str,
) -> Result<String, RegistryError> {
    let Some(service) = registry
        .upload_service
        .as_ref()
        .filter(|_| !refuses_another_host(req))
    else {
        return Ok(session_path(repo, id, None));
    };
    let origin = registry.public_url.clone().unwrap_or_else(|| api_base(req));
    let subject = req
        .extensions()
        .get::<Caller>()
        .and_then(|caller| caller.subject.as_deref());
    let capability = registry
        .upload_capability(subject, repo, id, &origin)
        .await?;
    Ok(format!(
        "{service}{}",
        session_path(repo, id, capability.as_deref())
    ))
}

/// Whether the client refuses an upload `Location` on another host than the registry's:
/// oras (oras-go: "blob upload Location … is on a different host than the registry", a
/// guard against sending credentials elsewhere). Its sessions stay on the API, 4 MiB per
/// request on Lambda (README, "Request size on Lambda, and large layers").
fn refuses_another_host(req: &Request) -> bool {
    header(req, http::header::USER_AGENT)
        .is_some_and(|agent| agent.starts_with("oras/") || agent.starts_with("oras-go"))
}

/// Where the session of `req` continues: on this host, with the capability the request
/// came with (the gate checked it), so that the client's next request carries it again.
fn continued_at(req: &Request, repo: &RepositoryName, id: &str) -> String {
    session_path(repo, id, query(req, UPLOAD_CAPABILITY).as_deref())
}

/// 202/204 of a session: `Location`, `Range`, `Docker-Upload-UUID`, the chunk limit.
fn session(
    registry: &Registry,
    location: String,
    status: &UploadStatus,
    code: StatusCode,
) -> Result<Response<Body>, RegistryError> {
    // `Range` is inclusive: an empty upload reports 0-0, as distribution does.
    let end = status.offset.saturating_sub(1);
    let builder: Builder = response(code)
        .header(LOCATION, location)
        .header(RANGE, format!("0-{end}"))
        .header(DOCKER_UPLOAD_UUID, &status.id)
        .header(OCI_CHUNK_MAX_LENGTH, registry.limits.max_chunk_bytes);
    let builder = if code == StatusCode::NO_CONTENT {
        builder
    } else {
        builder.header(CONTENT_LENGTH, 0)
    };
    builder.body(Body::Empty).map_err(RegistryError::internal)
}

/// 201 of a stored or mounted blob, its URL on this host or under `base`.
fn blob_created(
    base: &str,
    repo: &RepositoryName,
    digest: &crate::digest::Digest,
) -> Result<Response<Body>, RegistryError> {
    response(StatusCode::CREATED)
        .header(LOCATION, format!("{base}/v2/{repo}/blobs/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(Body::Empty)
        .map_err(RegistryError::internal)
}
