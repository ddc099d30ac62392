//! The load benchmark's ceiling (`bench/load.py`): a bare axum server that answers a
//! manifest GET or HEAD with the same bytes and headers as the registry, from memory, with
//! no storage, no routing table and no checks. What this machine can serve at most.
//!
//! ```text
//! cargo run --release -p registry-local --example bare-server -- 127.0.0.1:5002 manifest.json \
//!     application/vnd.oci.image.manifest.v1+json
//! ```

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, header};
use axum::routing::get;
use quayside::digest::Digest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare-server ADDR MANIFEST_FILE MEDIA_TYPE";
    let addr = args.next().ok_or(usage)?;
    let body = Bytes::from(std::fs::read(args.next().ok_or(usage)?)?);
    let media_type = HeaderValue::from_str(&args.next().ok_or(usage)?)?;
    let digest = HeaderValue::from_str(&Digest::sha256(&body).to_string())?;
    let answer = move || {
        let (body, media_type, digest) = (body.clone(), media_type.clone(), digest.clone());
        async move {
            Response::builder()
                .header("docker-distribution-api-version", "registry/2.0")
                .header(header::CONTENT_TYPE, media_type)
                .header("docker-content-digest", digest)
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from(body))
                .expect("response")
        }
    };
    // axum answers HEAD with the GET handler's headers and no body.
    let app = Router::new().route("/v2/{namespace}/{repo}/manifests/{reference}", get(answer));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
