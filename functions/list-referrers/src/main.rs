//! The list-referrers Lambda function (GET /v2/{namespace}/{repo}/referrers/{digest}): builds the registry once per container, then
//! hands every request to [`quayside::http::lists::list_referrers`].

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let registry = quayside::backend::from_env().await?;
    run(service_fn(async |req: Request| {
        Ok::<_, Error>(quayside::http::lists::list_referrers(&registry, req).await)
    }))
    .await
}
