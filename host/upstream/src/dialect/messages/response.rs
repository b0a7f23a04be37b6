//! Whole (non-streamed) responses: an Anthropic Message as a `chat.completion` and back.

use serde_json::{Value, json};

use super::{counts, finish_reason, stop_reason, usage};
use crate::dialect::{Answer, assistant_message, chat_completion, str_at, type_of};

/// The key under which tool arguments that were not a JSON object travel in a tool_use `input`
/// (Anthropic requires an object); [`response_to_chat`] unwraps it, so the round trip is exact.
const RAW_ARGUMENTS: &str = "_raw";

/// An Anthropic Message as a `chat.completion`: text blocks joined into `content`, thinking
/// blocks into `reasoning_content`, tool_use blocks into `tool_calls`.
pub fn response_to_chat(message: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match type_of(b) {
            "text" => text.push_str(str_at(b, "text").unwrap_or_default()),
            "thinking" => reasoning.push_str(str_at(b, "thinking").unwrap_or_default()),
            "tool_use" => {
                let input = b.get("input").unwrap_or(&Value::Null);
                let arguments = match input {
                    Value::Null => "{}".to_owned(),
                    Value::Object(m) if m.len() == 1 => match m.get(RAW_ARGUMENTS) {
                        Some(Value::String(raw)) => raw.clone(),
                        _ => input.to_string(),
                    },
                    _ => input.to_string(),
                };
                calls.push((
                    str_at(b, "id").unwrap_or_default().to_owned(),
                    str_at(b, "name").unwrap_or_default().to_owned(),
                    arguments,
                ));
            }
            _ => {}
        }
    }
    let finish = finish_reason(str_at(message, "stop_reason"));
    chat_completion(
        message.get("id").cloned().unwrap_or(Value::Null),
        message.get("model").cloned().unwrap_or(Value::Null),
        assistant_message(text, reasoning, calls),
        finish,
        message.get("usage").filter(|u| u.is_object()).map(counts),
    )
}

/// A `chat.completion` as an Anthropic Message for `model`: a thinking block (unsigned) for
/// `reasoning_content`, a text block for non-empty content, then one tool_use per tool call.
/// Arguments that are not a JSON object travel as `{"_raw": "<arguments>"}`.
pub fn response_from_chat(completion: &Value, model: &str) -> Value {
    let a = Answer::of(completion);
    let mut content = Vec::new();
    if !a.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": a.reasoning, "signature": ""}));
    }
    if !a.text.is_empty() {
        content.push(json!({"type": "text", "text": a.text}));
    }
    for (id, name, arguments) in a.calls {
        content.push(
            json!({"type": "tool_use", "id": id, "name": name, "input": tool_input(&arguments)}),
        );
    }
    json!({
        "id": message_id(completion.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(a.finish.as_deref()),
        "stop_sequence": null,
        "usage": usage(a.counts.unwrap_or_default()),
    })
}

/// `msg_` + the chat id, unless it already is one.
fn message_id(chat_id: Option<&str>) -> String {
    match chat_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_switchyard".to_owned(),
    }
}

/// Tool-call arguments as a tool_use `input` object.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ RAW_ARGUMENTS: arguments }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_becomes_a_completion() {
        let m = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                        {"type": "text", "text": "hello"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"x": 1}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3}});
        let c = response_to_chat(&m);
        let msg = &c["choices"][0]["message"];
        assert_eq!(msg["content"], "hello");
        assert_eq!(msg["reasoning_content"], "hm");
        assert_eq!(msg["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["prompt_tokens"], 15);
        assert_eq!(c["usage"]["prompt_cache_hit_tokens"], 3);
        assert_eq!(c["usage"]["cache_creation_input_tokens"], 2);
    }

    #[test]
    fn unparsable_arguments_survive_the_round_trip() {
        let c = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "length", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"cut"}}]}}]});
        let m = response_from_chat(&c, "claude");
        assert_eq!(m["id"], "msg_chatcmpl-1");
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(m["content"][0]["input"], json!({"_raw": "{\"cut"}));
        let back = response_to_chat(&m);
        assert_eq!(
            back["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"cut"
        );
    }
}
