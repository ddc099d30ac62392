//! The fetch-manifest Lambda function, GET and HEAD /v2/{name}/manifests/{reference}: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("fetch-manifest").await
}
