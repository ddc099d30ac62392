//! Content digests (`algorithm:hex`), as the OCI image spec defines them.
//!
//! Pure domain: may call hashing crates, nothing of HTTP, storage or AWS.

use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::str::FromStr;

/// The hash algorithms a registry must accept in a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm of this name (`sha256`, `sha512`), as `digest-algorithm=` names it.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Hashes `bytes` with this algorithm.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self,
            hex,
        }
    }
}

/// A hash in progress, of either algorithm: what a blob store computes over the very bytes
/// it writes, to check them against the digest they are stored under.
#[derive(Clone, Debug)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The hash's state, to carry on later (an upload's next request): a SHA-256 state as
    /// it always was, a SHA-512 state after `SHA512_STATE`.
    pub fn save(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.serialize().to_vec(),
            Hasher::Sha512(h) => [SHA512_STATE, h.serialize().as_slice()].concat(),
        }
    }

    /// The hash [`Hasher::save`] saved; `None` if `state` is not one.
    pub fn restore(state: &[u8]) -> Option<Hasher> {
        match state.strip_prefix(SHA512_STATE) {
            Some(rest) => SerializedState::<Sha512>::try_from(rest)
                .ok()
                .and_then(|s| Sha512::deserialize(&s).ok())
                .map(Hasher::Sha512),
            None => SerializedState::<Sha256>::try_from(state)
                .ok()
                .and_then(|s| Sha256::deserialize(&s).ok())
                .map(Hasher::Sha256),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_hash(Algorithm::Sha256, h.finalize().as_slice()),
            Hasher::Sha512(h) => Digest::from_hash(Algorithm::Sha512, h.finalize().as_slice()),
        }
    }
}

/// What marks a saved SHA-512 state (a SHA-256 state has a fixed length, and no mark).
const SHA512_STATE: &[u8] = b"sha512:";

/// A validated digest such as `sha256:6c3c…`: a known algorithm and lowercase hex of the
/// right length. Anything else is refused, so a digest is always safe in a key or a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest algorithm {0:?} (sha256 and sha512 are supported)")]
    UnsupportedAlgorithm(String),
    #[error("digest must look like <algorithm>:<hex>")]
    Malformed,
    #[error("{algorithm} digest must have {expected} lowercase hex characters")]
    BadHex {
        algorithm: &'static str,
        expected: usize,
    },
}

impl Digest {
    /// The SHA-256 digest of `bytes`, the registry's canonical algorithm.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest(bytes)
    }

    /// The digest named by a finished hash's output bytes.
    pub fn from_hash(algorithm: Algorithm, output: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: hex::encode(output),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// True when `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.algorithm.digest(bytes) == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                // The grammar allows other algorithms; a registry need not support them.
                let grammar_ok = !other.is_empty()
                    && other.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                    });
                return Err(if grammar_ok {
                    DigestError::UnsupportedAlgorithm(other.to_string())
                } else {
                    DigestError::Malformed
                });
            }
        };
        let hex_ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(DigestError::BadHex {
                algorithm: algorithm.name(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_hash_carries_on_where_it_stopped() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = Hasher::new(algorithm);
            first.update(b"hello ");
            let mut restored = Hasher::restore(&first.save()).expect("a saved state");
            assert_eq!(restored.algorithm(), algorithm);
            restored.update(b"world");
            assert_eq!(restored.finish(), algorithm.digest(b"hello world"));
        }
        assert!(Hasher::restore(b"sha512:short").is_none());
        assert!(Hasher::restore(&[1, 2, 3]).is_none());
    }

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            Digest::sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parses_and_refuses() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        assert_eq!(
            "sha256:abc".parse::<Digest>(),
            Err(DigestError::BadHex {
                algorithm: "sha256",
                expected: 64
            })
        );
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert_eq!("nocolon".parse::<Digest>(), Err(DigestError::Malformed));
        assert!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>()
                .is_err()
        );
        assert!(
            format!("sha512:{}", "a".repeat(128))
                .parse::<Digest>()
                .is_ok()
        );
        assert!(
            format!("sha512:{}", "a".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
    }
}
