//! Reasoning carried across stateless turns in a reasoning item's `encrypted_content`.
//!
//! DeepSeek wants earlier `reasoning_content` sent back when tools are in use, and Codex echoes a
//! reasoning item with `content: null`, keeping only `encrypted_content`. So the gateway puts the
//! reasoning text there itself: not encrypted (the client already saw the text), just an opaque,
//! versioned encoding, `swy1:` + base64 (standard alphabet, padded) of the UTF-8 text.

const PREFIX: &str = "swy1:";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The `encrypted_content` carrying `text`.
pub(crate) fn seal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(PREFIX.len() + bytes.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The reasoning text in an `encrypted_content`, if the gateway wrote it (anyone else's blob, a
/// real OpenAI one for instance, is opaque and ignored).
pub(crate) fn open(blob: &str) -> Option<String> {
    let data = blob.strip_prefix(PREFIX)?.as_bytes();
    if data.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|a| *a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let groups = data.len() / 4;
    for (g, quad) in data.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && g + 1 != groups) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_and_round_trips() {
        for (text, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(seal(text), format!("swy1:{b64}"));
            assert_eq!(open(&seal(text)).as_deref(), Some(text));
        }
        let cot = "Let me think… 思考 🤔\n\"quoted\"";
        assert_eq!(open(&seal(cot)).as_deref(), Some(cot));
    }

    #[test]
    fn foreign_or_damaged_blobs_are_ignored() {
        for blob in [
            "gAAAAABo",
            "swy1:Zm9",
            "swy1:Z===",
            "swy1:Zg==Zm9v",
            "swy1:!!!!",
            "swy1:/w==",
        ] {
            assert_eq!(open(blob), None, "{blob}");
        }
    }
}
