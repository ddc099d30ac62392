//! template.yaml passes AWS's own checkers, offline: `cfn-lint` and `sam validate --lint`
//! (PyPI: cfn-lint, aws-sam-cli; `tests/run` installs both in `.venv` and puts them on the
//! PATH). A missing tool fails the test: it is never skipped.
//!
//! Neither sees what CloudFormation refuses after SAM's transform: a circular dependency
//! that SAM's generated resources close (issue 10: the HttpApi's generated OpenAPI body names
//! every function, and every function's environment named the API). So
//! `tests/deployment/check_template.py` runs SAM's transform itself, looks for cycles among
//! the translated resources, and runs a pinned cfn-lint on the translation; the tests below
//! run it on template.yaml and, to show it can fail, on fixtures that have cycles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/deployment/check_template.py TEMPLATE`, with `.venv`'s python by its path, not a
/// `python` from the PATH: the checker needs the samtranslator that aws-sam-cli installs
/// there, and outside `tests/run` the PATH's python is whatever the machine has (Debian has
/// none by that name). Its cfn-lint is the pinned one `tests/run` installs in
/// `.venv/pinned/cfn-lint`. Exit status 0: passes; 1: cycles or cfn-lint findings;
/// 2: could not run (a missing tool fails every test here, never skips it).
fn check_template(template: &Path) -> (Output, String) {
    let python = root().join(".venv/bin/python");
    let output = Command::new(&python)
        .arg(root().join("tests/deployment/check_template.py"))
        .arg(template)
        .current_dir(root())
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("{} could not run ({e}): run tests/run", python.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// Runs the checker on a fixture that must fail: exit status 1 (not 2, a checker that could
/// not run), and its report.
fn failing_check(fixture: &str) -> String {
    let (output, text) = check_template(&root().join("tests/deployment/fixtures").join(fixture));
    assert_eq!(
        output.status.code(),
        Some(1),
        "check_template.py should find cycles in {fixture}:\n{text}"
    );
    text
}

#[test]
fn the_translated_template_has_no_cycle() {
    let (output, text) = check_template(&template());
    assert!(
        output.status.success(),
        "SAM's translation of template.yaml is not deployable:\n{text}"
    );
}

#[test]
fn the_cycle_check_finds_the_realm_cycle() {
    // template.yaml as of 0184b2e: QUAYSIDE_AUTH_REALM built from ${RegistryApi}.
    let text = failing_check("realm-cycle.yaml");
    assert!(
        text.contains("cycle: RegistryApi -> ApiVersionFunction -> RegistryApi"),
        "the cycle through RegistryApi is not named:\n{text}"
    );
    assert!(
        text.contains("QUAYSIDE_AUTH_REALM"),
        "the edge's reference is not named:\n{text}"
    );
    assert!(
        text.contains("E3004"),
        "the pinned cfn-lint did not report E3004:\n{text}"
    );
}

#[test]
fn the_cycle_check_follows_every_reference_form() {
    // DependsOn lists, both Fn::If branches, Fn::Sub's forms, both Fn::GetAtt forms,
    // Metadata; and not ${!literals}, Fn::Sub's own variables, parameters or Outputs.
    let text = failing_check("reference-forms.yaml");
    for cycle in [
        "cycle: Alpha -> Beta -> Alpha",
        "cycle: Delta -> Zeta -> Delta",
        "cycle: Iota -> Kappa -> Iota",
        "cycle: Mu -> Mu",
    ] {
        assert!(text.contains(cycle), "{cycle} is missing:\n{text}");
    }
    assert!(
        text.contains("CIRCULAR DEPENDENCY 4 of 4"),
        "more or fewer than the four cycles:\n{text}"
    );
    assert!(
        text.contains("E3004"),
        "cfn-lint missed the cycles:\n{text}"
    );
}
