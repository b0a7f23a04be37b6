//! The identity of a policy version.

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of a policy file: the identity of a policy version.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyHash([u8; 32]);

impl PolicyHash {
    /// Hashes a policy file's bytes.
    pub fn of(bytes: &[u8]) -> Self {
        PolicyHash(Sha256::digest(bytes).into())
    }

    /// The first 12 hex digits, enough to tell versions apart in headers and logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// The raw digest.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PolicyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PolicyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyHash({})", self.short())
    }
}
