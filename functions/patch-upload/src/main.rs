//! The patch-upload Lambda function, PATCH /v2/{name}/blobs/uploads/{uuid}: its route of
//! [`quayside::http::routes`], served by [`quayside::backend::run_lambda_route`].

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    quayside::backend::run_lambda_route("patch-upload").await
}
