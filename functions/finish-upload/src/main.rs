//! The finish-upload Lambda function (PUT /v2/{namespace}/{repo}/blobs/uploads/{uuid}): builds the registry once per container, then
//! hands every request to [`quayside::http::uploads::finish_upload`].

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let registry = quayside::backend::from_env().await?;
    run(service_fn(async |req: Request| {
        Ok::<_, Error>(quayside::http::uploads::finish_upload(&registry, req).await)
    }))
    .await
}
