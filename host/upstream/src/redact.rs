//! Keeps upstream API keys out of everything the gateway says: responses, error bodies, logs.
//!
//! Keys only ever live in the `Authorization` header built for an upstream. Anything an upstream
//! sends back (error messages sometimes echo a key, whole, cut or masked) passes through
//! [`Redactor`] before it is logged or shown to a client: every piece of 8 characters or more of
//! any configured key is replaced, found in one pass with Aho-Corasick over each key's 8-character
//! windows (a longer piece contains one, and overlapping matches merge into one redaction).

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;

/// Shortest piece of a key that is redacted.
pub const REDACTED_PIECE: usize = 8;
const MARK: &str = "[redacted]";

/// A secret read from the environment. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: &str) -> Self {
        Secret(value.into())
    }

    /// The secret itself; only for building the upstream `Authorization` header and redaction.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Replaces every piece of 8 or more characters of the configured secrets in a string.
#[derive(Clone, Default)]
pub struct Redactor {
    windows: Option<Arc<AhoCorasick>>,
    /// Secrets shorter than a window, replaced whole.
    short: Vec<Secret>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for these secrets (ones under 4 characters are ignored: they would redact
    /// ordinary words).
    pub fn new(secrets: Vec<Secret>) -> Self {
        let mut windows: Vec<&str> = Vec::new();
        let mut short = Vec::new();
        for s in &secrets {
            let text = s.expose();
            if text.len() < 4 {
                continue;
            }
            if text.chars().count() < REDACTED_PIECE {
                short.push(s.clone());
                continue;
            }
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            for w in bounds.windows(REDACTED_PIECE + 1) {
                windows.push(&text[w[0]..w[REDACTED_PIECE]]);
            }
        }
        windows.sort_unstable();
        windows.dedup();
        let windows = (!windows.is_empty()).then(|| {
            Arc::new(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&windows)
                    .expect("a few thousand short literal patterns always build"),
            )
        });
        Redactor { windows, short }
    }

    /// Whether `bytes` hold any piece of a secret that [`Redactor::redact`] would replace: one
    /// scan, no allocation, so every byte an upstream sends can be checked on its way through.
    pub fn finds(&self, bytes: &[u8]) -> bool {
        self.windows.as_ref().is_some_and(|ac| ac.is_match(bytes))
            || self
                .short
                .iter()
                .any(|s| memchr::memmem::find(bytes, s.expose().as_bytes()).is_some())
    }

    /// `bytes` (a response body or SSE frames an upstream sent) with [`Redactor::redact`]
    /// applied; the same buffer, uncopied, when there is nothing to redact.
    pub fn redact_bytes(&self, bytes: Bytes) -> Bytes {
        if !self.finds(&bytes) {
            return bytes;
        }
        Bytes::from(self.redact(&String::from_utf8_lossy(&bytes)))
    }

    /// `text` with every 8-character piece of a secret (and so every longer one) replaced by
    /// `[redacted]`; runs of overlapping pieces become one `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = match &self.windows {
            None => text.to_owned(),
            Some(ac) => {
                // Merge overlapping and adjacent matches into spans.
                let mut spans: Vec<(usize, usize)> = Vec::new();
                for m in ac.find_overlapping_iter(text) {
                    match spans.last_mut() {
                        Some(last) if m.start() <= last.1 => last.1 = last.1.max(m.end()),
                        _ => spans.push((m.start(), m.end())),
                    }
                }
                if spans.is_empty() {
                    text.to_owned()
                } else {
                    let mut out = String::with_capacity(text.len());
                    let mut pos = 0;
                    for (start, end) in spans {
                        out.push_str(&text[pos..start]);
                        out.push_str(MARK);
                        pos = end;
                    }
                    out.push_str(&text[pos..]);
                    out
                }
            }
        };
        for s in &self.short {
            if out.contains(s.expose()) {
                out = out.replace(s.expose(), MARK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_every_long_piece_of_them_disappear() {
        let secret = "sk-0123456789abcdefXYZ";
        let r = Redactor::new(vec![Secret::new(secret)]);
        assert_eq!(
            r.redact(&format!("key {secret} is invalid")),
            "key [redacted] is invalid"
        );
        assert_eq!(
            r.redact("key sk-01234***bcdefXYZ"),
            "key [redacted]***[redacted]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        // Every piece of 8 or more characters, from anywhere in the key.
        for start in 0..secret.len() {
            for end in start + REDACTED_PIECE..=secret.len() {
                let piece = &secret[start..end];
                let out = r.redact(&format!("echo: {piece}."));
                assert!(!out.contains(piece), "{piece} survived: {out}");
                assert_eq!(out, "echo: [redacted].");
            }
        }
        // Seven characters are not enough to be recognised (and not enough to matter).
        assert_eq!(r.redact("3456789"), "3456789");
    }

    #[test]
    fn a_twelve_character_piece_from_the_middle_is_redacted() {
        let secret = "sk-live-0123456789abcdefSECRET";
        let r = Redactor::new(vec![Secret::new(secret)]);
        let middle = &secret[9..21];
        let out = r.redact(&format!("Incorrect API key provided: ...{middle}..."));
        assert!(!out.contains(middle), "{out}");
    }

    #[test]
    fn bytes_are_left_alone_unless_they_hold_a_piece() {
        let secret = "sk-live-0123456789abcdefSECRET";
        let r = Redactor::new(vec![Secret::new(secret)]);
        let clean = Bytes::from_static(b"data: {\"content\":\"hello\"}\n\n");
        let out = r.redact_bytes(clean.clone());
        assert_eq!(out.as_ptr(), clean.as_ptr(), "not copied");
        let leaky = Bytes::from(format!("data: {{\"content\":\"{}\"}}\n\n", &secret[9..21]));
        assert!(r.finds(&leaky));
        assert_eq!(
            r.redact_bytes(leaky),
            Bytes::from_static(b"data: {\"content\":\"[redacted]\"}\n\n")
        );
    }

    #[test]
    fn short_secrets_are_replaced_whole() {
        let r = Redactor::new(vec![Secret::new("abc123"), Secret::new("xy")]);
        assert_eq!(r.redact("k=abc123 xy"), "k=[redacted] xy");
    }
}
