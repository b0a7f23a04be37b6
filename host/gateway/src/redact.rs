//! Keeps upstream API keys out of everything the gateway says: responses, error bodies, logs.
//!
//! Keys only ever live in the `Authorization` header built for an upstream. Anything an upstream
//! sends back (error messages sometimes echo a key, masked or not) passes through [`Redactor`]
//! before it is logged or shown to a client.

use crate::config::Secret;

/// Replaces every configured secret in a string.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    /// A redactor for these secrets (empty ones are ignored).
    pub fn new(secrets: Vec<Secret>) -> Self {
        Redactor {
            secrets: secrets
                .into_iter()
                .filter(|s| s.expose().len() >= 4)
                .collect(),
        }
    }

    /// `text` with each secret, and each 8+ character piece of one, replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let s = secret.expose();
            if out.contains(s) {
                out = out.replace(s, "[redacted]");
            }
            // Providers echo keys partly masked (`sk-abc***xyz`): hide any long fragment too.
            if s.len() >= 16 {
                for window in [&s[..8], &s[s.len() - 8..]] {
                    if out.contains(window) {
                        out = out.replace(window, "[redacted]");
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_their_fragments_disappear() {
        let secret = crate::config::Secret::for_tests("sk-0123456789abcdefXYZ");
        let r = Redactor::new(vec![secret]);
        assert_eq!(
            r.redact("key sk-0123456789abcdefXYZ is invalid"),
            "key [redacted] is invalid"
        );
        assert_eq!(
            r.redact("key sk-01234***bcdefXYZ"),
            "key [redacted]***[redacted]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }
}
