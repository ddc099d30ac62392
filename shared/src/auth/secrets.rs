//! Passwords and robot secrets: argon2id hashes (PHC strings), checked in constant time by
//! argon2's verifier, and generated robot secrets. Nothing here logs a secret.
//!
//! Pure domain: argon2 and the OS's random generator; nothing of HTTP, storage or AWS.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::OnceLock;

/// Why a secret could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("hashing failed: {0}")]
pub struct HashError(String);

/// The shortest password a user may set.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest secret checked (a longer one is refused before hashing: argon2 would take
/// it, but there is no reason to let a client make the server hash megabytes).
pub const MAX_SECRET_BYTES: usize = 1024;

/// The argon2id hash of `secret` with a random salt and argon2's default parameters
/// (OWASP's: 19 MiB, 2 passes, 1 lane), as a PHC string.
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    if secret.len() > MAX_SECRET_BYTES {
        return Err(HashError(format!(
            "a secret is at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `secret` matches the PHC string `hash` (argon2 compares in constant time). A
/// hash that does not parse matches nothing.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    secret.len() <= MAX_SECRET_BYTES
        && Argon2::default()
            .verify_password(secret.as_bytes(), hash)
            .is_ok()
}

/// Spends the time of one verification for a principal that does not exist, so that the
/// answer's delay does not tell which names exist.
pub fn verify_nothing(secret: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(hash) = DUMMY.get_or_init(|| hash_secret("quayside: no such principal").ok()) {
        let _ = verify_secret(secret, hash);
    }
}

/// A new robot secret: 256 random bits, base64url (43 characters).
pub fn new_robot_secret() -> Result<String, HashError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| HashError(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash_secret("correct horse").unwrap();
        let b = hash_secret("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_secret("correct horse", &a));
        assert!(!verify_secret("correct horsE", &a));
        assert!(!verify_secret("correct horse", "not a hash"));
        assert!(!verify_secret(&"x".repeat(MAX_SECRET_BYTES + 1), &a));
        let robot = new_robot_secret().unwrap();
        assert_eq!(robot.len(), 43);
        assert_ne!(robot, new_robot_secret().unwrap());
    }
}
