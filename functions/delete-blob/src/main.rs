//! The delete-blob Lambda function (DELETE /v2/{namespace}/{repo}/blobs/{digest}): builds the registry once per container, then
//! hands every request to [`quayside::http::blobs::delete_blob`].

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let registry = quayside::backend::from_env().await?;
    run(service_fn(async |req: Request| {
        Ok::<_, Error>(quayside::http::blobs::delete_blob(&registry, req).await)
    }))
    .await
}
