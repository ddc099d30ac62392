//! The access log: one line per request, refused ones included, at `info` on the target
//! `quayside::access` (JSON where the log is JSON: on Lambda, and registry-local's
//! `--log-format json`). Fields: method, path, status, bytes in and out, duration, client
//! address, principal, request id. Never a secret: the path's query keeps its parameter
//! names, but the value of any that could carry one (a password, a token, a signature) is
//! replaced, and no header is logged.
//!
//! A server logs each request once, where it knows what went over the wire: a Lambda
//! function in [`super::Route::serve`], registry-local in its connection loop.
//!
//! May call: tracing, `http` types. Nothing of the registry.

use http::{Method, Uri};
use std::time::Duration;

/// Who the token gate let in, as the response carries it to the access log.
#[derive(Clone, Debug, Default)]
pub struct Principal(pub Option<String>);

/// One request as the access log records it.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    pub client: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub request_id: &'a str,
}

impl AccessRecord<'_> {
    /// Writes the line.
    pub fn log(&self) {
        tracing::info!(
            target: "quayside::access",
            method = %self.method,
            path = %loggable_path(self.uri),
            status = self.status,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = self.duration.as_secs_f64() * 1000.0,
            client = self.client.unwrap_or("-"),
            principal = self.principal.unwrap_or("-"),
            request_id = self.request_id,
            "request"
        );
    }
}

/// The path and query as logged: the value of a parameter whose name could carry a secret
/// is `REDACTED`.
pub fn loggable_path(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "token",
        "secret",
        "signature",
        "credential",
        "auth",
        "key",
        // An upload session's capability (`_upload`).
        "upload",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn secrets_in_the_query_are_not_logged() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(
            loggable_path(&uri("/v2/a/b/tags/list?n=10")),
            "/v2/a/b/tags/list?n=10"
        );
        assert_eq!(
            loggable_path(&uri(
                "/v2/auth?service=quayside&password=hunter2&refresh_token=abc&X-Amz-Signature=s"
            )),
            "/v2/auth?service=quayside&password=REDACTED&refresh_token=REDACTED&X-Amz-Signature=REDACTED"
        );
        assert_eq!(
            loggable_path(&uri(
                "/v2/a/blobs/uploads/u?_upload=e30.e30.sig&digest=sha256:0"
            )),
            "/v2/a/blobs/uploads/u?_upload=REDACTED&digest=sha256:0"
        );
        assert_eq!(loggable_path(&uri("/v2/")), "/v2/");
    }
}
