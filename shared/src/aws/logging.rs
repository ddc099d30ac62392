//! A Lambda function's logs: one subscriber, set up once at cold start, writing to standard
//! output (CloudWatch stamps each line, so no time here).
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging controls) or else
//! `RUST_LOG`, as `target=level` directives (`info`, `warn,quayside::audit=info`); the
//! format is JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON` (or, in the upload service's
//! container, `QUAYSIDE_LOG_FORMAT` is `json`), text otherwise. This is what
//! lambda_http's `init_default_subscriber` does, without its `EnvFilter`: that one pulls in
//! the regex engine for span and field filters no function uses (part of the 3 MB that
//! this and `Aws::from_lambda_env` took off each binary, BENCHMARKS.md).
//!
//! May call: tracing-subscriber and the environment.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The filter for a `RUST_LOG`-style value: what it names at its levels, everything else at
/// its bare level or else `info` (lambda_http's default too), also when it is unreadable.
fn filter(directives: Option<&str>) -> Targets {
    let targets = directives
        .and_then(|d| d.parse::<Targets>().ok())
        .unwrap_or_default();
    match targets.default_level() {
        Some(_) => targets,
        None => targets.with_default(LevelFilter::INFO),
    }
}

/// Installs the function's subscriber; a second call changes nothing.
pub fn init() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let directives = var("AWS_LAMBDA_LOG_LEVEL").or_else(|| var("RUST_LOG"));
    let json = ["AWS_LAMBDA_LOG_FORMAT", "QUAYSIDE_LOG_FORMAT"]
        .iter()
        .any(|name| var(name).is_some_and(|f| f.eq_ignore_ascii_case("json")));
    let logs = tracing_subscriber::registry().with(filter(directives.as_deref()));
    let layer = tracing_subscriber::fmt::layer().without_time();
    let _ = if json {
        logs.with(layer.json()).try_init()
    } else {
        logs.with(layer).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn reads_rust_log_and_lambda_levels() {
        let default = filter(None);
        assert!(default.would_enable("quayside", &Level::INFO));
        assert!(!default.would_enable("quayside", &Level::DEBUG));
        // Lambda's controls spell levels in capitals.
        let lambda = filter(Some("DEBUG"));
        assert!(lambda.would_enable("aws_smithy_runtime", &Level::DEBUG));
        let targeted = filter(Some("warn,quayside::audit=info"));
        assert!(targeted.would_enable("quayside::audit", &Level::INFO));
        assert!(!targeted.would_enable("quayside::http", &Level::INFO));
        assert!(targeted.would_enable("quayside::http", &Level::WARN));
        let one = filter(Some("quayside=debug"));
        assert!(one.would_enable("quayside::http", &Level::DEBUG));
        assert!(one.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(!one.would_enable("aws_smithy_runtime", &Level::DEBUG));
        // Unreadable: the default, not silence.
        assert!(filter(Some("[{{")).would_enable("quayside", &Level::INFO));
    }
}
