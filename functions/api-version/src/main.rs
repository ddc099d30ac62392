//! The api-version Lambda function (GET /v2/): the check every client makes first. It needs
//! no storage, so it builds none.

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(async |_: Request| {
        Ok::<_, Error>(quayside::http::version_check())
    }))
    .await
}
