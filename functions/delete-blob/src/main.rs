//! The delete-blob Lambda function, DELETE /v2/{name}/blobs/{digest}: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("delete-blob").await
}
