//! Chat chunks written back out as a chat-completions stream: what a chat client reads when its
//! upstream streamed in another dialect (an Anthropic upstream in a fallback chain).

use bytes::Bytes;
use serde_json::Value;

use crate::dialect::StreamEncoder;
use crate::sse::error_frame;

/// Writes each chunk as a `data:` event and ends with `[DONE]`.
pub struct Encoder {
    /// The client asked for usage (`stream_options.include_usage`); otherwise usage-only chunks
    /// are dropped and usage is taken off the others.
    include_usage: bool,
}

impl Encoder {
    pub fn new(include_usage: bool) -> Self {
        Encoder { include_usage }
    }
}

impl StreamEncoder for Encoder {
    fn push(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        let has_usage = chunk.get("usage").is_some_and(|u| !u.is_null());
        if has_usage && !self.include_usage {
            let no_choices = chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if no_choices {
                return;
            }
            let mut chunk = chunk.clone();
            if let Some(map) = chunk.as_object_mut() {
                map.remove("usage");
            }
            out.push(crate::dialect::data_frame(&chunk));
            return;
        }
        out.push(crate::dialect::data_frame(chunk));
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    fn fail(&mut self, message: &str, code: &str, out: &mut Vec<Bytes>) {
        out.push(error_frame(message, code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_reaches_the_client_only_when_asked_for() {
        let usage_only = json!({"choices": [], "usage": {"prompt_tokens": 3}});
        let last = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3}});
        let mut out = Vec::new();
        let mut quiet = Encoder::new(false);
        quiet.push(&usage_only, &mut out);
        assert!(out.is_empty());
        quiet.push(&last, &mut out);
        assert!(!String::from_utf8_lossy(&out[0]).contains("usage"));
        quiet.finish(&mut out);
        assert_eq!(out[1], Bytes::from_static(b"data: [DONE]\n\n"));

        let mut out = Vec::new();
        Encoder::new(true).push(&usage_only, &mut out);
        assert!(String::from_utf8_lossy(&out[0]).contains("prompt_tokens"));
    }
}
