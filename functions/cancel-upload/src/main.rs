//! The cancel-upload Lambda function (DELETE /v2/{namespace}/{repo}/blobs/uploads/{uuid}): builds the registry once per container,
//! token checks on, then serves every request through its route of
//! [`quayside::http::routes`], whose gate checks the caller before the handler runs.

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quayside::aws::logging::init();
    let registry = quayside::backend::from_env().await?;
    let route = quayside::http::route("cancel-upload")
        .ok_or("no route cancel-upload in the route table")?;
    run(service_fn(async |req: Request| {
        Ok::<_, Error>(route.serve_api_gateway(&registry, req).await)
    }))
    .await
}
