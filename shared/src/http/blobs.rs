//! The blob functions: fetch (GET, HEAD) and delete on `/v2/{name}/blobs/{digest}`.
//!
//! May call: `registry` (its blob operations), domain types, `http` helpers. Nothing of
//! storage: whether the bytes come back or a redirect to S3 is the blob store's answer.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use super::{
    DOCKER_CONTENT_DIGEST, FileBody, answer, digest, header, path_parameter, repository, response,
};
use crate::error::RegistryError;
use crate::ports::BlobBody;
use crate::registry::ByteRange;
use crate::registry::Registry;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

#[cfg(feature = "blobs")]
/// GET: the bytes (206 for a `Range`), or `307` to where they are; HEAD: size and digest.
pub async fn fetch_blob(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let method = req.method().clone();
        let repo = repository(&req)?;
        let digest = digest(&path_parameter(&req, "digest")?)?;
        let builder = response(StatusCode::OK).header(DOCKER_CONTENT_DIGEST, digest.to_string());
        if method == Method::HEAD {
            let size = registry.blob_size(&repo, &digest).await?;
            return builder
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .header(ACCEPT_RANGES, "bytes")
                .body(Body::Empty)
                .map_err(RegistryError::internal);
        }
        let range = header(&req, RANGE).and_then(parse_range);
        let blob = registry.fetch_blob(&repo, &digest, range).await?;
        if let BlobBody::Redirect(url) = blob.body {
            return builder
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(LOCATION, url)
                .header(CONTENT_LENGTH, 0)
                .body(Body::Empty)
                .map_err(RegistryError::internal);
        }
        let builder = match blob.range {
            Some((start, end)) => builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(CONTENT_RANGE, format!("bytes {start}-{end}/{}", blob.size)),
            None => builder,
        }
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(ACCEPT_RANGES, "bytes");
        match blob.body {
            BlobBody::File { path, offset, len } => builder
                .header(CONTENT_LENGTH, len)
                .extension(FileBody { path, offset, len })
                .body(Body::Empty),
            BlobBody::Bytes(bytes) => builder
                .header(CONTENT_LENGTH, bytes.len())
                .body(Body::Binary(bytes.to_vec())),
            BlobBody::Redirect(_) => builder.body(Body::Empty),
        }
        .map_err(RegistryError::internal)
    })
    .await
}

/// DELETE: unlinks the blob from the repository; `202 Accepted`.
pub async fn delete_blob(registry: &Registry, req: Request) -> Response<Body> {
    answer(req, async |req| {
        let repo = repository(&req)?;
        let digest = digest(&path_parameter(&req, "digest")?)?;
        registry.delete_blob(&repo, &digest).await?;
        super::accepted()
    })
    .await
}

/// One range, `bytes=<start>-[<end>]` or the suffix `bytes=-<n>`; anything else (several
/// ranges, other units, numbers that do not parse) is ignored, as HTTP allows, and the
/// whole blob is served.
fn parse_range(value: &str) -> Option<ByteRange> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (start.trim(), end.trim()) {
        ("", last) => Some(ByteRange::Last(number(last)?)),
        (start, "") => Some(ByteRange::From {
            start: number(start)?,
            end: None,
        }),
        (start, end) => Some(ByteRange::From {
            start: number(start)?,
            end: Some(number(end)?),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, parse_range};

    #[test]
    fn ranges() {
        let from = |start, end| Some(ByteRange::From { start, end });
        assert_eq!(parse_range("bytes=0-99"), from(0, Some(99)));
        assert_eq!(parse_range("bytes=100-"), from(100, None));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Last(5)));
        assert_eq!(parse_range("bytes=-"), None);
        assert_eq!(parse_range("bytes=1-2,4-5"), None);
        assert_eq!(parse_range("bytes=99999999999999999999-"), None);
        assert_eq!(parse_range("items=1-2"), None);
    }
}
