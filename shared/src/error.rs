//! The registry's errors: every code of the distribution spec with its HTTP status and the
//! `{"errors":[{"code","message","detail"}]}` body.
//!
//! Pure domain: the status is a number here, so that this module needs no HTTP crate;
//! the `http` module turns a [`RegistryError`] into a response.

use serde_json::{Value, json};
use std::fmt;

/// The error codes of the OCI distribution spec (and Docker's `UNKNOWN` for a server fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    ManifestUnverified,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// distribution's code for a backend that cannot answer now (503): try again later.
    Unavailable,
    /// distribution's code for a bad `n` of a list request.
    PaginationNumberInvalid,
    /// A fault of the server or its backend; the body says nothing of the cause.
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            ManifestUnverified => "MANIFEST_UNVERIFIED",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            TagInvalid => "TAG_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            Unavailable => "UNAVAILABLE",
            PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Unknown => "UNKNOWN",
        }
    }

    /// The status the spec (and distribution, where the spec leaves it open) gives this code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BlobUnknown | BlobUploadUnknown | ManifestUnknown | NameUnknown => 404,
            BlobUploadInvalid
            | DigestInvalid
            | ManifestBlobUnknown
            | ManifestInvalid
            | ManifestUnverified
            | NameInvalid
            | SizeInvalid
            | TagInvalid
            | PaginationNumberInvalid => 400,
            Unauthorized => 401,
            Denied => 403,
            Unsupported => 405,
            TooManyRequests => 429,
            Unknown => 500,
            Unavailable => 503,
        }
    }

    /// The spec's one-line description, used when a caller gives no message of its own.
    pub fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown to registry",
            ManifestUnverified => "manifest failed signature verification",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            TagInvalid => "manifest tag did not match URI",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "the operation is unsupported",
            TooManyRequests => "too many requests",
            Unavailable => "service unavailable: try again later",
            PaginationNumberInvalid => "invalid number of results requested",
            Unknown => "internal server error",
        }
    }
}

/// An error answered to a client: a code, a message for people, and optional detail.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub message: String,
    pub detail: Option<Value>,
    /// Overrides the code's status where the spec asks for another one (413, 416).
    pub status: Option<u16>,
    /// Seconds after which a client may try again (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u32>,
}

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
            detail: None,
            status: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// A backend fault. The cause is logged here and never shown to the client.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "backend fault");
        RegistryError::new(ErrorCode::Unknown, ErrorCode::Unknown.default_message())
    }

    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.code.status())
    }

    /// The spec's error body.
    pub fn body(&self) -> Value {
        let mut entry = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(detail) = &self.detail {
            entry["detail"] = detail.clone();
        }
        json!({ "errors": [entry] })
    }
}

impl From<ErrorCode> for RegistryError {
    fn from(code: ErrorCode) -> Self {
        RegistryError::new(code, code.default_message())
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for RegistryError {}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_spec_shape() {
        let e = RegistryError::new(ErrorCode::TagInvalid, "tag x does not match y")
            .with_detail(json!({"tag": "x"}));
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            json!({"errors":[{"code":"TAG_INVALID","message":"tag x does not match y","detail":{"tag":"x"}}]})
        );
        assert_eq!(
            RegistryError::from(ErrorCode::ManifestUnknown).status(),
            404
        );
        assert_eq!(
            RegistryError::from(ErrorCode::ManifestInvalid)
                .with_status(413)
                .status(),
            413
        );
    }
}
