//! The catalog Lambda function, GET /v2/_catalog: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("catalog").await
}
