//! Anthropic Messages (`POST /v1/messages`): requests to and from chat completions, whole
//! responses both ways, a stream encoder (chat chunks to Anthropic SSE) and decoder (Anthropic
//! SSE to chat chunks), and Anthropic's error shapes.

mod decoder;
mod encoder;
mod outgoing;
mod request;
mod response;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Counts, frame};

pub use decoder::Decoder;
pub use encoder::Encoder;
pub use outgoing::request_from_chat;
pub use request::request_to_chat;
pub use response::{response_from_chat, response_to_chat};

/// Anthropic's `error.type` for an HTTP status (the SDKs pick their exception by status first,
/// so this only has to be plausible for the others).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        405..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An Anthropic error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// A mid-stream Anthropic error event (`event: error`), typed as `status_like` would be.
pub fn stream_error_frame(status_like: u16, message: &str) -> Bytes {
    frame("error", &error_body(status_like, message))
}

/// Chat's `finish_reason` for an Anthropic `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new: the turn is over.
        _ => "stop",
    }
}

/// Anthropic's `stop_reason` for a chat `finish_reason`. DeepSeek's
/// `insufficient_system_resource` and `aborted` mean the output was cut short by the server:
/// `max_tokens` is the stop reason whose meaning ("incomplete, you may continue") fits.
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length" | "insufficient_system_resource" | "aborted") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Canonical counts of an Anthropic `usage` object: its `input_tokens` exclude cache reads and
/// writes, chat's `prompt_tokens` include them.
pub(crate) fn counts(usage: &Value) -> Counts {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, read, write) = (
        n("input_tokens"),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
    );
    Counts {
        prompt: input.saturating_add(read).saturating_add(write),
        cached: read,
        completion: n("output_tokens"),
        cache_write: write,
        reasoning: 0,
    }
}

/// An Anthropic `usage` object from canonical counts.
pub(crate) fn usage(c: Counts) -> Value {
    let cached = c.cached.min(c.prompt);
    let write = c.cache_write.min(c.prompt - cached);
    json!({
        "input_tokens": c.prompt - cached - write,
        "output_tokens": c.completion,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_follow_anthropics_table() {
        for (status, ty) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "timeout_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(error_type(status), ty, "{status}");
        }
        let f = stream_error_frame(529, "Overloaded");
        let text = std::str::from_utf8(&f).unwrap();
        let data = text.strip_prefix("event: error\ndata: ").unwrap();
        let data = data.strip_suffix("\n\n").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(data).unwrap(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        );
    }

    #[test]
    fn usage_converts_both_ways() {
        let a = json!({"input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 80, "cache_creation_input_tokens": 15});
        let c = counts(&a);
        assert_eq!((c.prompt, c.cached, c.cache_write), (100, 80, 15));
        assert_eq!(usage(c), a);
    }
}
