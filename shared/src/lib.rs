//! quayside's shared crate: everything the Lambda functions and registry-local have in common.
//!
//! Layers, each allowed to call only those above it:
//! - domain: [`digest`], [`names`], [`error`], [`manifest`] (one module per format), [`signing`],
//!   [`retry`];
//! - [`ports`]: the storage traits, and [`registry`]: the registry's operations over them;
//!   [`auth`]: who may do what, and the bearer tokens that say so;
//! - adapters: [`embedded`] (redb, a blob folder, a key file, a JSON-lines file) and
//!   `aws` (DynamoDB, S3, KMS, SNS; one cargo feature per service);
//! - [`http`]: the handlers, `lambda_http::Request` in, `Response` out, over [`registry`].

pub mod auth;
#[cfg(any(feature = "aws", feature = "notify"))]
pub mod aws;
pub mod backend;
pub mod digest;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod error;
pub mod http;
pub mod manifest;
pub mod names;
pub mod ports;
pub mod registry;
pub mod retry;
pub mod signing;
