//! Serves a cached completion to a streaming client as a well-formed SSE stream.

use bytes::Bytes;
use serde_json::{Value, json};

/// Characters of content per replayed chunk.
const CHUNK_CHARS: usize = 64;

fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(CHUNK_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

/// The SSE frames replaying `completion`: a role chunk, the content (and reasoning) in pieces,
/// each tool call, the finish reason, usage if `include_usage`, then `[DONE]`.
pub fn sse_frames(completion: &Value, include_usage: bool) -> Vec<Bytes> {
    let chunk = |choices: Value| {
        let mut c = json!({
            "id": completion.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": completion.get("created").cloned().unwrap_or(json!(0)),
            "model": completion.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(fp) = completion.get("system_fingerprint") {
            c["system_fingerprint"] = fp.clone();
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut frames = Vec::new();
    for choice in completion
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = choice.get("index").cloned().unwrap_or(json!(0));
        let message = choice.get("message").cloned().unwrap_or(Value::Null);
        let role = message.get("role").cloned().unwrap_or(json!("assistant"));
        frames.push(chunk(json!([{"index": index, "delta": {"role": role, "content": ""}, "finish_reason": null}])));
        if let Some(reasoning) = message.get("reasoning_content").and_then(Value::as_str) {
            for piece in split(reasoning) {
                frames.push(chunk(json!([{"index": index, "delta": {"reasoning_content": piece}, "finish_reason": null}])));
            }
        }
        if let Some(content) = message.get("content").and_then(Value::as_str) {
            for piece in split(content) {
                frames.push(chunk(
                    json!([{"index": index, "delta": {"content": piece}, "finish_reason": null}]),
                ));
            }
        }
        for (i, call) in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut call = call.clone();
            call["index"] = json!(i);
            frames.push(chunk(
                json!([{"index": index, "delta": {"tool_calls": [call]}, "finish_reason": null}]),
            ));
        }
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        frames.push(chunk(
            json!([{"index": index, "delta": {}, "finish_reason": finish}]),
        ));
    }
    if include_usage && let Some(usage) = completion.get("usage") {
        let mut c = json!({
            "id": completion.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": completion.get("created").cloned().unwrap_or(json!(0)),
            "model": completion.get("model").cloned().unwrap_or(Value::Null),
            "choices": [],
        });
        c["usage"] = usage.clone();
        frames.push(Bytes::from(format!("data: {c}\n\n")));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::assemble::Assembler;

    #[test]
    fn a_replay_reassembles_to_the_same_completion() {
        let text = "word ".repeat(40);
        let completion = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2}});
        let frames = sse_frames(&completion, true);
        assert!(frames.len() > 4, "content arrives in several chunks");
        assert_eq!(
            frames.last().unwrap(),
            &Bytes::from_static(b"data: [DONE]\n\n")
        );
        let mut a = Assembler::default();
        for f in &frames[..frames.len() - 1] {
            let text = std::str::from_utf8(f).unwrap();
            a.push(text.strip_prefix("data: ").unwrap().trim_end());
        }
        assert_eq!(a.finish().unwrap(), completion);
        assert!(
            !sse_frames(&completion, false)
                .iter()
                .any(|f| std::str::from_utf8(f).unwrap().contains("usage"))
        );
    }
}
