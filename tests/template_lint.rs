//! template.yaml passes AWS's own checkers, offline: `cfn-lint` and `sam validate --lint`
//! (PyPI: cfn-lint, aws-sam-cli; `tests/run` installs both in `.venv` and puts them on the
//! PATH). A missing tool fails the test: it is never skipped.

use std::path::Path;
use std::process::Command;

fn template() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// Runs `program args` in the workspace root; fails with its output unless it succeeds.
fn check(program: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(program)
        .args(args)
        .current_dir(&root)
        .env("SAM_CLI_TELEMETRY", "0")
        // Offline: nothing here may reach AWS.
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} could not run ({e}): run tests/run, which installs it in .venv")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn cfn_lint_accepts_the_template() {
    check("cfn-lint", &[template().to_str().expect("a UTF-8 path")]);
}

#[test]
fn sam_validate_lint_accepts_the_template() {
    check(
        "sam",
        &[
            "validate",
            "--lint",
            "--region",
            "us-east-1",
            "--template-file",
            template().to_str().expect("a UTF-8 path"),
        ],
    );
}
