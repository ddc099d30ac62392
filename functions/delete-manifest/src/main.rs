//! The delete-manifest Lambda function, DELETE /v2/{name}/manifests/{reference}: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("delete-manifest").await
}
