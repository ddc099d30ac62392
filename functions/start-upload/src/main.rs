//! The start-upload Lambda function, POST /v2/{name}/blobs/uploads/: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("start-upload").await
}
