//! Tenant authentication by API key.
//!
//! Only SHA-256 digests of keys are stored. A presented key is hashed, looked up by the first
//! eight bytes of its digest, and the full digest is compared in constant time (`subtle`). The
//! look-up's timing depends only on the digest of the presented key, which reveals nothing an
//! attacker can use to guess a valid key; the comparison itself leaks nothing.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;

/// Key digests of every tenant, for one config snapshot.
#[derive(Debug)]
pub struct KeyIndex<T> {
    by_prefix: HashMap<[u8; 8], Vec<([u8; 32], T)>>,
}

impl<T> Default for KeyIndex<T> {
    fn default() -> Self {
        KeyIndex {
            by_prefix: HashMap::new(),
        }
    }
}

impl<T: Clone> KeyIndex<T> {
    /// Adds a key digest for `owner`.
    pub fn insert(&mut self, digest: [u8; 32], owner: T) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        self.by_prefix
            .entry(prefix)
            .or_default()
            .push((digest, owner));
    }

    /// The owner of `key`, if any.
    pub fn find(&self, key: &str) -> Option<T> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        let mut found = None;
        for (candidate, owner) in self.by_prefix.get(&prefix)? {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(owner.clone());
            }
        }
        found
    }
}

/// The API key a request presents: `Authorization: Bearer <key>`, or `api-key` / `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let key = match v.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            None if v.eq_ignore_ascii_case("bearer") => "",
            _ => v,
        };
        return (!key.is_empty()).then_some(key);
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Finds the tenant a request authenticates as.
pub fn authenticate<T>(
    headers: &HeaderMap,
    keys: &KeyIndex<Arc<T>>,
) -> Result<Arc<T>, GatewayError> {
    let key = presented_key(headers).ok_or(GatewayError::MissingKey)?;
    keys.find(key).ok_or(GatewayError::InvalidKey)
}

/// The hex SHA-256 of a key, as the config stores it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn keys_are_found_by_digest_only() {
        let mut index = KeyIndex::default();
        let digest: [u8; 32] = Sha256::digest(b"sk-one").into();
        index.insert(digest, Arc::new("tenant-a"));
        index.insert(Sha256::digest(b"sk-two").into(), Arc::new("tenant-b"));
        assert_eq!(index.find("sk-one").as_deref(), Some(&"tenant-a"));
        assert_eq!(index.find("sk-two").as_deref(), Some(&"tenant-b"));
        assert_eq!(index.find("sk-three"), None);
        assert_eq!(index.find(""), None);
    }

    #[test]
    fn keys_come_from_the_usual_headers() {
        assert_eq!(
            presented_key(&headers("authorization", "Bearer sk-x")),
            Some("sk-x")
        );
        assert_eq!(
            presented_key(&headers("authorization", "bearer  sk-x ")),
            Some("sk-x")
        );
        assert_eq!(presented_key(&headers("x-api-key", "sk-y")), Some("sk-y"));
        assert_eq!(presented_key(&headers("authorization", "Bearer ")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn hash_key_matches_sha256sum() {
        assert_eq!(
            hash_key("sk-switchyard-demo"),
            "37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483"
        );
    }
}
